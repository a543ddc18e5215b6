/*
 * conv_blocked.c - the register-blocked convolution strategy (valid padding).
 *
 * Forward and input gradient keep a block of NP output pixels x (channels /
 * 16) vectors of accumulators in registers; the weight gradient keeps a block
 * of (kx, cin) pairs x (filters / 16) vectors, swept along the output. Channel
 * counts that are not multiples of 16 use a shorter last vector, with the
 * weights padded to whole vectors once a step.
 *
 * Each kernel is printed twice, for 16-float vectors (AVX-512) and for 8
 * (AVX2, NEON), and the file picks one by LANES: a vector wider than the
 * target's registers is split through memory by the compiler, which made the
 * AVX2 build ~25x slower. The weight layouts stay padded to multiples of VEC
 * (16), which both widths divide. The lanes are channels, so each element's
 * sum runs in the loops' order at either width.
 */
#include <string.h>

#include "conv.h"

/* The lanes of the vectors of the kernels being printed (16 or 8). */
static int lanes = VEC;

/*
 * Vector accumulators a block keeps in registers: half of AVX-512's 32 at 16
 * lanes; at 8, 12 of AVX2's 16. With more than 3 vectors of weights the
 * weights then do not all fit beside them, and the FMAs take them from memory
 * (L1): 12 rather than 8 still trained vgg_bn's AVX2 build ~5% faster (651,
 * 660, 638 -> 667, 700, 711 img/s at one thread, alternating).
 */
static int max_acc(void)
{
    return lanes == 16 ? 16 : 12;
}

/* Vectors that hold `count` channels. */
static int vectors_for(int count)
{
    return (count + lanes - 1) / lanes;
}

/* `count` channels padded to the layouts' multiple of VEC. */
static int padded(int count)
{
    return (count + VEC - 1) / VEC * VEC;
}

static int pixel_block(int vectors, int limit)
{
    return conv_pixel_block(vectors, limit, max_acc());
}

/* The weight gradient's block of (kx, cin) pairs: the largest divisor of J that fits. */
static int pair_block(int J, int V)
{
    for (int cand = J; cand >= 1; cand--)
        if (J % cand == 0 && cand * V <= max_acc())
            return cand;
    return 1;
}

static int weights_padded(const layer *l)
{
    return l->out.c % VEC != 0;
}

static unsigned helpers(const layer *l, const layer_role *r)
{
    unsigned h = HELPER_V16;
    if (l->out.c % VEC != 0)
        h |= HELPER_LOAD_TAIL | HELPER_STORE_TAIL;
    if (r->needs_din && l->in.c % VEC != 0)
        h |= HELPER_STORE_TAIL;
    return h;
}

static void workspace(const layer *l, const layer_role *r, ws_list *ws)
{
    const conv_params *c = &l->u.conv;
    int COP = padded(l->out.c), CIP = padded(l->in.c);
    if (weights_padded(l)) {
        ws_add(ws, "w with the output channels padded with zeros to whole vectors", "float %s_wpad[%d * %d] ALIGNED",
               l->name, c->kh * c->kw * l->in.c, COP);
        ws_add(ws, "bias, padded the same way", "float %s_bpad[%d] ALIGNED", l->name, COP);
    }
    if (r->needs_din)
        ws_add(ws, "w as [kh][kw][cout][cin], cin padded to whole vectors, for the input gradient",
               "float %s_wt[%d * %d * %d * %d] ALIGNED", l->name, c->kh, c->kw, l->out.c, CIP);
}

/*
 * Vector load and store of channel vector v (a loop variable) of a row of
 * `count` channels: whole 16-float vectors, and a shorter last one when the
 * count is not a multiple of 16 (constant after unrolling, so no branch).
 */
static void vload(cgen *g, const char *indent, int count, const char *dst, const char *addr)
{
    if (count % lanes == 0)
        cg(g, "%sload_vec(&%s, %s);\n", indent, dst, addr);
    else if (count < lanes)
        cg(g, "%sload_tail(&%s, %s, %d);\n", indent, dst, addr, count);
    else
        cg(g, "%sif (v < %d)\n%s    load_vec(&%s, %s);\n%selse\n%s    load_tail(&%s, %s, %d);\n", indent,
           count / lanes, indent, dst, addr, indent, indent, dst, addr, count % lanes);
}

static void vstore(cgen *g, const char *indent, int count, const char *addr, const char *value)
{
    if (count % lanes == 0)
        cg(g, "%sstore_vec(%s, &%s);\n", indent, addr, value);
    else if (count < lanes)
        cg(g, "%sstore_tail(%s, &%s, %d);\n", indent, addr, value, count);
    else
        cg(g, "%sif (v < %d)\n%s    store_vec(%s, &%s);\n%selse\n%s    store_tail(%s, &%s, %d);\n", indent,
           count / lanes, indent, addr, value, indent, indent, addr, value, count % lanes);
}

/* The offset of vector v in a row of channels. */
static const char *vec_offset(char *buf, size_t len, int V)
{
    (void)V;
    snprintf(buf, len, "%d * v", lanes);
    return buf;
}

static void emit_pad_weights(cgen *g, const layer *l)
{
    const conv_params *c = &l->u.conv;
    int CO = l->out.c, COP = padded(CO), R = c->kh * c->kw * l->in.c;
    cg(g, "/* w and bias with the output channels padded from %d to %d with zeros: every vector load is whole. */\n",
       CO, COP);
    cg(g, "static void %s_pad_weights(float *restrict wpad, float *restrict bpad, const float *restrict w,\n", l->name);
    cg(g, "                             const float *restrict bias)\n{\n");
    cg(g, "    for (int r = 0; r < %d; r++)\n        for (int co = 0; co < %d; co++)\n", R, COP);
    cg(g, "            wpad[r * %d + co] = co < %d ? w[r * %d + co] : 0.0f;\n", COP, CO, CO);
    cg(g, "    for (int co = 0; co < %d; co++)\n        bpad[co] = co < %d ? bias[co] : 0.0f;\n}\n\n", COP, CO);
}

static void emit_forward(cgen *g, const layer *l)
{
    const conv_params *c = &l->u.conv;
    const char *id = l->name;
    int IH = l->in.h, IW = l->in.w, CI = l->in.c, OH = l->out.h, OW = l->out.w, CO = l->out.c;
    int COP = padded(CO), V = vectors_for(CO), NP = pixel_block(V, OW); /* rows of w: COP apart */
    char buf[128], oy[32], ox[32], vo[16];
    times(oy, sizeof oy, "oy", c->sh);
    times(ox, sizeof ox, "ox0", c->sw);
    vec_offset(vo, sizeof vo, V);
    cg(g, "/* %d output pixels along x at (b, oy, ox0), each %d channels as %d vector%s, accumulated in registers. */\n",
       NP, CO, V, V == 1 ? "" : "s");
    cg(g, "static inline __attribute__((always_inline)) void\n");
    cg(g, "%s_forward_block(float *restrict out, const float *restrict in, const float *restrict w,\n", id);
    cg(g, "                 const float *restrict bias, int b, int oy, int ox0, const int np)\n{\n");
    cg(g, "    vf acc[%d][%d];\n", NP, V);
    cg(g, "    for (int p = 0; p < np; p++)\n        for (int v = 0; v < %d; v++)\n", V);
    cg(g, "            load_vec(&acc[p][v], bias + %s);\n", vo);
    cg(g, "    for (int ky = 0; ky < %d; ky++)\n        for (int kx = 0; kx < %d; kx++) {\n", c->kh, c->kw);
    char pixel[128];
    snprintf(pixel, sizeof pixel, "(((size_t)b * %d + %s + ky) * %d + %s + kx)", IH, oy, IW, ox);
    cg(g, "            const float *px = in + %s;\n", times(buf, sizeof buf, pixel, CI));
    cg(g, "            const float *wk = w + (ky * %d + kx) * %d;\n", c->kw, CI * COP);
    const char *ind = "            ";
    if (CI > 1) {
        cg(g, "            for (int ci = 0; ci < %d; ci++) {\n", CI);
        ind = "                ";
    }
    cg(g, "%svf wv[%d];\n%sfor (int v = 0; v < %d; v++)\n", ind, V, ind, V);
    if (CI > 1)
        cg(g, "%s    load_vec(&wv[v], wk + ci * %d + %s);\n", ind, COP, vo);
    else
        cg(g, "%s    load_vec(&wv[v], wk + %s);\n", ind, vo);
    cg(g, "%sfor (int p = 0; p < np; p++) {\n", ind);
    if (CI > 1)
        cg(g, "%s    float x = px[%s + ci];\n", ind, times(buf, sizeof buf, "p", c->sw * CI));
    else
        cg(g, "%s    float x = px[%s];\n", ind, times(buf, sizeof buf, "p", c->sw));
    cg(g, "%s    for (int v = 0; v < %d; v++)\n%s        acc[p][v] += x * wv[v];\n%s}\n", ind, V, ind, ind);
    if (CI > 1)
        cg(g, "            }\n");
    cg(g, "        }\n");
    cg(g, "    float *o = out + (((size_t)b * %d + oy) * %d + ox0) * %d;\n", OH, OW, CO);
    cg(g, "    for (int p = 0; p < np; p++)\n        for (int v = 0; v < %d; v++) {\n", V);
    snprintf(buf, sizeof buf, "o + p * %d + %s", CO, vo);
    vstore(g, "            ", CO, buf, "acc[p][v]");
    cg(g, "        }\n");
    if (l->act != ACT_LINEAR)
        cg(g, "    for (int j = 0; j < np * %d; j++)\n        o[j] = %s;\n", CO, act_expr(l->act, buf, sizeof buf, "o[j]"));
    cg(g, "}\n\n");

    const char *wsrc = weights_padded(l) ? "wpad" : "w", *bsrc = weights_padded(l) ? "bpad" : "bias";
    cg(g, "static void %s_forward(float *restrict out, const float *restrict in, const float *restrict %s,\n", id, wsrc);
    cg(g, "                       const float *restrict %s, int lo, int hi)\n{\n", bsrc);
    if (weights_padded(l))
        cg(g, "    /* wpad, bpad: padded by %s_pad_weights() at the step's start */\n", id);
    char block[80], args[80];
    snprintf(block, sizeof block, "%s_forward_block", id);
    snprintf(args, sizeof args, "out, in, %s, %s", wsrc, bsrc);
    conv_print_block_sweep(g, l, NP, block, args, 1);
    cg(g, "}\n\n");
}

/*
 * Weight gradient. Within one kernel row ky, the pairs (kx, ci) are one
 * contiguous axis of J = KW x CI in both the input row and dw, so a block of
 * JB of them x V vectors of dw stays in registers while a sweep over output
 * pixels accumulates into it. Wide rows sweep one output row at a time (the
 * row of dz stays in L1); narrow rows would reload the accumulators too often,
 * so they sweep a whole image.
 */
static void emit_weight_grad(cgen *g, const layer *l)
{
    const conv_params *c = &l->u.conv;
    const char *id = l->name;
    int IH = l->in.h, IW = l->in.w, CI = l->in.c, OH = l->out.h, OW = l->out.w, CO = l->out.c;
    int V = vectors_for(CO), J = c->kw * CI, JB = pair_block(J, V);
    int whole_image = OW < lanes, one_block = JB == J;
    char buf[128], ind[64], in2[64], oy[32], vo[16];
    times(oy, sizeof oy, "oy", c->sh);
    vec_offset(vo, sizeof vo, V);
    const char *jk = one_block ? "k" : "(j0 + k)";
    cg(g, "/* dw += in^T . dz over the slice, %s: %d (kx, cin) pair%s x %d vector%s in registers. */\n",
       whole_image ? "one image at a time" : "one output row at a time", JB, JB == 1 ? "" : "s", V, V == 1 ? "" : "s");
    cg(g, "static void %s_weight_grad(float *restrict dw, const float *restrict dz, const float *restrict in,\n", id);
    cg(g, "                           int lo, int hi)\n{\n");
    cg(g, "    memset(dw, 0, sizeof(float) * %d);\n", c->kh * c->kw * CI * CO);
    if (whole_image) {
        cg(g, "    for (int b = lo; b < hi; b++)\n");
        cg(g, "        for (int ky = 0; ky < %d; ky++) {\n", c->kh);
        snprintf(ind, sizeof ind, "            ");
    } else {
        cg(g, "    for (int b = lo; b < hi; b++)\n        for (int oy = 0; oy < %d; oy++) {\n", OH);
        cg(g, "            const float *dzrow = dz + ((size_t)b * %d + oy) * %d;\n", OH, OW * CO);
        cg(g, "            for (int ky = 0; ky < %d; ky++) {\n", c->kh);
        cg(g, "                /* pair j of pixel ox: inrow[%s + j] */\n", times(buf, sizeof buf, "ox", c->sw * CI));
        cg(g, "                const float *inrow = in + ((size_t)b * %d + %s + ky) * %d;\n", IH, oy, IW * CI);
        snprintf(ind, sizeof ind, "                ");
    }
    cg(g, "%sfloat *dwrow = dw + ky * %d; /* pair j: dwrow[j * %d + co] */\n", ind, J * CO, CO);
    if (!one_block) {
        cg(g, "%sfor (int j0 = 0; j0 < %d; j0 += %d) {\n", ind, J, JB);
        strcat(ind, "    ");
    }
    cg(g, "%svf acc[%d][%d];\n", ind, JB, V);
    cg(g, "%sfor (int k = 0; k < %d; k++)\n%s    for (int v = 0; v < %d; v++)\n", ind, JB, ind, V);
    snprintf(buf, sizeof buf, "dwrow + %s * %d + %s", jk, CO, vo);
    char ld[96];
    snprintf(ld, sizeof ld, "%s        ", ind);
    vload(g, ld, CO, "acc[k][v]", buf);
    snprintf(in2, sizeof in2, "%s", ind);
    if (whole_image) {
        cg(g, "%sfor (int oy = 0; oy < %d; oy++) {\n", ind, OH);
        cg(g, "%s    const float *dzrow = dz + ((size_t)b * %d + oy) * %d;\n", ind, OH, OW * CO);
        cg(g, "%s    const float *inrow = in + ((size_t)b * %d + %s + ky) * %d;\n", ind, IH, oy, IW * CI);
        strcat(in2, "    ");
    }
    cg(g, "%sfor (int ox = 0; ox < %d; ox++) {\n", in2, OW);
    cg(g, "%s    vf g[%d];\n%s    for (int v = 0; v < %d; v++)\n", in2, V, in2, V);
    cg(g, "%s        /* whole vectors even past the last channel: those lanes never reach a stored lane */\n", in2);
    cg(g, "%s        load_vec(&g[v], dzrow + %s + %s);\n", in2, times(buf, sizeof buf, "ox", CO), vo);
    cg(g, "%s    for (int k = 0; k < %d; k++) {\n", in2, JB);
    cg(g, "%s        float x = inrow[%s + %s];\n", in2, times(buf, sizeof buf, "ox", c->sw * CI), one_block ? "k" : "j0 + k");
    cg(g, "%s        for (int v = 0; v < %d; v++)\n%s            acc[k][v] += x * g[v];\n", in2, V, in2);
    cg(g, "%s    }\n%s}\n", in2, in2);
    if (whole_image)
        cg(g, "%s}\n", ind);
    cg(g, "%sfor (int k = 0; k < %d; k++)\n%s    for (int v = 0; v < %d; v++) {\n", ind, JB, ind, V);
    snprintf(buf, sizeof buf, "dwrow + %s * %d + %s", jk, CO, vo);
    snprintf(ld, sizeof ld, "%s        ", ind);
    vstore(g, ld, CO, buf, "acc[k][v]");
    cg(g, "%s    }\n", ind);
    if (!one_block)
        cg(g, "%.*s}\n", (int)strlen(ind) - 4, ind);
    if (whole_image)
        cg(g, "        }\n}\n\n");
    else
        cg(g, "            }\n        }\n}\n\n");
}

/* w with its last two axes swapped for the input gradient: once, whatever the vectors' width. */
static void emit_transpose(cgen *g, const layer *l)
{
    const conv_params *c = &l->u.conv;
    const char *id = l->name;
    int CI = l->in.c, CO = l->out.c, CIP = padded(CI);
    cg(g, "/* w with its last two axes swapped, [kh][kw][cout][cin], cin padded to %d: din is a contiguous\n", CIP);
    cg(g, "   multiply-add. */\n");
    cg(g, "static void %s_transpose_weights(float *restrict wt, const float *restrict w)\n{\n", id);
    cg(g, "    for (int k = 0; k < %d; k++)\n", c->kh * c->kw);
    cg(g, "        for (int co = 0; co < %d; co++)\n", CO);
    cg(g, "            for (int ci = 0; ci < %d; ci++)\n", CIP);
    if (CIP != CI)
        cg(g, "                wt[(k * %d + co) * %d + ci] = ci < %d ? w[(k * %d + ci) * %d + co] : 0.0f;\n", CO, CIP,
           CI, CI, CO);
    else
        cg(g, "                wt[(k * %d + co) * %d + ci] = w[(k * %d + ci) * %d + co];\n", CO, CIP, CI, CO);
    cg(g, "}\n\n");
}

static void emit_input_grad(cgen *g, const layer *l)
{
    const conv_params *c = &l->u.conv;
    const char *id = l->name;
    int IH = l->in.h, IW = l->in.w, CI = l->in.c, OH = l->out.h, OW = l->out.w, CO = l->out.c;
    int CIP = padded(CI), VI = vectors_for(CI), NPI = pixel_block(VI, OW); /* rows of wt: CIP apart */
    char buf[128], oy[32], ox[32], vo[16];
    times(oy, sizeof oy, "oy", c->sh);
    times(ox, sizeof ox, "ox0", c->sw);
    vec_offset(vo, sizeof vo, VI);
    cg(g, "/* din at the %d input pixels that tap (ky, kx) of output pixels ox0.., %d vector%s of channels each. */\n",
       NPI, VI, VI == 1 ? "" : "s");
    cg(g, "static inline __attribute__((always_inline)) void\n");
    cg(g, "%s_input_grad_block(float *restrict din, const float *restrict dz, const float *restrict wt, int b,\n", id);
    cg(g, "                    int oy, int ox0, const int np)\n{\n");
    cg(g, "    const float *g = dz + (((size_t)b * %d + oy) * %d + ox0) * %d;\n", OH, OW, CO);
    cg(g, "    for (int ky = 0; ky < %d; ky++)\n        for (int kx = 0; kx < %d; kx++) {\n", c->kh, c->kw);
    cg(g, "            float *dp = din + (((size_t)b * %d + %s + ky) * %d + %s + kx) * %d;\n", IH, oy, IW, ox, CI);
    cg(g, "            const float *wtk = wt + (ky * %d + kx) * %d;\n", c->kw, CO * CIP);
    cg(g, "            vf acc[%d][%d];\n", NPI, VI);
    cg(g, "            for (int p = 0; p < np; p++)\n                for (int v = 0; v < %d; v++)\n", VI);
    snprintf(buf, sizeof buf, "dp + %s + %s", times(oy, sizeof oy, "p", c->sw * CI), vo);
    cg(g, "                    /* lanes past the last channel are never stored */\n");
    cg(g, "                    load_vec(&acc[p][v], %s);\n", buf);
    cg(g, "            for (int co = 0; co < %d; co++) {\n", CO);
    cg(g, "                vf wv[%d];\n                for (int v = 0; v < %d; v++)\n", VI, VI);
    cg(g, "                    load_vec(&wv[v], wtk + %s + %s);\n", times(ox, sizeof ox, "co", CIP), vo);
    cg(g, "                for (int p = 0; p < np; p++) {\n");
    cg(g, "                    float x = g[%s + co];\n", times(ox, sizeof ox, "p", CO));
    cg(g, "                    for (int v = 0; v < %d; v++)\n                        acc[p][v] += x * wv[v];\n", VI);
    cg(g, "                }\n            }\n");
    cg(g, "            for (int p = 0; p < np; p++)\n                for (int v = 0; v < %d; v++) {\n", VI);
    vstore(g, "                    ", CI, buf, "acc[p][v]");
    cg(g, "                }\n        }\n}\n\n");
    cg(g, "static void %s_input_grad(float *restrict din, const float *restrict dz, const float *restrict wt,\n", id);
    cg(g, "                          int lo, int hi)\n{\n");
    cg(g, "    memset(din + (size_t)lo * %d, 0, sizeof(float) * (size_t)(hi - lo) * %d);\n", IH * IW * CI, IH * IW * CI);
    char block[80];
    snprintf(block, sizeof block, "%s_input_grad_block", id);
    conv_print_block_sweep(g, l, NPI, block, "din, dz, wt", 0);
    cg(g, "}\n\n");
}

static void emit(cgen *g, const layer *l, const layer_role *r)
{
    const char *id = l->name;
    if (weights_padded(l))
        emit_pad_weights(g, l);
    if (r->needs_din)
        emit_transpose(g, l);
    static const int widths[2] = {16, 8};
    for (int w = 0; w < 2; w++) {
        lanes = widths[w];
        cg(g, w == 0 ? "#if LANES == 16\n" : "#else /* LANES == 8: AVX2 and others */\n");
        emit_forward(g, l);
        emit_weight_grad(g, l);
        if (r->needs_din)
            emit_input_grad(g, l);
    }
    cg(g, "#endif\n\n");
    lanes = VEC;
    cg(g, "/* dout holds dL/d(out) and becomes dL/d(pre-activation); dw, db are this slice's, overwritten. */\n");
    cg(g, "static void %s_backward(float *restrict din, float *restrict dw, float *restrict db, float *restrict dout,\n", id);
    cg(g, "                        const float *restrict out, const float *restrict in, const float *restrict wt,\n");
    cg(g, "                        int lo, int hi)\n{\n");
    conv_print_backward_head(g, l, r);
    cg(g, "    %s_weight_grad(dw, dout, in, lo, hi);\n", id);
    if (r->needs_din)
        cg(g, "    %s_input_grad(din, dout, wt, lo, hi);\n", id);
    else
        cg(g, "    (void)din; /* the network input needs no gradient */\n    (void)wt;\n");
    cg(g, "}\n");
}

static void prepare(cgen *g, const layer *l, const layer_role *r, pass_kind pass)
{
    char up[64];
    upper(up, sizeof up, l->name);
    if (weights_padded(l))
        cgi(g, "%s_pad_weights(ws->%s_wpad, ws->%s_bpad, params + %s_W, params + %s_B);\n", l->name, l->name,
            l->name, up, up);
    if (pass == PASS_TRAIN && r->needs_din)
        cgi(g, "%s_transpose_weights(ws->%s_wt, params + %s_W);\n", l->name, l->name, up);
}

static void print_forward(cgen *g, const layer *l, const step_args *a)
{
    char up[64];
    upper(up, sizeof up, l->name);
    if (weights_padded(l))
        cgi(g, "%s_forward(%s, %s, ws->%s_wpad, ws->%s_bpad, lo, hi);\n", l->name, a->out, a->in, l->name, l->name);
    else
        cgi(g, "%s_forward(%s, %s, params + %s_W, params + %s_B, lo, hi);\n", l->name, a->out, a->in, up, up);
}

const kernel_strategy conv_blocked = {
    .description = "register-blocked direct convolution, 16-float vectors (8 without AVX-512)",
    .precision = PRECISION_FP32,
    .helpers = helpers,
    .workspace = workspace,
    .emit = emit,
    .prepare = prepare,
    .print_forward = print_forward,
    .print_backward = conv_print_backward_call,
};
