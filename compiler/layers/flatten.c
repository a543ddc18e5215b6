/*
 * flatten.c - a view: NHWC rows are already flat, so flatten computes nothing
 * and its output is its input. The checker also inserts one, implicitly,
 * before a dense layer whose input is an image.
 */
#include "kind.h"

static void check(layer_check *lc, layer *l, const option_value *v)
{
    (void)lc;
    (void)v;
    l->out = (shape){1, 1, shape_size(l->in)};
}

static const char *kernel(const layer *l)
{
    (void)l;
    return "none (a view of its input)";
}

/* Which order it flattens in is the printer's to say (flatten_nhwc): it depends on what follows. */
static void graph_node(const layer *l, nnc_graph_node *n)
{
    (void)l;
    n->op = NNC_NODE_FLATTEN;
}

const layer_kind flatten_kind = {
    .words = (const char *const[]){"flatten", NULL},
    .keras = "Flatten",
    .prefix = "flatten",
    .signature_id = 4,
    .flags = KIND_VIEW,
    .usage = "flatten",
    .check = check,
    .kernel = kernel,
    .graph_node = graph_node,
};
