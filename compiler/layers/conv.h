/*
 * conv.h - the kernel strategies of the conv kind.
 *
 * A strategy is one way of computing a convolution: it owns its weight
 * layouts, its scratch space, its helpers and the calls its steps print.
 * conv_choose() (conv.c) is the one place that picks a strategy for a layer,
 * from the layer's shapes and the target alone. Adding a strategy is a file
 * that defines one of these, and a line in conv_choose().
 */
#ifndef NNC_LAYERS_CONV_H
#define NNC_LAYERS_CONV_H

#include "kind.h"

typedef struct {
    const char *description; /* for the layer's banner */
    unsigned (*helpers)(const layer *l, const layer_role *r);
    void (*workspace)(const layer *l, const layer_role *r, ws_list *ws);
    void (*emit)(cgen *g, const layer *l, const layer_role *r);
    void (*prepare)(cgen *g, const layer *l, const layer_role *r, pass_kind pass);
    void (*print_forward)(cgen *g, const layer *l, const step_args *a);
} conv_strategy;

extern const conv_strategy conv_direct;  /* conv_direct.c: any padding */
extern const conv_strategy conv_blocked; /* conv_blocked.c: register-blocked, valid padding */

const conv_strategy *conv_choose(const layer *l);

/* The loops over one output pixel's receptive field, with the bounds checks padding needs. */
void conv_window_loops(cgen *g, const layer *l, const char *indent);

#endif
