/* util.c - small helpers the whole runtime shares. */
#include <stdarg.h>
#include <stdio.h>

#include <zlib.h>

#include "nncrt.h"

int nnc_all_finite(const float *x, size_t n)
{
    /* Summing x * 0 keeps the loop branch-free and vectorizable: it is 0 unless some x is NaN or infinite. */
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++)
        acc += x[i] * 0.0f;
    return acc == 0.0f;
}

void nnc_set_error(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

uint32_t nnc_crc32(uint32_t crc, const uint8_t *p, size_t len)
{
    /* zlib's crc32 takes a uInt length: feed it in chunks. */
    uLong c = crc;
    while (len > 0) {
        uInt chunk = len > (1u << 30) ? (1u << 30) : (uInt)len;
        c = crc32(c, p, chunk);
        p += chunk;
        len -= chunk;
    }
    return (uint32_t)c;
}
