/*
 * globalavgpool.c - global average pooling (Keras's GlobalAveragePooling2D):
 * each channel's mean over the whole image, so HxWxC becomes C. With 'same'
 * convolutions before it, a network needs no flatten and no large dense layer.
 */
#include "kind.h"

#define USAGE "globalavgpool"

static void check(layer_check *lc, layer *l, const option_value *v)
{
    (void)lc;
    (void)v;
    l->out = (shape){1, 1, l->in.c};
}

static const char *kernel(const layer *l)
{
    (void)l;
    return "elementwise loops";
}

static void emit(cgen *g, const layer *l, const layer_role *r)
{
    int P = l->in.h * l->in.w, C = l->in.c;
    cg(g, "/* out[b][c] = the mean of in[b][..][..][c] over the %d pixels, summed in pixel order. */\n", P);
    cg(g, "static void %s_forward(float *restrict out, const float *restrict in, int lo, int hi)\n{\n", l->name);
    cg(g, "    for (int b = lo; b < hi; b++) {\n");
    cg(g, "        float *o = out + (size_t)b * %d;\n", C);
    cg(g, "        const float *x = in + (size_t)b * %d;\n", P * C);
    cg(g, "        for (int c = 0; c < %d; c++)\n            o[c] = 0.0f;\n", C);
    cg(g, "        for (int p = 0; p < %d; p++)\n", P);
    cg(g, "            for (int c = 0; c < %d; c++)\n                o[c] += x[p * %d + c];\n", C, C);
    cg(g, "        for (int c = 0; c < %d; c++)\n            o[c] *= 1.0f / %d;\n    }\n}\n", C, P);
    if (!r->needs_din)
        return;
    cg(g, "\n/* Every pixel of a channel gets an equal share of its mean's gradient. */\n");
    cg(g, "static void %s_backward(float *restrict din, const float *restrict dout, int lo, int hi)\n{\n", l->name);
    cg(g, "    for (int b = lo; b < hi; b++) {\n");
    cg(g, "        const float *g = dout + (size_t)b * %d;\n", C);
    cg(g, "        float *d = din + (size_t)b * %d;\n", P * C);
    cg(g, "        for (int p = 0; p < %d; p++)\n", P);
    cg(g, "            for (int c = 0; c < %d; c++)\n                d[p * %d + c] = g[c] * (1.0f / %d);\n", C, C, P);
    cg(g, "    }\n}\n");
}

/* One sample: each channel's mean over the image. */
static void emit_single(cgen *g, const layer *l, const single_ctx *sc)
{
    int P = l->in.h * l->in.w, C = l->in.c;
    cg(g, "\nstatic void %s_%s(const float *restrict in, float *restrict out)\n{\n", sc->prefix, l->name);
    cg(g, "    for (int c = 0; c < %d; c++)\n        out[c] = 0.0f;\n", C);
    cg(g, "    for (int p = 0; p < %d; p++)\n", P);
    cg(g, "        for (int c = 0; c < %d; c++)\n            out[c] += in[p * %d + c];\n", C, C);
    cg(g, "    for (int c = 0; c < %d; c++)\n        out[c] *= 1.0f / %d;\n}\n", C, P);
}

static void graph_node(const layer *l, nnc_graph_node *n)
{
    (void)l;
    n->op = NNC_NODE_GLOBALAVGPOOL;
}

const layer_kind globalavgpool_kind = {
    .words = (const char *const[]){"globalavgpool", NULL},
    .keras = "GlobalAveragePooling2D",
    .prefix = "global_average_pooling2d",
    .signature_id = 8,
    .flags = KIND_IMAGE_INPUT,
    .usage = USAGE,
    .check = check,
    .kernel = kernel,
    .emit = emit,
    .print_forward = print_forward_in_out,
    .print_backward = print_backward_din_dout,
    .emit_single = emit_single,
    .graph_node = graph_node,
};
