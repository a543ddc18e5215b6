/*
 * bytebuf.h - a growable byte buffer for the runtime's encoders (interop.c's
 * safetensors and npz, onnx.c's protobuf). A failed allocation sets oom and
 * later writes do nothing, so an encoder checks once at the end.
 */
#ifndef NNC_BYTEBUF_H
#define NNC_BYTEBUF_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int oom;
} buf_t;

static inline void buf_put(buf_t *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static inline void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void buf_printf(buf_t *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->oom = 1; /* only short pieces go through here */
        return;
    }
    buf_put(b, tmp, (size_t)n);
}

static inline void buf_le(buf_t *b, uint64_t v, int bytes) {
    uint8_t p[8];
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, p, (size_t)bytes);
}

static inline void buf_floats(buf_t *b, const float *x, size_t n) {
    for (size_t i = 0; i < n && !b->oom; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], 4);
        buf_le(b, bits, 4);
    }
}

#endif
