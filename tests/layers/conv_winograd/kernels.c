/*
 * The Winograd forward kernels of tests/layers/conv_winograd/conv_winograd.nn
 * against a double-precision direct convolution of the same fp32 operands,
 * beside the register-blocked direct kernels the same file trains with.
 *
 * Winograd's algorithms are exact in exact arithmetic; in fp32 their
 * transforms add rounding of their own, more the larger the tile: F(4x4,
 * 3x3)'s matrices hold 4, 5 and 8 where F(2x2, 3x3)'s hold 1 (about 10x the
 * error, the order Barabasz et al. 2018 report). Each output element must
 * lie within its algorithm's tolerance times the sum of its products'
 * magnitudes (|bias| + sum |x w|) from the reference; the direct kernels are
 * held to F(2x2)'s, and each error is reported beside theirs. A wrong index,
 * a tile or block left out, a transform's sign or coefficient: each is of
 * the order of the magnitude itself. Elements of the batch outside the slice
 * must stay as they were.
 */
#define NNC_NO_MAIN
#include "conv_winograd.c"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>

/* Measured, of the magnitude: F(2x2) at most 7.7e-8, the direct kernels 2.2e-7, F(4x4) 1.4e-6 (AVX-512 and
 * AVX2 alike). The bounds leave 4.5x over the direct kernels and 7x over F(4x4). */
#define TOLERANCE_F2 1e-6
#define TOLERANCE_F4 1e-5

typedef enum { LINEAR, RELU, TANH } activation;

/* A Winograd layer of conv_winograd.nn, as its kernels see it (a 'same' layer's input: its padded copy). */
typedef struct {
    const char *name;
    void (*weights)(float *u, const float *w);
    void (*winograd)(float *out, const float *in, const float *u, const float *bias, int lo, int hi);
    void (*direct)(float *out, const float *in, const float *w, const float *bias, int lo, int hi);
    size_t u_floats; /* the workspace's U: a*a x ci x co, a = tile + 2 by the emitter's choice */
    int ih, iw, ci, co;
    activation act;
    int tile; /* the output tile's side this layer is meant to get: 4 for F(4x4, 3x3), 2 for F(2x2, 3x3) */
} winograd_layer;

#define KERNELS(id)                                                                                                    \
    #id, id##_winograd_weights, id##_winograd_forward, id##_forward,                                                   \
        sizeof(((workspace *)0)->id##_u) / sizeof(((workspace *)0)->id##_u[0])

static const winograd_layer layers[] = {
    {KERNELS(conv2d_1), 10, 50, 32, 64, RELU, 4}, /* the padded copy of 8x48x32: blocks of 9 + 3 tiles */
    {KERNELS(conv2d_2), 8, 48, 64, 32, LINEAR, 2}, /* rows of 23 tiles: blocks of 21 + 2 */
    {KERNELS(conv2d_3), 8, 48, 32, 16, TANH, 2},   /* the padded copy of 6x46x32 */
    {KERNELS(conv2d_4), 6, 46, 16, 16, RELU, 4},   /* a row of 11 tiles */
};
#define N_LAYERS (sizeof layers / sizeof layers[0])

/* The slices of a batch a thread may get: the whole batch, one inside, the last one. */
static const int slices[][2] = {{0, B}, {1, 3}, {3, 4}};
#define N_SLICES (sizeof slices / sizeof slices[0])

static float uniform(unsigned *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

static double activate(activation act, double z)
{
    return act == RELU ? (z > 0.0 ? z : 0.0) : act == TANH ? tanh(z) : z;
}

/* The output element (b, oy, ox, co) in double, and the sum of its terms' magnitudes. */
static double reference(const winograd_layer *L, const float *in, const float *w, const float *bias, int b, int oy,
                        int ox, int co, double *magnitude)
{
    double sum = bias[co], mag = fabs(bias[co]);
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++)
            for (int ci = 0; ci < L->ci; ci++) {
                double p = (double)in[(((size_t)b * L->ih + oy + ky) * L->iw + ox + kx) * L->ci + ci] *
                           w[((ky * 3 + kx) * L->ci + ci) * L->co + co];
                sum += p;
                mag += fabs(p);
            }
    *magnitude = mag;
    return sum;
}

/* The worst error of `out` relative to the magnitudes over the slice; outside it, `out` must still be NaN. */
static double worst_error(const winograd_layer *L, const float *out, const float *in, const float *w,
                          const float *bias, int lo, int hi, int *untouched)
{
    int OH = L->ih - 2, OW = L->iw - 2;
    double worst = 0.0;
    *untouched = 1;
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int co = 0; co < L->co; co++) {
                    float got = out[(((size_t)b * OH + oy) * OW + ox) * L->co + co];
                    if (b < lo || b >= hi) {
                        *untouched &= isnan(got);
                        continue;
                    }
                    double mag, want = reference(L, in, w, bias, b, oy, ox, co, &mag);
                    /* the activations are 1-Lipschitz: the pre-activation's bound holds after them */
                    double err = fabs(got - activate(L->act, want)) / (mag + 1e-30);
                    worst = err > worst || isnan(err) ? err : worst;
                }
    return worst;
}

Test(conv_winograd, forward_matches_direct_convolution)
{
    for (size_t k = 0; k < N_LAYERS; k++) {
        const winograd_layer *L = &layers[k];
        size_t n_in = (size_t)B * L->ih * L->iw * L->ci + VEC, n_out = (size_t)B * (L->ih - 2) * (L->iw - 2) * L->co;
        size_t n_w = (size_t)9 * L->ci * L->co;
        float *in = malloc(sizeof(float) * n_in), *w = malloc(sizeof(float) * n_w);
        size_t a = (size_t)L->tile + 2;
        cr_expect_eq(L->u_floats, a * a * L->ci * L->co, "%s: the emitter chose another tile than F(%dx%d)",
                     L->name, L->tile, L->tile);
        float *u = malloc(sizeof(float) * L->u_floats), *bias = malloc(sizeof(float) * L->co);
        float *out = malloc(sizeof(float) * (n_out + VEC));
        cr_assert(in && w && u && bias && out);
        unsigned state = 7u + (unsigned)k;
        for (size_t i = 0; i < n_in; i++)
            in[i] = uniform(&state);
        for (size_t i = 0; i < n_w; i++)
            w[i] = uniform(&state) * 0.2f;
        for (int i = 0; i < L->co; i++)
            bias[i] = uniform(&state) * 0.1f;
        L->weights(u, w);
        for (size_t s = 0; s < N_SLICES; s++) {
            int lo = slices[s][0], hi = slices[s][1], untouched;
            for (size_t i = 0; i < n_out; i++)
                out[i] = NAN;
            L->winograd(out, in, u, bias, lo, hi);
            double wino = worst_error(L, out, in, w, bias, lo, hi, &untouched);
            cr_expect(untouched, "%s: the Winograd kernel wrote outside the slice [%d, %d)", L->name, lo, hi);
            for (size_t i = 0; i < n_out; i++)
                out[i] = NAN;
            L->direct(out, in, w, bias, lo, hi);
            double direct = worst_error(L, out, in, w, bias, lo, hi, &untouched);
            cr_log_info("%s, slice [%d, %d): worst error / magnitude: F(%dx%d) %.2e, direct %.2e", L->name, lo, hi,
                        L->tile, L->tile, wino, direct);
            double tolerance = L->tile == 4 ? TOLERANCE_F4 : TOLERANCE_F2;
            cr_expect(wino < tolerance, "%s, slice [%d, %d): F(%dx%d) output %.3e of its magnitude off", L->name, lo,
                      hi, L->tile, L->tile, wino);
            cr_expect(direct < TOLERANCE_F2, "%s, slice [%d, %d): direct output %.3e of its magnitude off", L->name,
                      lo, hi, direct);
        }
        free(in), free(w), free(u), free(bias), free(out);
    }
}
