/*
 * dense.c - a fully connected layer: out = act(in . W + b), W [in][out]
 * (Keras's kernel layout). How it computes is a strategy (dense.h), chosen by
 * dense_choose() below; this file's own, dense_sgemm, runs the products in
 * OpenBLAS's sgemm, through the runtime's nnc_sgemm, on the slice's rows.
 */
#include "dense.h"

enum { UNITS, ACT, WEIGHTS };
static const option_spec options[] = {
    [UNITS] = {"units", OPT_COUNT, 0, 1 << 20, "the number of units"},
    [ACT] = {"activation", OPT_ACTIVATION, 0, 0, NULL},
    WEIGHT_OPTIONS, /* from WEIGHTS on */
};
#define USAGE "dense N [relu|sigmoid|tanh|softmax|linear] [init=..] [l1=..] [l2=..]"

/* Refused beyond this many weights: a typo such as `dense 8000000`, not a model. */
#define MAX_WEIGHTS (1 << 28)

static void check(layer_check *lc, layer *l, const option_value *v)
{
    l->u.units = v[UNITS].given ? (int)v[UNITS].number : 1;
    if (!v[UNITS].arg)
        nnc_error(lc->src, lc->st->loc, "'dense' needs a number of units; usage: %s", USAGE);
    if (v[ACT].given)
        l->act = v[ACT].act;
    apply_weight_options(l, &v[WEIGHTS]);
    int in = shape_size(l->in);
    if ((double)in * l->u.units > MAX_WEIGHTS) {
        nnc_error(lc->src, lc->st->loc, "dense %d on %d inputs needs %.0f weights; the limit is %d", l->u.units, in,
                  (double)in * l->u.units, MAX_WEIGHTS);
        l->u.units = 1;
    }
    l->out = (shape){1, 1, l->u.units};
    l->n_weights = (size_t)in * (size_t)l->u.units;
    l->n_bias = (size_t)l->u.units;
    l->fan_in = in;
    l->fan_out = l->u.units;
}

static double forward_macs(const layer *l)
{
    return (double)l->n_weights;
}

static int tensor_shape(const layer *l, int t, int dims[4])
{
    if (t == 1) {
        dims[0] = l->u.units;
        return 1;
    }
    dims[0] = shape_size(l->in), dims[1] = l->u.units;
    return 2;
}

/* The one place that decides how a dense layer computes. */
const kernel_strategy *dense_choose(const layer *l)
{
    if (l->precision == PRECISION_BF16 && dense_bf16_fits(l))
        return &dense_bf16;
    return &dense_sgemm;
}

void dense_print_backward_head(cgen *g, const layer *l, const layer_role *r)
{
    int I = shape_size(l->in), O = l->u.units;
    if (r->fused_softmax)
        cg(g, "    (void)out; /* softmax is fused with the crossentropy loss: dout is already dL/dz */\n");
    else if (backward_act(l, r) == ACT_LINEAR)
        cg(g, "    (void)out;\n");
    cg(g, "    if (hi <= lo) {\n        memset(dw, 0, sizeof(float) * %d * %d);\n", I, O);
    cg(g, "        memset(db, 0, sizeof(float) * %d);\n        return;\n    }\n", O);
    if (!r->fused_softmax)
        print_act_backward(g, l, r, O);
}

void dense_print_bias_grad(cgen *g, const layer *l)
{
    int O = l->u.units;
    cg(g, "    /* db = column sums of dz, in row order */\n");
    cg(g, "    memset(db, 0, sizeof(float) * %d);\n", O);
    cg(g, "    for (int b = lo; b < hi; b++)\n        for (int j = 0; j < %d; j++)\n", O);
    cg(g, "            db[j] += dout[(size_t)b * %d + j];\n", O);
}

static void emit(cgen *g, const layer *l, const layer_role *r)
{
    int I = shape_size(l->in), O = l->u.units;
    const char *id = l->name;
    char buf[128];
    cg(g, "static void %s_forward(float *restrict out, const float *restrict in, const float *restrict w,\n", id);
    cg(g, "                           const float *restrict bias, int lo, int hi)\n{\n");
    cg(g, "    if (hi <= lo)\n        return;\n");
    cg(g, "    /* out[lo:hi] = in[lo:hi] . w   ([rows][%d] x [%d][%d]) */\n", I, I, O);
    cg(g, "    nnc_sgemm(NNC_NO_TRANS, NNC_NO_TRANS, hi - lo, %d, %d, in + (size_t)lo * %d, %d,\n", O, I, I, I);
    cg(g, "              w, %d, out + (size_t)lo * %d, %d);\n", O, O, O);
    cg(g, "    for (int b = lo; b < hi; b++) {\n");
    cg(g, "        float *o = out + (size_t)b * %d;\n", O);
    if (l->act == ACT_LINEAR || l->act == ACT_SOFTMAX) {
        cg(g, "        for (int j = 0; j < %d; j++)\n            o[j] += bias[j];\n", O);
    } else {
        cg(g, "        for (int j = 0; j < %d; j++) {\n", O);
        cg(g, "            float v = o[j] + bias[j];\n            o[j] = %s;\n        }\n", act_expr(l->act, buf, sizeof buf, "v"));
    }
    cg(g, "    }\n");
    if (l->act == ACT_SOFTMAX)
        cg_softmax_rows(g, "out", O, "    ");
    cg(g, "}\n\n");

    cg(g, "/* dout holds dL/d(out) and becomes dL/d(pre-activation); dw, db are this slice's, overwritten. */\n");
    cg(g, "static void %s_backward(float *restrict din, float *restrict dw, float *restrict db, float *restrict dout,\n", id);
    cg(g, "                            const float *restrict out, const float *restrict in, const float *restrict w,\n");
    cg(g, "                            int lo, int hi)\n{\n");
    if (!r->needs_din)
        cg(g, "    (void)din; /* the network input needs no gradient */\n    (void)w;\n");
    dense_print_backward_head(g, l, r);
    cg(g, "    /* dw = in[lo:hi]^T . dz   ([%d][rows] x [rows][%d]) */\n", I, O);
    cg(g, "    nnc_sgemm(NNC_TRANS, NNC_NO_TRANS, %d, %d, hi - lo, in + (size_t)lo * %d, %d,\n", I, O, I, I);
    cg(g, "              dout + (size_t)lo * %d, %d, dw, %d);\n", O, O, O);
    dense_print_bias_grad(g, l);
    if (r->needs_din) {
        cg(g, "    /* din = dz . w^T   ([rows][%d] x [%d][%d]) */\n", O, O, I);
        cg(g, "    nnc_sgemm(NNC_NO_TRANS, NNC_TRANS, hi - lo, %d, %d, dout + (size_t)lo * %d, %d,\n", I, O, O, O);
        cg(g, "              w, %d, din + (size_t)lo * %d, %d);\n", O, I, I);
    }
    cg(g, "}\n");
}

static void print_forward(cgen *g, const layer *l, const step_args *a)
{
    char up[64];
    upper(up, sizeof up, l->name);
    cgi(g, "%s_forward(%s, %s, params + %s_W, params + %s_B, lo, hi);\n", l->name, a->out, a->in, up, up);
}

static void print_backward(cgen *g, const layer *l, const step_args *a)
{
    char up[64];
    upper(up, sizeof up, l->name);
    cgi(g, "%s_backward(%s, %s + %s_W, %s + %s_B, %s, %s, %s, params + %s_W, lo, hi);\n", l->name,
       a->din ? a->din : "NULL", a->grads, up, a->grads, up, a->dout, a->out, a->in, up);
}

const kernel_strategy dense_sgemm = {
    .description = "OpenBLAS sgemm on the slice's rows",
    .precision = PRECISION_FP32,
    .emit = emit,
    .print_forward = print_forward,
    .print_backward = print_backward,
};

/* Output units a block accumulates in registers while the whole input goes by. */
#define SINGLE_UNITS 64

/* The units, padded to a multiple of 16 (with zero weights) when that makes every vector whole; a
 * layer of 16 or fewer is left as it is (the last layer's classes). */
static int single_units(const layer *l)
{
    int O = l->u.units;
    return O % 16 == 0 || O <= 16 ? O : (O + 15) / 16 * 16;
}

/* The block of `units` outputs from j0 (of the padded row): acc over the input in order, then the activation. */
static void emit_single_block(cgen *g, const layer *l, const single_ctx *sc, int units, int stored)
{
    int I = shape_size(l->in), OP = single_units(l);
    char buf[128];
    cg(g, "\nstatic void %s_%s_block%d(const float *restrict in, float *restrict out, int j0)\n{\n", sc->prefix,
       l->name, units);
    cg(g, "    float acc[%d];\n", units);
    cg(g, "    for (int j = 0; j < %d; j++)\n        acc[j] = %s_%s_b[j0 + j];\n", units, sc->prefix, l->name);
    cg(g, "    for (int i = 0; i < %d; i++) {\n", I);
    cg(g, "        const float x = in[i], *w = %s_%s_w + i * %d + j0;\n", sc->prefix, l->name, OP);
    cg(g, "        for (int j = 0; j < %d; j++)\n            acc[j] += x * w[j];\n    }\n", units);
    cg(g, "    for (int j = 0; j < %d; j++)\n        out[j0 + j] = %s;\n}\n", stored,
       act_expr(l->act == ACT_SOFTMAX ? ACT_LINEAR : l->act, buf, sizeof buf, "acc[j]"));
}

/*
 * One sample: out = act(in . W + b), SINGLE_UNITS outputs at a time, each
 * summed along the input in order; the units padded to whole vectors, the
 * padding computed and never stored.
 */
static void emit_single(cgen *g, const layer *l, const single_ctx *sc)
{
    int O = l->u.units, OP = single_units(l), U = OP < SINGLE_UNITS ? OP : SINGLE_UNITS;
    print_single_weights(g, l, sc, O, OP);
    /* the whole blocks; the last one stores only the real units */
    int whole = O / U, last = OP - whole * U;
    if (whole > 0)
        emit_single_block(g, l, sc, U, U);
    if (last > 0)
        emit_single_block(g, l, sc, last, O - whole * U);
    cg(g, "\nstatic void %s_%s(const float *restrict in, float *restrict out)\n{\n", sc->prefix, l->name);
    if (whole > 1)
        cg(g, "    for (int j0 = 0; j0 + %d <= %d; j0 += %d)\n        %s_%s_block%d(in, out, j0);\n", U, whole * U, U,
           sc->prefix, l->name, U);
    else if (whole == 1)
        cg(g, "    %s_%s_block%d(in, out, 0);\n", sc->prefix, l->name, U);
    if (last > 0)
        cg(g, "    %s_%s_block%d(in, out, %d);\n", sc->prefix, l->name, last, whole * U);
    if (l->act == ACT_SOFTMAX)
        cg(g, "    softmax(out, %d);\n", O);
    cg(g, "}\n");
}

static void graph_node(const layer *l, nnc_graph_node *n)
{
    (void)l;
    n->op = NNC_NODE_DENSE;
}

const layer_kind dense_kind = {
    .words = (const char *const[]){"dense", NULL},
    .keras = "Dense",
    .prefix = "dense",
    .signature_id = 0,
    .flags = KIND_FLAT_INPUT | KIND_OUTPUT_LAST,
    .usage = USAGE,
    .n_options = sizeof options / sizeof options[0],
    .options = options,
    .check = check,
    .forward_macs = forward_macs,
    .tensor = {"kernel", "bias"},
    .macro = {"W", "B"},
    .tensor_shape = tensor_shape,
    .layout = {"IO", "O"},
    STRATEGY_HOOKS(dense_choose),
    .emit_single = emit_single,
    .graph_node = graph_node,
};
