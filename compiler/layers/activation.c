/*
 * activation.c - an activation as a layer of its own (Keras's Activation):
 * relu, sigmoid, tanh, softmax or linear, applied elementwise (softmax: per
 * row). The same activations also come inline on dense and conv.
 */
#include "kind.h"

static void check(layer_check *lc, layer *l, const option_value *v)
{
    (void)v;
    act_parse(lc->st->head, &l->act);
    l->out = l->in;
    if (l->act == ACT_SOFTMAX && !shape_is_flat(l->in))
        nnc_error(lc->src, lc->st->loc, "softmax needs a flat input; add 'flatten' before it");
}

static const char *kernel(const layer *l)
{
    (void)l;
    return "elementwise loops";
}

static void emit(cgen *g, const layer *l, const layer_role *r)
{
    int S = shape_size(l->out);
    char buf[128];
    cg(g, "static void %s_forward(float *restrict out, const float *restrict in, int lo, int hi)\n{\n", l->name);
    if (l->act == ACT_SOFTMAX) {
        cg(g, "    memcpy(out + (size_t)lo * %d, in + (size_t)lo * %d, sizeof(float) * (size_t)(hi - lo) * %d);\n", S,
           S, S);
        cg_softmax_rows(g, "out", S, "    ");
    } else {
        cg(g, "    for (size_t i = (size_t)lo * %d; i < (size_t)hi * %d; i++)\n", S, S);
        cg(g, "        out[i] = %s;\n", act_expr(l->act, buf, sizeof buf, "in[i]"));
    }
    cg(g, "}\n");
    if (!r->needs_din)
        return;
    cg(g, "\n/* din = dL/d(in); dout is used as scratch. */\n");
    cg(g, "static void %s_backward(float *restrict din, float *restrict dout, const float *restrict out, int lo, int hi)\n{\n", l->name);
    if (r->fused_softmax)
        cg(g, "    (void)out; /* softmax is fused with the crossentropy loss: dout is already dL/dz */\n");
    else {
        if (backward_act(l, r) == ACT_LINEAR)
            cg(g, "    (void)out;\n");
        print_act_backward(g, l, r, S);
    }
    cg(g, "    memcpy(din + (size_t)lo * %d, dout + (size_t)lo * %d, sizeof(float) * (size_t)(hi - lo) * %d);\n}\n", S,
       S, S);
}

static void print_backward(cgen *g, const layer *l, const step_args *a)
{
    cgi(g, "%s_backward(%s, %s, %s, lo, hi);\n", l->name, a->din, a->dout, a->out);
}

/* One sample: the activation elementwise (softmax over the row). */
static void emit_single(cgen *g, const layer *l, const single_ctx *sc)
{
    int S = shape_size(l->out);
    char buf[128];
    cg(g, "\nstatic void %s_%s(const float *restrict in, float *restrict out)\n{\n", sc->prefix, l->name);
    if (l->act == ACT_SOFTMAX) {
        cg(g, "    for (int i = 0; i < %d; i++)\n        out[i] = in[i];\n    softmax(out, %d);\n", S, S);
    } else {
        cg(g, "    for (int i = 0; i < %d; i++)\n        out[i] = %s;\n", S, act_expr(l->act, buf, sizeof buf, "in[i]"));
    }
    cg(g, "}\n");
}

static void graph_node(const layer *l, nnc_graph_node *n)
{
    (void)l;
    n->op = NNC_NODE_ACTIVATION;
}

const layer_kind activation_kind = {
    .words = (const char *const[]){"relu", "sigmoid", "tanh", "softmax", "linear", NULL},
    .keras = "Activation",
    .prefix = "activation",
    .signature_id = 7,
    .usage = "relu | sigmoid | tanh | softmax | linear",
    .check = check,
    .kernel = kernel,
    .emit = emit,
    .print_forward = print_forward_in_out,
    .print_backward = print_backward,
    .emit_single = emit_single,
    .graph_node = graph_node,
};
