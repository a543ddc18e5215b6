/*
 * dense.h - the kernel strategies of the dense kind (kind.h's kernel_strategy).
 *
 * dense_choose() (dense.c) is the one place that picks a strategy for a
 * layer, from the layer's shapes and precision alone.
 */
#ifndef NNC_LAYERS_DENSE_H
#define NNC_LAYERS_DENSE_H

#include "kind.h"

extern const kernel_strategy dense_sgemm; /* dense.c: OpenBLAS's sgemm on the slice's rows */
extern const kernel_strategy dense_bf16;  /* dense_bf16.c: bfloat16 products (`precision bf16`) */

/* Whether dense_bf16 has kernels for the layer's shapes. */
int dense_bf16_fits(const layer *l);

const kernel_strategy *dense_choose(const layer *l);

/* Lines every strategy's NAME_backward(din, dw, db, dout, out, ..., lo, hi) shares: first an empty
 * slice's zero gradients and return, and dout through the activation's derivative, in place; later
 * db as dz's column sums, in row order. */
void dense_print_backward_head(cgen *g, const layer *l, const layer_role *r);
void dense_print_bias_grad(cgen *g, const layer *l);

#endif
