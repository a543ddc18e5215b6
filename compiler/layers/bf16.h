/*
 * bf16.h - what the bfloat16 strategies (conv_bf16.c, dense_bf16.c) print alike.
 *
 * AVX512_BF16's vdpbf16ps multiplies 16 pairs of bfloat16 values and adds both
 * products of a pair to one fp32 lane: twice the multiply-adds of an fp32 FMA.
 * A pair runs along the axis being summed, so each kernel reads one operand
 * packed as [pair][lanes][2] and broadcasts pairs of the other.
 */
#ifndef NNC_LAYERS_BF16_H
#define NNC_LAYERS_BF16_H

#include "kind.h"

#define LANES_BF16 16 /* fp32 lanes of an AVX-512 register: 16 outputs a vector */

/*
 * The inner sweep of a register block, pair i of the summed axis at a time,
 * for i < pairs (a C expression): V vectors of 16 pairs from `packed` (at
 * (i * packed_stride + 16 v) pairs) times, for p < count, the pair at
 * broadcast + p * broadcast_stride + i * pair_stride in every lane, into
 * acc[p][v]. `indent` starts each line.
 */
void bf16_print_pair_sweep(cgen *g, const char *indent, const char *what, const char *pairs, const char *packed,
                           int packed_stride, int V, const char *broadcast, int broadcast_stride, int pair_stride,
                           const char *count);

/*
 * NAME_pack_bf16(wp, wtp, w): w, `taps` blocks of [in][out] (a kernel's taps;
 * 1 for a dense layer), as the pairs the kernels read: wp [taps][in/2][out][2]
 * (pair_rows_bf16, HELPER_BF16_ROWS) and, for an input gradient,
 * wtp [taps][out/2][in][2]. `ins`, `outs` name the axes in the comments.
 */
void bf16_print_pack(cgen *g, const layer *l, const layer_role *r, int taps, int in, int out, const char *ins,
                     const char *outs);

/*
 * A bfloat16 strategy's scratch table (kind.h), in this order: the forward
 * pass's copy of the input; the weight gradient's dz pairs and its copy of
 * the input; the input gradient's dz.
 */
enum { BF16_INH, BF16_DZP, BF16_WGRAD_IN, BF16_DZH, BF16_N_SCRATCH };

/*
 * The steps of a bfloat16 strategy, whose kernels are called alike:
 * NAME_pack_bf16(wp, wtp, w) once a step, NAME_forward_bf16(out, in, inh, wp,
 * bias, lo, hi) and NAME_backward_bf16(din, dw, db, dout, out, in, dzp,
 * <wgrad_in>, dzh, wtp, lo, hi), with `bufs` the layer's scratch table; each
 * under NNC_BF16, and the fp32 strategy's step otherwise.
 */
void bf16_print_prepare(cgen *g, const layer *l, const layer_role *r, pass_kind pass, const kernel_strategy *fp32);
void bf16_print_forward(cgen *g, const layer *l, const step_args *a, const scratch_buf *bufs,
                        const kernel_strategy *fp32);
void bf16_print_backward(cgen *g, const layer *l, const step_args *a, const scratch_buf *bufs,
                         const kernel_strategy *fp32);

#endif
