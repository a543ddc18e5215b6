/*
 * conv_winograd.c - Winograd's F(2x2, 3x3) and F(4x4, 3x3) for the forward
 * pass at inference.
 *
 * A 3x3 stride-1 convolution computes each m x m block of output pixels (a
 * tile) from the (m+2) x (m+2) input window under it. Winograd's minimal
 * filtering (Lavin & Gray 2015) transforms the window and the kernel into
 * a x a arrays (a = m + 2), V = B^T d B and U = G g G^T, multiplies them
 * element by element, M = U . V summed over the input channels, and
 * transforms back, Y = A^T M A: a*a multiply-adds a channel pair for the
 * tile's m*m pixels, where the direct convolution spends 9 a pixel (F(2x2):
 * 16 for 4 pixels, 4/9 of the direct products; F(4x4): 36 for 16, 1/4).
 * Summed over the channels, each of the a*a positions of M is a matrix
 * product, (tiles x cin) . (cin x cout), which the kernels below block in
 * registers as conv_blocked blocks pixels x channel vectors. The transforms
 * are a few vector operations a tile a channel vector; each algorithm's
 * matrices are a table (f2x2, f4x4) the printers read.
 *
 * The results differ from the direct sum by rounding only: F(2x2) at most
 * 8e-8 of the sum of the products' magnitudes in fp32, where the direct
 * kernels measure 2e-7; F(4x4), whose matrices hold 4, 5 and 8, 1.4e-6
 * (tests/layers/conv_winograd). Over the 10,000 MNIST test images every
 * model's inference gives the argmax of the plain C inference
 * (--emit=inference, direct convolutions) with probabilities within 1e-4
 * (tests/test_inference.c; the largest difference, vgg_bn_aug's 6e-5, was
 * 7e-5 under F(2x2) alone), and a trained vgg's test accuracy and loss are
 * the same under either algorithm. Training keeps conv_blocked's kernels, forward
 * and backward, so that a trainer's bits, and with them the seed recipes'
 * measured accuracies and the training digests, stay those of the direct
 * convolution; the inference pass (a trainer's evaluation, --predict,
 * --bench's inference) runs these. Measured with F(2x2) on vgg's 3x3 layers
 * (26x26x32 -> 24x24x32, 12x12x32 -> 10x10x64, 10x10x64 -> 8x8x64; one core
 * of a Zen 5, batch 64): 1.7x, 2.4x and 2.0x the direct kernels' rate;
 * F(4x4) where it applies (algorithm_for) another 15-25% (--bench of a
 * model of that layer and a dense head).
 *
 * The tiles of a row are taken a block of at most TB at a time: the block's V
 * and M (a*a x TB x channels each) stay on the stack, under 128 KB together,
 * so they stay in L2 between the three phases; they are per call, not per
 * sample, so they do not belong in the scratch arena, which is sized a sample.
 */
#include "conv.h"

/*
 * One Winograd algorithm F(m x m, 3x3): an output tile of m x m pixels from an
 * a x a input window, a = m + 2, through its three transforms. B^T and A^T
 * are integers; G's rows are integers over a denominator each. The printers
 * below read these tables and print the sums with the zeros left out, so the
 * generated code spells each transform out as the matrix has it.
 */
typedef struct {
    const char *name;
    int m, a;      /* output and input tile sides */
    int bt[6][6];  /* B^T (a x a): V = B^T d B */
    int g[6][3];   /* G (a x 3) times g_den: U = G g G^T */
    int g_den[6];  /* each row of G's denominator */
    int at[4][6];  /* A^T (m x a): Y = A^T M A */
} winograd_algorithm;

/* Lavin & Gray 2015: interpolation points 0, 1, -1 (F2); 0, 1, -1, 2, -2 (F4), and infinity. */
static const winograd_algorithm f2x2 = {
    .name = "F(2x2, 3x3)",
    .m = 2,
    .a = 4,
    .bt = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}},
    .g = {{1, 0, 0}, {1, 1, 1}, {1, -1, 1}, {0, 0, 1}},
    .g_den = {1, 2, 2, 1},
    .at = {{1, 1, 1, 0}, {0, 1, -1, -1}},
};

static const winograd_algorithm f4x4 = {
    .name = "F(4x4, 3x3)",
    .m = 4,
    .a = 6,
    .bt = {{4, 0, -5, 0, 1, 0},
           {0, -4, -4, 1, 1, 0},
           {0, 4, -4, -1, 1, 0},
           {0, -2, -1, 2, 1, 0},
           {0, 2, -1, -2, 1, 0},
           {0, 4, 0, -5, 0, 1}},
    .g = {{1, 0, 0}, {-1, -1, -1}, {-1, 1, -1}, {1, 2, 4}, {1, -2, 4}, {0, 0, 1}},
    .g_den = {4, 6, 6, 24, 24, 1},
    .at = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}},
};

/* The lanes of the vectors of the kernels being printed (16 or 8). */
static int lanes = VEC;

/*
 * The floats of a block's V and M together at most: 128 KB in fp32 (256 KB in the tests' double builds).
 * Measured against 64 KB, one layer's forward pass on 64 images (min of 60 calls, Zen 5): cifar_vgg's
 * 32x32x32 -> 32 F(4x4) 4.3 -> 3.6 ms (8 tiles a row fit one block, not 7 + 1), 16x16x64 -> 64
 * 3.1 -> 2.8 ms; vgg's unchanged (their rows fitted already); 256 KB no better.
 */
#define BLOCK_FLOATS 32768

/*
 * F(4x4, 3x3) where the output is whole 4x4 tiles of at most 64 output channels and a tile's V and M
 * fit a block, else F(2x2, 3x3). F(4x4) multiplies a quarter of the direct convolution's products,
 * F(2x2) 4/9, but its 6x6 windows make V and M 2.25x larger a tile, so fewer tiles fit a block, and
 * an 8x8 output has only two tiles a row: with 128 output channels its products keep 1-2 tiles in
 * registers and lose. Measured at inference with 64 KB blocks (one layer and a dense head, --bench,
 * Zen 5, medians of 3, F4 against F2): 26x26x32 -> 32: +20%; 10x10x64 -> 64: +15%; 'same'
 * 32x32x32 -> 32: +25%, 16x16x32 -> 64: +5%, 16x16x64 -> 64: +3%, 8x8x64 -> 128: -15%,
 * 8x8x128 -> 128: -35%.
 */
static const winograd_algorithm *algorithm_for(const layer *l)
{
    int whole_tiles = l->out.h % 4 == 0 && l->out.w % 4 == 0;
    int tile_fits = f4x4.a * f4x4.a * (l->in.c + l->out.c) <= BLOCK_FLOATS;
    return whole_tiles && l->out.c <= 64 && tile_fits ? &f4x4 : &f2x2;
}

/* Tiles across an output row. */
static int tiles_across(const layer *l, const winograd_algorithm *w)
{
    return l->out.w / w->m;
}

/* Tiles a block: a whole row when its V and M fit BLOCK_FLOATS, else as many as do. */
static int tile_block(const layer *l, const winograd_algorithm *w)
{
    int most = BLOCK_FLOATS / (w->a * w->a * (l->in.c + l->out.c));
    int across = tiles_across(l, w);
    return across < most ? across : most < 1 ? 1 : most;
}

/* Tiles the products keep in registers at once, each the output channels' vectors. */
static int tiles_in_registers(const layer *l, const winograd_algorithm *w)
{
    int vectors = l->out.c / lanes, max_acc = lanes == 16 ? 24 : 12, block = tile_block(l, w);
    for (int np = 6; np > 1; np--)
        if (np * vectors <= max_acc && np <= block)
            return np;
    return 1;
}

/* At most 1024 channels in and out together: an F(2x2) tile's V and M, 16 x 1024 floats, fit a block. */
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
    int a = algorithm_for(l)->a;
    conv_blocked.workspace(l, r, ws);
    ws_add(ws, "w as Winograd's U = G g G^T, [a*a][cin][cout], for inference", "float %s_u[%d * %d * %d] ALIGNED",
           l->name, a * a, l->in.c, l->out.c);
}

/*
 * Prints the sum over j < n of coef[j] * OPERAND(j), OPERAND(j) being
 * before, j, after: "4.0f * d[0][k] - 5.0f * d[2][k] + d[4][k]". Zero terms
 * are left out and a coefficient of 1 unwritten; the others are float
 * constants. At least one coefficient is not zero.
 */
static void print_sum(cgen *g, const int *coef, int n, const char *before, const char *after)
{
    int first = 1;
    for (int j = 0; j < n; j++) {
        int c = coef[j], mag = c < 0 ? -c : c;
        if (c == 0)
            continue;
        cg(g, "%s", first ? (c < 0 ? "-" : "") : (c < 0 ? " - " : " + "));
        if (mag != 1)
            cg(g, "%d.0f * ", mag);
        cg(g, "%s%d%s", before, j, after);
        first = 0;
    }
}

/*
 * A row of G times three operands: "(k[0][kx] + 2.0f * k[1][kx] + 4.0f * k[2][kx]) * (1.0f / 24)".
 * A product by the reciprocal, not a division: the transform runs every inference step.
 */
static void print_fraction(cgen *g, const int *row, int den, const char *before, const char *after)
{
    if (den != 1)
        cg(g, "(");
    print_sum(g, row, 3, before, after);
    if (den != 1)
        cg(g, ") * (1.0f / %d)", den);
}

/* U = G g G^T for every (cin, cout), a vector of cout at a time: g's columns through G, then its rows. */
static void emit_weights(cgen *g, const layer *l, const winograd_algorithm *w)
{
    int CI = l->in.c, CO = l->out.c, a = w->a;
    cg(g, "/* w into Winograd's U = G g G^T for %s, [%d][%d][%d], G's rows as the sums below. */\n", w->name,
       a * a, CI, CO);
    cg(g, "static void %s_winograd_weights(float *restrict u, const float *restrict w)\n{\n", l->name);
    cg(g, "    for (int ci = 0; ci < %d; ci++)\n        for (int co = 0; co < %d; co += LANES) {\n", CI, CO);
    cg(g, "            vf k[3][3], gk[%d][3];\n", a);
    cg(g, "            for (int ky = 0; ky < 3; ky++)\n                for (int kx = 0; kx < 3; kx++)\n");
    cg(g, "                    load_vec(&k[ky][kx], w + ((ky * 3 + kx) * %d + ci) * %d + co);\n", CI, CO);
    cg(g, "            for (int kx = 0; kx < 3; kx++) {\n");
    for (int i = 0; i < a; i++) {
        cg(g, "                gk[%d][kx] = ", i);
        print_fraction(g, w->g[i], w->g_den[i], "k[", "][kx]");
        cg(g, ";\n");
    }
    cg(g, "            }\n            for (int i = 0; i < %d; i++) {\n", a);
    cg(g, "                vf row[%d] = {\n", a);
    for (int j = 0; j < a; j++) { /* (gk G^T)[i][j] = gk[i] . G's row j */
        cg(g, "                    ");
        print_fraction(g, w->g[j], w->g_den[j], "gk[i][", "]");
        cg(g, "%s\n", j + 1 < a ? "," : "");
    }
    cg(g, "                };\n");
    cg(g, "                for (int j = 0; j < %d; j++)\n", a);
    cg(g, "                    store_vec(u + ((i * %d + j) * %d + ci) * %d + co, &row[j]);\n", a, CI, CO);
    cg(g, "            }\n        }\n}\n\n");
}

/* M at position xi for np tiles: (np x cin) . (cin x cout), the tiles x cout vectors in registers. */
static void emit_products(cgen *g, const layer *l, const winograd_algorithm *w)
{
    int CI = l->in.c, CO = l->out.c, TB = tile_block(l, w), VO = CO / lanes, NP = tiles_in_registers(l, w);
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
static void print_input_transform(cgen *g, const layer *l, const winograd_algorithm *w, int TB)
{
    int IH = l->in.h, IW = l->in.w, CI = l->in.c, a = w->a, tile = w->m;
    cg(g, "                /* V = B^T d B for each tile's %dx%d input d */\n", a, a);
    cg(g, "                for (int t = 0; t < nt; t++)\n                    for (int c = 0; c < %d; c++) {\n",
       CI / lanes);
    cg(g, "                        const float *px = in + (((size_t)b * %d + %d * ty) * %d + %d * (tx0 + t)) * %d + %d * c;\n",
       IH, tile, IW, tile, CI, lanes);
    cg(g, "                        vf d[%d][%d], e[%d][%d];\n", a, a, a, a);
    cg(g, "                        for (int r = 0; r < %d; r++)\n                            for (int k = 0; k < %d; k++)\n",
       a, a);
    cg(g, "                                load_vec(&d[r][k], px + (r * %d + k) * %d);\n", IW, CI);
    cg(g, "                        for (int k = 0; k < %d; k++) {\n", a);
    for (int i = 0; i < a; i++) {
        cg(g, "                            e[%d][k] = ", i);
        print_sum(g, w->bt[i], a, "d[", "][k]");
        cg(g, ";\n");
    }
    cg(g, "                        }\n");
    cg(g, "                        for (int r = 0; r < %d; r++) {\n", a);
    cg(g, "                            vf row[%d] = {\n", a);
    for (int j = 0; j < a; j++) { /* (e B)[r][j] = e[r] . B's column j, which is B^T's row j */
        cg(g, "                                ");
        print_sum(g, w->bt[j], a, "e[r][", "]");
        cg(g, "%s\n", j + 1 < a ? "," : "");
    }
    cg(g, "                            };\n");
    cg(g, "                            for (int k = 0; k < %d; k++)\n", a);
    cg(g, "                                store_vec(v + ((r * %d + k) * %d + t) * %d + %d * c, &row[k]);\n", a, TB,
       CI, lanes);
    cg(g, "                        }\n                    }\n");
}

/* Y = A^T M A + bias for each tile of the block and vector of output channels, into the output. */
static void print_output_transform(cgen *g, const layer *l, const winograd_algorithm *w, int TB)
{
    int OH = l->out.h, OW = l->out.w, CO = l->out.c, a = w->a, tile = w->m;
    cg(g, "                /* Y = A^T M A + bias: each tile's %dx%d output pixels */\n", tile, tile);
    cg(g, "                for (int t = 0; t < nt; t++)\n                    for (int c = 0; c < %d; c++) {\n",
       CO / lanes);
    cg(g, "                        vf s[%d][%d], am[%d][%d], bv; /* M, A^T M */\n", a, a, tile, a);
    cg(g, "                        load_vec(&bv, bias + %d * c);\n", lanes);
    cg(g, "                        for (int r = 0; r < %d; r++)\n                            for (int k = 0; k < %d; k++)\n",
       a, a);
    cg(g, "                                load_vec(&s[r][k], m + ((r * %d + k) * %d + t) * %d + %d * c);\n", a, TB,
       CO, lanes);
    cg(g, "                        for (int k = 0; k < %d; k++) {\n", a);
    for (int i = 0; i < tile; i++) {
        cg(g, "                            am[%d][k] = ", i);
        print_sum(g, w->at[i], a, "s[", "][k]");
        cg(g, ";\n");
    }
    cg(g, "                        }\n");
    cg(g, "                        for (int i = 0; i < %d; i++) {\n", tile);
    cg(g, "                            vf y[%d] = {\n", tile);
    for (int j = 0; j < tile; j++) {
        cg(g, "                                ");
        print_sum(g, w->at[j], a, "am[i][", "]");
        cg(g, " + bv%s\n", j + 1 < tile ? "," : "");
    }
    cg(g, "                            };\n");
    cg(g, "                            float *o = out + (((size_t)b * %d + %d * ty + i) * %d + %d * (tx0 + t)) * %d + %d * c;\n",
       OH, tile, OW, tile, CO, lanes);
    cg(g, "                            for (int j = 0; j < %d; j++)\n", tile);
    cg(g, "                                store_vec(o + j * %d, &y[j]);\n", CO);
    cg(g, "                        }\n                    }\n");
}

/* The matrix as a comment: "[1 0 -1 0; 0 1 1 0; ...]". */
static void print_matrix(cgen *g, const int (*rows)[6], int n_rows, int n_cols)
{
    cg(g, "[");
    for (int i = 0; i < n_rows; i++)
        for (int j = 0; j < n_cols; j++)
            cg(g, "%d%s", rows[i][j], j + 1 < n_cols ? " " : i + 1 < n_rows ? "; " : "]");
}

static void emit_forward(cgen *g, const layer *l, const winograd_algorithm *w)
{
    int CI = l->in.c, OH = l->out.h, OW = l->out.w, CO = l->out.c, a = w->a, tile = w->m;
    int TW = tiles_across(l, w), TB = tile_block(l, w), NP = tiles_in_registers(l, w);
    char buf[64];
    emit_products(g, l, w);
    cg(g, "/*\n * out = act(conv(in, w) + bias) by %s, in rows of %d tiles, %d a block:\n * B^T = ", w->name, TW, TB);
    print_matrix(g, w->bt, a, a);
    cg(g, ",\n * A^T = ");
    print_matrix(g, w->at, tile, a);
    cg(g, ".\n */\n");
    cg(g, "static void %s_winograd_forward(float *restrict out, const float *restrict in,\n", l->name);
    cg(g, "                       const float *restrict u, const float *restrict bias, int lo, int hi)\n{\n");
    cg(g, "    /* a block's transformed inputs and products: per call, on the stack (see conv_winograd.c) */\n");
    cg(g, "    float v[%d * %d * %d] ALIGNED, m[%d * %d * %d] ALIGNED;\n", a * a, TB, CI, a * a, TB, CO);
    cg(g, "    for (int b = lo; b < hi; b++)\n        for (int ty = 0; ty < %d; ty++) {\n", OH / tile);
    cg(g, "            for (int tx0 = 0; tx0 < %d; tx0 += %d) {\n", TW, TB);
    if (TW % TB == 0)
        cg(g, "                const int nt = %d; /* tiles in this block */\n", TB);
    else
        cg(g, "                const int nt = tx0 + %d <= %d ? %d : %d - tx0; /* tiles in this block */\n", TB, TW, TB, TW);
    print_input_transform(g, l, w, TB);
    cg(g, "                for (int xi = 0; xi < %d; xi++) {\n", a * a);
    cg(g, "                    int t0 = 0;\n");
    cg(g, "                    for (; t0 + %d <= nt; t0 += %d)\n", NP, NP);
    cg(g, "                        %s_winograd_products(m, v, u, xi, t0, %d);\n", l->name, NP);
    if (TB % NP != 0 || TW % TB != 0)
        cg(g, "                    if (t0 < nt)\n                        %s_winograd_products(m, v, u, xi, t0, nt - t0);\n",
           l->name);
    cg(g, "                }\n");
    print_output_transform(g, l, w, TB);
    cg(g, "            }\n");
    if (l->act != ACT_LINEAR) {
        cg(g, "            float *o = out + ((size_t)b * %d + %d * ty) * %d;\n", OH, tile, OW * CO);
        cg(g, "            for (int j = 0; j < %d; j++)\n                o[j] = %s;\n", tile * OW * CO,
           act_expr(l->act, buf, sizeof buf, "o[j]"));
    }
    cg(g, "        }\n}\n\n");
}

static void emit(cgen *g, const layer *l, const layer_role *r)
{
    const winograd_algorithm *w = algorithm_for(l);
    conv_blocked.emit(g, l, r);
    emit_weights(g, l, w);
    static const int widths[2] = {16, 8};
    for (int i = 0; i < 2; i++) {
        lanes = widths[i];
        cg(g, i == 0 ? "#if LANES == 16\n" : "#else /* LANES == 8: AVX2 and others */\n");
        emit_forward(g, l, w);
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
                   "Winograd F(4x4, 3x3) or F(2x2, 3x3) by shape",
    .precision = PRECISION_FP32,
    .helpers = helpers,
    .workspace = workspace,
    .emit = emit,
    .prepare = prepare,
    .print_forward = print_forward,
    .print_backward = conv_print_backward_call,
};
