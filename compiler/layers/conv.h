/*
 * conv.h - the kernel strategies of the conv kind (kind.h's kernel_strategy).
 *
 * conv_choose() (conv.c) is the one place that picks a strategy for a layer,
 * from the layer's shapes and precision alone.
 */
#ifndef NNC_LAYERS_CONV_H
#define NNC_LAYERS_CONV_H

#include "kind.h"

extern const kernel_strategy conv_blocked; /* conv_blocked.c: register-blocked, valid padding */
extern const kernel_strategy conv_bf16;    /* conv_bf16.c: bfloat16 products (`precision bf16`) */
extern const kernel_strategy conv_winograd; /* conv_winograd.c: conv_blocked, with Winograd at inference */
extern const kernel_strategy conv_padded;  /* conv_padded.c: 'same' padding, conv_blocked on a padded copy */
extern const kernel_strategy conv_padded_bf16; /* conv_padded.c: 'same' padding, conv_bf16 on a padded copy */
extern const kernel_strategy conv_padded_winograd; /* conv_padded.c: 'same' padding, conv_winograd on a padded copy */
/* conv_padded.c: which of the three a 'same' layer takes, by what runs on its padded copy. */
const kernel_strategy *conv_padded_choose(const layer *l);

/* Whether conv_bf16 has kernels for the layer's shapes. */
int conv_bf16_fits(const layer *l);
/* Whether conv_winograd has: 3x3, stride 1, valid, channels in multiples of 16, an even output. */
int conv_winograd_fits(const layer *l);

const kernel_strategy *conv_choose(const layer *l);

/* The first lines of every strategy's NAME_backward: dout through the activation's derivative, in place,
 * then db summed over the slice's pixels. */
void conv_print_backward_head(cgen *g, const layer *l, const layer_role *r);

/* NAME_backward(din, dw, db, dout, out, in, wt, lo, hi): the backward call most strategies share. */
void conv_print_backward_call(cgen *g, const layer *l, const step_args *a);

/* Output pixels a register block holds: the largest of {8, 6, 4, 2, 1} at most `limit` whose
 * pixels x `vectors` accumulators fit in `max_acc` vector registers. */
int conv_pixel_block(int vectors, int limit, int max_acc);

/* The slice's images and output rows, each row in blocks of np pixels and a shorter last block:
 * BLOCK(ARGS, b, oy, ox0, pixels); note_last marks the last block with a comment. */
void conv_print_block_sweep(cgen *g, const layer *l, int np, const char *block, const char *args, int note_last);

/* The loops over one output pixel's receptive field, with the bounds checks padding needs. */
void conv_window_loops(cgen *g, const layer *l, const char *indent);

#endif
