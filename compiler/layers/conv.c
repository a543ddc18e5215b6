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

static int tensor_shape(const layer *l, int t, int dims[4])
{
    const conv_params *c = &l->u.conv;
    if (t == 1) {
        dims[0] = c->filters;
        return 1;
    }
    dims[0] = c->kh, dims[1] = c->kw, dims[2] = l->in.c, dims[3] = c->filters;
    return 4;
}

/* The one place that decides how a convolution computes. */
const kernel_strategy *conv_choose(const layer *l)
{
    /* Register blocking reads whole windows: valid padding, or a padded copy of the input, whose
       kernels conv_padded chooses here again, for the padded shape. */
    if (l->u.conv.same)
        return conv_padded_choose(l);
    if (l->precision == PRECISION_BF16 && conv_bf16_fits(l))
        return &conv_bf16;
    if (conv_winograd_fits(l))
        return &conv_winograd;
    return &conv_blocked;
}

int conv_pixel_block(int vectors, int limit, int max_acc)
{
    static const int sizes[] = {8, 6, 4, 2, 1};
    for (int i = 0; i < 5; i++)
        if (sizes[i] * vectors <= max_acc && sizes[i] <= limit)
            return sizes[i];
    return 1;
}

void conv_print_block_sweep(cgen *g, const layer *l, int np, const char *block, const char *args, int note_last)
{
    int OH = l->out.h, OW = l->out.w;
    cg(g, "    for (int b = lo; b < hi; b++)\n        for (int oy = 0; oy < %d; oy++) {\n", OH);
    if (OW / np > 0)
        cg(g, "            for (int ox = 0; ox + %d <= %d; ox += %d)\n                %s(%s, b, oy, ox, %d);\n", np, OW,
           np, block, args, np);
    if (OW % np && note_last)
        cg(g, "            %s(%s, b, oy, %d, %d); /* the row's last %d pixels */\n", block, args, OW - OW % np, OW % np,
           OW % np);
    else if (OW % np)
        cg(g, "            %s(%s, b, oy, %d, %d);\n", block, args, OW - OW % np, OW % np);
    cg(g, "        }\n");
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

void conv_print_backward_head(cgen *g, const layer *l, const layer_role *r)
{
    int OH = l->out.h, OW = l->out.w, CO = l->out.c;
    print_act_backward(g, l, r, OH * OW * CO);
    if (backward_act(l, r) == ACT_LINEAR)
        cg(g, "    (void)out;\n");
    cg(g, "    memset(db, 0, sizeof(float) * %d);\n", CO);
    cg(g, "    for (size_t p = (size_t)lo * %d; p < (size_t)hi * %d; p++)\n", OH * OW, OH * OW);
    cg(g, "        for (int co = 0; co < %d; co++)\n            db[co] += dout[p * %d + co];\n", CO, CO);
}

/* The backward call most strategies share: wt is the transposed weights it made, if any. */
void conv_print_backward_call(cgen *g, const layer *l, const step_args *a)
{
    char up[64], wt[80];
    upper(up, sizeof up, l->name);
    snprintf(wt, sizeof wt, a->din ? "ws->%s_wt" : "NULL", l->name);
    cgi(g, "%s_backward(%s, %s + %s_W, %s + %s_B, %s, %s, %s, %s, lo, hi);\n", l->name, a->din ? a->din : "NULL",
        a->grads, up, a->grads, up, a->dout, a->out, a->in, wt);
}

/* The simple loop nest for one sample: each output pixel's channels accumulated over its window (any padding). */
static void emit_single_direct(cgen *g, const layer *l, const single_ctx *sc)
{
    const conv_params *c = &l->u.conv;
    int IW = l->in.w, CI = l->in.c, OH = l->out.h, OW = l->out.w, CO = l->out.c;
    char buf[128], pixel[64];
    cg(g, "\nstatic void %s_%s(const float *restrict in, float *restrict out)\n{\n", sc->prefix, l->name);
    cg(g, "    for (int oy = 0; oy < %d; oy++)\n        for (int ox = 0; ox < %d; ox++) {\n", OH, OW);
    cg(g, "            float *o = out + (oy * %d + ox) * %d;\n", OW, CO);
    cg(g, "            for (int co = 0; co < %d; co++)\n                o[co] = %s_%s_b[co];\n", CO, sc->prefix,
       l->name);
    conv_window_loops(g, l, "            ");
    snprintf(pixel, sizeof pixel, "(iy * %d + ix)", IW);
    cg(g, "                    const float *px = in + %s;\n", times(buf, sizeof buf, pixel, CI));
    cg(g, "                    const float *wk = %s_%s_w + (ky * %d + kx) * %d;\n", sc->prefix, l->name, c->kw, CI * CO);
    if (CI == 1) {
        cg(g, "                    for (int co = 0; co < %d; co++)\n", CO);
        cg(g, "                        o[co] += px[0] * wk[co];\n");
    } else {
        cg(g, "                    for (int ci = 0; ci < %d; ci++)\n", CI);
        cg(g, "                        for (int co = 0; co < %d; co++)\n", CO);
        cg(g, "                            o[co] += px[ci] * wk[ci * %d + co];\n", CO);
    }
    cg(g, "                }\n            }\n");
    if (l->act != ACT_LINEAR)
        cg(g, "            for (int co = 0; co < %d; co++)\n                o[co] = %s;\n", CO,
           act_expr(l->act, buf, sizeof buf, "o[co]"));
    cg(g, "        }\n}\n");
}

/*
 * Valid padding, for one sample: NP output pixels along x at a time, each
 * with its own accumulator array, written out pixel by pixel so that the
 * compiler keeps them in (vector) registers and loads each weight once for NP
 * pixels. Plain C99: the compiler vectorizes it for whatever the target has.
 */
#define SINGLE_BLOCK 8    /* pixels a block at most */
#define SINGLE_FLOATS 128  /* accumulators a block at most: pixels x padded channels */

/*
 * Output channels a block accumulates: a multiple of 16 (one AVX-512 register,
 * two AVX2 or four NEON ones) when the count is not one, the weights padded
 * with zeros to match, so that every vector the compiler makes is whole.
 */
static int single_channels(const layer *l)
{
    int CO = l->out.c;
    return CO % 16 == 0 || CO < 8 ? CO : (CO + 15) / 16 * 16;
}

/* The function for a block of np pixels starting at (oy, ox0). */
static void emit_single_block(cgen *g, const layer *l, const single_ctx *sc, int np)
{
    const conv_params *c = &l->u.conv;
    int IW = l->in.w, CI = l->in.c, OW = l->out.w, CO = l->out.c, COP = single_channels(l);
    char buf[128], oy[32], ox[32], pixel[96];
    times(oy, sizeof oy, "oy", c->sh);
    times(ox, sizeof ox, "ox0", c->sw);
    cg(g, "\n/* %d output pixel%s along x from (oy, ox0). */\n", np, np == 1 ? "" : "s");
    cg(g, "static void %s_%s_block%d(const float *restrict in, float *restrict out, int oy, int ox0)\n{\n",
       sc->prefix, l->name, np);
    cg(g, "    float");
    for (int p = 0; p < np; p++)
        cg(g, "%s acc%d[%d]", p ? "," : "", p, COP);
    cg(g, ";\n    for (int co = 0; co < %d; co++) {\n", COP);
    for (int p = 0; p < np; p++)
        cg(g, "        acc%d[co] = %s_%s_b[co];\n", p, sc->prefix, l->name);
    cg(g, "    }\n");
    cg(g, "    for (int ky = 0; ky < %d; ky++)\n        for (int kx = 0; kx < %d; kx++) {\n", c->kh, c->kw);
    snprintf(pixel, sizeof pixel, "((%s + ky) * %d + %s + kx)", oy, IW, ox);
    cg(g, "            const float *px = in + %s;\n", times(buf, sizeof buf, pixel, CI));
    cg(g, "            const float *wk = %s_%s_w + (ky * %d + kx) * %d;\n", sc->prefix, l->name, c->kw, CI * COP);
    const char *ind = "            ";
    if (CI > 1) {
        cg(g, "            for (int ci = 0; ci < %d; ci++) {\n", CI);
        cg(g, "                const float *w = wk + %s;\n", times(buf, sizeof buf, "ci", COP));
        ind = "                ";
    } else {
        cg(g, "            const float *w = wk;\n");
    }
    for (int p = 0; p < np; p++)
        cg(g, "%sconst float x%d = px[%d%s];\n", ind, p, p * c->sw * CI, CI > 1 ? " + ci" : "");
    cg(g, "%sfor (int co = 0; co < %d; co++) {\n", ind, COP);
    for (int p = 0; p < np; p++)
        cg(g, "%s    acc%d[co] += x%d * w[co];\n", ind, p, p);
    cg(g, "%s}\n", ind);
    if (CI > 1)
        cg(g, "            }\n");
    cg(g, "        }\n");
    cg(g, "    float *o = out + (oy * %d + ox0) * %d;\n", OW, CO);
    cg(g, "    for (int co = 0; co < %d; co++) {\n", CO);
    for (int p = 0; p < np; p++) {
        char v[32];
        snprintf(v, sizeof v, "acc%d[co]", p);
        cg(g, "        o[%d + co] = %s;\n", p * CO, act_expr(l->act, buf, sizeof buf, v));
    }
    cg(g, "    }\n}\n");
}

static void emit_single_blocked(cgen *g, const layer *l, const single_ctx *sc)
{
    int OH = l->out.h, OW = l->out.w;
    int most = SINGLE_FLOATS / single_channels(l);
    most = most < 1 ? 1 : most > SINGLE_BLOCK ? SINGLE_BLOCK : most;
    most = OW < most ? OW : most;
    /* A block size that divides the row, if one is at least half the largest: a short last block
     * compiles to slow code (gcc: four times the time a pixel). */
    int NP = most;
    for (int np = most; np >= (most + 1) / 2; np--)
        if (OW % np == 0) {
            NP = np;
            break;
        }
    emit_single_block(g, l, sc, NP);
    if (OW % NP)
        emit_single_block(g, l, sc, OW % NP);
    cg(g, "\nstatic void %s_%s(const float *restrict in, float *restrict out)\n{\n", sc->prefix, l->name);
    cg(g, "    for (int oy = 0; oy < %d; oy++) {\n", OH);
    if (OW / NP > 0)
        cg(g, "        for (int ox = 0; ox + %d <= %d; ox += %d)\n            %s_%s_block%d(in, out, oy, ox);\n", NP, OW,
           NP, sc->prefix, l->name, NP);
    if (OW % NP)
        cg(g, "        %s_%s_block%d(in, out, oy, %d); /* the row's last pixels */\n", sc->prefix, l->name, OW % NP,
           OW - OW % NP);
    cg(g, "    }\n}\n");
}

/* One sample, weights baked in (the inference back end); valid convolutions get their output channels padded. */
static void emit_single(cgen *g, const layer *l, const single_ctx *sc)
{
    int CO = l->out.c;
    print_single_weights(g, l, sc, CO, l->u.conv.same ? CO : single_channels(l));
    if (l->u.conv.same)
        emit_single_direct(g, l, sc);
    else
        emit_single_blocked(g, l, sc);
}

/* ONNX's pads: TensorFlow's 'same' split, the extra row and column at the bottom and right. */
static void graph_node(const layer *l, nnc_graph_node *n)
{
    const conv_params *c = &l->u.conv;
    int bottom = (l->out.h - 1) * c->sh + c->kh - l->in.h - c->pad_top;
    int right = (l->out.w - 1) * c->sw + c->kw - l->in.w - c->pad_left;
    n->op = NNC_NODE_CONV;
    n->kernel[0] = c->kh, n->kernel[1] = c->kw;
    n->stride[0] = c->sh, n->stride[1] = c->sw;
    n->pads[0] = c->pad_top, n->pads[1] = c->pad_left;
    n->pads[2] = c->same && bottom > 0 ? bottom : 0, n->pads[3] = c->same && right > 0 ? right : 0;
}

const layer_kind conv_kind = {
    .words = (const char *const[]){"conv", NULL},
    .keras = "Conv2D",
    .prefix = "conv2d",
    .signature_id = 1,
    .flags = KIND_IMAGE_INPUT | KIND_OUTPUT_LAST,
    .usage = USAGE,
    .n_options = sizeof options / sizeof options[0],
    .options = options,
    .check = check,
    .forward_macs = forward_macs,
    .tensor = {"kernel", "bias"},
    .macro = {"W", "B"},
    .tensor_shape = tensor_shape,
    .layout = {"HWIO", "O"},
    STRATEGY_HOOKS(conv_choose),
    .emit_single = emit_single,
    .graph_node = graph_node,
};
