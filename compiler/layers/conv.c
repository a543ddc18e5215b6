/*
 * conv.c - 2-D convolution, NHWC, kernel HWIO (Keras's layout):
 * out = act(conv(in, W) + b), with TensorFlow's 'same' padding split.
 * How it computes is a strategy (conv.h), chosen by conv_choose() below.
 */
#include "conv.h"

enum { FILTERS, KERNEL, STRIDE, PAD, ACT, WEIGHTS };
static const option_spec options[] = {
    [FILTERS] = {"filters", OPT_COUNT, 0, 1 << 16, "the number of filters"},
    [KERNEL] = {"kernel", OPT_WINDOW, 0, 0, "a conv kernel"},
    [STRIDE] = {"stride", OPT_STRIDE, 0, 0, NULL},
    [PAD] = {"pad", OPT_PADDING, 0, 0, NULL},
    [ACT] = {"activation", OPT_ACTIVATION, 0, 0, NULL},
    WEIGHT_OPTIONS, /* from WEIGHTS on */
};
#define USAGE "conv N KxK [stride S] [pad valid|same] [relu|sigmoid|tanh|linear] [init=..]"

/* Per-sample tensors and per-layer weights stay far below INT_MAX, so shape arithmetic cannot overflow. */
#define MAX_ELEMENTS (1 << 26)
#define MAX_WEIGHTS (1 << 28)

/* Output size and TensorFlow's padding for one spatial axis. */
static int conv_axis(int in, int k, int stride, int same, int *pad_before)
{
    if (same) {
        int out = (in + stride - 1) / stride;
        int total = (out - 1) * stride + k - in;
        *pad_before = total > 0 ? total / 2 : 0;
        return out;
    }
    *pad_before = 0;
    return in >= k ? (in - k) / stride + 1 : 0;
}

static void check(layer_check *lc, layer *l, const option_value *v)
{
    conv_params *c = &l->u.conv;
    if (!v[FILTERS].arg || !v[KERNEL].arg)
        nnc_error(lc->src, lc->st->loc, "'conv' needs a number of filters and a kernel size; usage: %s", USAGE);
    c->filters = v[FILTERS].given ? (int)v[FILTERS].number : 1;
    c->kh = v[KERNEL].given ? v[KERNEL].h : 1;
    c->kw = v[KERNEL].given ? v[KERNEL].w : 1;
    c->sh = c->sw = v[STRIDE].given ? (int)v[STRIDE].number : 1;
    c->same = v[PAD].given && v[PAD].flag;
    if (v[ACT].given) {
        l->act = v[ACT].act;
        if (l->act == ACT_SOFTMAX)
            nnc_error(lc->src, v[ACT].arg->loc,
                      "softmax over a conv layer's channels is not supported; flatten and use 'dense N softmax'");
    }
    apply_weight_options(l, &v[WEIGHTS]);
    double weights = (double)c->kh * c->kw * l->in.c * c->filters;
    if (weights > MAX_WEIGHTS) {
        nnc_error(lc->src, lc->st->loc, "this conv needs %.0f weights; the limit is %d", weights, MAX_WEIGHTS);
        c->filters = 1;
        c->kh = c->kw = 1;
    }
    if (!v[STRIDE].given || !v[PAD].given)
        model_note_default(lc->m, l->line, "%s:%s%s", l->name, v[STRIDE].given ? "" : " stride=1",
                           v[PAD].given ? "" : " pad=valid");
    int oh = conv_axis(l->in.h, c->kh, c->sh, c->same, &c->pad_top);
    int ow = conv_axis(l->in.w, c->kw, c->sw, c->same, &c->pad_left);
    if ((oh < 1 || ow < 1) && v[KERNEL].given && !shape_is_flat(l->in)) {
        char buf[32];
        nnc_error(lc->src, v[KERNEL].arg->loc, "conv kernel %dx%d is larger than its %s input", c->kh, c->kw,
                  shape_text(buf, sizeof buf, l->in));
    }
    if ((double)oh * ow * c->filters > MAX_ELEMENTS) {
        nnc_error(lc->src, lc->st->loc, "this conv's output has %.0f values a sample; the limit is %d",
                  (double)oh * ow * c->filters, MAX_ELEMENTS);
        c->filters = 1;
        oh = ow = 1;
    }
    l->out = (shape){oh < 1 ? 1 : oh, ow < 1 ? 1 : ow, c->filters};
    l->n_weights = (size_t)c->kh * (size_t)c->kw * (size_t)l->in.c * (size_t)c->filters;
    l->n_bias = (size_t)c->filters;
    l->fan_in = c->kh * c->kw * l->in.c;
    l->fan_out = c->kh * c->kw * c->filters;
}

static double forward_macs(const layer *l)
{
    return (double)shape_size(l->out) * l->u.conv.kh * l->u.conv.kw * l->in.c;
}

static void tensor_dims(const layer *l, int t, char *buf, size_t len)
{
    const conv_params *c = &l->u.conv;
    if (t == 0)
        snprintf(buf, len, "[%d][%d][%d][%d]", c->kh, c->kw, l->in.c, c->filters);
    else
        snprintf(buf, len, "[%d]", c->filters);
}

/* The one place that decides how a convolution computes. */
const conv_strategy *conv_choose(const layer *l)
{
    /* Register blocking reads whole windows: valid padding only. */
    if (!l->u.conv.same)
        return &conv_blocked;
    return &conv_direct;
}

void conv_window_loops(cgen *g, const layer *l, const char *indent)
{
    const conv_params *c = &l->u.conv;
    char oy[32], ox[32];
    times(oy, sizeof oy, "oy", c->sh);
    times(ox, sizeof ox, "ox", c->sw);
    cg(g, "%sfor (int ky = 0; ky < %d; ky++) {\n", indent, c->kh);
    if (c->pad_top > 0)
        cg(g, "%s    int iy = %s + ky - %d;\n", indent, oy, c->pad_top);
    else
        cg(g, "%s    int iy = %s + ky;\n", indent, oy);
    if (c->pad_top > 0 || c->same)
        cg(g, "%s    if (iy < 0 || iy >= %d)\n%s        continue;\n", indent, l->in.h, indent);
    cg(g, "%s    for (int kx = 0; kx < %d; kx++) {\n", indent, c->kw);
    if (c->pad_left > 0)
        cg(g, "%s        int ix = %s + kx - %d;\n", indent, ox, c->pad_left);
    else
        cg(g, "%s        int ix = %s + kx;\n", indent, ox);
    if (c->pad_left > 0 || c->same)
        cg(g, "%s        if (ix < 0 || ix >= %d)\n%s            continue;\n", indent, l->in.w, indent);
}

static const char *kernel(const layer *l)
{
    return conv_choose(l)->description;
}

static unsigned helpers(const layer *l, const layer_role *r)
{
    const conv_strategy *s = conv_choose(l);
    return s->helpers ? s->helpers(l, r) : 0;
}

static void workspace(const layer *l, const layer_role *r, ws_list *ws)
{
    conv_choose(l)->workspace(l, r, ws);
}

static void emit(cgen *g, const layer *l, const layer_role *r)
{
    conv_choose(l)->emit(g, l, r);
}

static void prepare(cgen *g, const layer *l, const layer_role *r, pass_kind pass)
{
    conv_choose(l)->prepare(g, l, r, pass);
}

static void print_forward(cgen *g, const layer *l, const step_args *a)
{
    conv_choose(l)->print_forward(g, l, a);
}

/* Every strategy's backward takes the same arguments: wt is the transposed weights it made, if any. */
static void print_backward(cgen *g, const layer *l, const step_args *a)
{
    char up[64], wt[80];
    upper(up, sizeof up, l->name);
    snprintf(wt, sizeof wt, a->din ? "ws->%s_wt" : "NULL", l->name);
    cgi(g, "%s_backward(%s, %s + %s_W, %s + %s_B, %s, %s, %s, %s, lo, hi);\n", l->name, a->din ? a->din : "NULL",
        a->grads, up, a->grads, up, a->dout, a->out, a->in, wt);
}

const layer_kind conv_kind = {
    .words = (const char *const[]){"conv", NULL},
    .keras = "Conv2D",
    .prefix = "conv2d",
    .signature_id = 1,
    .flags = KIND_IMAGE_INPUT,
    .usage = USAGE,
    .n_options = sizeof options / sizeof options[0],
    .options = options,
    .check = check,
    .forward_macs = forward_macs,
    .tensor = {"kernel", "bias"},
    .macro = {"W", "B"},
    .tensor_dims = tensor_dims,
    .kernel = kernel,
    .helpers = helpers,
    .workspace = workspace,
    .emit = emit,
    .prepare = prepare,
    .print_forward = print_forward,
    .print_backward = print_backward,
};
