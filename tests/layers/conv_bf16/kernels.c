/*
 * The bfloat16 convolution kernels of tests/layers/conv_bf16/conv_bf16.nn
 * against a double-precision convolution of the same operands rounded to
 * bfloat16, as the kernels round them.
 *
 * The comparisons are tests/bf16_check.h's.
 *
 * Where the target lacks AVX512_BF16 (the -march=x86-64-v3 build of the suite)
 * the model runs its fp32 kernels, which the gradient check covers; this file
 * then checks that the trainer says so.
 */
#define NNC_NO_MAIN
#include "conv_bf16.c"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>

#if NNC_BF16

#include "bf16_check.h"

typedef struct {
    int ih, iw, ci, kh, kw, co;
} conv_shape;

static int out_h(const conv_shape *s) { return s->ih - s->kh + 1; }
static int out_w(const conv_shape *s) { return s->iw - s->kw + 1; }
static size_t in_size(const conv_shape *s) { return (size_t)s->ih * s->iw * s->ci; }   /* one image's */
static size_t out_size(const conv_shape *s) { return (size_t)out_h(s) * out_w(s) * s->co; }
static size_t w_size(const conv_shape *s) { return (size_t)s->kh * s->kw * s->ci * s->co; }

static workspace kernels_ws;

typedef enum { LINEAR, RELU, TANH } activation;

/* The bfloat16 layers of conv_bf16.nn: their kernels, buffers, activations and shapes. */
typedef struct {
    const char *name;
    void (*pack)(uint16_t *wp, uint16_t *wtp, const float *w);
    void (*forward)(float *out, const float *in, uint16_t *inh, const uint16_t *wp, const float *bias, int lo, int hi);
    void (*backward)(float *din, float *dw, float *db, float *dout, const float *out, const float *in, uint16_t *dzp,
                     uint16_t *in_rows, uint16_t *dzh, const uint16_t *wtp, int lo, int hi);
    uint16_t *wp;
    uint16_t *wtp; /* NULL without an input gradient */
    activation act;
    conv_shape s;
} bf16_layer;

#define KERNELS(id)                                                                                                    \
    #id, id##_pack_bf16, id##_forward_bf16, id##_backward_bf16, kernels_ws.id##_wp

static const bf16_layer layers[] = {
    /* 6x11x16 -> 4x9x32: two vectors of channels, odd rows, the forward block's remainder; no input gradient */
    {KERNELS(conv2d_1), NULL, RELU, {6, 11, 16, 3, 3, 32}},
    /* 4x9x32 -> 2x7x16: an input gradient over 32 channels */
    {KERNELS(conv2d_2), kernels_ws.conv2d_2_wtp, LINEAR, {4, 9, 32, 3, 3, 16}},
    /* 2x7x16 -> 1x6x16 with a 2x2 kernel */
    {KERNELS(conv2d_3), kernels_ws.conv2d_3_wtp, TANH, {2, 7, 16, 2, 2, 16}},
};
#define N_LAYERS (sizeof layers / sizeof layers[0])

/* The slices of a batch of B = 6 a thread may get: the whole batch, one inside, the last one. */
static const int slices[][2] = {{0, B}, {2, 5}, {5, 6}};
#define N_SLICES (sizeof slices / sizeof slices[0])

/* Which tensor of a convolution the reference computes. */
typedef enum { REF_OUT, REF_DW, REF_DIN } ref_kind;

/*
 * Element `at` of the output (before the activation), dw (over images lo..hi)
 * or din of a valid, stride-1 convolution, in double; *magnitude gets the sum
 * of its products' absolute values. in [b][y][x][ci], w [ky][kx][ci][co], dz
 * like the output.
 */
static double reference(ref_kind kind, const conv_shape *s, int lo, int hi, const float *in, const float *w,
                        const float *dz, size_t at, double *magnitude)
{
    int OH = out_h(s), OW = out_w(s);
    double sum = 0.0, mag = 0.0;
    if (kind == REF_OUT) {
        int co = (int)(at % (size_t)s->co), ox = (int)(at / s->co % (size_t)OW), oy = (int)(at / s->co / OW % (size_t)OH);
        int b = (int)(at / out_size(s));
        for (int ky = 0; ky < s->kh; ky++)
            for (int kx = 0; kx < s->kw; kx++)
                for (int ci = 0; ci < s->ci; ci++) {
                    double p = (double)in[(((size_t)b * s->ih + oy + ky) * s->iw + ox + kx) * s->ci + ci] *
                               w[((ky * s->kw + kx) * s->ci + ci) * s->co + co];
                    sum += p;
                    mag += fabs(p);
                }
    } else if (kind == REF_DW) {
        int co = (int)(at % (size_t)s->co), ci = (int)(at / s->co % (size_t)s->ci);
        int kx = (int)(at / s->co / s->ci % (size_t)s->kw), ky = (int)(at / s->co / s->ci / s->kw);
        for (int b = lo; b < hi; b++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    double p = (double)in[(((size_t)b * s->ih + oy + ky) * s->iw + ox + kx) * s->ci + ci] *
                               dz[(((size_t)b * OH + oy) * OW + ox) * s->co + co];
                    sum += p;
                    mag += fabs(p);
                }
    } else {
        int ci = (int)(at % (size_t)s->ci), x = (int)(at / s->ci % (size_t)s->iw), y = (int)(at / s->ci / s->iw % (size_t)s->ih);
        int b = (int)(at / in_size(s));
        for (int ky = 0; ky < s->kh; ky++)
            for (int kx = 0; kx < s->kw; kx++) {
                int oy = y - ky, ox = x - kx;
                if (oy < 0 || oy >= OH || ox < 0 || ox >= OW)
                    continue;
                for (int co = 0; co < s->co; co++) {
                    double p = (double)dz[(((size_t)b * OH + oy) * OW + ox) * s->co + co] *
                               w[((ky * s->kw + kx) * s->ci + ci) * s->co + co];
                    sum += p;
                    mag += fabs(p);
                }
            }
    }
    *magnitude = mag;
    return sum;
}

static double activate(activation act, double z)
{
    return act == RELU ? (z > 0.0 ? z : 0.0) : act == TANH ? tanh(z) : z;
}

/* What every case works on: random operands, their bfloat16 roundings, and room for the results. */
typedef struct {
    const bf16_layer *l;
    const conv_shape *s;
    int lo, hi;
    float *in, *w, *bias, *dz, *in_r, *w_r, *dz_r;
    float *out, *dout, *stored_out, *din, *dw, *db;
} kernel_case;

static kernel_case case_new(size_t layer, size_t slice)
{
    kernel_case k = {.l = &layers[layer], .s = &layers[layer].s, .lo = slices[slice][0], .hi = slices[slice][1]};
    size_t n_in = B * in_size(k.s), n_out = B * out_size(k.s), n_w = w_size(k.s);
    k.in = array(n_in), k.w = array(n_w), k.bias = array((size_t)k.s->co), k.dz = array(n_out);
    fill(k.in, n_in, 1 + (unsigned)layer), fill(k.w, n_w, 11 + (unsigned)layer);
    fill(k.bias, (size_t)k.s->co, 21 + (unsigned)layer), fill(k.dz, n_out, 31 + (unsigned)layer);
    k.in_r = rounded(k.in, n_in), k.w_r = rounded(k.w, n_w), k.dz_r = rounded(k.dz, n_out);
    k.out = array(n_out), k.dout = array(n_out), k.stored_out = array(n_out), k.din = array(n_in), k.dw = array(n_w);
    k.db = array((size_t)k.s->co);
    for (size_t i = 0; i < n_out; i++) {
        k.out[i] = CANARY;
        k.dout[i] = k.dz[i];
        /* the stored output where the activation's derivative is 1: relu's y > 0, tanh's y = 0 */
        k.stored_out[i] = k.l->act == TANH ? 0.0f : 1.0f;
    }
    for (size_t i = 0; i < n_in; i++)
        k.din[i] = CANARY;
    memset(&kernels_ws, 0xff, sizeof kernels_ws); /* bfloat16 NaNs: a value a kernel reads unwritten shows */
    return k;
}

static void case_free(kernel_case *k)
{
    float *arrays[] = {k->in, k->w, k->bias, k->dz, k->in_r, k->w_r, k->dz_r, k->out, k->dout,
                       k->stored_out, k->din, k->dw, k->db};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        free(arrays[i]);
}

/*
 * The bfloat16 copies the kernels make, where the generated code puts them in
 * the scratch arena (compiler/layers/conv_bf16.c): the forward pass's input;
 * the weight gradient's dz pairs, then its input rows a row of whole pairs
 * plus the kernel's overhang wide, a whole number of cache lines in; the
 * input gradient's dz over the pairs' bytes.
 */
typedef enum { INH, DZP, INROWS, DZH } scratch_use;

static uint16_t *scratch(const kernel_case *k, scratch_use use)
{
    const conv_shape *s = k->s;
    int pair_width = (out_w(s) + 1) / 2 * 2;
    int dzp = out_h(s) * pair_width * s->co; /* bfloat16 values a sample; the arena counts floats, two each */
    int before = use == INROWS ? (dzp / 2 + 15) / 16 * 16 : 0;
    int values = use == INH      ? (int)in_size(s)
                 : use == DZP    ? dzp
                 : use == INROWS ? s->ih * s->ci * (pair_width + s->kw - 1)
                                 : (int)out_size(s);
    cr_assert_leq(before + values / 2, SCRATCH, "%s: the scratch arena is too small", k->l->name);
    return (uint16_t *)scratch_region(kernels_ws.scratch, k->lo, k->hi, before, values / 2);
}

/* Bytes of the scratch arena outside the case's slice that a kernel wrote (case_new fills it with 0xff). */
static int scratch_outside(const kernel_case *k)
{
    return scratch_written_outside(kernels_ws.scratch, sizeof kernels_ws.scratch, SCRATCH, k->lo, k->hi);
}

/*
 * Every element of `got` (per_image x B of them, or count when per_image is 0:
 * dw) against the reference on the rounded operands and on the unrounded ones,
 * plus `offset` (the bias) and the activation.
 */
static void compare(discrepancy *d, const kernel_case *k, ref_kind kind, const float *got, size_t per_image,
                    size_t count)
{
    size_t n = per_image ? per_image * B : count;
    for (size_t i = 0; i < n; i++) {
        int b = per_image ? (int)(i / per_image) : k->lo;
        if (b < k->lo || b >= k->hi) {
            d->outside += got[i] != CANARY;
            continue;
        }
        double mag, mag_exact, base = kind == REF_OUT ? k->bias[i % (size_t)k->s->co] : 0.0;
        double want = reference(kind, k->s, k->lo, k->hi, k->in_r, k->w_r, k->dz_r, i, &mag) + base;
        double exact = reference(kind, k->s, k->lo, k->hi, k->in, k->w, k->dz, i, &mag_exact) + base;
        if (kind == REF_OUT)
            want = activate(k->l->act, want), exact = activate(k->l->act, exact);
        discrepancy_add(d, got[i], want, mag, exact, mag_exact);
    }
}

Test(conv_bf16, forward_matches_the_rounded_reference)
{
    for (size_t l = 0; l < N_LAYERS; l++)
        for (size_t sl = 0; sl < N_SLICES; sl++) {
            kernel_case k = case_new(l, sl);
            k.l->pack(k.l->wp, NULL, k.w); /* as inference packs: no transposed copy */
            k.l->forward(k.out, k.in, scratch(&k, INH), k.l->wp, k.bias, k.lo, k.hi);
            cr_expect_eq(scratch_outside(&k), 0, "%s forward, images %d..%d: scratch written outside the slice",
                         k.l->name, k.lo, k.hi);
            discrepancy d = {0};
            compare(&d, &k, REF_OUT, k.out, out_size(k.s), 0);
            expect_close(k.l->name, "forward", k.lo, k.hi, &d);
            case_free(&k);
        }
}

/* dw over the slice's images, din within them (where the layer has one), and db. */
Test(conv_bf16, backward_matches_the_rounded_reference)
{
    for (size_t l = 0; l < N_LAYERS; l++)
        for (size_t sl = 0; sl < N_SLICES; sl++) {
            kernel_case k = case_new(l, sl);
            const bf16_layer *L = k.l;
            L->pack(L->wp, L->wtp, k.w);
            L->backward(L->wtp ? k.din : NULL, k.dw, k.db, k.dout, k.stored_out, k.in, scratch(&k, DZP),
                        scratch(&k, INROWS), L->wtp ? scratch(&k, DZH) : NULL, L->wtp, k.lo, k.hi);
            cr_expect_eq(scratch_outside(&k), 0, "%s backward, images %d..%d: scratch written outside the slice",
                         L->name, k.lo, k.hi);
            discrepancy dw = {0}, din = {0};
            compare(&dw, &k, REF_DW, k.dw, 0, w_size(k.s));
            expect_close(L->name, "dw", k.lo, k.hi, &dw);
            if (L->wtp) {
                compare(&din, &k, REF_DIN, k.din, in_size(k.s), 0);
                expect_close(L->name, "din", k.lo, k.hi, &din);
            }
            for (int co = 0; co < k.s->co; co++) { /* db: fp32 sums of dz as it is */
                double sum = 0.0;
                for (size_t p = (size_t)k.lo * out_size(k.s) / k.s->co; p < (size_t)k.hi * out_size(k.s) / k.s->co; p++)
                    sum += k.dz[p * k.s->co + co];
                cr_expect_float_eq(k.db[co], sum, 1e-4, "%s db[%d] %g, want %g", L->name, co, k.db[co], sum);
            }
            case_free(&k);
        }
}

Test(conv_bf16, the_trainer_names_its_bfloat16_layers)
{
    cr_expect_str_eq(nnc_model_conv_bf16.precision,
                     "bf16 products, fp32 sums (AVX512_BF16) in conv2d_1, conv2d_2, conv2d_3; fp32 elsewhere");
}

#else /* this target lacks AVX512_BF16: the fp32 kernels run, and the trainer says so */

Test(conv_bf16, the_trainer_says_it_fell_back_to_fp32)
{
    cr_expect_str_eq(nnc_model_conv_bf16.precision,
                     "fp32: precision bf16 asked, but this build's target lacks AVX512_BF16");
}

#endif
