/* util.c - small helpers the whole runtime shares. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "nncrt.h"

int nnc_all_finite(const float *x, size_t n)
{
    /* A float is NaN or infinite when its exponent bits are all ones. OR-ing that test over
     * the integers is branch-free and vectorizes (a float sum would not: gcc keeps its order,
     * so a check over every gradient each step was a serial chain of adds, ~7% of a step). */
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        bad |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}

int nnc_argmax(const float *p, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (p[i] > p[best])
            best = i;
    return best;
}

double nnc_sample_loss(nnc_loss_kind kind, const float *p, int n_classes, int label)
{
    const double keras_epsilon = 1e-7;
    if (kind == NNC_LOSS_MSE) {
        double sum = 0.0;
        for (int k = 0; k < n_classes; k++) {
            double d = (double)p[k] - (k == label ? 1.0 : 0.0);
            sum += d * d;
        }
        return sum / n_classes;
    }
    double q = p[label];
    if (q < keras_epsilon)
        q = keras_epsilon;
    if (q > 1.0 - keras_epsilon)
        q = 1.0 - keras_epsilon;
    return -log(q);
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

void *nnc_workspace_new(const nnc_model *m)
{
    size_t size = (m->workspace_bytes + 63) / 64 * 64;
    void *ws = aligned_alloc(64, size ? size : 64);
    if (ws)
        memset(ws, 0, size);
    return ws;
}

void nnc_workspace_free(void *workspace)
{
    free(workspace);
}

void nnc_prep_table(const nnc_model *m, const float prep[2], int channel, float table[256])
{
    for (int v = 0; v < 256; v++) {
        switch (m->prep) {
        case NNC_PREP_NONE: table[v] = (float)v; break;
        case NNC_PREP_SCALE: table[v] = (float)v * m->prep_scale; break;
        case NNC_PREP_NORMALIZE: {
            /* Constant images have std 0; numpy would give inf/nan, we leave them centred. */
            double std = prep[1] > 0.0f ? (double)prep[1] : 1.0;
            table[v] = (float)(((double)v - (double)prep[0]) / std);
            break;
        }
        case NNC_PREP_CHANNELS: {
            /* torchvision: ToTensor's v / 255, then Normalize's (x - mean) / std (the checker keeps std > 0). */
            int c = channel < NNC_MAX_PREP_CHANNELS ? channel : NNC_MAX_PREP_CHANNELS - 1;
            table[v] = (float)(((double)v / 255.0 - (double)m->prep_mean[c]) / (double)m->prep_std[c]);
            break;
        }
        }
    }
}
