/*
 * The bfloat16 dense kernels of tests/layers/dense_bf16/dense_bf16.nn against
 * double-precision matrix products of the same operands rounded to bfloat16,
 * as the kernels round them (the comparisons are tests/bf16_check.h's).
 *
 * Where the target lacks AVX512_BF16 (the -march=x86-64-v3 build of the suite)
 * the model runs dense_sgemm's kernels, which the gradient check covers; this
 * file then checks that the trainer says so.
 */
#define NNC_NO_MAIN
#include "dense_bf16.c"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>

#if NNC_BF16

#include "bf16_check.h"

static workspace kernels_ws;

typedef enum { LINEAR, RELU, TANH, SOFTMAX } activation;

/* The layers of dense_bf16.nn: their kernels, buffers, activations and shapes. */
typedef struct {
    const char *name;
    void (*pack)(uint16_t *wp, uint16_t *wtp, const float *w);
    void (*forward)(float *out, const float *in, uint16_t *inh, const uint16_t *wp, const float *bias, int lo, int hi);
    void (*backward)(float *din, float *dw, float *db, float *dout, const float *out, const float *in, uint16_t *dzp,
                     uint16_t *inp, uint16_t *dzh, const uint16_t *wtp, int lo, int hi);
    uint16_t *wp;
    uint16_t *wtp; /* NULL without an input gradient */
    activation act;
    int inputs, units;
} bf16_layer;

#define KERNELS(id) #id, id##_pack_bf16, id##_forward_bf16, id##_backward_bf16, kernels_ws.id##_wp

static const bf16_layer layers[] = {
    {KERNELS(dense_1), NULL, RELU, 32, 160},                    /* two blocks of 4 rows x 5 vectors; no din */
    {KERNELS(dense_2), kernels_ws.dense_2_wtp, TANH, 160, 32},   /* 8-row blocks; din in two blocks of 5 */
    {KERNELS(dense_3), kernels_ws.dense_3_wtp, LINEAR, 32, 16},  /* one vector */
    {KERNELS(dense_4), kernels_ws.dense_4_wtp, SOFTMAX, 16, 16}, /* the output, fused with the loss */
};
#define N_LAYERS (sizeof layers / sizeof layers[0])

/* Slices of the batch of B = 17: all of it (whole blocks and a last row), odd ones inside, a single last row. */
static const int slices[][2] = {{0, B}, {2, 5}, {3, 12}, {16, 17}};
#define N_SLICES (sizeof slices / sizeof slices[0])

/* Which product the reference computes. */
typedef enum { REF_OUT, REF_DW, REF_DIN } ref_kind;

/*
 * Element `at` of out (before bias and activation) [b][units], dw (over rows
 * lo..hi) [inputs][units] or din [b][inputs], in double; *magnitude gets the
 * sum of its products' absolute values.
 */
static double reference(ref_kind kind, const bf16_layer *l, int lo, int hi, const float *in, const float *w,
                        const float *dz, size_t at, double *magnitude)
{
    int I = l->inputs, O = l->units;
    double sum = 0.0, mag = 0.0;
    if (kind == REF_OUT) {
        size_t b = at / (size_t)O, j = at % (size_t)O;
        for (int i = 0; i < I; i++) {
            double p = (double)in[b * I + i] * w[(size_t)i * O + j];
            sum += p, mag += fabs(p);
        }
    } else if (kind == REF_DW) {
        size_t i = at / (size_t)O, j = at % (size_t)O;
        for (int b = lo; b < hi; b++) {
            double p = (double)in[(size_t)b * I + i] * dz[(size_t)b * O + j];
            sum += p, mag += fabs(p);
        }
    } else {
        size_t b = at / (size_t)I, i = at % (size_t)I;
        for (int j = 0; j < O; j++) {
            double p = (double)dz[b * O + j] * w[i * O + j];
            sum += p, mag += fabs(p);
        }
    }
    *magnitude = mag;
    return sum;
}

/* What every case works on: random operands, their bfloat16 roundings, and room for the results. */
typedef struct {
    const bf16_layer *l;
    int lo, hi;
    float *in, *w, *bias, *dz, *in_r, *w_r, *dz_r;
    float *out, *dout, *stored_out, *din, *dw, *db;
} kernel_case;

static kernel_case case_new(size_t layer, size_t slice)
{
    kernel_case k = {.l = &layers[layer], .lo = slices[slice][0], .hi = slices[slice][1]};
    size_t I = (size_t)k.l->inputs, O = (size_t)k.l->units;
    k.in = array(B * I), k.w = array(I * O), k.bias = array(O), k.dz = array(B * O);
    k.out = array(B * O), k.dout = array(B * O), k.stored_out = array(B * O), k.din = array(B * I);
    k.dw = array(I * O), k.db = array(O);
    fill(k.in, B * I, 1 + (unsigned)layer), fill(k.w, I * O, 11 + (unsigned)layer);
    fill(k.bias, O, 21 + (unsigned)layer), fill(k.dout, B * O, 31 + (unsigned)layer);
    fill(k.stored_out, B * O, 41 + (unsigned)layer); /* relu's: half of them not positive */
    for (size_t i = 0; i < B * O; i++) {
        k.out[i] = CANARY;
        /* the backward pass applies the activation's derivative before it rounds dz: relu's zeroes
           where the stored output is not positive; tanh's is 1 at y = 0 */
        if (k.l->act == TANH)
            k.stored_out[i] = 0.0f;
        k.dz[i] = k.l->act == RELU && k.stored_out[i] <= 0.0f ? 0.0f : k.dout[i];
    }
    k.in_r = rounded(k.in, B * I), k.w_r = rounded(k.w, I * O), k.dz_r = rounded(k.dz, B * O);
    for (size_t i = 0; i < B * I; i++)
        k.din[i] = CANARY;
    memset(&kernels_ws, 0xff, sizeof kernels_ws); /* bfloat16 NaNs: a value a kernel reads unwritten shows */
    return k;
}

static void case_free(kernel_case *k)
{
    float *arrays[] = {k->in,  k->w,    k->bias,       k->dz,  k->in_r, k->w_r, k->dz_r,
                       k->out, k->dout, k->stored_out, k->din, k->dw,   k->db};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        free(arrays[i]);
}

/*
 * The bfloat16 copies the kernels make, where the generated code puts them in
 * the scratch arena (compiler/layers/dense_bf16.c): the forward pass's input;
 * the weight gradient's dz pairs, then its input pairs a whole number of
 * cache lines in; the input gradient's dz over the pairs' bytes.
 */
typedef enum { INH, DZP, INP, DZH } scratch_use;

static uint16_t *scratch(const kernel_case *k, scratch_use use)
{
    int I = k->l->inputs, O = k->l->units; /* bfloat16 values a sample; the arena counts floats, two each */
    int before = use == INP ? (O / 2 + 15) / 16 * 16 : 0;
    int values = use == INH || use == INP ? I : O;
    cr_assert_leq(before + values / 2, SCRATCH, "%s: the scratch arena is too small", k->l->name);
    return (uint16_t *)scratch_region(kernels_ws.scratch, k->lo, k->hi, before, values / 2);
}

static int scratch_outside(const kernel_case *k)
{
    return scratch_written_outside(kernels_ws.scratch, sizeof kernels_ws.scratch, SCRATCH, k->lo, k->hi);
}

/*
 * Every element of `got` (`width` a row, B rows; or count elements when width
 * is 0: dw) against the references on the rounded and the unrounded operands,
 * the forward pass's with the bias and the activation.
 */
static void compare(discrepancy *d, const kernel_case *k, ref_kind kind, const float *got, size_t width,
                    size_t count)
{
    size_t n = width ? width * B : count;
    for (size_t i = 0; i < n; i++) {
        int b = width ? (int)(i / width) : k->lo;
        if (b < k->lo || b >= k->hi) {
            d->outside += got[i] != CANARY;
            continue;
        }
        double mag, mag_exact, want, exact, value = got[i];
        if (kind != REF_OUT || k->l->act != SOFTMAX) {
            double bias = kind == REF_OUT ? k->bias[i % width] : 0.0;
            want = reference(kind, k->l, k->lo, k->hi, k->in_r, k->w_r, k->dz_r, i, &mag) + bias;
            exact = reference(kind, k->l, k->lo, k->hi, k->in, k->w, k->dz, i, &mag_exact) + bias;
            if (k->l->act == RELU && kind == REF_OUT)
                want = fmax(want, 0.0), exact = fmax(exact, 0.0);
            if (k->l->act == TANH && kind == REF_OUT)
                want = tanh(want), exact = tanh(exact);
        } else {
            /* softmax, compared as the sums it came from: log p_j minus the row's mean of log p is
               z_j minus the row's mean of z; the magnitude is the row's largest */
            size_t row = i - i % width;
            double mean_log = 0.0, mean = 0.0, mean_exact = 0.0, m;
            want = exact = mag = 0.0;
            for (size_t u = 0; u < width; u++) {
                double z = reference(kind, k->l, k->lo, k->hi, k->in_r, k->w_r, k->dz_r, row + u, &m) + k->bias[u];
                double z_exact = reference(kind, k->l, k->lo, k->hi, k->in, k->w, k->dz, row + u, &m) + k->bias[u];
                mean_log += log(got[row + u]) / (double)width;
                mean += z / (double)width, mean_exact += z_exact / (double)width;
                if (row + u == i)
                    want = z, exact = z_exact;
                mag = fmax(mag, m);
            }
            value = log(got[i]) - mean_log, want -= mean, exact -= mean_exact;
            mag_exact = mag;
        }
        discrepancy_add(d, value, want, mag, exact, mag_exact);
    }
}

Test(dense_bf16, forward_matches_the_rounded_reference)
{
    for (size_t l = 0; l < N_LAYERS; l++)
        for (size_t sl = 0; sl < N_SLICES; sl++) {
            kernel_case k = case_new(l, sl);
            k.l->pack(k.l->wp, NULL, k.w); /* as inference packs: no transposed copy */
            k.l->forward(k.out, k.in, scratch(&k, INH), k.l->wp, k.bias, k.lo, k.hi);
            cr_expect_eq(scratch_outside(&k), 0, "%s forward, samples %d..%d: scratch written outside the slice",
                         k.l->name, k.lo, k.hi);
            discrepancy d = {0};
            compare(&d, &k, REF_OUT, k.out, (size_t)k.l->units, 0);
            expect_close(k.l->name, "forward", k.lo, k.hi, &d);
            case_free(&k);
        }
}

/* dw over the slice's rows (odd counts pair the last row with zeros), din within them, and db; the
   activation's derivative applied to dz first (relu's zeroes about half of it). */
Test(dense_bf16, backward_matches_the_rounded_reference)
{
    for (size_t l = 0; l < N_LAYERS; l++)
        for (size_t sl = 0; sl < N_SLICES; sl++) {
            kernel_case k = case_new(l, sl);
            const bf16_layer *L = k.l;
            L->pack(L->wp, L->wtp, k.w);
            L->backward(L->wtp ? k.din : NULL, k.dw, k.db, k.dout, k.stored_out, k.in, scratch(&k, DZP),
                        scratch(&k, INP), L->wtp ? scratch(&k, DZH) : NULL, L->wtp, k.lo, k.hi);
            cr_expect_eq(scratch_outside(&k), 0, "%s backward, samples %d..%d: scratch written outside the slice",
                         L->name, k.lo, k.hi);
            discrepancy dw = {0}, din = {0};
            compare(&dw, &k, REF_DW, k.dw, 0, (size_t)L->inputs * L->units);
            expect_close(L->name, "dw", k.lo, k.hi, &dw);
            if (L->wtp) {
                compare(&din, &k, REF_DIN, k.din, (size_t)L->inputs, 0);
                expect_close(L->name, "din", k.lo, k.hi, &din);
            }
            for (int j = 0; j < L->units; j++) { /* db: fp32 sums of dz as it is */
                double sum = 0.0;
                for (int b = k.lo; b < k.hi; b++)
                    sum += k.dz[(size_t)b * L->units + j];
                cr_expect_float_eq(k.db[j], sum, 1e-5, "%s db[%d] %g, want %g", L->name, j, k.db[j], sum);
            }
            case_free(&k);
        }
}

/* An empty slice (a thread with no rows): no output written, zero dw and db, no din written. */
Test(dense_bf16, an_empty_slice_writes_nothing_and_zero_gradients)
{
    for (size_t l = 0; l < N_LAYERS; l++) {
        kernel_case k = case_new(l, 0);
        const bf16_layer *L = k.l;
        size_t I = (size_t)L->inputs, O = (size_t)L->units;
        k.lo = k.hi = 5;
        L->pack(L->wp, L->wtp, k.w);
        L->forward(k.out, k.in, scratch(&k, INH), L->wp, k.bias, k.lo, k.hi);
        for (size_t j = 0; j < O; j++)
            k.dw[j] = k.db[j] = CANARY;
        L->backward(L->wtp ? k.din : NULL, k.dw, k.db, k.dout, k.stored_out, k.in, scratch(&k, DZP), scratch(&k, INP),
                    L->wtp ? scratch(&k, DZH) : NULL, L->wtp, k.lo, k.hi);
        int written = 0, nonzero = 0;
        for (size_t i = 0; i < B * O; i++)
            written += k.out[i] != CANARY;
        for (size_t i = 0; i < B * I; i++)
            written += k.din[i] != CANARY;
        for (size_t i = 0; i < I * O; i++)
            nonzero += k.dw[i] != 0.0f;
        for (size_t j = 0; j < O; j++)
            nonzero += k.db[j] != 0.0f;
        cr_expect_eq(written, 0, "%s, an empty slice: %d outputs or input gradients written", L->name, written);
        cr_expect_eq(nonzero, 0, "%s, an empty slice: %d weight or bias gradients not zero", L->name, nonzero);
        case_free(&k);
    }
}

Test(dense_bf16, the_trainer_names_its_bfloat16_layers)
{
    cr_expect_str_eq(nnc_model_dense_bf16.precision,
                     "bf16 products, fp32 sums (AVX512_BF16) in dense_1, dense_2, dense_3, dense_4; fp32 elsewhere");
}

#else /* this target lacks AVX512_BF16: dense_sgemm's kernels run, and the trainer says so */

Test(dense_bf16, the_trainer_says_it_fell_back_to_fp32)
{
    cr_expect_str_eq(nnc_model_dense_bf16.precision,
                     "fp32: precision bf16 asked, but this build's target lacks AVX512_BF16");
}

#endif
