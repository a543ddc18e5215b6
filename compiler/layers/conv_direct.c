/*
 * conv_direct.c - the direct convolution strategy: plain loops with constant
 * bounds over each output pixel's window, channels innermost so that the
 * compiler vectorizes over output channels. It handles any padding, which is
 * why 'same' convolutions use it.
 */
#include "conv.h"

static void workspace(const layer *l, const layer_role *r, ws_list *ws)
{
    const conv_params *c = &l->u.conv;
    if (r->needs_din)
        ws_add(ws, "w with its last two axes swapped, [kh][kw][cout][cin], for the input gradient",
               "float %s_wt[%d * %d * %d * %d]", l->name, c->kh, c->kw, l->out.c, l->in.c);
}

/* The multiply-adds of one window position: acc[co] += px[ci] * wk[ci][co]. */
static void forward_taps(cgen *g, int CI, int CO, const char *ind)
{
    if (CI == 1) {
        cg(g, "%sfor (int co = 0; co < %d; co++)\n%s    acc[co] += px[0] * wk[co];\n", ind, CO, ind);
        return;
    }
    cg(g, "%sfor (int ci = 0; ci < %d; ci++)\n", ind, CI);
    cg(g, "%s    for (int co = 0; co < %d; co++)\n", ind, CO);
    cg(g, "%s        acc[co] += px[ci] * wk[ci * %d + co];\n", ind, CO);
}

static void emit(cgen *g, const layer *l, const layer_role *r)
{
    const conv_params *c = &l->u.conv;
    const char *id = l->name;
    int IH = l->in.h, IW = l->in.w, CI = l->in.c, OH = l->out.h, OW = l->out.w, CO = l->out.c;
    char buf[128];
    cg(g, "static void %s_forward(float *restrict out, const float *restrict in, const float *restrict w,\n", id);
    cg(g, "                            const float *restrict bias, int lo, int hi)\n{\n");
    cg(g, "    for (int b = lo; b < hi; b++)\n");
    cg(g, "        for (int oy = 0; oy < %d; oy++)\n", OH);
    cg(g, "            for (int ox = 0; ox < %d; ox++) {\n", OW);
    cg(g, "                float acc[%d];\n", CO);
    cg(g, "                for (int co = 0; co < %d; co++)\n                    acc[co] = bias[co];\n", CO);
    conv_window_loops(g, l, "                ");
    cg(g, "                        const float *px = in + (((size_t)b * %d + iy) * %d + ix) * %d;\n", IH, IW, CI);
    cg(g, "                        const float *wk = w + (ky * %d + kx) * %d;\n", c->kw, CI * CO);
    forward_taps(g, CI, CO, "                        ");
    cg(g, "                    }\n                }\n");
    cg(g, "                float *o = out + (((size_t)b * %d + oy) * %d + ox) * %d;\n", OH, OW, CO);
    cg(g, "                for (int co = 0; co < %d; co++)\n", CO);
    cg(g, "                    o[co] = %s;\n", act_expr(l->act, buf, sizeof buf, "acc[co]"));
    cg(g, "            }\n}\n\n");

    if (r->needs_din) {
        cg(g, "/* w with its last two axes swapped, [kh][kw][cout][cin], so that din is a contiguous multiply-add. */\n");
        cg(g, "static void %s_transpose_weights(float *restrict wt, const float *restrict w)\n{\n", id);
        cg(g, "    for (int k = 0; k < %d; k++)\n", c->kh * c->kw);
        cg(g, "        for (int ci = 0; ci < %d; ci++)\n", CI);
        cg(g, "            for (int co = 0; co < %d; co++)\n", CO);
        cg(g, "                wt[(k * %d + co) * %d + ci] = w[(k * %d + ci) * %d + co];\n", CO, CI, CI, CO);
        cg(g, "}\n\n");
    }
    cg(g, "/* dout holds dL/d(out) and becomes dL/d(pre-activation); dw, db are this slice's, overwritten. */\n");
    cg(g, "static void %s_backward(float *restrict din, float *restrict dw, float *restrict db, float *restrict dout,\n", id);
    cg(g, "                             const float *restrict out, const float *restrict in, const float *restrict wt,\n");
    cg(g, "                             int lo, int hi)\n{\n");
    if (!r->needs_din)
        cg(g, "    (void)din; /* the network input needs no gradient */\n    (void)wt;\n");
    print_act_backward(g, l, r, OH * OW * CO);
    if (backward_act(l, r) == ACT_LINEAR)
        cg(g, "    (void)out;\n");
    cg(g, "    memset(dw, 0, sizeof(float) * %d);\n", c->kh * c->kw * CI * CO);
    cg(g, "    memset(db, 0, sizeof(float) * %d);\n", CO);
    if (r->needs_din)
        cg(g, "    memset(din + (size_t)lo * %d, 0, sizeof(float) * (size_t)(hi - lo) * %d);\n", IH * IW * CI, IH * IW * CI);
    cg(g, "    for (int b = lo; b < hi; b++)\n");
    cg(g, "        for (int oy = 0; oy < %d; oy++)\n", OH);
    cg(g, "            for (int ox = 0; ox < %d; ox++) {\n", OW);
    cg(g, "                const float *dz = dout + (((size_t)b * %d + oy) * %d + ox) * %d;\n", OH, OW, CO);
    cg(g, "                for (int co = 0; co < %d; co++)\n                    db[co] += dz[co];\n", CO);
    conv_window_loops(g, l, "                ");
    cg(g, "                        size_t at = (((size_t)b * %d + iy) * %d + ix) * %d;\n", IH, IW, CI);
    cg(g, "                        int k = ky * %d + kx;\n", c->kw);
    cg(g, "                        float *dwk = dw + k * %d;\n", CI * CO);
    cg(g, "                        for (int ci = 0; ci < %d; ci++) {\n", CI);
    cg(g, "                            float x = in[at + ci];\n");
    cg(g, "                            for (int co = 0; co < %d; co++)\n", CO);
    cg(g, "                                dwk[ci * %d + co] += x * dz[co];\n", CO);
    cg(g, "                        }\n");
    if (r->needs_din) {
        cg(g, "                        const float *wtk = wt + k * %d;\n", CI * CO);
        cg(g, "                        for (int co = 0; co < %d; co++) {\n", CO);
        cg(g, "                            float g = dz[co];\n");
        cg(g, "                            for (int ci = 0; ci < %d; ci++)\n", CI);
        cg(g, "                                din[at + ci] += g * wtk[co * %d + ci];\n", CI);
        cg(g, "                        }\n");
    }
    cg(g, "                    }\n                }\n            }\n}\n");
}

static void prepare(cgen *g, const layer *l, const layer_role *r, pass_kind pass)
{
    char up[64];
    if (pass == PASS_TRAIN && r->needs_din)
        cgi(g, "%s_transpose_weights(ws->%s_wt, params + %s_W);\n", l->name, l->name, upper(up, sizeof up, l->name));
}

static void print_forward(cgen *g, const layer *l, const step_args *a)
{
    char up[64];
    upper(up, sizeof up, l->name);
    cgi(g, "%s_forward(%s, %s, params + %s_W, params + %s_B, lo, hi);\n", l->name, a->out, a->in, up, up);
}

const conv_strategy conv_direct = {
    .description = "direct loops, constant bounds, vectorized over output channels",
    .workspace = workspace,
    .emit = emit,
    .prepare = prepare,
    .print_forward = print_forward,
};
