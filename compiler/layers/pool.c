/*
 * pool.c - max pooling and average pooling over valid windows (Keras's
 * MaxPooling2D and AveragePooling2D: 2x2 by default, stride = window).
 * Two kinds that share their schema, shape rule and loops.
 */
#include <string.h>

#include "kind.h"

enum { WINDOW, STRIDE };
static const option_spec options[] = {
    [WINDOW] = {"window", OPT_WINDOW, 0, 0, "a pooling window"},
    [STRIDE] = {"stride", OPT_STRIDE, 0, 0, NULL},
};
#define USAGE "maxpool|avgpool [KxK] [stride S]"

static void check(layer_check *lc, layer *l, const option_value *v)
{
    pool_params *p = &l->u.pool;
    p->kh = v[WINDOW].given ? v[WINDOW].h : 2;
    p->kw = v[WINDOW].given ? v[WINDOW].w : 2;
    p->sh = v[STRIDE].given ? (int)v[STRIDE].number : p->kh;
    p->sw = v[STRIDE].given ? (int)v[STRIDE].number : p->kw;
    if (!v[WINDOW].arg || !v[STRIDE].given)
        model_note_default(lc->m, l->line, "%s: window %dx%d stride %d", l->name, p->kh, p->kw, p->sh);
    int oh = l->in.h >= p->kh ? (l->in.h - p->kh) / p->sh + 1 : 0;
    int ow = l->in.w >= p->kw ? (l->in.w - p->kw) / p->sw + 1 : 0;
    if ((oh < 1 || ow < 1) && !shape_is_flat(l->in)) {
        char buf[32];
        nnc_error(lc->src, v[WINDOW].arg ? v[WINDOW].arg->loc : lc->st->loc,
                  "pooling window %dx%d is larger than its %s input", p->kh, p->kw, shape_text(buf, sizeof buf, l->in));
    }
    l->out = (shape){oh < 1 ? 1 : oh, ow < 1 ? 1 : ow, l->in.c};
}

extern const layer_kind maxpool_kind;

static int is_max(const layer *l)
{
    return l->kind == &maxpool_kind;
}

static const char *kernel(const layer *l)
{
    (void)l;
    return "elementwise loops";
}

static void workspace(const layer *l, const layer_role *r, ws_list *ws)
{
    (void)r;
    if (is_max(l))
        ws_add(ws, "index into the input of each output's maximum", "int32_t %s_argmax[B * %d]", l->name,
               shape_size(l->out));
}

/*
 * The offset of input pixel (b, oy * sh + ky, ox * sw + kx), channel 0; with at_origin, of the
 * window's first pixel (ky = kx = 0).
 */
static const char *window_offset(char *buf, size_t len, const layer *l, int at_origin)
{
    const pool_params *p = &l->u.pool;
    char oy[32], ox[32];
    snprintf(buf, len, "(((size_t)b * %d + %s%s) * %d + %s%s) * %d", l->in.h, times(oy, sizeof oy, "oy", p->sh),
             at_origin ? "" : " + ky", l->in.w, times(ox, sizeof ox, "ox", p->sw), at_origin ? "" : " + kx", l->in.c);
    return buf;
}

/* The offset at window position (ky, kx). */
static const char *window_at(char *buf, size_t len, const layer *l)
{
    return window_offset(buf, len, l, 0);
}

/* The loops over the batch's output pixels, opened down to `o`, the offset of output (b, oy, ox). */
static void open_output_loops(cgen *g, const layer *l)
{
    cg(g, "    for (int b = lo; b < hi; b++)\n");
    cg(g, "        for (int oy = 0; oy < %d; oy++)\n", l->out.h);
    cg(g, "            for (int ox = 0; ox < %d; ox++) {\n", l->out.w);
    cg(g, "                size_t o = (((size_t)b * %d + oy) * %d + ox) * %d;\n", l->out.h, l->out.w, l->in.c);
}

/* Inside them, the loops over the window's positions, opened down to `at`, the input's offset there. */
static void open_window_loops(cgen *g, const layer *l)
{
    char at[160];
    cg(g, "                for (int ky = 0; ky < %d; ky++)\n", l->u.pool.kh);
    cg(g, "                    for (int kx = 0; kx < %d; kx++) {\n", l->u.pool.kw);
    cg(g, "                        int32_t at = (int32_t)%s;\n", window_at(at, sizeof at, l));
}

/* Whether the windows cover the input exactly once: stride = window, no row or column left over. */
static int windows_tile(const layer *l)
{
    const pool_params *p = &l->u.pool;
    return p->sh == p->kh && p->sw == p->kw && l->out.h * p->kh == l->in.h && l->out.w * p->kw == l->in.w;
}

/*
 * Each output's gradient goes to the input its maximum came from (argmax). Where the windows tile
 * the input, every input element is written once, its gradient or 0, without clearing din first;
 * otherwise din is cleared and the gradients added, as overlapping windows can share an input.
 * Where a relu is below (layer_role), an output whose maximum is not positive passes nothing on.
 */
static void emit_max_backward(cgen *g, const layer *l, const layer_role *r)
{
    int C = l->in.c, IN = shape_size(l->in), OUT = shape_size(l->out);
    const char *relu = r->relu_grad_below ? " && out[o + c] > 0.0f" : "";
    int indent = (int)strlen("static void _backward(") + (int)strlen(l->name);
    cg(g, "static void %s_backward(float *restrict din, const float *restrict dout,\n", l->name);
    cg(g, "%*sconst float *restrict out, const int32_t *restrict argmax,\n", indent, "");
    cg(g, "%*sint lo, int hi)\n{\n", indent, "");
    if (r->relu_grad_below)
        cg(g, "    /* with the derivative of the relu below: a maximum that is not positive passes nothing on */\n");
    else
        cg(g, "    (void)out;\n");
    if (!windows_tile(l)) {
        cg(g, "    memset(din + (size_t)lo * %d, 0, sizeof(float) * (size_t)(hi - lo) * %d);\n", IN, IN);
        cg(g, "    for (size_t o = (size_t)lo * %d; o < (size_t)hi * %d; o++)\n", OUT, OUT);
        if (r->relu_grad_below)
            cg(g, "        if (out[o] > 0.0f)\n            din[argmax[o]] += dout[o];\n}\n");
        else
            cg(g, "        din[argmax[o]] += dout[o];\n}\n");
        return;
    }
    open_output_loops(g, l);
    open_window_loops(g, l);
    cg(g, "                        for (int c = 0; c < %d; c++) {\n", C);
    cg(g, "                            int routed = argmax[o + c] == at + c%s;\n", relu);
    cg(g, "                            /* + 0.0f: a -0 gradient becomes +0, the sum a cleared buffer adding it would hold */\n");
    cg(g, "                            din[at + c] = routed ? dout[o + c] + 0.0f : 0.0f;\n");
    cg(g, "                        }\n                    }\n            }\n}\n");
}

/*
 * Each output channel's maximum (or sum) is kept in a local over its window and stored once. `at`
 * is the input's offset at a window position, channel 0, as in the backward passes.
 */
static void emit_forward(cgen *g, const layer *l)
{
    const pool_params *p = &l->u.pool;
    int max = is_max(l);
    int indent = (int)strlen("static void _forward(") + (int)strlen(l->name);
    char at[160], origin[160];
    if (max) {
        cg(g, "/* argmax: where in `in` each output came from; ties go to the first, as in Keras and PyTorch. */\n");
        cg(g, "static void %s_forward(float *restrict out, int32_t *restrict argmax, const float *restrict in,\n", l->name);
        cg(g, "%*sint lo, int hi)\n{\n", indent, "");
    } else {
        cg(g, "static void %s_forward(float *restrict out, const float *restrict in, int lo, int hi)\n{\n", l->name);
    }
    open_output_loops(g, l);
    cg(g, "                for (int c = 0; c < %d; c++) {\n", l->in.c);
    if (max) {
        cg(g, "                    float m = -INFINITY;\n");
        cg(g, "                    /* the window's first input, should none exceed -INFINITY (all -inf or NaN) */\n");
        cg(g, "                    int32_t from = (int32_t)%s + c;\n", window_offset(origin, sizeof origin, l, 1));
    } else {
        cg(g, "                    float sum = 0.0f;\n");
    }
    cg(g, "                    for (int ky = 0; ky < %d; ky++)\n", p->kh);
    cg(g, "                        for (int kx = 0; kx < %d; kx++) {\n", p->kw);
    cg(g, "                            int32_t at = (int32_t)%s;\n", window_at(at, sizeof at, l));
    if (max) {
        cg(g, "                            if (in[at + c] > m) {\n");
        cg(g, "                                m = in[at + c];\n");
        cg(g, "                                from = at + c;\n                            }\n");
    } else {
        cg(g, "                            sum += in[at + c];\n");
    }
    cg(g, "                        }\n");
    if (max)
        cg(g, "                    out[o + c] = m;\n                    argmax[o + c] = from;\n");
    else
        cg(g, "                    out[o + c] = sum * (1.0f / %d);\n", p->kh * p->kw);
    cg(g, "                }\n            }\n}\n\n");
}

/* Each output's gradient, divided by the window's size, added to every input of its window. */
static void emit_avg_backward(cgen *g, const layer *l)
{
    const pool_params *p = &l->u.pool;
    int C = l->in.c, OH = l->out.h, OW = l->out.w, IN = shape_size(l->in);
    char at[160];
    cg(g, "static void %s_backward(float *restrict din, const float *restrict dout, int lo, int hi)\n{\n", l->name);
    cg(g, "    memset(din + (size_t)lo * %d, 0, sizeof(float) * (size_t)(hi - lo) * %d);\n", IN, IN);
    cg(g, "    for (int b = lo; b < hi; b++)\n");
    cg(g, "        for (int oy = 0; oy < %d; oy++)\n", OH);
    cg(g, "            for (int ox = 0; ox < %d; ox++)\n", OW);
    cg(g, "                for (int c = 0; c < %d; c++) {\n", C);
    cg(g, "                    float g = dout[(((size_t)b * %d + oy) * %d + ox) * %d + c] * (1.0f / %d);\n", OH, OW, C,
       p->kh * p->kw);
    cg(g, "                    for (int ky = 0; ky < %d; ky++)\n", p->kh);
    cg(g, "                        for (int kx = 0; kx < %d; kx++)\n", p->kw);
    cg(g, "                            din[%s + c] += g;\n", window_at(at, sizeof at, l));
    cg(g, "                }\n}\n");
}

static void emit(cgen *g, const layer *l, const layer_role *r)
{
    emit_forward(g, l);
    if (!r->needs_din)
        return;
    if (is_max(l))
        emit_max_backward(g, l, r);
    else
        emit_avg_backward(g, l);
}

static void print_forward(cgen *g, const layer *l, const step_args *a)
{
    if (is_max(l))
        cgi(g, "%s_forward(%s, ws->%s_argmax, %s, lo, hi);\n", l->name, a->out, l->name, a->in);
    else
        cgi(g, "%s_forward(%s, %s, lo, hi);\n", l->name, a->out, a->in);
}

static void print_backward(cgen *g, const layer *l, const step_args *a)
{
    if (is_max(l))
        cgi(g, "%s_backward(%s, %s, %s, ws->%s_argmax, lo, hi);\n", l->name, a->din, a->dout, a->out, l->name);
    else
        cgi(g, "%s_backward(%s, %s, lo, hi);\n", l->name, a->din, a->dout);
}

/* One sample: each output the max (or mean) of its window, channels innermost. */
static void emit_single(cgen *g, const layer *l, const single_ctx *sc)
{
    const pool_params *p = &l->u.pool;
    int C = l->in.c, OH = l->out.h, OW = l->out.w;
    char oy[32], ox[32];
    times(oy, sizeof oy, "oy", p->sh);
    times(ox, sizeof ox, "ox", p->sw);
    cg(g, "\nstatic void %s_%s(const float *restrict in, float *restrict out)\n{\n", sc->prefix, l->name);
    cg(g, "    for (int oy = 0; oy < %d; oy++)\n        for (int ox = 0; ox < %d; ox++) {\n", OH, OW);
    cg(g, "            float *o = out + (oy * %d + ox) * %d;\n", OW, C);
    cg(g, "            for (int c = 0; c < %d; c++)\n                o[c] = %s;\n", C, is_max(l) ? "-INFINITY" : "0.0f");
    cg(g, "            for (int ky = 0; ky < %d; ky++)\n                for (int kx = 0; kx < %d; kx++) {\n", p->kh,
       p->kw);
    cg(g, "                    const float *x = in + ((%s + ky) * %d + %s + kx) * %d;\n", oy, l->in.w, ox, C);
    if (is_max(l))
        cg(g, "                    for (int c = 0; c < %d; c++)\n                        o[c] = x[c] > o[c] ? x[c] : o[c];\n", C);
    else
        cg(g, "                    for (int c = 0; c < %d; c++)\n                        o[c] += x[c];\n", C);
    cg(g, "                }\n");
    if (!is_max(l))
        cg(g, "            for (int c = 0; c < %d; c++)\n                o[c] *= 1.0f / %d;\n", C, p->kh * p->kw);
    cg(g, "        }\n}\n");
}

static void graph_node(const layer *l, nnc_graph_node *n)
{
    n->op = is_max(l) ? NNC_NODE_MAXPOOL : NNC_NODE_AVGPOOL;
    n->kernel[0] = l->u.pool.kh, n->kernel[1] = l->u.pool.kw;
    n->stride[0] = l->u.pool.sh, n->stride[1] = l->u.pool.sw;
}

/* The two kinds differ in their words and names only; is_max() tells their code apart. */
#define POOL_KIND(word_, keras_, prefix_, id_, flags_)                                                                 \
    {                                                                                                                  \
        .words = (const char *const[]){word_, NULL}, .keras = keras_, .prefix = prefix_, .signature_id = id_,          \
        .flags = KIND_IMAGE_INPUT | (flags_), .usage = USAGE, .n_options = sizeof options / sizeof options[0],                   \
        .options = options, .check = check, .kernel = kernel, .workspace = workspace, .emit = emit,                    \
        .print_forward = print_forward, .print_backward = print_backward, .emit_single = emit_single,                  \
        .graph_node = graph_node,                                                                                      \
    }

const layer_kind maxpool_kind = POOL_KIND("maxpool", "MaxPooling2D", "max_pooling2d", 2, KIND_RELU_GRAD_BELOW);
const layer_kind avgpool_kind = POOL_KIND("avgpool", "AveragePooling2D", "average_pooling2d", 3, 0);
