/*
 * dense_bf16.c - the bfloat16 dense strategy (`precision bf16` in the train
 * block; inputs and units in multiples of 16).
 *
 * Register blocks of fp32 sums over bfloat16 products (bf16.h), the pair
 * along the axis being summed; the operands are repacked first, rounded to
 * nearest even:
 *
 *   forward       in  -> inh  [b][in]             (input pairs are adjacent already)
 *                 w   -> wp   [in/2][units][2]    once a step
 *   weight grad   dz  -> dzp  [b/2][units][2]     pairs of rows (samples)
 *                 in  -> inp  [b/2][in][2]
 *   input grad    dz  -> dzh  [b][units]
 *                 w   -> wtp  [units/2][in][2]    once a step
 *
 * A slice with an odd number of rows keeps its last row unpaired after the
 * pairs; the weight gradient pairs its values with zeros. Everything else
 * stays fp32: the sums, bias, activation, the weights the optimizer updates.
 * Where the C compiler's target lacks AVX512_BF16 the file runs dense_sgemm's
 * kernels instead, so the one generated file builds and trains anywhere.
 */
#include "bf16.h"
#include "dense.h"

/*
 * A block's shape: on mlp800 (50 vectors of units) blocks of 4 rows x 5
 * vectors and 8 x 2 trained alike, within the machine's noise; 12 x 2, which
 * spills, was slower (README, "bfloat16 dense layers").
 */
#define ACC_DENSE 20  /* accumulators a block keeps, of AVX-512's 32 registers */
#define MAX_VECTORS 5 /* vectors of outputs a block spans: a weight vector serves a block's rows */
#define MAX_ROWS 8    /* rows (samples) a block spans */

int dense_bf16_fits(const layer *l)
{
    return shape_size(l->in) % LANES_BF16 == 0 && l->u.units % LANES_BF16 == 0;
}

static unsigned helpers(const layer *l, const layer_role *r)
{
    (void)l, (void)r;
    return HELPER_BF16 | HELPER_BF16_ROWS;
}

/* The vectors of outputs a block spans: the largest divisor of the row's vectors up to MAX_VECTORS. */
static int block_vectors(int width)
{
    int vectors = width / LANES_BF16, v = MAX_VECTORS;
    while (vectors % v)
        v--;
    return v;
}

/* The rows a block spans beside V vectors: as many as the accumulators allow. */
static int block_rows(int V)
{
    int rows = ACC_DENSE / V;
    return rows < MAX_ROWS ? rows : MAX_ROWS;
}

/* The largest divisor of n whose count x V vectors fit the accumulators. */
static int input_block(int n, int V)
{
    for (int cand = ACC_DENSE / V; cand > 1; cand--)
        if (n % cand == 0)
            return cand;
    return 1;
}

/* The bfloat16 copies the kernels make within one call, in the scratch arena (kind.h). */
static int scratch_bufs(const layer *l, int needs_din, scratch_buf bufs[BF16_N_SCRATCH])
{
    /* A float's room holds two bfloat16 values: the counts are even, both widths being. */
    int I = shape_size(l->in), O = l->u.units;
    bufs[BF16_INH] = (scratch_buf){"inh", 0, I / 2};
    bufs[BF16_DZP] = (scratch_buf){"dzp", 1, O / 2};
    bufs[BF16_WGRAD_IN] = (scratch_buf){"inp", 1, I / 2};
    bufs[BF16_DZH] = (scratch_buf){"dzh", 2, O / 2};
    return needs_din ? BF16_N_SCRATCH : BF16_DZH;
}

static void workspace(const layer *l, const layer_role *r, ws_list *ws)
{
    int IO = shape_size(l->in) * l->u.units;
    scratch_buf bufs[BF16_N_SCRATCH];
    ws_add(ws, "w as bfloat16 pairs of inputs, [in/2][units][2]", "uint16_t %s_wp[%d] ALIGNED", l->name, IO);
    if (r->needs_din)
        ws_add(ws, "w as bfloat16 pairs of units, [units/2][in][2]", "uint16_t %s_wtp[%d] ALIGNED", l->name, IO);
    ws_scratch(ws, bufs, scratch_bufs(l, r->needs_din, bufs));
}

/*
 * The calls over a slice's rows in blocks of `rows` and a shorter last one,
 * for each block of `V` output vectors: BLOCK(ARGS, b0, j0, rows), the row
 * count a constant in every call (the last block's by a switch) so that the
 * accumulators stay in registers.
 */
static void print_row_sweep(cgen *g, const char *block, const char *args, int width, int V, int rows)
{
    cg(g, "    for (int j0 = 0; j0 < %d; j0 += %d) {\n", width, LANES_BF16 * V);
    cg(g, "        int b0 = lo;\n");
    cg(g, "        for (; b0 + %d <= hi; b0 += %d)\n", rows, rows);
    cg(g, "            %s(%s, b0, j0, %d);\n", block, args, rows);
    if (rows > 1) {
        cg(g, "        switch (hi - b0) { /* the last rows */\n");
        for (int n = 1; n < rows; n++)
            cg(g, "        case %d:\n            %s(%s, b0, j0, %d);\n            break;\n", n, block, args, n);
        cg(g, "        }\n");
    }
    cg(g, "    }\n");
}

/* Accumulators acc[rows][V] stored to `dst` (rows `stride` apart), at its rows from b0, columns from j0. */
static void print_store_block(cgen *g, const char *dst, int stride, int V)
{
    cg(g, "    float *o = %s + (size_t)b0 * %d + j0;\n", dst, stride);
    cg(g, "    for (int p = 0; p < np; p++)\n        for (int v = 0; v < %d; v++)\n", V);
    cg(g, "            _mm512_storeu_ps(o + p * %d + 16 * v, acc[p][v]);\n", stride);
}

static void emit_forward(cgen *g, const layer *l)
{
    const char *id = l->name;
    int I = shape_size(l->in), O = l->u.units, V = block_vectors(O), NB = block_rows(V);
    char buf[128], pairs[16], element[32];
    cg(g, "/* Rows b0.. (np of them) x %d vector%s of units from j0; inputs in pairs. */\n", V, V == 1 ? "" : "s");
    cg(g, "static inline __attribute__((always_inline)) void\n");
    cg(g, "%s_forward_bf16_block(float *restrict out, const uint16_t *restrict inh, const uint16_t *restrict wp, "
          "const float *restrict bias, int b0, int j0, const int np)\n{\n", id);
    cg(g, "    __m512 acc[%d][%d];\n", NB, V);
    cg(g, "    for (int p = 0; p < np; p++)\n        for (int v = 0; v < %d; v++)\n", V);
    cg(g, "            acc[p][v] = _mm512_loadu_ps(bias + j0 + 16 * v);\n");
    cg(g, "    const uint16_t *px = inh + (size_t)b0 * %d, *wk = wp + j0 * 2;\n", I);
    snprintf(pairs, sizeof pairs, "%d", I / 2);
    bf16_print_pair_sweep(g, "    ", "inputs", pairs, "wk", O, V, "px", I, 2, "np");
    print_store_block(g, "out", O, V);
    if (l->act != ACT_LINEAR && l->act != ACT_SOFTMAX) {
        snprintf(element, sizeof element, "o[p * %d + j]", O);
        cg(g, "    for (int p = 0; p < np; p++)\n        for (int j = 0; j < %d; j++)\n            %s = %s;\n",
           LANES_BF16 * V, element, act_expr(l->act, buf, sizeof buf, element));
    }
    cg(g, "}\n\n");

    cg(g, "static void %s_forward_bf16(float *restrict out, const float *restrict in, uint16_t *restrict inh, "
          "const uint16_t *restrict wp, const float *restrict bias, int lo, int hi)\n{\n", id);
    cg(g, "    to_bf16(inh + (size_t)lo * %d, in + (size_t)lo * %d, (size_t)(hi - lo) * %d);\n", I, I, I);
    char block[80];
    snprintf(block, sizeof block, "%s_forward_bf16_block", id);
    print_row_sweep(g, block, "out, inh, wp, bias", O, V, NB);
    if (l->act == ACT_SOFTMAX)
        cg_softmax_rows(g, "out", O, "    ");
    cg(g, "}\n\n");
}

/*
 * Weight gradient: dw [in][units] sums in * dz over the slice's rows, two
 * rows a product pair. A block of CB inputs x V vectors of units stays in
 * registers while the rows go by.
 */
static void emit_weight_grad(cgen *g, const layer *l)
{
    const char *id = l->name;
    int I = shape_size(l->in), O = l->u.units, V = block_vectors(O), CB = input_block(I, V);
    char count[16];
    cg(g, "/* dw = in^T . dz over the slice's `rows`: %d input%s x %d vector%s of units in registers. */\n", CB,
       CB == 1 ? "" : "s", V, V == 1 ? "" : "s");
    cg(g, "static void %s_weight_grad_bf16(float *restrict dw, const uint16_t *restrict dzp, "
          "const uint16_t *restrict inp, int rows)\n{\n", id);
    cg(g, "    /* an odd slice's last row, unpaired after the pairs */\n");
    cg(g, "    const uint16_t *dz_last = dzp + (size_t)(rows - 1) * %d, *in_last = inp + (size_t)(rows - 1) * %d;\n",
       O, I);
    cg(g, "    for (int j0 = 0; j0 < %d; j0 += %d)\n", O, LANES_BF16 * V);
    cg(g, "        for (int i0 = 0; i0 < %d; i0 += %d) {\n", I, CB);
    cg(g, "            __m512 acc[%d][%d];\n", CB, V);
    cg(g, "            for (int p = 0; p < %d; p++)\n                for (int v = 0; v < %d; v++)\n", CB, V);
    cg(g, "                    acc[p][v] = _mm512_setzero_ps();\n");
    cg(g, "            const uint16_t *gz = dzp + j0 * 2, *ip = inp + i0 * 2;\n");
    snprintf(count, sizeof count, "%d", CB);
    bf16_print_pair_sweep(g, "            ", "rows", "rows / 2", "gz", O, V, "ip", 2, 2 * I, count);
    cg(g, "            if (rows %% 2) { /* the last row's values, each paired with a zero */\n");
    cg(g, "                __m512bh vec[%d];\n", V);
    cg(g, "                for (int v = 0; v < %d; v++)\n", V);
    cg(g, "                    vec[v] = (__m512bh)_mm512_cvtepu16_epi32(\n");
    cg(g, "                        _mm256_loadu_si256((const __m256i *)(dz_last + j0 + 16 * v)));\n");
    cg(g, "                for (int p = 0; p < %d; p++) {\n", CB);
    cg(g, "                    uint16_t value; /* copied: the arena is float memory (kind.h) */\n");
    cg(g, "                    memcpy(&value, in_last + i0 + p, sizeof value);\n");
    cg(g, "                    __m512bh x = (__m512bh)_mm512_set1_epi32(value);\n");
    cg(g, "                    for (int v = 0; v < %d; v++)\n", V);
    cg(g, "                        acc[p][v] = _mm512_dpbf16_ps(acc[p][v], x, vec[v]);\n");
    cg(g, "                }\n            }\n");
    cg(g, "            for (int p = 0; p < %d; p++)\n                for (int v = 0; v < %d; v++)\n", CB, V);
    cg(g, "                    _mm512_storeu_ps(dw + (size_t)(i0 + p) * %d + j0 + 16 * v, acc[p][v]);\n", O);
    cg(g, "        }\n}\n\n");
}

/* Input gradient: din [b][in] = dz . w^T, units in pairs. */
static void emit_input_grad(cgen *g, const layer *l)
{
    const char *id = l->name;
    int I = shape_size(l->in), O = l->u.units, V = block_vectors(I), NB = block_rows(V);
    char pairs[16];
    cg(g, "/* din at rows b0.. (np of them) x %d vector%s of inputs from j0; units in pairs. */\n", V,
       V == 1 ? "" : "s");
    cg(g, "static inline __attribute__((always_inline)) void\n");
    cg(g, "%s_input_grad_bf16_block(float *restrict din, const uint16_t *restrict dzh, const uint16_t *restrict wtp, "
          "int b0, int j0, const int np)\n{\n", id);
    cg(g, "    __m512 acc[%d][%d];\n", NB, V);
    cg(g, "    for (int p = 0; p < np; p++)\n        for (int v = 0; v < %d; v++)\n", V);
    cg(g, "            acc[p][v] = _mm512_setzero_ps();\n");
    cg(g, "    const uint16_t *gz = dzh + (size_t)b0 * %d, *wk = wtp + j0 * 2;\n", O);
    snprintf(pairs, sizeof pairs, "%d", O / 2);
    bf16_print_pair_sweep(g, "    ", "units", pairs, "wk", I, V, "gz", O, 2, "np");
    print_store_block(g, "din", I, V);
    cg(g, "}\n\n");

    cg(g, "static void %s_input_grad_bf16(float *restrict din, const float *restrict dz, uint16_t *restrict dzh, "
          "const uint16_t *restrict wtp, int lo, int hi)\n{\n", id);
    cg(g, "    to_bf16(dzh + (size_t)lo * %d, dz + (size_t)lo * %d, (size_t)(hi - lo) * %d);\n", O, O, O);
    char block[80];
    snprintf(block, sizeof block, "%s_input_grad_bf16_block", id);
    print_row_sweep(g, block, "din, dzh, wtp", I, V, NB);
    cg(g, "}\n\n");
}

static void emit_backward(cgen *g, const layer *l, const layer_role *r)
{
    const char *id = l->name;
    int I = shape_size(l->in), O = l->u.units;
    cg(g, "/* %s_backward's (dense_sgemm's) bfloat16 twin: dout becomes dL/d(pre-activation); dw, db are the\n", id);
    cg(g, "   slice's. dzh reuses dzp's bytes (neither is restrict). */\n");
    cg(g, "static void %s_backward_bf16(float *restrict din, float *restrict dw, float *restrict db, "
          "float *restrict dout, const float *restrict out, const float *restrict in, uint16_t *dzp, "
          "uint16_t *restrict inp, uint16_t *dzh, const uint16_t *restrict wtp, int lo, int hi)\n{\n", id);
    dense_print_backward_head(g, l, r);
    cg(g, "    pair_rows_bf16(dzp + (size_t)lo * %d, dout + (size_t)lo * %d, hi - lo, %d);\n", O, O, O);
    cg(g, "    pair_rows_bf16(inp + (size_t)lo * %d, in + (size_t)lo * %d, hi - lo, %d);\n", I, I, I);
    cg(g, "    %s_weight_grad_bf16(dw, dzp + (size_t)lo * %d, inp + (size_t)lo * %d, hi - lo);\n", id, O, I);
    dense_print_bias_grad(g, l);
    if (r->needs_din)
        cg(g, "    %s_input_grad_bf16(din, dout, dzh, wtp, lo, hi);\n", id);
    else
        cg(g, "    (void)din; /* the network input needs no gradient */\n    (void)dzh;\n    (void)wtp;\n");
    cg(g, "}\n\n");
}

static void emit(cgen *g, const layer *l, const layer_role *r)
{
    cg(g, "#if NNC_BF16 /* `precision bf16`, on a target with AVX512_BF16 */\n");
    bf16_print_pack(g, l, r, 1, shape_size(l->in), l->u.units, "inputs", "units");
    emit_forward(g, l);
    emit_weight_grad(g, l);
    if (r->needs_din)
        emit_input_grad(g, l);
    emit_backward(g, l, r);
    cg(g, "#else /* the target lacks AVX512_BF16: dense_sgemm's kernels */\n\n");
    dense_sgemm.emit(g, l, r);
    cg(g, "#endif\n");
}

static void prepare(cgen *g, const layer *l, const layer_role *r, pass_kind pass)
{
    bf16_print_prepare(g, l, r, pass, &dense_sgemm);
}

static void print_forward(cgen *g, const layer *l, const step_args *a)
{
    scratch_buf bufs[BF16_N_SCRATCH];
    scratch_bufs(l, 0, bufs);
    bf16_print_forward(g, l, a, bufs, &dense_sgemm);
}

static void print_backward(cgen *g, const layer *l, const step_args *a)
{
    scratch_buf bufs[BF16_N_SCRATCH];
    scratch_bufs(l, a->din != NULL, bufs);
    bf16_print_backward(g, l, a, bufs, &dense_sgemm);
}

const kernel_strategy dense_bf16 = {
    .description = "register blocks of bfloat16 products and fp32 sums where the target has AVX512_BF16 "
                   "(else OpenBLAS sgemm)",
    .precision = PRECISION_BF16,
    .helpers = helpers,
    .workspace = workspace,
    .emit = emit,
    .prepare = prepare,
    .print_forward = print_forward,
    .print_backward = print_backward,
};
