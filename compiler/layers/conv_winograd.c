/*
 * conv_winograd.c - Winograd's F(2x2, 3x3) for the forward pass at inference.
 *
 * A 3x3 stride-1 convolution computes each 2x2 block of output pixels (a
 * tile) from the 4x4 input window under it. Winograd's minimal filtering
 * (Lavin & Gray 2015) transforms the window and the kernel into 4x4 arrays,
 * V = B^T d B and U = G g G^T, multiplies them element by element, M = U . V
 * summed over the input channels, and transforms back, Y = A^T M A: 16
 * multiply-adds a channel pair for the tile's 4 pixels, where the direct
 * convolution spends 36. Summed over the channels, each of the 16 positions
 * of M is a matrix product, (tiles x cin) . (cin x cout), which the kernels
 * below block in registers as conv_blocked blocks pixels x channel vectors.
 * The transforms only add and subtract (G halves), and cost a few vector
 * operations a tile a channel vector.
 *
 * The results differ from the direct sum by rounding only, and by no more
 * than the direct kernels' own: at most 7e-8 of the sum of the products'
 * magnitudes in fp32, where the direct kernels measure 2e-7
 * (tests/layers/conv_winograd). Training keeps conv_blocked's kernels,
 * forward and backward, so that a trainer's bits, and with them the seed
 * recipes' measured accuracies and the training digests, stay those of the
 * direct convolution; the inference pass (a trainer's evaluation, --predict,
 * --bench's inference) runs these. Measured on vgg's 3x3
 * layers (26x26x32 -> 24x24x32, 12x12x32 -> 10x10x64, 10x10x64 -> 8x8x64; one
 * core of a Zen 5, batch 64): 1.7x, 2.4x and 2.0x the direct kernels' rate.
 *
 * The tiles of a row are taken a block of at most TB at a time: the block's V
 * and M (16 x TB x channels each) stay on the stack, under 64 KB together, so
 * they stay in L1/L2 between the three phases; they are per call, not per
 * sample, so they do not belong in the scratch arena, which is sized a sample.
 */
#include "conv.h"

/* The lanes of the vectors of the kernels being printed (16 or 8). */
static int lanes = VEC;

/* The floats of a block's V and M together at most: 64 KB in fp32 (128 KB in the tests' double builds). */
#define BLOCK_FLOATS 16384

/* Tiles across an output row. */
static int tiles_across(const layer *l)
{
    return l->out.w / 2;
}

/* Tiles a block: a whole row when its V and M fit BLOCK_FLOATS, else as many as do. */
static int tile_block(const layer *l)
{
    int most = BLOCK_FLOATS / (16 * (l->in.c + l->out.c));
    int across = tiles_across(l);
    return across < most ? across : most < 1 ? 1 : most;
}

/* Tiles the products keep in registers at once, each the output channels' vectors. */
static int tiles_in_registers(const layer *l)
{
    int vectors = l->out.c / lanes, max_acc = lanes == 16 ? 24 : 12, block = tile_block(l);
    for (int np = 6; np > 1; np--)
        if (np * vectors <= max_acc && np <= block)
            return np;
    return 1;
}

int conv_winograd_fits(const layer *l)
{
    const conv_params *c = &l->u.conv;
    return !c->same && c->kh == 3 && c->kw == 3 && c->sh == 1 && c->sw == 1 && l->in.c % VEC == 0 &&
           l->out.c % VEC == 0 && l->in.c + l->out.c <= 1024 && l->out.h % 2 == 0 && l->out.w % 2 == 0;
}

static unsigned helpers(const layer *l, const layer_role *r)
{
    return conv_blocked.helpers(l, r);
}

static void workspace(const layer *l, const layer_role *r, ws_list *ws)
{
    conv_blocked.workspace(l, r, ws);
    ws_add(ws, "w as Winograd's U = G g G^T, [16][cin][cout], for inference", "float %s_u[16 * %d * %d] ALIGNED",
           l->name, l->in.c, l->out.c);
}

/* U = G g G^T for every (cin, cout): rows of g through G, then its columns. */
static void emit_weights(cgen *g, const layer *l)
{
    int CI = l->in.c, CO = l->out.c;
    cg(g, "/* w into Winograd's U = G g G^T, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], [16][%d][%d]. */\n", CI,
       CO);
    cg(g, "static void %s_winograd_weights(float *restrict u, const float *restrict w)\n{\n", l->name);
    cg(g, "    for (int ci = 0; ci < %d; ci++)\n        for (int co = 0; co < %d; co++) {\n", CI, CO);
    cg(g, "            float k[3][3], gk[4][3];\n");
    cg(g, "            for (int ky = 0; ky < 3; ky++)\n                for (int kx = 0; kx < 3; kx++)\n");
    cg(g, "                    k[ky][kx] = w[((ky * 3 + kx) * %d + ci) * %d + co];\n", CI, CO);
    cg(g, "            for (int kx = 0; kx < 3; kx++) {\n");
    cg(g, "                gk[0][kx] = k[0][kx];\n");
    cg(g, "                gk[1][kx] = 0.5f * (k[0][kx] + k[1][kx] + k[2][kx]);\n");
    cg(g, "                gk[2][kx] = 0.5f * (k[0][kx] - k[1][kx] + k[2][kx]);\n");
    cg(g, "                gk[3][kx] = k[2][kx];\n            }\n");
    cg(g, "            for (int i = 0; i < 4; i++) {\n");
    cg(g, "                float row[4] = {gk[i][0], 0.5f * (gk[i][0] + gk[i][1] + gk[i][2]),\n");
    cg(g, "                                0.5f * (gk[i][0] - gk[i][1] + gk[i][2]), gk[i][2]};\n");
    cg(g, "                for (int j = 0; j < 4; j++)\n");
    cg(g, "                    u[((i * 4 + j) * %d + ci) * %d + co] = row[j];\n", CI, CO);
    cg(g, "            }\n        }\n}\n\n");
}

/* M at position xi for np tiles: (np x cin) . (cin x cout), the tiles x cout vectors in registers. */
static void emit_products(cgen *g, const layer *l)
{
    int CI = l->in.c, CO = l->out.c, TB = tile_block(l), VO = CO / lanes, NP = tiles_in_registers(l);
    cg(g, "/* M[xi] of tiles t0.. (np of them): the sum over cin of V[xi] x U[xi], %d tile%s x %d vector%s in\n", NP,
       NP == 1 ? "" : "s", VO, VO == 1 ? "" : "s");
    cg(g, "   registers. */\n");
    cg(g, "static inline __attribute__((always_inline)) void\n");
    cg(g, "%s_winograd_products(float *restrict m, const float *restrict v, const float *restrict u,\n", l->name);
    cg(g, "                     int xi, int t0, const int np)\n{\n");
    cg(g, "    const float *vt = v + (xi * %d + t0) * %d, *uk = u + xi * %d;\n", TB, CI, CI * CO);
    cg(g, "    vf acc[%d][%d];\n", NP, VO);
    cg(g, "    for (int p = 0; p < np; p++)\n        for (int c = 0; c < %d; c++)\n", VO);
    cg(g, "            acc[p][c] = (vf){0};\n");
    cg(g, "    for (int ci = 0; ci < %d; ci++) {\n", CI);
    cg(g, "        vf wv[%d];\n        for (int c = 0; c < %d; c++)\n", VO, VO);
    cg(g, "            load_vec(&wv[c], uk + ci * %d + %d * c);\n", CO, lanes);
    cg(g, "        for (int p = 0; p < np; p++) {\n");
    cg(g, "            float x = vt[p * %d + ci];\n", CI);
    cg(g, "            for (int c = 0; c < %d; c++)\n                acc[p][c] += x * wv[c];\n        }\n    }\n", VO);
    cg(g, "    float *mt = m + (xi * %d + t0) * %d;\n", TB, CO);
    cg(g, "    for (int p = 0; p < np; p++)\n        for (int c = 0; c < %d; c++)\n", VO);
    cg(g, "            store_vec(mt + p * %d + %d * c, &acc[p][c]);\n}\n\n", CO, lanes);
}

/* V = B^T d B for each tile of the block and vector of input channels. */
static void print_input_transform(cgen *g, const layer *l, int TB)
{
    int IH = l->in.h, IW = l->in.w, CI = l->in.c;
    cg(g, "                /* V = B^T d B for each tile's 4x4 input d */\n");
    cg(g, "                for (int t = 0; t < nt; t++)\n                    for (int c = 0; c < %d; c++) {\n",
       CI / lanes);
    cg(g, "                        const float *px = in + (((size_t)b * %d + 2 * ty) * %d + 2 * (tx0 + t)) * %d + %d * c;\n",
       IH, IW, CI, lanes);
    cg(g, "                        vf d[4][4], e[4][4];\n");
    cg(g, "                        for (int r = 0; r < 4; r++)\n                            for (int k = 0; k < 4; k++)\n");
    cg(g, "                                load_vec(&d[r][k], px + (r * %d + k) * %d);\n", IW, CI);
    cg(g, "                        for (int k = 0; k < 4; k++) {\n");
    cg(g, "                            e[0][k] = d[0][k] - d[2][k];\n");
    cg(g, "                            e[1][k] = d[1][k] + d[2][k];\n");
    cg(g, "                            e[2][k] = d[2][k] - d[1][k];\n");
    cg(g, "                            e[3][k] = d[1][k] - d[3][k];\n                        }\n");
    cg(g, "                        for (int r = 0; r < 4; r++) {\n");
    cg(g, "                            vf row[4] = {e[r][0] - e[r][2], e[r][1] + e[r][2], e[r][2] - e[r][1],\n");
    cg(g, "                                         e[r][1] - e[r][3]};\n");
    cg(g, "                            for (int k = 0; k < 4; k++)\n");
    cg(g, "                                store_vec(v + ((r * 4 + k) * %d + t) * %d + %d * c, &row[k]);\n", TB, CI,
       lanes);
    cg(g, "                        }\n                    }\n");
}

/* Y = A^T M A + bias for each tile of the block and vector of output channels, into the output. */
static void print_output_transform(cgen *g, const layer *l, int TB)
{
    int OH = l->out.h, OW = l->out.w, CO = l->out.c;
    cg(g, "                /* Y = A^T M A + bias: each tile's 2x2 output pixels */\n");
    cg(g, "                for (int t = 0; t < nt; t++)\n                    for (int c = 0; c < %d; c++) {\n",
       CO / lanes);
    cg(g, "                        vf s[4][4], a[2][4], bv;\n");
    cg(g, "                        load_vec(&bv, bias + %d * c);\n", lanes);
    cg(g, "                        for (int r = 0; r < 4; r++)\n                            for (int k = 0; k < 4; k++)\n");
    cg(g, "                                load_vec(&s[r][k], m + ((r * 4 + k) * %d + t) * %d + %d * c);\n", TB, CO,
       lanes);
    cg(g, "                        for (int k = 0; k < 4; k++) {\n");
    cg(g, "                            a[0][k] = s[0][k] + s[1][k] + s[2][k];\n");
    cg(g, "                            a[1][k] = s[1][k] - s[2][k] - s[3][k];\n                        }\n");
    cg(g, "                        for (int i = 0; i < 2; i++) {\n");
    cg(g, "                            vf y0 = a[i][0] + a[i][1] + a[i][2] + bv, y1 = a[i][1] - a[i][2] - a[i][3] + bv;\n");
    cg(g, "                            float *o = out + (((size_t)b * %d + 2 * ty + i) * %d + 2 * (tx0 + t)) * %d + %d * c;\n",
       OH, OW, CO, lanes);
    cg(g, "                            store_vec(o, &y0);\n                            store_vec(o + %d, &y1);\n", CO);
    cg(g, "                        }\n                    }\n");
}

static void emit_forward(cgen *g, const layer *l)
{
    int CI = l->in.c, OH = l->out.h, OW = l->out.w, CO = l->out.c;
    int TW = tiles_across(l), TB = tile_block(l), NP = tiles_in_registers(l);
    char buf[64];
    emit_products(g, l);
    cg(g, "/*\n * out = act(conv(in, w) + bias) by F(2x2, 3x3), in rows of %d tiles, %d a block:\n", TW, TB);
    cg(g, " * B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], A^T = [1 1 1 0; 0 1 -1 -1].\n */\n");
    cg(g, "static void %s_winograd_forward(float *restrict out, const float *restrict in,\n", l->name);
    cg(g, "                       const float *restrict u, const float *restrict bias, int lo, int hi)\n{\n");
    cg(g, "    /* a block's transformed inputs and products: per call, on the stack (see conv_winograd.c) */\n");
    cg(g, "    float v[16 * %d * %d] ALIGNED, m[16 * %d * %d] ALIGNED;\n", TB, CI, TB, CO);
    cg(g, "    for (int b = lo; b < hi; b++)\n        for (int ty = 0; ty < %d; ty++) {\n", OH / 2);
    cg(g, "            for (int tx0 = 0; tx0 < %d; tx0 += %d) {\n", TW, TB);
    if (TW % TB == 0)
        cg(g, "                const int nt = %d; /* tiles in this block */\n", TB);
    else
        cg(g, "                const int nt = tx0 + %d <= %d ? %d : %d - tx0; /* tiles in this block */\n", TB, TW, TB, TW);
    print_input_transform(g, l, TB);
    cg(g, "                for (int xi = 0; xi < 16; xi++) {\n");
    cg(g, "                    int t0 = 0;\n");
    cg(g, "                    for (; t0 + %d <= nt; t0 += %d)\n", NP, NP);
    cg(g, "                        %s_winograd_products(m, v, u, xi, t0, %d);\n", l->name, NP);
    if (TB % NP != 0 || TW % TB != 0)
        cg(g, "                    if (t0 < nt)\n                        %s_winograd_products(m, v, u, xi, t0, nt - t0);\n",
           l->name);
    cg(g, "                }\n");
    print_output_transform(g, l, TB);
    cg(g, "            }\n");
    if (l->act != ACT_LINEAR) {
        cg(g, "            float *o = out + ((size_t)b * %d + 2 * ty) * %d;\n", OH, OW * CO);
        cg(g, "            for (int j = 0; j < %d; j++)\n                o[j] = %s;\n", 2 * OW * CO,
           act_expr(l->act, buf, sizeof buf, "o[j]"));
    }
    cg(g, "        }\n}\n\n");
}

static void emit(cgen *g, const layer *l, const layer_role *r)
{
    conv_blocked.emit(g, l, r);
    emit_weights(g, l);
    static const int widths[2] = {16, 8};
    for (int w = 0; w < 2; w++) {
        lanes = widths[w];
        cg(g, w == 0 ? "#if LANES == 16\n" : "#else /* LANES == 8: AVX2 and others */\n");
        emit_forward(g, l);
    }
    cg(g, "#endif\n\n");
    lanes = VEC;
}

static void prepare(cgen *g, const layer *l, const layer_role *r, pass_kind pass)
{
    char up[64];
    upper(up, sizeof up, l->name);
    if (pass == PASS_INFER)
        cgi(g, "%s_winograd_weights(ws->%s_u, params + %s_W);\n", l->name, l->name, up);
    else
        conv_blocked.prepare(g, l, r, pass);
}

static void print_forward(cgen *g, const layer *l, const step_args *a)
{
    char up[64];
    upper(up, sizeof up, l->name);
    if (a->pass == PASS_INFER)
        cgi(g, "%s_winograd_forward(%s, %s, ws->%s_u, params + %s_B, lo, hi);\n", l->name, a->out, a->in, l->name, up);
    else
        conv_blocked.print_forward(g, l, a);
}

const kernel_strategy conv_winograd = {
    .description = "register-blocked direct convolution, 16-float vectors (8 without AVX-512); at inference "
                   "Winograd F(2x2, 3x3)",
    .precision = PRECISION_FP32,
    .helpers = helpers,
    .workspace = workspace,
    .emit = emit,
    .prepare = prepare,
    .print_forward = print_forward,
    .print_backward = conv_print_backward_call,
};
