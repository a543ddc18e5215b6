/*
 * bf16_check.h - what the tests of the bfloat16 kernels share
 * (tests/layers/conv_bf16/kernels.c, tests/layers/dense_bf16/kernels.c).
 *
 * A kernel's results are compared with a double-precision reference twice:
 * on the operands rounded to bfloat16 as the kernel rounds them, and on the
 * operands as they are. A product of two bfloat16 values (8-bit
 * significands) is exact in fp32, so the kernels' only error beyond the
 * rounding is their fp32 sums: they must match the rounded reference to
 * ~1e-6 of the sums' magnitude, and stray from the unrounded one by far more
 * than that (or they did not round). Include after the generated model and
 * Criterion, within #if NNC_BF16.
 */
#ifndef BF16_CHECK_H
#define BF16_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CANARY 12345.0f /* in outputs outside the slice: a kernel must leave them */

/* What vcvtneps2bf16 keeps of f: the top 16 bits, rounded to nearest even (no NaN here). */
static float round_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float *array(size_t n)
{
    float *a = malloc(n * sizeof *a);
    cr_assert_not_null(a);
    return a;
}

static void fill(float *v, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (float)((int)(seed >> 8) % 2001 - 1000) / 1000.0f; /* in [-1, 1], most not bfloat16 */
    }
}

static float *rounded(const float *v, size_t n)
{
    float *r = array(n);
    for (size_t i = 0; i < n; i++)
        r[i] = round_bf16(v[i]);
    return r;
}

/* Bytes of a slice's scratch arena outside samples [lo, hi) that a kernel wrote (the test fills it with 0xff). */
static int scratch_written_outside(const float *arena, size_t bytes, size_t per_sample, int lo, int hi)
{
    const unsigned char *b = (const unsigned char *)arena;
    size_t from = (size_t)lo * per_sample * sizeof(float), to = (size_t)hi * per_sample * sizeof(float);
    int written = 0;
    for (size_t i = 0; i < bytes; i++)
        if (i < from || i >= to)
            written += b[i] != 0xff;
    return written;
}

/* Worst differences of one tensor: from the rounded reference and from the unrounded one, in magnitudes. */
typedef struct {
    double rounded, unrounded;
    int outside;   /* elements outside the slice that are not the canary */
    int not_finite; /* NaN or infinite results: fmax() would pass over them (a value read unwritten shows so) */
} discrepancy;

/* One element: `got` against the rounded reference `want` (its products' magnitude `mag`) and the exact one. */
static void discrepancy_add(discrepancy *d, double got, double want, double mag, double exact, double mag_exact)
{
    d->not_finite += !isfinite(got);
    d->rounded = fmax(d->rounded, fabs(got - want) / (mag + 1e-30));
    d->unrounded = fmax(d->unrounded, fabs(got - exact) / (mag_exact + 1e-30));
}

/*
 * The kernels must match the rounded reference to 2e-6 of the sums' magnitude
 * and stray from the unrounded one by at least 1e-4 (or they did not round),
 * leave everything outside their slice alone, and give no NaN.
 */
static void expect_close(const char *layer, const char *what, int lo, int hi, const discrepancy *d)
{
    cr_log_info("%s %s, samples %d..%d: %.1e of the sums' magnitude from the rounded reference, %.1e from the "
                "unrounded",
                layer, what, lo, hi, d->rounded, d->unrounded);
    cr_expect_leq(d->rounded, 2e-6, "%s %s, samples %d..%d: %g from the bfloat16-rounded reference", layer, what, lo,
                  hi, d->rounded);
    cr_expect_geq(d->unrounded, 1e-4, "%s %s, samples %d..%d: within %g of the unrounded reference: no rounding?",
                  layer, what, lo, hi, d->unrounded);
    cr_expect_eq(d->outside, 0, "%s %s, samples %d..%d: %d values outside the slice written", layer, what, lo, hi,
                 d->outside);
    cr_expect_eq(d->not_finite, 0, "%s %s, samples %d..%d: %d results are NaN or infinite", layer, what, lo, hi,
                 d->not_finite);
}

#endif
