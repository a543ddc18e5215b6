/*
 * The bfloat16 convolution kernels of tests/layers/conv_bf16/conv_bf16.nn
 * against a double-precision convolution of the same operands rounded to
 * bfloat16, as the kernels round them.
 *
 * A product of two bfloat16 values (8-bit significands) is exact in fp32, so
 * the kernels' only error beyond the rounding is their fp32 sums: the outputs,
 * weight and input gradients must match the rounded reference to ~1e-6 of the
 * sums' magnitude. Each test also checks that the rounding happened (the
 * kernels are not fp32 ones): they stray from the unrounded reference by far
 * more than that.
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

typedef struct {
    int ih, iw, ci, kh, kw, co;
} conv_shape;

static int out_h(const conv_shape *s) { return s->ih - s->kh + 1; }
static int out_w(const conv_shape *s) { return s->iw - s->kw + 1; }

static void fill(float *v, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (float)((int)(seed >> 8) % 2001 - 1000) / 1000.0f; /* in [-1, 1], most not bfloat16 */
    }
}

static float *rounded(const float *v, size_t n)
{
    float *r = malloc(n * sizeof *r);
    cr_assert_not_null(r);
    for (size_t i = 0; i < n; i++)
        r[i] = round_bf16(v[i]);
    return r;
}

/* Which tensor of a convolution the reference computes. */
typedef enum { REF_OUT, REF_DW, REF_DIN } ref_kind;

/*
 * Element `at` of the output (before the activation), dw or din of a valid,
 * stride-1 convolution over n images, in double; *magnitude gets the sum of
 * its products' absolute values. in [b][y][x][ci], w [ky][kx][ci][co], dz like
 * the output.
 */
static double reference(ref_kind kind, const conv_shape *s, int n, const float *in, const float *w,
                        const float *dz, size_t at, double *magnitude)
{
    int OH = out_h(s), OW = out_w(s);
    double sum = 0.0, mag = 0.0;
    if (kind == REF_OUT) {
        int co = (int)(at % (size_t)s->co), ox = (int)(at / s->co % (size_t)OW), oy = (int)(at / s->co / OW % (size_t)OH);
        int b = (int)(at / ((size_t)s->co * OW * OH));
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
        for (int b = 0; b < n; b++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    double p = (double)in[(((size_t)b * s->ih + oy + ky) * s->iw + ox + kx) * s->ci + ci] *
                               dz[(((size_t)b * OH + oy) * OW + ox) * s->co + co];
                    sum += p;
                    mag += fabs(p);
                }
    } else {
        int ci = (int)(at % (size_t)s->ci), x = (int)(at / s->ci % (size_t)s->iw), y = (int)(at / s->ci / s->iw % (size_t)s->ih);
        int b = (int)(at / ((size_t)s->ci * s->iw * s->ih));
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

/*
 * Every element of `got` (count of them) against the reference on the rounded
 * operands (to 2e-6 of its magnitude) and on the unrounded ones: the largest
 * difference from the latter must be at least 1e-4 of the magnitude, or the
 * kernel did not round. `offset` is added to the reference (the bias).
 */
static void expect_matches(const char *what, ref_kind kind, const conv_shape *s, int n, const float *got, size_t count,
                           const float *offset, const float *in, const float *w, const float *dz, const float *in_r,
                           const float *w_r, const float *dz_r)
{
    double worst = 0.0, unrounded = 0.0;
    for (size_t i = 0; i < count; i++) {
        double mag, mag_exact;
        double base = offset ? offset[i % (size_t)s->co] : 0.0;
        double want = base + reference(kind, s, n, in_r, w_r, dz_r, i, &mag);
        double exact = base + reference(kind, s, n, in, w, dz, i, &mag_exact);
        double err = fabs(got[i] - want) / (mag + 1e-30);
        if (err > worst)
            worst = err;
        if (fabs(got[i] - exact) / (mag_exact + 1e-30) > unrounded)
            unrounded = fabs(got[i] - exact) / (mag_exact + 1e-30);
    }
    cr_log_info("%s: %.1e of the sums' magnitude from the rounded reference, %.1e from the unrounded", what, worst,
                unrounded);
    cr_expect_leq(worst, 2e-6, "%s: %g of the sums' magnitude from the bfloat16-rounded reference", what, worst);
    cr_expect_geq(unrounded, 1e-4, "%s: within %g of the unrounded reference: no bfloat16 rounding?", what, unrounded);
}

static workspace kernels_ws;

/* The forward kernel of a bf16 layer with a linear activation: conv2d_2 (3x3, 32 -> 16, one vector). */
Test(conv_bf16, forward_matches_the_rounded_reference)
{
    const conv_shape s = {4, 9, 32, 3, 3, 16};
    int n = B, OH = out_h(&s), OW = out_w(&s);
    size_t n_in = (size_t)n * s.ih * s.iw * s.ci, n_w = (size_t)s.kh * s.kw * s.ci * s.co;
    size_t n_out = (size_t)n * OH * OW * s.co;
    float *in = malloc(n_in * sizeof *in), *w = malloc(n_w * sizeof *w), bias[16], *out = malloc(n_out * sizeof *out);
    cr_assert(in && w && out);
    fill(in, n_in, 1);
    fill(w, n_w, 2);
    fill(bias, 16, 3);
    conv2d_2_pack_bf16(kernels_ws.conv2d_2_wp, NULL, w);
    conv2d_2_forward_bf16(out, in, kernels_ws.conv2d_2_inh, kernels_ws.conv2d_2_wp, bias, 0, n);
    float *in_r = rounded(in, n_in), *w_r = rounded(w, n_w);
    expect_matches("conv2d_2 forward", REF_OUT, &s, n, out, n_out, bias, in, w, NULL, in_r, w_r, NULL);
    free(in), free(w), free(out), free(in_r), free(w_r);
}

/*
 * The backward kernel: dw and din of conv2d_2 over all B images, db. Its
 * activation is linear, so dout is dz as given.
 */
Test(conv_bf16, backward_matches_the_rounded_reference)
{
    const conv_shape s = {4, 9, 32, 3, 3, 16};
    int n = B, OH = out_h(&s), OW = out_w(&s);
    size_t n_in = (size_t)n * s.ih * s.iw * s.ci, n_w = (size_t)s.kh * s.kw * s.ci * s.co;
    size_t n_out = (size_t)n * OH * OW * s.co;
    float *in = malloc(n_in * sizeof *in), *w = malloc(n_w * sizeof *w), *dz = malloc(n_out * sizeof *dz);
    float *dout = malloc(n_out * sizeof *dout), *din = malloc(n_in * sizeof *din), *dw = malloc(n_w * sizeof *dw);
    float db[16];
    cr_assert(in && w && dz && dout && din && dw);
    fill(in, n_in, 4);
    fill(w, n_w, 5);
    fill(dz, n_out, 6);
    memcpy(dout, dz, n_out * sizeof *dz);
    conv2d_2_pack_bf16(kernels_ws.conv2d_2_wp, kernels_ws.conv2d_2_wtp, w);
    conv2d_2_backward_bf16(din, dw, db, dout, dz /* out: unread, the activation is linear */, in, kernels_ws.conv2d_2_dzp,
                           kernels_ws.conv2d_2_int, kernels_ws.conv2d_2_dzh, kernels_ws.conv2d_2_wtp, 0, n);
    float *in_r = rounded(in, n_in), *w_r = rounded(w, n_w), *dz_r = rounded(dz, n_out);
    expect_matches("conv2d_2 dw", REF_DW, &s, n, dw, n_w, NULL, in, w, dz, in_r, w_r, dz_r);
    expect_matches("conv2d_2 din", REF_DIN, &s, n, din, n_in, NULL, in, w, dz, in_r, w_r, dz_r);
    for (int co = 0; co < 16; co++) { /* db: fp32 sums of dz as it is */
        double sum = 0.0;
        for (size_t p = 0; p < n_out / 16; p++)
            sum += dz[p * 16 + co];
        cr_expect_float_eq(db[co], sum, 1e-4, "db[%d] %g, want %g", co, db[co], sum);
    }
    free(in), free(w), free(dz), free(dout), free(din), free(dw), free(in_r), free(w_r), free(dz_r);
}

/*
 * conv2d_1's weight gradient: two vectors of output channels, and rows of 9
 * output pixels, whose last pair is half padding. A relu whose stored outputs
 * are all positive leaves dz as given.
 */
Test(conv_bf16, weight_gradient_of_odd_rows)
{
    const conv_shape s = {6, 11, 16, 3, 3, 32};
    int n = B, OH = out_h(&s), OW = out_w(&s);
    size_t n_in = (size_t)n * s.ih * s.iw * s.ci, n_w = (size_t)s.kh * s.kw * s.ci * s.co;
    size_t n_out = (size_t)n * OH * OW * s.co;
    float *in = malloc(n_in * sizeof *in), *dz = malloc(n_out * sizeof *dz), *dout = malloc(n_out * sizeof *dout);
    float *ones = malloc(n_out * sizeof *ones), *dw = malloc(n_w * sizeof *dw), db[32];
    cr_assert(in && dz && dout && ones && dw);
    fill(in, n_in, 7);
    fill(dz, n_out, 8);
    memcpy(dout, dz, n_out * sizeof *dz);
    for (size_t i = 0; i < n_out; i++)
        ones[i] = 1.0f;
    conv2d_1_backward_bf16(NULL, dw, db, dout, ones, in, kernels_ws.conv2d_1_dzp, kernels_ws.conv2d_1_int, NULL,
                           NULL, 0, n);
    float *in_r = rounded(in, n_in), *dz_r = rounded(dz, n_out);
    expect_matches("conv2d_1 dw", REF_DW, &s, n, dw, n_w, NULL, in, NULL, dz, in_r, NULL, dz_r);
    free(in), free(dz), free(dout), free(ones), free(dw), free(in_r), free(dz_r);
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
