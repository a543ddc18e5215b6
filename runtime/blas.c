/*
 * blas.c - every BLAS call of nnc, in one file: the generated trainers and the
 * runtime reach OpenBLAS only through these functions, so the generated C
 * needs no BLAS header and compiles for any target.
 */
#include <cblas.h>

#include "nncrt.h"

/* OpenBLAS's own; declared here because only OpenBLAS defines it. */
void openblas_set_num_threads(int);

void nnc_sgemm(nnc_transpose trans_a, nnc_transpose trans_b, int m, int n, int k, const float *a, int lda,
               const float *b, int ldb, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a == NNC_TRANS ? CblasTrans : CblasNoTrans,
                trans_b == NNC_TRANS ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
}

void nnc_blas_single_threaded(void)
{
    /* OpenBLAS's threads would fight the generated code's OpenMP threads, which
     * split each batch into a fixed partition of their own. */
    openblas_set_num_threads(1);
}
