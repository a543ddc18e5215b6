/*
 * conv_bf16.c - the bfloat16 convolution strategy (`precision bf16` in the
 * train block; valid padding, stride 1, channels in multiples of 16).
 *
 * conv_blocked's register blocks with the products taken in bfloat16:
 * AVX512_BF16's vdpbf16ps multiplies 16 pairs of bfloat16 values and adds
 * both products of a pair to one fp32 lane, twice the multiply-adds of an
 * fp32 FMA. The pair runs along the axis being summed, so the operands are
 * repacked first, rounded to nearest even:
 *
 *   forward       in  -> inh    [b][y][x][ci]          (channel pairs are adjacent already)
 *                 w   -> wp     [ky][kx][ci/2][co][2]  once a step
 *   input grad    dz  -> dzh    [b][y][x][co]
 *                 w   -> wtp    [ky][kx][co/2][ci][2]  once a step
 *   weight grad   dz  -> dzp    [b][oy][ox/2][co][2]   pairs of neighbouring output pixels
 *                 in  -> inrows [b][y][ci][x]          a row per channel: (x, x + 1) adjacent
 *
 * Everything else stays fp32: the sums, bias, activation, the weights the
 * optimizer updates. The file also keeps conv_blocked's fp32 kernels, which
 * run where the C compiler's target lacks AVX512_BF16 (NNC_BF16 is 0 there),
 * so the one generated file builds and trains anywhere. The workspace holds
 * both kernels' buffers in either build (the bfloat16 copies are half an
 * activation's size each; fp32's transposed weights, a few kilobytes).
 */
#include "bf16.h"
#include "conv.h"

#define ACC_BF16 16    /* accumulators a block keeps, of AVX-512's 32 registers */

int conv_bf16_fits(const layer *l)
{
    const conv_params *c = &l->u.conv;
    return !c->same && c->sh == 1 && c->sw == 1 && l->in.c % LANES_BF16 == 0 && l->out.c % LANES_BF16 == 0;
}

static unsigned helpers(const layer *l, const layer_role *r)
{
    return conv_blocked.helpers(l, r) | HELPER_BF16 | HELPER_BF16_ROWS;
}

/* Output pixels, padded to whole pairs for the weight gradient. */
static int pair_width(const layer *l)
{
    return (l->out.w + 1) / 2 * 2;
}

/* Input rows of the weight gradient's transposed copy: one column more when the pairs overhang. */
static int row_width(const layer *l)
{
    return pair_width(l) + l->u.conv.kw - 1;
}

/*
 * The bfloat16 copies of activations the kernels make within one call, in the
 * scratch arena (kind.h): the forward pass's input; then the weight gradient's
 * dz pairs and input rows; then the input gradient's dz, over the bytes of the
 * pairs, which the weight gradient has finished reading. Returns how many.
 */
static int scratch_bufs(const layer *l, int needs_din, scratch_buf bufs[BF16_N_SCRATCH])
{
    /* A float's room holds a pair of bfloat16 values: the counts are even, every channel count being. */
    int CO = l->out.c;
    bufs[BF16_INH] = (scratch_buf){"inh", 0, shape_size(l->in) / 2};
    bufs[BF16_DZP] = (scratch_buf){"dzp", 1, l->out.h * pair_width(l) * CO / 2};
    bufs[BF16_WGRAD_IN] = (scratch_buf){"inrows", 1, l->in.h * l->in.c * row_width(l) / 2};
    bufs[BF16_DZH] = (scratch_buf){"dzh", 2, shape_size(l->out) / 2};
    return needs_din ? BF16_N_SCRATCH : BF16_DZH;
}

static void workspace(const layer *l, const layer_role *r, ws_list *ws)
{
    const conv_params *c = &l->u.conv;
    int K = c->kh * c->kw, CI = l->in.c, CO = l->out.c;
    scratch_buf bufs[BF16_N_SCRATCH];
    conv_blocked.workspace(l, r, ws);
    ws_add(ws, "w as bfloat16 pairs of input channels, [kh][kw][cin/2][cout][2]", "uint16_t %s_wp[%d] ALIGNED",
           l->name, K * CI * CO);
    if (r->needs_din)
        ws_add(ws, "w as bfloat16 pairs of output channels, [kh][kw][cout/2][cin][2]", "uint16_t %s_wtp[%d] ALIGNED",
               l->name, K * CI * CO);
    ws_scratch(ws, bufs, scratch_bufs(l, r->needs_din, bufs));
}

static void emit_forward(cgen *g, const layer *l)
{
    const conv_params *c = &l->u.conv;
    const char *id = l->name;
    int IH = l->in.h, IW = l->in.w, CI = l->in.c, OH = l->out.h, OW = l->out.w, CO = l->out.c;
    int V = CO / LANES_BF16, NP = conv_pixel_block(V, OW, ACC_BF16);
    char buf[128], pairs[16];
    cg(g, "/* %d output pixels along x at (b, oy, ox0), %d vector%s of channels each; input channels in pairs. */\n",
       NP, V, V == 1 ? "" : "s");
    cg(g, "static inline __attribute__((always_inline)) void\n");
    cg(g, "%s_forward_bf16_block(float *restrict out, const uint16_t *restrict inh, const uint16_t *restrict wp,\n",
       id);
    cg(g, "                      const float *restrict bias, int b, int oy, int ox0, const int np)\n{\n");
    cg(g, "    __m512 acc[%d][%d];\n", NP, V);
    cg(g, "    for (int p = 0; p < np; p++)\n        for (int v = 0; v < %d; v++)\n", V);
    cg(g, "            acc[p][v] = _mm512_loadu_ps(bias + 16 * v);\n");
    cg(g, "    for (int ky = 0; ky < %d; ky++)\n        for (int kx = 0; kx < %d; kx++) {\n", c->kh, c->kw);
    cg(g, "            const uint16_t *px = inh + (((size_t)b * %d + oy + ky) * %d + ox0 + kx) * %d;\n", IH, IW, CI);
    cg(g, "            const uint16_t *wk = wp + (ky * %d + kx) * %d;\n", c->kw, CI * CO);
    snprintf(pairs, sizeof pairs, "%d", CI / 2);
    bf16_print_pair_sweep(g, "            ", "input channels", pairs, "wk", CO, V, "px", CI, 2, "np");
    cg(g, "        }\n");
    cg(g, "    float *o = out + (((size_t)b * %d + oy) * %d + ox0) * %d;\n", OH, OW, CO);
    cg(g, "    for (int p = 0; p < np; p++)\n        for (int v = 0; v < %d; v++)\n", V);
    cg(g, "            _mm512_storeu_ps(o + p * %d + 16 * v, acc[p][v]);\n", CO);
    if (l->act != ACT_LINEAR)
        cg(g, "    for (int j = 0; j < np * %d; j++)\n        o[j] = %s;\n", CO, act_expr(l->act, buf, sizeof buf, "o[j]"));
    cg(g, "}\n\n");

    cg(g, "static void %s_forward_bf16(float *restrict out, const float *restrict in, uint16_t *restrict inh,\n", id);
    cg(g, "                            const uint16_t *restrict wp, const float *restrict bias, int lo, int hi)\n{\n");
    cg(g, "    to_bf16(inh + (size_t)lo * %d, in + (size_t)lo * %d, (size_t)(hi - lo) * %d);\n", shape_size(l->in),
       shape_size(l->in), shape_size(l->in));
    char block[80];
    snprintf(block, sizeof block, "%s_forward_bf16_block", id);
    conv_print_block_sweep(g, l, NP, block, "out, inh, wp, bias", 1);
    cg(g, "}\n\n");
}

static void emit_input_grad(cgen *g, const layer *l)
{
    const conv_params *c = &l->u.conv;
    const char *id = l->name;
    int IH = l->in.h, IW = l->in.w, CI = l->in.c, OH = l->out.h, OW = l->out.w, CO = l->out.c;
    int VI = CI / LANES_BF16, NPI = conv_pixel_block(VI, OW, ACC_BF16);
    char pairs[16];
    cg(g, "/* din at the %d input pixels that tap (ky, kx) of output pixels ox0.., %d vector%s of channels each;\n",
       NPI, VI, VI == 1 ? "" : "s");
    cg(g, "   output channels in pairs. */\n");
    cg(g, "static inline __attribute__((always_inline)) void\n");
    cg(g, "%s_input_grad_bf16_block(float *restrict din, const uint16_t *restrict dzh, const uint16_t *restrict wtp,\n",
       id);
    cg(g, "                         int b, int oy, int ox0, const int np)\n{\n");
    cg(g, "    const uint16_t *g = dzh + (((size_t)b * %d + oy) * %d + ox0) * %d;\n", OH, OW, CO);
    cg(g, "    for (int ky = 0; ky < %d; ky++)\n        for (int kx = 0; kx < %d; kx++) {\n", c->kh, c->kw);
    cg(g, "            float *dp = din + (((size_t)b * %d + oy + ky) * %d + ox0 + kx) * %d;\n", IH, IW, CI);
    cg(g, "            const uint16_t *wtk = wtp + (ky * %d + kx) * %d;\n", c->kw, CI * CO);
    cg(g, "            __m512 acc[%d][%d];\n", NPI, VI);
    cg(g, "            for (int p = 0; p < np; p++)\n                for (int v = 0; v < %d; v++)\n", VI);
    cg(g, "                    acc[p][v] = _mm512_loadu_ps(dp + p * %d + 16 * v);\n", CI);
    snprintf(pairs, sizeof pairs, "%d", CO / 2);
    bf16_print_pair_sweep(g, "            ", "output channels", pairs, "wtk", CI, VI, "g", CO, 2, "np");
    cg(g, "            for (int p = 0; p < np; p++)\n                for (int v = 0; v < %d; v++)\n", VI);
    cg(g, "                    _mm512_storeu_ps(dp + p * %d + 16 * v, acc[p][v]);\n", CI);
    cg(g, "        }\n}\n\n");

    cg(g, "static void %s_input_grad_bf16(float *restrict din, const float *restrict dz, uint16_t *restrict dzh,\n", id);
    cg(g, "                               const uint16_t *restrict wtp, int lo, int hi)\n{\n");
    cg(g, "    to_bf16(dzh + (size_t)lo * %d, dz + (size_t)lo * %d, (size_t)(hi - lo) * %d);\n", shape_size(l->out),
       shape_size(l->out), shape_size(l->out));
    cg(g, "    memset(din + (size_t)lo * %d, 0, sizeof(float) * (size_t)(hi - lo) * %d);\n", shape_size(l->in),
       shape_size(l->in));
    char block[80];
    snprintf(block, sizeof block, "%s_input_grad_bf16_block", id);
    conv_print_block_sweep(g, l, NPI, block, "din, dzh, wtp", 0);
    cg(g, "}\n\n");
}

/* The largest divisor of CI whose channels x V vectors fit the accumulators. */
static int channel_block(int CI, int V)
{
    for (int cand = CI; cand >= 1; cand--)
        if (CI % cand == 0 && cand * V <= ACC_BF16)
            return cand;
    return 1;
}

/*
 * Weight gradient: dw[ky][kx][ci][co] sums in * dz over the slice's output
 * pixels, two neighbouring pixels a product pair. For each tap (ky, kx) a
 * block of CB input channels x V vectors of dw stays in registers while a
 * sweep over one image's output pixels accumulates into it.
 */
static void emit_weight_grad(cgen *g, const layer *l)
{
    const conv_params *c = &l->u.conv;
    const char *id = l->name;
    int IH = l->in.h, IW = l->in.w, CI = l->in.c, OH = l->out.h, OW = l->out.w, CO = l->out.c;
    int V = CO / LANES_BF16, CB = channel_block(CI, V), OWP = pair_width(l), RW = row_width(l);
    cg(g, "/* The slice's dz as pairs of neighbouring output pixels (a zero pixel after an odd row), and its\n");
    cg(g, "   input as rows of one channel, both bfloat16: what the weight gradient's pairs read. */\n");
    cg(g, "static void %s_pair_pixels_bf16(uint16_t *restrict dzp, uint16_t *restrict in_rows,\n", id);
    cg(g, "                                const float *restrict dz, const float *restrict in, int lo, int hi)\n{\n");
    cg(g, "    float f[16];\n");
    cg(g, "    for (size_t row = (size_t)lo * %d; row < (size_t)hi * %d; row++)\n", OH, OH);
    cg(g, "        for (int ox = 0; ox < %d; ox += 2)\n            for (int co = 0; co < %d; co += 8) {\n", OWP, CO);
    cg(g, "                for (int j = 0; j < 8; j++) {\n");
    cg(g, "                    f[2 * j] = dz[(row * %d + ox) * %d + co + j];\n", OW, CO);
    if (OW % 2)
        cg(g, "                    f[2 * j + 1] = ox + 1 < %d ? dz[(row * %d + ox + 1) * %d + co + j] : 0.0f;\n", OW, OW,
           CO);
    else
        cg(g, "                    f[2 * j + 1] = dz[(row * %d + ox + 1) * %d + co + j];\n", OW, CO);
    cg(g, "                }\n");
    cg(g, "                to_bf16(dzp + (row * %d + ox / 2) * %d + co * 2, f, 16);\n            }\n", OWP / 2, CO * 2);
    cg(g, "    for (size_t row = (size_t)lo * %d; row < (size_t)hi * %d; row++)\n", IH, IH);
    cg(g, "        for (int ci = 0; ci < %d; ci++) {\n", CI);
    cg(g, "            uint16_t *r = in_rows + (row * %d + ci) * %d;\n", CI, RW);
    cg(g, "            for (int x = 0; x < %d; x += 16) {\n", RW);
    cg(g, "                for (int j = 0; j < 16; j++)\n");
    cg(g, "                    f[j] = x + j < %d ? in[(row * %d + x + j) * %d + ci] : 0.0f;\n", IW, IW, CI);
    cg(g, "                to_bf16(r + x, f, x + 16 <= %d ? 16 : %d - x);\n", RW, RW);
    cg(g, "            }\n        }\n}\n\n");

    cg(g, "/* dw += in^T . dz over the slice: %d input channel%s x %d vector%s of dw in registers per tap. */\n", CB,
       CB == 1 ? "" : "s", V, V == 1 ? "" : "s");
    cg(g, "static void %s_weight_grad_bf16(float *restrict dw, const uint16_t *restrict dzp,\n", id);
    cg(g, "                                const uint16_t *restrict in_rows, int lo, int hi)\n{\n");
    cg(g, "    memset(dw, 0, sizeof(float) * %d);\n", c->kh * c->kw * CI * CO);
    cg(g, "    for (int b = lo; b < hi; b++)\n");
    cg(g, "        for (int ky = 0; ky < %d; ky++)\n            for (int kx = 0; kx < %d; kx++)\n", c->kh, c->kw);
    cg(g, "                for (int c0 = 0; c0 < %d; c0 += %d) {\n", CI, CB);
    cg(g, "                    float *dwk = dw + ((ky * %d + kx) * %d + c0) * %d;\n", c->kw, CI, CO);
    cg(g, "                    __m512 acc[%d][%d];\n", CB, V);
    cg(g, "                    for (int p = 0; p < %d; p++)\n                        for (int v = 0; v < %d; v++)\n",
       CB, V);
    cg(g, "                            acc[p][v] = _mm512_loadu_ps(dwk + p * %d + 16 * v);\n", CO);
    cg(g, "                    for (int oy = 0; oy < %d; oy++) {\n", OH);
    cg(g, "                        const uint16_t *gz = dzp + ((size_t)b * %d + oy) * %d;\n", OH, OWP * CO);
    cg(g, "                        const uint16_t *rows = in_rows + (((size_t)b * %d + oy + ky) * %d + c0) * %d + kx;\n",
       IH, CI, RW);
    char channels[16], pairs[16];
    snprintf(channels, sizeof channels, "%d", CB);
    snprintf(pairs, sizeof pairs, "%d", OWP / 2);
    bf16_print_pair_sweep(g, "                        ", "output pixels", pairs, "gz", CO, V, "rows", RW, 2, channels);
    cg(g, "                    }\n");
    cg(g, "                    for (int p = 0; p < %d; p++)\n                        for (int v = 0; v < %d; v++)\n",
       CB, V);
    cg(g, "                            _mm512_storeu_ps(dwk + p * %d + 16 * v, acc[p][v]);\n", CO);
    cg(g, "                }\n}\n\n");
}

static void emit_backward(cgen *g, const layer *l, const layer_role *r)
{
    const char *id = l->name;
    cg(g, "/* NAME_backward's (conv_blocked's) bfloat16 twin: dout becomes dL/d(pre-activation); dw, db are the slice's. */\n");
    cg(g, "static void %s_backward_bf16(float *restrict din, float *restrict dw, float *restrict db,\n", id);
    cg(g, "                             float *restrict dout, const float *restrict out, const float *restrict in,\n");
    cg(g, "                             uint16_t *dzp, uint16_t *restrict in_rows, uint16_t *dzh, /* dzh reuses dzp's bytes */\n");
    cg(g, "                             const uint16_t *restrict wtp, int lo, int hi)\n{\n");
    conv_print_backward_head(g, l, r);
    cg(g, "    %s_pair_pixels_bf16(dzp, in_rows, dout, in, lo, hi);\n", id);
    cg(g, "    %s_weight_grad_bf16(dw, dzp, in_rows, lo, hi);\n", id);
    if (r->needs_din)
        cg(g, "    %s_input_grad_bf16(din, dout, dzh, wtp, lo, hi);\n", id);
    else
        cg(g, "    (void)din; /* the network input needs no gradient */\n    (void)dzh;\n    (void)wtp;\n");
    cg(g, "}\n\n");
}

static void emit(cgen *g, const layer *l, const layer_role *r)
{
    cg(g, "#if NNC_BF16 /* `precision bf16`, on a target with AVX512_BF16 */\n");
    bf16_print_pack(g, l, r, l->u.conv.kh * l->u.conv.kw, l->in.c, l->out.c, "input channels", "output channels");
    emit_forward(g, l);
    emit_weight_grad(g, l);
    if (r->needs_din)
        emit_input_grad(g, l);
    emit_backward(g, l, r);
    cg(g, "#else /* the target lacks AVX512_BF16: conv_blocked's fp32 kernels */\n\n");
    conv_blocked.emit(g, l, r);
    cg(g, "#endif\n");
}

static void prepare(cgen *g, const layer *l, const layer_role *r, pass_kind pass)
{
    bf16_print_prepare(g, l, r, pass, &conv_blocked);
}

static void print_forward(cgen *g, const layer *l, const step_args *a)
{
    scratch_buf bufs[BF16_N_SCRATCH];
    scratch_bufs(l, 0, bufs);
    bf16_print_forward(g, l, a, bufs, &conv_blocked);
}

static void print_backward(cgen *g, const layer *l, const step_args *a)
{
    scratch_buf bufs[BF16_N_SCRATCH];
    scratch_bufs(l, a->din != NULL, bufs);
    bf16_print_backward(g, l, a, bufs, &conv_blocked);
}

const kernel_strategy conv_bf16 = {
    .description = "register-blocked direct convolution, bfloat16 products and fp32 sums where the target has "
                   "AVX512_BF16 (else fp32)",
    .precision = PRECISION_BF16,
    .helpers = helpers,
    .workspace = workspace,
    .emit = emit,
    .prepare = prepare,
    .print_forward = print_forward,
    .print_backward = print_backward,
};
