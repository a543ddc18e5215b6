/* util.c - small helpers the whole runtime shares. */
#include <stdarg.h>
#include <stdio.h>

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
