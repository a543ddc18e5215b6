/*
 * gradcheck_prelude.h - include before a generated model to compile it in
 * double precision, for numerical gradient checks.
 *
 * Generated code is written in float; these macros turn every float of the
 * model file (and its sgemm calls, its math functions and its initializer
 * calls) into the double-precision equivalent, so that central differences
 * are accurate enough to check the analytic backward pass to 1e-3 relative.
 * Only the model file sees the macros: gradcheck.h undefines them.
 */
#ifndef GRADCHECK_PRELUDE_H
#define GRADCHECK_PRELUDE_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "nncrt.h"

/* nnc_sgemm's double-precision twin. */
static void gradcheck_dgemm(nnc_transpose ta, nnc_transpose tb, int m, int n, int k, const double *a, int lda,
                            const double *b, int ldb, double *c, int ldc)
{
    cblas_dgemm(CblasRowMajor, ta == NNC_TRANS ? CblasTrans : CblasNoTrans, tb == NNC_TRANS ? CblasTrans : CblasNoTrans,
                m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc);
}

/* nnc_sample_loss and nnc_argmax in double precision, unclipped: finite differences need the exact loss. */
static double gradcheck_sample_loss(nnc_loss_kind kind, const double *p, int n_classes, int label)
{
    if (kind == NNC_LOSS_MSE) {
        double sum = 0.0;
        for (int k = 0; k < n_classes; k++)
            sum += (p[k] - (k == label)) * (p[k] - (k == label));
        return sum / n_classes;
    }
    return -log(p[label]);
}

static int gradcheck_argmax(const double *p, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (p[i] > p[best])
            best = i;
    return best;
}

/*
 * Parameters for a gradient check: random everywhere, biases included, so
 * that no relu sits exactly at its kink and every term of the backward pass
 * is exercised. Batchnorm's gamma stays near one.
 */
static void gradcheck_init_fill(double *w, size_t n, nnc_init_kind kind, int fan_in, int fan_out, nnc_rng *rng)
{
    double limit = sqrt(6.0 / (double)(fan_in + fan_out > 0 ? fan_in + fan_out : 1));
    for (size_t i = 0; i < n; i++) {
        double u = 2.0 * nnc_rng_uniform(rng) - 1.0;
        if (kind == NNC_INIT_ONES)
            w[i] = 1.0 + 0.2 * u;
        else if (kind == NNC_INIT_ZEROS)
            w[i] = 0.1 * u;
        else
            w[i] = limit * u;
    }
}

/* Several processes never run a gradient check: the generated code's distributed branch is dead here. */
#define nnc_dist_sum_slices(dist, slices, count, n_slices, sum) ((void)(slices), (void)(sum))
#define float double
#define nnc_sgemm gradcheck_dgemm
#define nnc_sample_loss gradcheck_sample_loss
#define nnc_argmax gradcheck_argmax
#define nnc_init_fill gradcheck_init_fill
#define expf exp
#define tanhf tanh
#define sqrtf sqrt
#define NNC_BARE
#define NNC_NO_MAIN
#define NNC_FP32_ONLY /* `precision bf16` models run their fp32 kernels: here in double */

#endif
