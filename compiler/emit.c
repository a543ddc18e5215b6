/*
 * emit.c - from a checked model to one C file that trains exactly that model.
 *
 * The output reads like a hand-written llm.c for one model: constants for
 * every shape, a flat parameter buffer with named offsets, static buffers with
 * shape comments, and a `_forward`/`_backward` pair per layer, each headed by
 * the DSL line it came from. The layer sequence becomes straight-line calls in
 * train_batch() and infer_batch(): there is no interpreter at run time.
 *
 * Threads. A batch of n samples is cut into CHUNKS fixed slices
 * ([n*c/CHUNKS, n*(c+1)/CHUNKS)), and every layer runs slice by slice in an
 * `omp for`. Weight gradients go to per-slice buffers that are summed in slice
 * order, and batchnorm combines per-slice sums in slice order too; so the
 * arithmetic never depends on how many threads ran the slices, and results are
 * bit-identical with 1 or 2 threads.
 *
 * Kernels. How a layer computes (direct loops, OpenBLAS sgemm) is decided in
 * one place, choose_kernel(), so that tuning touches nothing else.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define CHUNKS 2
#define VEC 16        /* floats in one v16: an AVX-512 register */
#define MAX_ACC 16    /* vector accumulators a blocked kernel keeps in registers */

typedef enum {
    KERNEL_NONE,        /* no arithmetic: flatten */
    KERNEL_SGEMM,       /* dense: OpenBLAS sgemm on the slice's rows */
    KERNEL_DIRECT,      /* conv: direct loops with constant bounds, NHWC, vectorized over output channels */
    KERNEL_BLOCKED,     /* conv: register-blocked pixels x 16-float vectors of channels, NHWC */
    KERNEL_ELEMENTWISE, /* pools, batchnorm, dropout, activations */
} kernel_kind;

typedef struct {
    FILE *out;
    const model *m;
    /* Buffer names per layer; flatten layers alias their input's. */
    char (*out_name)[64];
    char (*dout_name)[64];
    int *input_is_x; /* the layer reads the network input: it needs no input gradient */
    int loop_open;   /* inside a `for (c < CHUNKS)` slice loop of the step */
} emitter;

/* ------------------------------------------------------------------------ */
/* Small printing helpers                                                   */
/* ------------------------------------------------------------------------ */

static void emit(emitter *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(emitter *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(e->out, fmt, ap);
    va_end(ap);
}

/* The shortest decimal that reads back as the same float, as a C literal. */
static const char *flt(char *buf, size_t len, float v)
{
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, len, "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v)
            break;
    }
    if (!strpbrk(buf, ".eEn"))
        strncat(buf, ".0", len - strlen(buf) - 1);
    strncat(buf, "f", len - strlen(buf) - 1);
    return buf;
}

static void upper(char *dst, const char *src, size_t len)
{
    size_t i = 0;
    for (; src[i] && i + 1 < len; i++)
        dst[i] = (char)toupper((unsigned char)src[i]);
    dst[i] = '\0';
}

static void shape_comment(char *buf, size_t len, shape s)
{
    if (shape_is_flat(s))
        snprintf(buf, len, "[n][%d]", s.c);
    else
        snprintf(buf, len, "[n][%d][%d][%d]", s.h, s.w, s.c);
}

/* A C string literal for arbitrary text. */
static void emit_string_literal(emitter *e, const char *text)
{
    emit(e, "    \"");
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            emit(e, "\\n\"\n");
            if (p[1])
                emit(e, "    \"");
            else
                return;
        } else if (*p == '"' || *p == '\\') {
            emit(e, "\\%c", *p);
        } else if (isprint((unsigned char)*p)) {
            emit(e, "%c", *p);
        } else {
            emit(e, "\\%03o", (unsigned char)*p);
        }
    }
    emit(e, "\"");
}

/* One place decides how each layer computes. */
static kernel_kind choose_kernel(const layer *l)
{
    switch (l->kind) {
    case LAYER_FLATTEN:
        return KERNEL_NONE;
    case LAYER_DENSE:
        return KERNEL_SGEMM;
    case LAYER_CONV:
        /* Register blocking reads whole windows: valid padding only. */
        if (!l->u.conv.same)
            return KERNEL_BLOCKED;
        return KERNEL_DIRECT;
    default:
        return KERNEL_ELEMENTWISE;
    }
}

static const char *kernel_name(kernel_kind k)
{
    switch (k) {
    case KERNEL_NONE: return "none (a view of its input)";
    case KERNEL_SGEMM: return "OpenBLAS sgemm on the slice's rows";
    case KERNEL_DIRECT: return "direct loops, constant bounds, vectorized over output channels";
    case KERNEL_BLOCKED: return "register-blocked direct convolution, 16-float vectors";
    case KERNEL_ELEMENTWISE: return "elementwise loops";
    }
    return "?";
}

/* Is this the last layer, whose softmax is fused with the crossentropy loss? */
static int fused_softmax_loss(const emitter *e, int i)
{
    const model *m = e->m;
    return i == m->n_layers - 1 && m->recipe.loss == NNC_LOSS_CROSSENTROPY && m->layers[i].act == ACT_SOFTMAX;
}

/* ------------------------------------------------------------------------ */
/* Activations                                                              */
/* ------------------------------------------------------------------------ */

/* The activation applied to variable `v`, as a C expression. */
static const char *act_expr(act_kind act, char *buf, size_t len, const char *v)
{
    switch (act) {
    case ACT_RELU: snprintf(buf, len, "%s > 0.0f ? %s : 0.0f", v, v); break;
    case ACT_SIGMOID: snprintf(buf, len, "1.0f / (1.0f + expf(-%s))", v); break;
    case ACT_TANH: snprintf(buf, len, "tanhf(%s)", v); break;
    default: snprintf(buf, len, "%s", v); break;
    }
    return buf;
}

/*
 * Softmax over each of the slice's rows of `width` in buffer `buf`, in place.
 * Subtracting the row's max first keeps expf from overflowing.
 */
static void emit_softmax_rows(emitter *e, const char *buf, int width, const char *indent)
{
    emit(e, "%sfor (int b = lo; b < hi; b++) {\n", indent);
    emit(e, "%s    float *row = %s + (size_t)b * %d;\n", indent, buf, width);
    emit(e, "%s    float max = row[0];\n", indent);
    emit(e, "%s    for (int j = 1; j < %d; j++)\n%s        max = row[j] > max ? row[j] : max;\n", indent, width, indent);
    emit(e, "%s    float sum = 0.0f;\n", indent);
    emit(e, "%s    for (int j = 0; j < %d; j++) {\n", indent, width);
    emit(e, "%s        row[j] = expf(row[j] - max);\n%s        sum += row[j];\n%s    }\n", indent, indent, indent);
    emit(e, "%s    for (int j = 0; j < %d; j++)\n%s        row[j] /= sum;\n", indent, width, indent);
    emit(e, "%s}\n", indent);
}

/* In place, d(out) -> d(pre-activation), over the slice's rows of `width`. */
static void emit_act_backward(emitter *e, act_kind act, const char *grad, const char *out, int width)
{
    switch (act) {
    case ACT_LINEAR:
        return;
    case ACT_SOFTMAX:
        emit(e, "    /* softmax: dz = y * (dy - sum(dy * y)) per row */\n");
        emit(e, "    for (int b = lo; b < hi; b++) {\n");
        emit(e, "        float *g = %s + (size_t)b * %d;\n", grad, width);
        emit(e, "        const float *y = %s + (size_t)b * %d;\n", out, width);
        emit(e, "        float dot = 0.0f;\n");
        emit(e, "        for (int j = 0; j < %d; j++)\n            dot += g[j] * y[j];\n", width);
        emit(e, "        for (int j = 0; j < %d; j++)\n            g[j] = y[j] * (g[j] - dot);\n", width);
        emit(e, "    }\n");
        return;
    default:
        break;
    }
    emit(e, "    /* %s: the derivative from the stored output y */\n", act_name(act));
    emit(e, "    for (size_t i = (size_t)lo * %d; i < (size_t)hi * %d; i++) {\n", width, width);
    switch (act) {
    case ACT_RELU: emit(e, "        if (%s[i] <= 0.0f)\n            %s[i] = 0.0f;\n", out, grad); break;
    case ACT_SIGMOID: emit(e, "        %s[i] *= %s[i] * (1.0f - %s[i]);\n", grad, out, out); break;
    case ACT_TANH: emit(e, "        %s[i] *= 1.0f - %s[i] * %s[i];\n", grad, out, out); break;
    default: break;
    }
    emit(e, "    }\n");
}

/* ------------------------------------------------------------------------ */
/* Layer functions                                                          */
/* ------------------------------------------------------------------------ */

static void emit_layer_banner(emitter *e, const layer *l)
{
    char in[64], out[64];
    shape_comment(in, sizeof in, l->in);
    shape_comment(out, sizeof out, l->out);
    emit(e, "\n/* ---- %s: `%s`", l->name, l->source);
    if (l->line > 0)
        emit(e, " (%s:%d)", e->m->source_path, l->line);
    emit(e, " ----\n * in %s -> out %s; kernel: %s */\n", in, out, kernel_name(choose_kernel(l)));
}

/* dense: out = act(in . W + b), W is [in][out] (Keras's kernel layout). */
static void emit_dense(emitter *e, int i)
{
    const layer *l = &e->m->layers[i];
    int I = shape_size(l->in), O = l->u.units;
    char buf[128];
    emit(e, "static void %s_forward(float *restrict out, const float *restrict in, const float *restrict w,\n", l->ident);
    emit(e, "                           const float *restrict bias, int lo, int hi)\n{\n");
    emit(e, "    if (hi <= lo)\n        return;\n");
    emit(e, "    /* out[lo:hi] = in[lo:hi] . w   ([rows][%d] x [%d][%d]) */\n", I, I, O);
    emit(e, "    nnc_sgemm(NNC_NO_TRANS, NNC_NO_TRANS, hi - lo, %d, %d, in + (size_t)lo * %d, %d,\n", O, I, I, I);
    emit(e, "              w, %d, out + (size_t)lo * %d, %d);\n", O, O, O);
    emit(e, "    for (int b = lo; b < hi; b++) {\n");
    emit(e, "        float *o = out + (size_t)b * %d;\n", O);
    emit(e, "        for (int j = 0; j < %d; j++) {\n", O);
    emit(e, "            float v = o[j] + bias[j];\n");
    emit(e, "            o[j] = %s;\n", act_expr(l->act == ACT_SOFTMAX ? ACT_LINEAR : l->act, buf, sizeof buf, "v"));
    emit(e, "        }\n    }\n");
    if (l->act == ACT_SOFTMAX)
        emit_softmax_rows(e, "out", O, "    ");
    emit(e, "}\n\n");

    int need_din = !e->input_is_x[i];
    emit(e, "/* dout holds dL/d(out) and becomes dL/d(pre-activation); dw, db are this slice's, overwritten. */\n");
    emit(e, "static void %s_backward(float *restrict din, float *restrict dw, float *restrict db, float *restrict dout,\n", l->ident);
    emit(e, "                            const float *restrict out, const float *restrict in, const float *restrict w,\n");
    emit(e, "                            int lo, int hi)\n{\n");
    if (!need_din)
        emit(e, "    (void)din; /* the network input needs no gradient */\n");
    emit(e, "    if (hi <= lo) {\n        memset(dw, 0, sizeof(float) * %d * %d);\n        memset(db, 0, sizeof(float) * %d);\n        return;\n    }\n", I, O, O);
    if (fused_softmax_loss(e, i)) {
        emit(e, "    (void)out; /* softmax is fused with the crossentropy loss: dout is already dL/dz */\n");
    } else {
        emit_act_backward(e, l->act, "dout", "out", O);
        if (l->act == ACT_LINEAR)
            emit(e, "    (void)out;\n");
    }
    emit(e, "    /* dw = in[lo:hi]^T . dz   ([%d][rows] x [rows][%d]) */\n", I, O);
    emit(e, "    nnc_sgemm(NNC_TRANS, NNC_NO_TRANS, %d, %d, hi - lo, in + (size_t)lo * %d, %d,\n", I, O, I, I);
    emit(e, "              dout + (size_t)lo * %d, %d, dw, %d);\n", O, O, O);
    emit(e, "    /* db = column sums of dz, in row order */\n");
    emit(e, "    memset(db, 0, sizeof(float) * %d);\n", O);
    emit(e, "    for (int b = lo; b < hi; b++)\n        for (int j = 0; j < %d; j++)\n            db[j] += dout[(size_t)b * %d + j];\n", O, O);
    if (need_din) {
        emit(e, "    /* din = dz . w^T   ([rows][%d] x [%d][%d]) */\n", O, O, I);
        emit(e, "    nnc_sgemm(NNC_NO_TRANS, NNC_TRANS, hi - lo, %d, %d, dout + (size_t)lo * %d, %d,\n", I, O, O, O);
        emit(e, "                  w, %d, din + (size_t)lo * %d, %d);\n", O, I, I);
    } else {
        emit(e, "    (void)w;\n");
    }
    emit(e, "}\n");
}

/*
 * The loop nest over one output pixel's receptive field, with the bounds
 * checks that padding needs (and none when it does not).
 */
static void emit_window_loops(emitter *e, const layer *l, const char *indent)
{
    const conv_params *c = &l->u.conv;
    emit(e, "%sfor (int ky = 0; ky < %d; ky++) {\n", indent, c->kh);
    emit(e, "%s    int iy = oy * %d + ky - %d;\n", indent, c->sh, c->pad_top);
    if (c->pad_top > 0 || c->same)
        emit(e, "%s    if (iy < 0 || iy >= %d)\n%s        continue;\n", indent, l->in.h, indent);
    emit(e, "%s    for (int kx = 0; kx < %d; kx++) {\n", indent, c->kw);
    emit(e, "%s        int ix = ox * %d + kx - %d;\n", indent, c->sw, c->pad_left);
    if (c->pad_left > 0 || c->same)
        emit(e, "%s        if (ix < 0 || ix >= %d)\n%s            continue;\n", indent, l->in.w, indent);
}

/* conv: out = act(conv(in, W) + b), W is [kh][kw][cin][cout] (Keras's HWIO). */
static void emit_conv(emitter *e, int i)
{
    const layer *l = &e->m->layers[i];
    const conv_params *c = &l->u.conv;
    int IH = l->in.h, IW = l->in.w, CI = l->in.c, OH = l->out.h, OW = l->out.w, CO = l->out.c;
    char buf[128];
    emit(e, "static void %s_forward(float *restrict out, const float *restrict in, const float *restrict w,\n", l->ident);
    emit(e, "                            const float *restrict bias, int lo, int hi)\n{\n");
    emit(e, "    for (int b = lo; b < hi; b++)\n");
    emit(e, "        for (int oy = 0; oy < %d; oy++)\n", OH);
    emit(e, "            for (int ox = 0; ox < %d; ox++) {\n", OW);
    emit(e, "                float acc[%d];\n", CO);
    emit(e, "                for (int co = 0; co < %d; co++)\n                    acc[co] = bias[co];\n", CO);
    emit_window_loops(e, l, "                ");
    emit(e, "                        const float *px = in + (((size_t)b * %d + iy) * %d + ix) * %d;\n", IH, IW, CI);
    emit(e, "                        const float *wk = w + (ky * %d + kx) * %d;\n", c->kw, CI * CO);
    emit(e, "                        for (int ci = 0; ci < %d; ci++)\n", CI);
    emit(e, "                            for (int co = 0; co < %d; co++)\n", CO);
    emit(e, "                                acc[co] += px[ci] * wk[ci * %d + co];\n", CO);
    emit(e, "                    }\n                }\n");
    emit(e, "                float *o = out + (((size_t)b * %d + oy) * %d + ox) * %d;\n", OH, OW, CO);
    emit(e, "                for (int co = 0; co < %d; co++)\n", CO);
    emit(e, "                    o[co] = %s;\n", act_expr(l->act, buf, sizeof buf, "acc[co]"));
    emit(e, "            }\n}\n\n");

    int need_din = !e->input_is_x[i];
    if (need_din) {
        emit(e, "/* w with its last two axes swapped, [kh][kw][cout][cin], so that din is a contiguous multiply-add. */\n");
        emit(e, "static float %s_wt[%d * %d * %d * %d];\n\n", l->ident, c->kh, c->kw, CO, CI);
        emit(e, "static void %s_transpose_weights(const float *restrict w)\n{\n", l->ident);
        emit(e, "    for (int k = 0; k < %d; k++)\n", c->kh * c->kw);
        emit(e, "        for (int ci = 0; ci < %d; ci++)\n", CI);
        emit(e, "            for (int co = 0; co < %d; co++)\n", CO);
        emit(e, "                %s_wt[(k * %d + co) * %d + ci] = w[(k * %d + ci) * %d + co];\n", l->ident, CO, CI, CI, CO);
        emit(e, "}\n\n");
    }
    emit(e, "/* dout holds dL/d(out) and becomes dL/d(pre-activation); dw, db are this slice's, overwritten. */\n");
    emit(e, "static void %s_backward(float *restrict din, float *restrict dw, float *restrict db, float *restrict dout,\n", l->ident);
    emit(e, "                             const float *restrict out, const float *restrict in, int lo, int hi)\n{\n");
    if (!need_din)
        emit(e, "    (void)din; /* the network input needs no gradient */\n");
    emit_act_backward(e, l->act, "dout", "out", OH * OW * CO);
    if (l->act == ACT_LINEAR)
        emit(e, "    (void)out;\n");
    emit(e, "    memset(dw, 0, sizeof(float) * %d);\n", c->kh * c->kw * CI * CO);
    emit(e, "    memset(db, 0, sizeof(float) * %d);\n", CO);
    if (need_din)
        emit(e, "    memset(din + (size_t)lo * %d, 0, sizeof(float) * (size_t)(hi - lo) * %d);\n", IH * IW * CI, IH * IW * CI);
    emit(e, "    for (int b = lo; b < hi; b++)\n");
    emit(e, "        for (int oy = 0; oy < %d; oy++)\n", OH);
    emit(e, "            for (int ox = 0; ox < %d; ox++) {\n", OW);
    emit(e, "                const float *dz = dout + (((size_t)b * %d + oy) * %d + ox) * %d;\n", OH, OW, CO);
    emit(e, "                for (int co = 0; co < %d; co++)\n                    db[co] += dz[co];\n", CO);
    emit_window_loops(e, l, "                ");
    emit(e, "                        size_t at = (((size_t)b * %d + iy) * %d + ix) * %d;\n", IH, IW, CI);
    emit(e, "                        int k = ky * %d + kx;\n", c->kw);
    emit(e, "                        float *dwk = dw + k * %d;\n", CI * CO);
    emit(e, "                        for (int ci = 0; ci < %d; ci++) {\n", CI);
    emit(e, "                            float x = in[at + ci];\n");
    emit(e, "                            for (int co = 0; co < %d; co++)\n", CO);
    emit(e, "                                dwk[ci * %d + co] += x * dz[co];\n", CO);
    emit(e, "                        }\n");
    if (need_din) {
        emit(e, "                        const float *wtk = %s_wt + k * %d;\n", l->ident, CI * CO);
        emit(e, "                        for (int co = 0; co < %d; co++) {\n", CO);
        emit(e, "                            float g = dz[co];\n");
        emit(e, "                            for (int ci = 0; ci < %d; ci++)\n", CI);
        emit(e, "                                din[at + ci] += g * wtk[co * %d + ci];\n", CI);
        emit(e, "                        }\n");
    }
    emit(e, "                    }\n                }\n            }\n}\n");
}

/* The largest block in {8, 6, 4, 2, 1} whose blocks x vectors fit the accumulator budget. */
static int pixel_block(int vectors, int limit)
{
    static const int sizes[] = {8, 6, 4, 2, 1};
    for (int i = 0; i < 5; i++)
        if (sizes[i] * vectors <= MAX_ACC && sizes[i] <= limit)
            return sizes[i];
    return 1;
}

/*
 * Vector load and store of channel vector v (a loop variable) of a row of
 * `count` channels: whole 16-float vectors, and a shorter last one when the
 * count is not a multiple of 16 (constant after unrolling, so no branch).
 */
static void emit_vload(emitter *e, const char *indent, int count, const char *dst, const char *addr)
{
    if (count % VEC == 0)
        emit(e, "%sload16(&%s, %s);\n", indent, dst, addr);
    else if (count < VEC)
        emit(e, "%sload_tail(&%s, %s, %d);\n", indent, dst, addr, count);
    else
        emit(e, "%sif (v < %d)\n%s    load16(&%s, %s);\n%selse\n%s    load_tail(&%s, %s, %d);\n", indent, count / VEC,
             indent, dst, addr, indent, indent, dst, addr, count % VEC);
}

static void emit_vstore(emitter *e, const char *indent, int count, const char *addr, const char *value)
{
    if (count % VEC == 0)
        emit(e, "%sstore16(%s, &%s);\n", indent, addr, value);
    else if (count < VEC)
        emit(e, "%sstore_tail(%s, &%s, %d);\n", indent, addr, value, count);
    else
        emit(e, "%sif (v < %d)\n%s    store16(%s, &%s);\n%selse\n%s    store_tail(%s, &%s, %d);\n", indent, count / VEC,
             indent, addr, value, indent, indent, addr, value, count % VEC);
}

/* Vectors that hold `count` channels. */
static int vectors_for(int count)
{
    return (count + VEC - 1) / VEC;
}

/*
 * conv, register-blocked (valid padding). Forward and input gradient keep a
 * block of NP pixels x (channels / 16) vectors in registers; the weight
 * gradient keeps CIB input channels x (filters / 16) vectors, swept along an
 * output row. Channel counts that are not multiples of 16 use a shorter last
 * vector, with the weights padded to whole vectors once a step.
 */
static void emit_conv_blocked(emitter *e, int i)
{
    const layer *l = &e->m->layers[i];
    const conv_params *c = &l->u.conv;
    const char *id = l->ident;
    int IH = l->in.h, IW = l->in.w, CI = l->in.c, OH = l->out.h, OW = l->out.w, CO = l->out.c;
    int KH = c->kh, KW = c->kw, SH = c->sh, SW = c->sw;
    int V = vectors_for(CO), COP = V * VEC; /* output channels in vectors, padded */
    int padded = CO != COP;
    int NP = pixel_block(V, OW);
    char buf[128], ld[512];

    if (padded) {
        emit(e, "/* w and bias with the output channels padded from %d to %d with zeros, so every vector load is whole. */\n", CO, COP);
        emit(e, "static float %s_wpad[%d * %d] ALIGNED, %s_bpad[%d] ALIGNED;\n\n", id, KH * KW * CI, COP, id, COP);
        emit(e, "static void %s_pad_weights(const float *restrict w, const float *restrict bias)\n{\n", id);
        emit(e, "    for (int r = 0; r < %d; r++)\n        for (int co = 0; co < %d; co++)\n", KH * KW * CI, COP);
        emit(e, "            %s_wpad[r * %d + co] = co < %d ? w[r * %d + co] : 0.0f;\n", id, COP, CO, CO);
        emit(e, "    for (int co = 0; co < %d; co++)\n        %s_bpad[co] = co < %d ? bias[co] : 0.0f;\n}\n\n", COP, id, CO);
    }
    const char *wsrc = padded ? "wp" : "w";
    emit(e, "/* %d output pixels along x at (b, oy, ox0), each %d channels as %d vectors, accumulated in registers. */\n", NP, CO, V);
    emit(e, "static inline __attribute__((always_inline)) void %s_forward_block(float *restrict out, const float *restrict in,\n", id);
    emit(e, "        const float *restrict %s, const float *restrict bias, int b, int oy, int ox0, const int np)\n{\n", wsrc);
    emit(e, "    v16 acc[%d][%d];\n", NP, V);
    emit(e, "    for (int p = 0; p < np; p++)\n        for (int v = 0; v < %d; v++)\n            load16(&acc[p][v], bias + %d * v);\n", V, VEC);
    emit(e, "    for (int ky = 0; ky < %d; ky++)\n        for (int kx = 0; kx < %d; kx++) {\n", KH, KW);
    emit(e, "            const float *px = in + (((size_t)b * %d + oy * %d + ky) * %d + ox0 * %d + kx) * %d;\n", IH, SH, IW, SW, CI);
    emit(e, "            const float *wk = %s + (ky * %d + kx) * %d;\n", wsrc, KW, CI * COP);
    emit(e, "            for (int ci = 0; ci < %d; ci++) {\n", CI);
    emit(e, "                v16 wv[%d];\n                for (int v = 0; v < %d; v++)\n                    load16(&wv[v], wk + ci * %d + %d * v);\n", V, V, COP, VEC);
    emit(e, "                for (int p = 0; p < np; p++) {\n");
    emit(e, "                    float x = px[p * %d + ci];\n", SW * CI);
    emit(e, "                    for (int v = 0; v < %d; v++)\n                        acc[p][v] += x * wv[v];\n                }\n", V);
    emit(e, "            }\n        }\n");
    emit(e, "    float *o = out + (((size_t)b * %d + oy) * %d + ox0) * %d;\n", OH, OW, CO);
    emit(e, "    for (int p = 0; p < np; p++)\n        for (int v = 0; v < %d; v++) {\n", V);
    snprintf(buf, sizeof buf, "o + p * %d + %d * v", CO, VEC);
    emit_vstore(e, "            ", CO, buf, "acc[p][v]");
    emit(e, "        }\n");
    if (l->act != ACT_LINEAR)
        emit(e, "    for (int j = 0; j < np * %d; j++) {\n        float v = o[j];\n        o[j] = %s;\n    }\n", CO,
             act_expr(l->act, buf, sizeof buf, "v"));
    emit(e, "}\n\n");

    emit(e, "static void %s_forward(float *restrict out, const float *restrict in, const float *restrict w,\n", id);
    emit(e, "                            const float *restrict bias, int lo, int hi)\n{\n");
    if (padded) {
        emit(e, "    (void)w;\n    (void)bias;\n");
        emit(e, "    const float *wp = %s_wpad, *bp = %s_bpad; /* padded by %s_pad_weights() at the step's start */\n", id, id, id);
    }
    const char *bsrc = padded ? "bp" : "bias";
    emit(e, "    for (int b = lo; b < hi; b++)\n        for (int oy = 0; oy < %d; oy++) {\n", OH);
    if (OW / NP > 0)
        emit(e, "            for (int ox = 0; ox + %d <= %d; ox += %d)\n                %s_forward_block(out, in, %s, %s, b, oy, ox, %d);\n", NP, OW, NP, id, wsrc, bsrc, NP);
    if (OW % NP)
        emit(e, "            %s_forward_block(out, in, %s, %s, b, oy, %d, %d); /* the row's last %d pixels */\n", id, wsrc, bsrc, OW - OW % NP, OW % NP, OW % NP);
    emit(e, "        }\n}\n\n");

    /*
     * Weight gradient. Within one kernel row ky, the pairs (kx, ci) are one
     * contiguous axis of J = KW x CI in both the input row and dw, so a block
     * of JB of them x V vectors of dw stays in registers while a sweep over
     * output pixels accumulates into it. Wide rows sweep one output row at a
     * time (the row of dz stays in L1); narrow rows would reload the
     * accumulators too often, so they sweep a whole image.
     */
    int J = KW * CI, JB = 1;
    for (int cand = J; cand >= 1; cand--)
        if (J % cand == 0 && cand * V <= MAX_ACC) {
            JB = cand;
            break;
        }
    int whole_image = OW < VEC;
    emit(e, "/* dw += in^T . dz over the slice, %s: %d (kx, cin) pairs x %d vectors in registers. */\n",
         whole_image ? "one image at a time" : "one output row at a time", JB, V);
    emit(e, "static void %s_weight_grad(float *restrict dw, const float *restrict dz, const float *restrict in, int lo, int hi)\n{\n", id);
    emit(e, "    memset(dw, 0, sizeof(float) * %d);\n", KH * KW * CI * CO);
    const char *ind;
    if (whole_image) {
        emit(e, "    for (int b = lo; b < hi; b++)\n");
        emit(e, "        for (int ky = 0; ky < %d; ky++) {\n", KH);
        ind = "            ";
    } else {
        emit(e, "    for (int b = lo; b < hi; b++)\n        for (int oy = 0; oy < %d; oy++) {\n", OH);
        emit(e, "            const float *dzrow = dz + ((size_t)b * %d + oy) * %d;\n", OH, OW * CO);
        emit(e, "            for (int ky = 0; ky < %d; ky++) {\n", KH);
        emit(e, "                const float *inrow = in + ((size_t)b * %d + oy * %d + ky) * %d; /* pair j of pixel ox: inrow[ox * %d + j] */\n", IH, SH, IW * CI, SW * CI);
        ind = "                ";
    }
    emit(e, "%sfloat *dwrow = dw + ky * %d; /* pair j: dwrow[j * %d + co] */\n", ind, J * CO, CO);
    emit(e, "%sfor (int j0 = 0; j0 < %d; j0 += %d) {\n", ind, J, JB);
    emit(e, "%s    v16 acc[%d][%d];\n", ind, JB, V);
    emit(e, "%s    for (int k = 0; k < %d; k++)\n%s        for (int v = 0; v < %d; v++)\n", ind, JB, ind, V);
    snprintf(buf, sizeof buf, "dwrow + (j0 + k) * %d + %d * v", CO, VEC);
    snprintf(ld, sizeof ld, "%s            ", ind);
    emit_vload(e, ld, CO, "acc[k][v]", buf);
    if (whole_image) {
        emit(e, "%s    for (int oy = 0; oy < %d; oy++) {\n", ind, OH);
        emit(e, "%s        const float *dzrow = dz + ((size_t)b * %d + oy) * %d;\n", ind, OH, OW * CO);
        emit(e, "%s        const float *inrow = in + ((size_t)b * %d + oy * %d + ky) * %d;\n", ind, IH, SH, IW * CI);
    }
    const char *in2 = whole_image ? "    " : "";
    emit(e, "%s%s    for (int ox = 0; ox < %d; ox++) {\n", ind, in2, OW);
    emit(e, "%s%s        v16 g[%d];\n%s%s        for (int v = 0; v < %d; v++)\n", ind, in2, V, ind, in2, V);
    emit(e, "%s%s            /* whole vectors even past the last channel: those lanes never reach a stored lane */\n", ind, in2);
    emit(e, "%s%s            load16(&g[v], dzrow + ox * %d + %d * v);\n", ind, in2, CO, VEC);
    emit(e, "%s%s        for (int k = 0; k < %d; k++) {\n", ind, in2, JB);
    emit(e, "%s%s            float x = inrow[ox * %d + j0 + k];\n", ind, in2, SW * CI);
    emit(e, "%s%s            for (int v = 0; v < %d; v++)\n%s%s                acc[k][v] += x * g[v];\n", ind, in2, V, ind, in2);
    emit(e, "%s%s        }\n%s%s    }\n", ind, in2, ind, in2);
    if (whole_image)
        emit(e, "%s    }\n", ind);
    emit(e, "%s    for (int k = 0; k < %d; k++)\n%s        for (int v = 0; v < %d; v++) {\n", ind, JB, ind, V);
    snprintf(buf, sizeof buf, "dwrow + (j0 + k) * %d + %d * v", CO, VEC);
    char ind2[64];
    snprintf(ind2, sizeof ind2, "%s            ", ind);
    emit_vstore(e, ind2, CO, buf, "acc[k][v]");
    emit(e, "%s        }\n%s}\n", ind, ind);
    if (whole_image)
        emit(e, "        }\n}\n\n");
    else
        emit(e, "            }\n        }\n}\n\n");

    int need_din = !e->input_is_x[i];
    if (need_din) {
        int VI = vectors_for(CI), CIP = VI * VEC;
        int NPI = pixel_block(VI, OW);
        emit(e, "/* w with its last two axes swapped, [kh][kw][cout][cin], cin padded to %d: din is a contiguous multiply-add. */\n", CIP);
        emit(e, "static float %s_wt[%d * %d * %d * %d] ALIGNED;\n\n", id, KH, KW, CO, CIP);
        emit(e, "static void %s_transpose_weights(const float *restrict w)\n{\n", id);
        emit(e, "    for (int k = 0; k < %d; k++)\n", KH * KW);
        emit(e, "        for (int co = 0; co < %d; co++)\n", CO);
        emit(e, "            for (int ci = 0; ci < %d; ci++)\n", CIP);
        emit(e, "                %s_wt[(k * %d + co) * %d + ci] = ci < %d ? w[(k * %d + ci) * %d + co] : 0.0f;\n", id, CO, CIP, CI, CI, CO);
        emit(e, "}\n\n");
        emit(e, "/* din at the %d input pixels that tap (ky, kx) of output pixels ox0.., %d vectors of channels each. */\n", NPI, VI);
        emit(e, "static inline __attribute__((always_inline)) void %s_input_grad_block(float *restrict din, const float *restrict dz,\n", id);
        emit(e, "        int b, int oy, int ox0, const int np)\n{\n");
        emit(e, "    const float *g = dz + (((size_t)b * %d + oy) * %d + ox0) * %d;\n", OH, OW, CO);
        emit(e, "    for (int ky = 0; ky < %d; ky++)\n        for (int kx = 0; kx < %d; kx++) {\n", KH, KW);
        emit(e, "            float *dp = din + (((size_t)b * %d + oy * %d + ky) * %d + ox0 * %d + kx) * %d;\n", IH, SH, IW, SW, CI);
        emit(e, "            const float *wtk = %s_wt + (ky * %d + kx) * %d;\n", id, KW, CO * CIP);
        emit(e, "            v16 acc[%d][%d];\n", NPI, VI);
        emit(e, "            for (int p = 0; p < np; p++)\n                for (int v = 0; v < %d; v++)\n", VI);
        snprintf(buf, sizeof buf, "dp + p * %d + %d * v", SW * CI, VEC);
        emit(e, "                    load16(&acc[p][v], %s); /* lanes past the last channel are never stored */\n", buf);
        emit(e, "            for (int co = 0; co < %d; co++) {\n", CO);
        emit(e, "                v16 wv[%d];\n                for (int v = 0; v < %d; v++)\n", VI, VI);
        emit(e, "                    load16(&wv[v], wtk + co * %d + %d * v);\n", CIP, VEC);
        emit(e, "                for (int p = 0; p < np; p++) {\n");
        emit(e, "                    float x = g[p * %d + co];\n", CO);
        emit(e, "                    for (int v = 0; v < %d; v++)\n                        acc[p][v] += x * wv[v];\n                }\n", VI);
        emit(e, "            }\n");
        emit(e, "            for (int p = 0; p < np; p++)\n                for (int v = 0; v < %d; v++) {\n", VI);
        emit_vstore(e, "                    ", CI, buf, "acc[p][v]");
        emit(e, "                }\n        }\n}\n\n");
        emit(e, "static void %s_input_grad(float *restrict din, const float *restrict dz, int lo, int hi)\n{\n", id);
        emit(e, "    memset(din + (size_t)lo * %d, 0, sizeof(float) * (size_t)(hi - lo) * %d);\n", IH * IW * CI, IH * IW * CI);
        emit(e, "    for (int b = lo; b < hi; b++)\n        for (int oy = 0; oy < %d; oy++) {\n", OH);
        if (OW / NPI > 0)
            emit(e, "            for (int ox = 0; ox + %d <= %d; ox += %d)\n                %s_input_grad_block(din, dz, b, oy, ox, %d);\n", NPI, OW, NPI, id, NPI);
        if (OW % NPI)
            emit(e, "            %s_input_grad_block(din, dz, b, oy, %d, %d);\n", id, OW - OW % NPI, OW % NPI);
        emit(e, "        }\n}\n\n");
    }

    emit(e, "/* dout holds dL/d(out) and becomes dL/d(pre-activation); dw, db are this slice's, overwritten. */\n");
    emit(e, "static void %s_backward(float *restrict din, float *restrict dw, float *restrict db, float *restrict dout,\n", id);
    emit(e, "                             const float *restrict out, const float *restrict in, int lo, int hi)\n{\n");
    emit_act_backward(e, l->act, "dout", "out", OH * OW * CO);
    if (l->act == ACT_LINEAR)
        emit(e, "    (void)out;\n");
    emit(e, "    memset(db, 0, sizeof(float) * %d);\n", CO);
    emit(e, "    for (size_t p = (size_t)lo * %d; p < (size_t)hi * %d; p++)\n        for (int co = 0; co < %d; co++)\n            db[co] += dout[p * %d + co];\n", OH * OW, OH * OW, CO, CO);
    emit(e, "    %s_weight_grad(dw, dout, in, lo, hi);\n", id);
    if (need_din)
        emit(e, "    %s_input_grad(din, dout, lo, hi);\n", id);
    else
        emit(e, "    (void)din; /* the network input needs no gradient */\n");
    emit(e, "}\n");
}

/* maxpool / avgpool over valid windows. */
static void emit_pool(emitter *e, int i)
{
    const layer *l = &e->m->layers[i];
    const pool_params *p = &l->u.pool;
    int IH = l->in.h, IW = l->in.w, C = l->in.c, OH = l->out.h, OW = l->out.w;
    int is_max = l->kind == LAYER_MAXPOOL;
    if (is_max) {
        emit(e, "/* argmax: where in `in` each output came from; ties go to the first, as in Keras and PyTorch. */\n");
        emit(e, "static void %s_forward(float *restrict out, int32_t *restrict argmax, const float *restrict in, int lo, int hi)\n{\n", l->ident);
    } else {
        emit(e, "static void %s_forward(float *restrict out, const float *restrict in, int lo, int hi)\n{\n", l->ident);
    }
    /* Channels innermost, so that each window position is one vector compare (or add) per pixel. */
    emit(e, "    for (int b = lo; b < hi; b++)\n");
    emit(e, "        for (int oy = 0; oy < %d; oy++)\n", OH);
    emit(e, "            for (int ox = 0; ox < %d; ox++) {\n", OW);
    emit(e, "                size_t o = (((size_t)b * %d + oy) * %d + ox) * %d;\n", OH, OW, C);
    emit(e, "                for (int c = 0; c < %d; c++)\n", C);
    emit(e, "                    out[o + c] = %s;\n", is_max ? "-INFINITY" : "0.0f");
    emit(e, "                for (int ky = 0; ky < %d; ky++)\n", p->kh);
    emit(e, "                    for (int kx = 0; kx < %d; kx++) {\n", p->kw);
    emit(e, "                        int32_t at = (int32_t)((((size_t)b * %d + oy * %d + ky) * %d + ox * %d + kx) * %d);\n", IH, p->sh, IW, p->sw, C);
    emit(e, "                        for (int c = 0; c < %d; c++) {\n", C);
    if (is_max)
        emit(e, "                            if (in[at + c] > out[o + c]) {\n                                out[o + c] = in[at + c];\n                                argmax[o + c] = at + c;\n                            }\n");
    else
        emit(e, "                            out[o + c] += in[at + c];\n");
    emit(e, "                        }\n                    }\n");
    if (!is_max)
        emit(e, "                for (int c = 0; c < %d; c++)\n                    out[o + c] *= 1.0f / %d;\n", C, p->kh * p->kw);
    emit(e, "            }\n}\n\n");

    if (e->input_is_x[i])
        return;
    if (is_max) {
        emit(e, "static void %s_backward(float *restrict din, const float *restrict dout, const int32_t *restrict argmax, int lo, int hi)\n{\n", l->ident);
        emit(e, "    memset(din + (size_t)lo * %d, 0, sizeof(float) * (size_t)(hi - lo) * %d);\n", IH * IW * C, IH * IW * C);
        emit(e, "    for (size_t o = (size_t)lo * %d; o < (size_t)hi * %d; o++)\n", OH * OW * C, OH * OW * C);
        emit(e, "        din[argmax[o]] += dout[o];\n}\n");
    } else {
        emit(e, "static void %s_backward(float *restrict din, const float *restrict dout, int lo, int hi)\n{\n", l->ident);
        emit(e, "    memset(din + (size_t)lo * %d, 0, sizeof(float) * (size_t)(hi - lo) * %d);\n", IH * IW * C, IH * IW * C);
        emit(e, "    for (int b = lo; b < hi; b++)\n");
        emit(e, "        for (int oy = 0; oy < %d; oy++)\n", OH);
        emit(e, "            for (int ox = 0; ox < %d; ox++)\n", OW);
        emit(e, "                for (int c = 0; c < %d; c++) {\n", C);
        emit(e, "                    float g = dout[(((size_t)b * %d + oy) * %d + ox) * %d + c] * (1.0f / %d);\n", OH, OW, C, p->kh * p->kw);
        emit(e, "                    for (int ky = 0; ky < %d; ky++)\n", p->kh);
        emit(e, "                        for (int kx = 0; kx < %d; kx++)\n", p->kw);
        emit(e, "                            din[(((size_t)b * %d + oy * %d + ky) * %d + ox * %d + kx) * %d + c] += g;\n", IH, p->sh, IW, p->sw, C);
        emit(e, "                }\n}\n");
    }
}

/* dropout: inverted dropout; the mask is a pure function of (step key, element). */
static void emit_dropout(emitter *e, int i)
{
    const layer *l = &e->m->layers[i];
    int S = shape_size(l->out);
    char rate[32], keep_scale[32];
    flt(rate, sizeof rate, l->u.rate);
    flt(keep_scale, sizeof keep_scale, 1.0f / (1.0f - l->u.rate));
    emit(e, "static void %s_forward(float *restrict out, float *restrict mask, const float *restrict in, uint64_t key,\n", l->ident);
    emit(e, "                             int lo, int hi)\n{\n");
    emit(e, "    for (size_t i = (size_t)lo * %d; i < (size_t)hi * %d; i++) {\n", S, S);
    emit(e, "        mask[i] = nnc_hash_uniform(key, i) < %s ? 0.0f : %s; /* keep with p = 1 - rate, scaled by 1/(1 - rate) */\n", rate, keep_scale);
    emit(e, "        out[i] = in[i] * mask[i];\n    }\n}\n\n");
    if (e->input_is_x[i])
        return;
    emit(e, "static void %s_backward(float *restrict din, const float *restrict dout, const float *restrict mask, int lo, int hi)\n{\n", l->ident);
    emit(e, "    for (size_t i = (size_t)lo * %d; i < (size_t)hi * %d; i++)\n        din[i] = dout[i] * mask[i];\n}\n", S, S);
}

/* A standalone activation layer. */
static void emit_activation(emitter *e, int i)
{
    const layer *l = &e->m->layers[i];
    int S = shape_size(l->out);
    char buf[128];
    emit(e, "static void %s_forward(float *restrict out, const float *restrict in, int lo, int hi)\n{\n", l->ident);
    if (l->act == ACT_SOFTMAX) {
        emit(e, "    memcpy(out + (size_t)lo * %d, in + (size_t)lo * %d, sizeof(float) * (size_t)(hi - lo) * %d);\n", S, S, S);
        emit_softmax_rows(e, "out", S, "    ");
    } else {
        emit(e, "    for (size_t i = (size_t)lo * %d; i < (size_t)hi * %d; i++) {\n", S, S);
        emit(e, "        float v = in[i];\n        out[i] = %s;\n    }\n", act_expr(l->act, buf, sizeof buf, "v"));
    }
    emit(e, "}\n\n");
    if (e->input_is_x[i])
        return;
    emit(e, "/* din = dL/d(in); dout is used as scratch. */\n");
    emit(e, "static void %s_backward(float *restrict din, float *restrict dout, const float *restrict out, int lo, int hi)\n{\n", l->ident);
    if (fused_softmax_loss(e, i))
        emit(e, "    (void)out; /* softmax is fused with the crossentropy loss: dout is already dL/dz */\n");
    else if (l->act == ACT_LINEAR)
        emit(e, "    (void)out;\n");
    else
        emit_act_backward(e, l->act, "dout", "out", S);
    emit(e, "    memcpy(din + (size_t)lo * %d, dout + (size_t)lo * %d, sizeof(float) * (size_t)(hi - lo) * %d);\n}\n", S, S, S);
}

/*
 * batchnorm over the last axis. Training mode runs in two phases so that
 * every slice sees the statistics of the whole batch: per-slice sums,
 * combined in slice order by one thread, then the per-slice normalization.
 */
static void emit_batchnorm(emitter *e, int i)
{
    const layer *l = &e->m->layers[i];
    int C = l->out.c, P = l->out.h * l->out.w; /* channels, pixels per sample */
    char eps[32], mom[32];
    flt(eps, sizeof eps, l->u.bn.eps);
    flt(mom, sizeof mom, l->u.bn.momentum);
    const char *id = l->ident;
    emit(e, "static double %s_partial[CHUNKS][2][%d]; /* per-slice channel sums of x and of x^2 */\n", id, C);
    emit(e, "static float %s_mean[%d], %s_inv_std[%d]; /* this batch's statistics */\n\n", id, C, id, C);

    emit(e, "static void %s_sums(double *restrict sum, double *restrict sum_sq, const float *restrict in, int lo, int hi)\n{\n", id);
    emit(e, "    for (int c = 0; c < %d; c++)\n        sum[c] = sum_sq[c] = 0.0;\n", C);
    emit(e, "    for (size_t p = (size_t)lo * %d; p < (size_t)hi * %d; p++)\n", P, P);
    emit(e, "        for (int c = 0; c < %d; c++) {\n", C);
    emit(e, "            double v = in[p * %d + c];\n", C);
    emit(e, "            sum[c] += v;\n            sum_sq[c] += v * v;\n        }\n}\n\n");

    emit(e, "/*\n * One thread: the batch's mean and variance from the slices' sums, added in slice order\n");
    emit(e, " * (double precision makes E[x^2] - E[x]^2 safe here); then the running statistics.\n */\n");
    emit(e, "static void %s_combine(float *restrict running, int n)\n{\n", id);
    emit(e, "    double count = (double)n * %d;\n", P);
    emit(e, "    for (int c = 0; c < %d; c++) {\n", C);
    emit(e, "        double sum = 0.0, sum_sq = 0.0;\n");
    emit(e, "        for (int k = 0; k < CHUNKS; k++) {\n            sum += %s_partial[k][0][c];\n            sum_sq += %s_partial[k][1][c];\n        }\n", id, id);
    emit(e, "        double mean = sum / count;\n");
    emit(e, "        double var = sum_sq / count - mean * mean;\n");
    emit(e, "        var = var > 0.0 ? var : 0.0;\n");
    emit(e, "        %s_mean[c] = (float)mean;\n", id);
    emit(e, "        %s_inv_std[c] = (float)(1.0 / sqrt(var + %s));\n", id, eps);
    emit(e, "        /* running mean and (unbiased) variance, with momentum %s as Keras */\n", mom);
    emit(e, "        double unbiased = count > 1 ? var * count / (count - 1) : var;\n");
    emit(e, "        running[c] = %s * running[c] + (1.0f - %s) * (float)mean;\n", mom, mom);
    emit(e, "        running[%d + c] = %s * running[%d + c] + (1.0f - %s) * (float)unbiased;\n", C, mom, C, mom);
    emit(e, "    }\n}\n\n");

    emit(e, "/* The normalized input. Backward recomputes it from the input, which is kept anyway,\n");
    emit(e, "   rather than storing a copy of the whole activation. */\n");
    emit(e, "static inline float %s_xhat(const float *restrict in, size_t at, int c)\n{\n", id);
    emit(e, "    return (in[at] - %s_mean[c]) * %s_inv_std[c];\n}\n\n", id, id);

    emit(e, "static void %s_normalize(float *restrict out, const float *restrict in, const float *restrict gamma,\n", id);
    emit(e, "                             const float *restrict beta, int lo, int hi)\n{\n");
    emit(e, "    for (size_t p = (size_t)lo * %d; p < (size_t)hi * %d; p++)\n", P, P);
    emit(e, "        for (int c = 0; c < %d; c++) {\n", C);
    emit(e, "            size_t at = p * %d + c;\n", C);
    emit(e, "            out[at] = gamma[c] * %s_xhat(in, at, c) + beta[c];\n        }\n}\n\n", id);

    emit(e, "/* Inference: the running statistics instead of the batch's. */\n");
    emit(e, "static void %s_forward_infer(float *restrict out, const float *restrict in, const float *restrict gamma,\n", id);
    emit(e, "                             const float *restrict beta, const float *restrict running, int lo, int hi)\n{\n");
    emit(e, "    float scale[%d], shift[%d];\n", C, C);
    emit(e, "    for (int c = 0; c < %d; c++) {\n", C);
    emit(e, "        scale[c] = gamma[c] / sqrtf(running[%d + c] + %s);\n", C, eps);
    emit(e, "        shift[c] = beta[c] - running[c] * scale[c];\n    }\n");
    emit(e, "    for (size_t p = (size_t)lo * %d; p < (size_t)hi * %d; p++)\n", P, P);
    emit(e, "        for (int c = 0; c < %d; c++)\n", C);
    emit(e, "            out[p * %d + c] = in[p * %d + c] * scale[c] + shift[c];\n}\n\n", C, C);

    emit(e, "/* This slice's dgamma = sum(dy * xhat), dbeta = sum(dy). */\n");
    emit(e, "static void %s_backward_params(float *restrict dgamma, float *restrict dbeta, const float *restrict dout,\n", id);
    emit(e, "                                const float *restrict in, int lo, int hi)\n{\n");
    emit(e, "    double sg[%d] = {0}, sb[%d] = {0};\n", C, C);
    emit(e, "    for (size_t p = (size_t)lo * %d; p < (size_t)hi * %d; p++)\n", P, P);
    emit(e, "        for (int c = 0; c < %d; c++) {\n", C);
    emit(e, "            size_t at = p * %d + c;\n", C);
    emit(e, "            sg[c] += (double)dout[at] * %s_xhat(in, at, c);\n            sb[c] += dout[at];\n        }\n", id);
    emit(e, "    for (int c = 0; c < %d; c++) {\n        dgamma[c] = (float)sg[c];\n        dbeta[c] = (float)sb[c];\n    }\n}\n\n", C);

    if (e->input_is_x[i])
        return;
    emit(e, "/* din = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)), the means over the whole batch. */\n");
    emit(e, "static void %s_backward_input(float *restrict din, const float *restrict dout, const float *restrict in,\n", id);
    emit(e, "                               const float *restrict gamma, const float *restrict dgamma_total,\n");
    emit(e, "                               const float *restrict dbeta_total, int n, int lo, int hi)\n{\n");
    emit(e, "    float inv_count = 1.0f / ((float)n * %d);\n", P);
    emit(e, "    for (size_t p = (size_t)lo * %d; p < (size_t)hi * %d; p++)\n", P, P);
    emit(e, "        for (int c = 0; c < %d; c++) {\n", C);
    emit(e, "            size_t at = p * %d + c;\n", C);
    emit(e, "            din[at] = gamma[c] * %s_inv_std[c] *\n", id);
    emit(e, "                      (dout[at] - dbeta_total[c] * inv_count - %s_xhat(in, at, c) * dgamma_total[c] * inv_count);\n", id);
    emit(e, "        }\n}\n");
}

/* ------------------------------------------------------------------------ */
/* The loss                                                                 */
/* ------------------------------------------------------------------------ */

static void emit_loss(emitter *e)
{
    const model *m = e->m;
    int K = m->n_classes;
    const char *probs_comment = "probs: the last layer's output";
    emit(e, "\n/* ---- loss: %s ---- */\n", m->recipe.loss == NNC_LOSS_MSE ? "mean squared error" : "crossentropy");
    emit(e, "/* %s; writes dL/d(last output) for the slice, scaled by 1/n for the batch mean. */\n", probs_comment);
    emit(e, "static void loss_forward_backward(float *restrict dprobs, double *loss, int *correct, const float *restrict probs,\n");
    emit(e, "                                  const uint8_t *restrict labels, int n, int lo, int hi)\n{\n");
    emit(e, "    double total = 0.0;\n    int right = 0;\n");
    emit(e, "    for (int b = lo; b < hi; b++) {\n");
    emit(e, "        const float *p = probs + (size_t)b * %d;\n", K);
    emit(e, "        float *d = dprobs + (size_t)b * %d;\n", K);
    emit(e, "        int y = labels[b], guess = 0;\n");
    emit(e, "        for (int j = 1; j < %d; j++)\n            guess = p[j] > p[guess] ? j : guess;\n", K);
    emit(e, "        right += guess == y;\n");
    if (m->recipe.loss == NNC_LOSS_CROSSENTROPY) {
        emit(e, "        /* -log p[y], p clipped to [1e-7, 1 - 1e-7] as Keras does */\n");
        emit(e, "        float py = p[y] < 1e-7f ? 1e-7f : p[y] > 1.0f - 1e-7f ? 1.0f - 1e-7f : p[y];\n");
        emit(e, "        total -= log((double)py);\n");
        emit(e, "        /* softmax + crossentropy: dL/dz = (p - onehot(y)) / n */\n");
        emit(e, "        for (int j = 0; j < %d; j++)\n            d[j] = (p[j] - (j == y ? 1.0f : 0.0f)) / (float)n;\n", K);
    } else {
        emit(e, "        /* mean over classes of (p - onehot(y))^2 */\n");
        emit(e, "        double sq = 0.0;\n");
        emit(e, "        for (int j = 0; j < %d; j++) {\n", K);
        emit(e, "            float diff = p[j] - (j == y ? 1.0f : 0.0f);\n");
        emit(e, "            sq += (double)diff * diff;\n");
        emit(e, "            d[j] = 2.0f * diff / (%d.0f * (float)n);\n        }\n", K);
        emit(e, "        total += sq / %d.0;\n", K);
    }
    emit(e, "    }\n    *loss = total;\n    *correct = right;\n}\n");
}

/* ------------------------------------------------------------------------ */
/* Buffers, parameters, init                                                */
/* ------------------------------------------------------------------------ */

static void emit_parameter_offsets(emitter *e)
{
    const model *m = e->m;
    char up[64];
    emit(e, "\n/* ---- parameters: offsets into the flat buffer (gradients and optimizer state share the layout) ---- */\n");
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (l->n_weights == 0)
            continue;
        upper(up, l->ident, sizeof up);
        if (l->kind == LAYER_DENSE) {
            emit(e, "#define %s_W %zu /* [%d][%d] */\n", up, l->param_offset, shape_size(l->in), l->u.units);
            emit(e, "#define %s_B %zu /* [%d] */\n", up, l->param_offset + l->n_weights, l->u.units);
        } else if (l->kind == LAYER_CONV) {
            emit(e, "#define %s_W %zu /* [%d][%d][%d][%d] */\n", up, l->param_offset, l->u.conv.kh, l->u.conv.kw, l->in.c,
                 l->u.conv.filters);
            emit(e, "#define %s_B %zu /* [%d] */\n", up, l->param_offset + l->n_weights, l->u.conv.filters);
        } else if (l->kind == LAYER_BATCHNORM) {
            emit(e, "#define %s_GAMMA %zu /* [%d] */\n", up, l->param_offset, l->out.c);
            emit(e, "#define %s_BETA %zu /* [%d] */\n", up, l->param_offset + l->n_weights, l->out.c);
            emit(e, "#define %s_RUNNING %zu /* state: mean [%d], then variance [%d] */\n", up, l->state_offset, l->out.c,
                 l->out.c);
        }
    }
}

/* A table of the parameter tensors: names for diagnostics, offsets for tests. */
static void emit_tensor_table(emitter *e)
{
    const model *m = e->m;
    char up[64];
    emit(e, "\n/* ---- every parameter tensor, by name (diagnostics and gradient checks) ---- */\n");
    emit(e, "static const nnc_tensor_info param_tensors[] = {\n");
    int count = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (l->n_weights == 0)
            continue;
        upper(up, l->ident, sizeof up);
        int bn = l->kind == LAYER_BATCHNORM;
        emit(e, "    {\"%s.%s\", %s_%s, %zu},\n", l->name, bn ? "gamma" : "kernel", up, bn ? "GAMMA" : "W", l->n_weights);
        emit(e, "    {\"%s.%s\", %s_%s, %zu},\n", l->name, bn ? "beta" : "bias", up, bn ? "BETA" : "B", l->n_bias);
        count += 2;
    }
    if (count == 0)
        emit(e, "    {\"(none)\", 0, 0},\n");
    emit(e, "};\n#define N_TENSORS %d\n", count);
}

static void emit_buffers(emitter *e)
{
    const model *m = e->m;
    char sc[64];
    emit(e, "\n/* ---- activations and their gradients, one slot per sample of the largest batch ---- */\n");
    emit(e, "/* (+ VEC: vector kernels may read one vector past a row's last channel, never using those lanes) */\n");
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (choose_kernel(l) == KERNEL_NONE)
            continue;
        int S = shape_size(l->out);
        shape_comment(sc, sizeof sc, l->out);
        emit(e, "static float %s_out[B * %d + VEC] ALIGNED; /* %s */\n", l->ident, S, sc);
        if (l->kind == LAYER_MAXPOOL)
            emit(e, "static int32_t %s_argmax[B * %d]; /* index into the input of each output's maximum */\n", l->ident, S);
        if (l->kind == LAYER_DROPOUT)
            emit(e, "static float %s_mask[B * %d]; /* 0 or 1/(1 - rate) */\n", l->ident, S);
    }
    int largest = 0, computing = 0;
    for (int i = 0; i < m->n_layers; i++)
        if (choose_kernel(&m->layers[i]) != KERNEL_NONE) {
            computing++;
            if (shape_size(m->layers[i].out) > largest)
                largest = shape_size(m->layers[i].out);
        }
    emit(e, "\n/*\n * Gradients of the activations, dL/d(out). Backward reads a layer's from one of these and\n");
    emit(e, " * writes its input's into the other, so the two take turns down the network. The slices run\n");
    emit(e, " * several layers without waiting for each other, so each slice keeps to its own region:\n");
    emit(e, " * GRAD(buf, size) is where sample b's gradient of `size` floats starts, minus b * size, for b\n");
    emit(e, " * in this slice [lo, hi): regions [lo * LARGEST, hi * LARGEST) never overlap.\n */\n");
    emit(e, "#define LARGEST %d /* floats in the largest activation of one sample */\n", largest);
    emit(e, "#define GRAD(buf, size) ((buf) + (size_t)lo * (LARGEST - (size)))\n");
    if (computing > 1)
        emit(e, "static float grad_a[B * LARGEST + VEC] ALIGNED, grad_b[B * LARGEST + VEC] ALIGNED;\n");
    else
        emit(e, "static float grad_a[B * LARGEST + VEC] ALIGNED;\n");
    emit(e, "\n/* Per-slice weight gradients, summed in slice order after backward. */\n");
    emit(e, "static float slice_grads[CHUNKS][N_PARAMS] ALIGNED;\n");
}

static void emit_init(emitter *e)
{
    const model *m = e->m;
    char up[64];
    emit(e, "\n/* ---- initial parameters, drawn in layer order from the seeded RNG ---- */\n");
    emit(e, "static void init(float *params, float *state, nnc_rng *rng)\n{\n");
    if (m->n_state == 0)
        emit(e, "    (void)state;\n");
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (l->n_weights == 0)
            continue;
        char kernel_init[32], bias_init[32];
        upper(up, l->ident, sizeof up);
        upper(kernel_init, init_name(l->kernel_init), sizeof kernel_init);
        upper(bias_init, init_name(l->bias_init), sizeof bias_init);
        const char *w = l->kind == LAYER_BATCHNORM ? "GAMMA" : "W";
        const char *bb = l->kind == LAYER_BATCHNORM ? "BETA" : "B";
        emit(e, "    /* %s: `%s` */\n", l->name, l->source);
        emit(e, "    nnc_init_fill(params + %s_%s, %zu, NNC_INIT_%s, %d, %d, rng);\n", up, w, l->n_weights, kernel_init,
             l->fan_in, l->fan_out);
        emit(e, "    nnc_init_fill(params + %s_%s, %zu, NNC_INIT_%s, %d, %d, rng);\n", up, bb, l->n_bias, bias_init,
             l->fan_in, l->fan_out);
        if (l->kind == LAYER_BATCHNORM) {
            emit(e, "    for (int c = 0; c < %d; c++) {\n", l->out.c);
            emit(e, "        state[%s_RUNNING + c] = 0.0f;      /* running mean */\n", up);
            emit(e, "        state[%s_RUNNING + %d + c] = 1.0f; /* running variance */\n    }\n", up, l->out.c);
        }
    }
    emit(e, "}\n");
}

/* ------------------------------------------------------------------------ */
/* The step                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * The step is a sequence of slice loops. Layers run back to back inside one
 * loop (each slice through several layers, no waiting), and a loop closes only
 * where the batch must meet: batchnorm's statistics and the gradient sum.
 */
static void slice_loop_begin(emitter *e)
{
    if (e->loop_open)
        return;
    emit(e, "\n#pragma omp for schedule(static)\n");
    emit(e, "        for (int c = 0; c < CHUNKS; c++) {\n");
    emit(e, "            int lo = LO(c), hi = HI(c);\n");
    e->loop_open = 1;
}

static void slice_loop_end(emitter *e)
{
    if (!e->loop_open)
        return;
    emit(e, "        }\n");
    e->loop_open = 0;
}

/* A statement that one thread runs while the others wait. */
static void emit_single(emitter *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit_single(emitter *e, const char *fmt, ...)
{
    slice_loop_end(e);
    emit(e, "#pragma omp single\n        ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(e->out, fmt, ap);
    va_end(ap);
    emit(e, "\n");
}

static void emit_layer_comment(emitter *e, const layer *l)
{
    if (l->line > 0)
        emit(e, "            /* %s: `%s` (line %d) */\n", l->name, l->source, l->line);
    else
        emit(e, "            /* %s: `%s` */\n", l->name, l->source);
}

static void emit_forward_call(emitter *e, int i, int training)
{
    const layer *l = &e->m->layers[i];
    char up[64];
    upper(up, l->ident, sizeof up);
    const char *in = i == 0 ? "x" : e->out_name[i - 1];
    const char *id = l->ident;
    int S = shape_size(l->out);
    if (l->kind == LAYER_FLATTEN) {
        slice_loop_begin(e);
        emit(e, "            /* %s: `%s` is a view: NHWC rows are already flat */\n", l->name, l->source);
        return;
    }
    if (l->kind == LAYER_BATCHNORM && training) {
        slice_loop_begin(e);
        emit_layer_comment(e, l);
        emit(e, "            %s_sums(%s_partial[c][0], %s_partial[c][1], %s, lo, hi);\n", id, id, id, in);
        emit_single(e, "%s_combine(state + %s_RUNNING, n);", id, up);
        slice_loop_begin(e);
        emit(e, "            %s_normalize(%s_out, %s, params + %s_GAMMA, params + %s_BETA, lo, hi);\n", id, id, in, up,
             up);
        return;
    }
    slice_loop_begin(e);
    emit_layer_comment(e, l);
    switch (l->kind) {
    case LAYER_DENSE:
    case LAYER_CONV:
        emit(e, "            %s_forward(%s_out, %s, params + %s_W, params + %s_B, lo, hi);\n", id, id, in, up, up);
        break;
    case LAYER_MAXPOOL:
        emit(e, "            %s_forward(%s_out, %s_argmax, %s, lo, hi);\n", id, id, id, in);
        break;
    case LAYER_AVGPOOL:
    case LAYER_ACTIVATION:
        emit(e, "            %s_forward(%s_out, %s, lo, hi);\n", id, id, in);
        break;
    case LAYER_DROPOUT:
        if (training)
            emit(e, "            %s_forward(%s_out, %s_mask, %s, dropout_key(ctx, %d), lo, hi);\n", id, id, id, in, i);
        else
            emit(e, "            memcpy(%s_out + (size_t)lo * %d, %s + (size_t)lo * %d, sizeof(float) * (size_t)(hi - lo) * %d); /* off at inference */\n",
                 id, S, in, S, S);
        break;
    case LAYER_BATCHNORM:
        emit(e, "            %s_forward_infer(%s_out, %s, params + %s_GAMMA, params + %s_BETA, state + %s_RUNNING, lo, hi);\n",
             id, id, in, up, up, up);
        break;
    case LAYER_FLATTEN:
        break;
    }
}

static void emit_backward_call(emitter *e, int i)
{
    const layer *l = &e->m->layers[i];
    char up[64];
    upper(up, l->ident, sizeof up);
    const char *id = l->ident;
    int first = e->input_is_x[i];
    const char *in = i == 0 || first ? "x" : e->out_name[i - 1];
    const char *din = first ? "NULL" : e->dout_name[i - 1];
    const char *dout = e->dout_name[i];
    if (l->kind == LAYER_FLATTEN)
        return;
    /* Layers that only pass a gradient on have nothing to do at the network's input. */
    if (first && (l->kind == LAYER_MAXPOOL || l->kind == LAYER_AVGPOOL || l->kind == LAYER_DROPOUT ||
                  l->kind == LAYER_ACTIVATION))
        return;
    slice_loop_begin(e);
    emit_layer_comment(e, l);
    switch (l->kind) {
    case LAYER_DENSE:
        emit(e, "            %s_backward(%s, slice_grads[c] + %s_W, slice_grads[c] + %s_B, %s, %s_out, %s,\n"
                "                            params + %s_W, lo, hi);\n", id, din, up, up, dout, id, in, up);
        break;
    case LAYER_CONV:
        emit(e, "            %s_backward(%s, slice_grads[c] + %s_W, slice_grads[c] + %s_B, %s, %s_out, %s, lo, hi);\n",
             id, din, up, up, dout, id, in);
        break;
    case LAYER_MAXPOOL:
        emit(e, "            %s_backward(%s, %s, %s_argmax, lo, hi);\n", id, din, dout, id);
        break;
    case LAYER_AVGPOOL:
        emit(e, "            %s_backward(%s, %s, lo, hi);\n", id, din, dout);
        break;
    case LAYER_DROPOUT:
        emit(e, "            %s_backward(%s, %s, %s_mask, lo, hi);\n", id, din, dout, id);
        break;
    case LAYER_ACTIVATION:
        emit(e, "            %s_backward(%s, %s, %s_out, lo, hi);\n", id, din, dout, id);
        break;
    case LAYER_BATCHNORM:
        emit(e, "            %s_backward_params(slice_grads[c] + %s_GAMMA, slice_grads[c] + %s_BETA, %s, %s, lo, hi);\n", id,
             up, up, dout, in);
        if (first)
            break;
        emit_single(e, "sum_slices(%s_totals, %s_GAMMA, %d);", id, up, 2 * l->out.c);
        slice_loop_begin(e);
        emit(e, "            %s_backward_input(%s, %s, %s, params + %s_GAMMA, %s_totals, %s_totals + %d, n, lo, hi);\n", id,
             din, dout, in, up, id, id, l->out.c);
        break;
    case LAYER_FLATTEN:
        break;
    }
}

static void emit_penalties(emitter *e)
{
    const model *m = e->m;
    char up[64], l1[32], l2[32];
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (l->l1 == 0 && l->l2 == 0)
            continue;
        upper(up, l->ident, sizeof up);
        emit(e, "\n        /* %s: penalties on the kernel, l1=%g l2=%g: d/dw of l1*|w| + l2*w^2 */\n", l->name, l->l1, l->l2);
        emit(e, "#pragma omp for schedule(static)\n");
        emit(e, "        for (size_t i = %s_W; i < %s_W + %zu; i++) {\n", up, up, l->n_weights);
        emit(e, "            float w = params[i];\n");
        if (l->l1 != 0)
            emit(e, "            grads[i] += %s * (w > 0.0f ? 1.0f : w < 0.0f ? -1.0f : 0.0f);\n", flt(l1, sizeof l1, l->l1));
        if (l->l2 != 0)
            emit(e, "            grads[i] += 2.0f * %s * w;\n", flt(l2, sizeof l2, l->l2));
        emit(e, "        }\n");
    }
}

/* Is this conv's weight copy padded to whole vectors of output channels? */
static int conv_weights_padded(const layer *l)
{
    return l->kind == LAYER_CONV && choose_kernel(l) == KERNEL_BLOCKED && l->u.conv.filters % VEC != 0;
}

/*
 * Once a step, before any slice starts: the weight layouts the kernels read
 * (padded copies for the forward pass; transposed copies for the backward).
 */
static void emit_weight_layouts(emitter *e, int training)
{
    const model *m = e->m;
    int any = 0;
    char up[64];
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        int pad = conv_weights_padded(l);
        int transpose = training && l->kind == LAYER_CONV && !e->input_is_x[i];
        if (!pad && !transpose)
            continue;
        if (!any++)
            emit(e, "        /* weights in the layouts the kernels read, once a step */\n#pragma omp single\n        {\n");
        upper(up, l->ident, sizeof up);
        if (pad)
            emit(e, "            %s_pad_weights(params + %s_W, params + %s_B);\n", l->ident, up, up);
        if (transpose)
            emit(e, "            %s_transpose_weights(params + %s_W);\n", l->ident, up);
    }
    if (any)
        emit(e, "        }\n");
}

static void emit_train_batch(emitter *e)
{
    const model *m = e->m;
    int has_bn_backward = 0;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == LAYER_BATCHNORM && !e->input_is_x[i]) {
            has_bn_backward = 1;
            emit(e, "static float %s_totals[%d]; /* dgamma, dbeta summed over the slices */\n", m->layers[i].ident,
                 2 * m->layers[i].out.c);
        }
    if (has_bn_backward) {
        emit(e, "\n/* total[j] = the slices' gradients at offset + j, summed in slice order. */\n");
        emit(e, "static void sum_slices(float *total, size_t offset, int count)\n{\n");
        emit(e, "    for (int j = 0; j < count; j++) {\n        float sum = slice_grads[0][offset + j];\n");
        emit(e, "        for (int c = 1; c < CHUNKS; c++)\n            sum += slice_grads[c][offset + j];\n");
        emit(e, "        total[j] = sum;\n    }\n}\n");
    }
    if (m->dropout_keys > 0) {
        emit(e, "\n/* Each dropout layer gets its own mask key from the step's. */\n");
        emit(e, "static uint64_t dropout_key(const nnc_step_ctx *ctx, int layer)\n{\n");
        emit(e, "    return ctx->dropout_key ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(layer + 1));\n}\n");
    }
    emit(e, "\n/* ---- one training step: forward (training mode), loss, backward, gradient sum ---- */\n");
    emit(e, "static nnc_batch_stats train_batch(const nnc_step_ctx *ctx, const float *x, const uint8_t *labels, int n,\n");
    emit(e, "                                   const float *params, float *grads, float *state)\n{\n");
    if (m->n_state == 0)
        emit(e, "    (void)state;\n");
    emit(e, "    double loss[CHUNKS];\n    int correct[CHUNKS];\n");
    emit(e, "#pragma omp parallel num_threads(ctx->threads)\n    {\n");
    emit_weight_layouts(e, 1);
    for (int i = 0; i < m->n_layers; i++)
        emit_forward_call(e, i, 1);
    slice_loop_begin(e);
    emit(e, "            /* loss */\n");
    emit(e, "            loss_forward_backward(%s, &loss[c], &correct[c], %s, labels, n, lo, hi);\n",
         e->dout_name[m->n_layers - 1], e->out_name[m->n_layers - 1]);
    for (int i = m->n_layers - 1; i >= 0; i--)
        emit_backward_call(e, i);
    slice_loop_end(e);
    emit(e, "\n        /* the batch's gradient: the slices' sums, in slice order */\n");
    emit(e, "#pragma omp for schedule(static)\n");
    emit(e, "        for (size_t i = 0; i < N_PARAMS; i++) {\n");
    emit(e, "            float sum = slice_grads[0][i];\n");
    emit(e, "            for (int c = 1; c < CHUNKS; c++)\n                sum += slice_grads[c][i];\n");
    emit(e, "            grads[i] = sum;\n        }\n");
    emit_penalties(e);
    emit(e, "    }\n");
    emit(e, "    nnc_batch_stats stats = {0.0, 0};\n");
    emit(e, "    for (int c = 0; c < CHUNKS; c++) {\n        stats.loss_sum += loss[c];\n        stats.correct += correct[c];\n    }\n");
    emit(e, "    return stats;\n}\n");
}

static void emit_infer_batch(emitter *e)
{
    const model *m = e->m;
    int K = m->n_classes;
    emit(e, "\n/* ---- inference: batchnorm uses its running statistics, dropout is off ---- */\n");
    emit(e, "static void infer_batch(const nnc_step_ctx *ctx, const float *x, int n, const float *params, const float *state,\n");
    emit(e, "                        float *probs)\n{\n");
    if (m->n_state == 0)
        emit(e, "    (void)state;\n");
    emit(e, "#pragma omp parallel num_threads(ctx->threads)\n    {\n");
    emit_weight_layouts(e, 0);
    for (int i = 0; i < m->n_layers; i++)
        emit_forward_call(e, i, 0);
    slice_loop_end(e);
    emit(e, "    }\n");
    emit(e, "    memcpy(probs, %s, sizeof(float) * (size_t)n * %d);\n}\n", e->out_name[m->n_layers - 1], K);
}

/* The first layer, in forward order, whose output holds a NaN or an infinity. */
static void emit_first_nonfinite(emitter *e)
{
    const model *m = e->m;
    emit(e, "\n/* ---- diagnostics: the first layer whose output went non-finite in the last step ---- */\n");
    emit(e, "static const char *first_nonfinite(int n)\n{\n");
    int any = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (choose_kernel(l) == KERNEL_NONE)
            continue;
        any = 1;
        emit(e, "    if (!nnc_all_finite(%s_out, (size_t)n * %d))\n", l->ident, shape_size(l->out));
        if (l->line > 0)
            emit(e, "        return \"%s (line %d, `%s`)\";\n", l->name, l->line, l->source);
        else
            emit(e, "        return \"%s\";\n", l->name);
    }
    if (!any)
        emit(e, "    (void)n;\n");
    emit(e, "    return NULL;\n}\n");
}

/* ------------------------------------------------------------------------ */
/* The model description and main()                                        */
/* ------------------------------------------------------------------------ */

static const char *prep_enum(nnc_prep_kind p)
{
    switch (p) {
    case NNC_PREP_SCALE: return "NNC_PREP_SCALE";
    case NNC_PREP_NORMALIZE: return "NNC_PREP_NORMALIZE";
    default: return "NNC_PREP_NONE";
    }
}

static const char *opt_enum(nnc_optimizer_kind k)
{
    switch (k) {
    case NNC_OPT_ADAM: return "NNC_OPT_ADAM";
    case NNC_OPT_RMSPROP: return "NNC_OPT_RMSPROP";
    default: return "NNC_OPT_SGD";
    }
}

static void emit_first_nonfinite(emitter *e);

/* Training FLOP of one full batch: forward, and backward at twice the forward. */
static double step_mflop(const model *m)
{
    double macs = 0;
    for (int i = 0; i < m->n_layers; i++)
        macs += layer_forward_macs(&m->layers[i]);
    return 3.0 * 2.0 * macs * m->recipe.batch / 1e6;
}

/* Below ~50 MFLOP a step is over in tens of microseconds: a second thread costs more in wake-ups than it saves. */
static int default_threads(const model *m)
{
    return step_mflop(m) < 50.0 ? 1 : 2;
}

static void emit_model_description(emitter *e)
{
    const model *m = e->m;
    const nnc_recipe *r = &m->recipe;
    const nnc_optimizer_cfg *o = &r->optimizer;
    char a[32], b[32], c[32], d[32], f[32], g[32];
    emit(e, "\n#ifndef NNC_BARE /* tests include this file bare, in double precision */");
    emit_first_nonfinite(e);
    if (m->n_phases > 0) {
        emit(e, "\n/* schedule: (epochs, learning rate) */\n");
        emit(e, "static const nnc_schedule_phase schedule[%d] = {", m->n_phases);
        for (int i = 0; i < m->n_phases; i++)
            emit(e, "%s{%d, %s}", i ? ", " : "", m->phases[i].epochs, flt(a, sizeof a, m->phases[i].lr));
        emit(e, "};\n");
    }
    char *summary = NULL;
    size_t summary_len = 0;
    FILE *mem = open_memstream(&summary, &summary_len);
    if (mem) {
        nnc_print_summary(mem, m);
        fclose(mem);
    }
    emit(e, "\nstatic const char summary[] =\n");
    emit_string_literal(e, summary ? summary : "");
    emit(e, ";\n");
    free(summary);

    emit(e, "\nconst nnc_model nnc_model_%s = {\n", m->name);
    emit(e, "    .name = \"%s\",\n    .source = \"%s\",\n", m->name, m->source_path);
    emit(e, "    .in_h = IN_H,\n    .in_w = IN_W,\n    .in_c = IN_C,\n    .n_classes = N_CLASSES,\n");
    emit(e, "    .n_params = N_PARAMS,\n    .n_state = N_STATE,\n");
    emit(e, "    .signature = 0x%016llxULL,\n", model_signature(m));
    emit(e, "    .max_batch = B,\n");
    emit(e, "    .default_threads = %d, /* %.0f MFLOP a training step */\n", default_threads(m), step_mflop(m));
    emit(e, "    .prep = %s,\n    .prep_scale = %s,\n", prep_enum(m->prep), flt(a, sizeof a, m->prep_scale));
    emit(e, "    .recipe = {\n");
    emit(e, "        .loss = %s,\n", r->loss == NNC_LOSS_MSE ? "NNC_LOSS_MSE" : "NNC_LOSS_CROSSENTROPY");
    emit(e, "        .optimizer = {.kind = %s, .lr = %s, .momentum = %s, .nesterov = %d, .beta1 = %s, .beta2 = %s,\n"
            "                      .rho = %s, .eps = %s},\n",
         opt_enum(o->kind), flt(a, sizeof a, o->lr), flt(b, sizeof b, o->momentum), o->nesterov,
         flt(c, sizeof c, o->beta1), flt(d, sizeof d, o->beta2), flt(f, sizeof f, o->rho), flt(g, sizeof g, o->eps));
    emit(e, "        .batch = B,\n        .epochs = %d,\n", r->epochs);
    switch (r->schedule) {
    case NNC_SCHED_CONSTANT:
        break;
    case NNC_SCHED_PIECEWISE:
        emit(e, "        .schedule = NNC_SCHED_PIECEWISE,\n        .n_phases = %d,\n        .phases = schedule,\n", m->n_phases);
        break;
    case NNC_SCHED_STEP:
        emit(e, "        .schedule = NNC_SCHED_STEP,\n        .step_every = %d,\n        .step_factor = %s,\n", r->step_every,
             flt(a, sizeof a, r->step_factor));
        break;
    case NNC_SCHED_COSINE:
        emit(e, "        .schedule = NNC_SCHED_COSINE,\n        .min_lr = %s,\n", flt(a, sizeof a, r->min_lr));
        break;
    case NNC_SCHED_ONECYCLE:
        emit(e, "        .schedule = NNC_SCHED_ONECYCLE,\n        .max_lr = %s,\n", flt(a, sizeof a, r->max_lr));
        break;
    }
    emit(e, "        .seed = %lluULL,\n", (unsigned long long)r->seed);
    if (r->augment) {
        emit(e, "        .augment = 1,\n");
        emit(e, "        .aug = {.rotation = %s, .width_shift = %s, .height_shift = %s, .shear = %s, .zoom = %s},\n",
             flt(a, sizeof a, r->aug.rotation), flt(b, sizeof b, r->aug.width_shift),
             flt(c, sizeof c, r->aug.height_shift), flt(d, sizeof d, r->aug.shear), flt(f, sizeof f, r->aug.zoom));
    }
    emit(e, "    },\n");
    emit(e, "    .n_tensors = N_TENSORS,\n    .tensors = param_tensors,\n");
    emit(e, "    .init = init,\n    .train_batch = train_batch,\n    .infer_batch = infer_batch,\n");
    emit(e, "    .first_nonfinite = first_nonfinite,\n    .summary = summary,\n};\n");
    emit(e, "\n#ifndef NNC_NO_MAIN\nint main(int argc, char **argv)\n{\n    nnc_prefer_short_spin(argv);\n    return nnc_main(&nnc_model_%s, argc, argv);\n}\n#endif\n#endif\n",
         m->name);
}

static void emit_header(emitter *e)
{
    const model *m = e->m;
    double macs = 0;
    for (int i = 0; i < m->n_layers; i++)
        macs += layer_forward_macs(&m->layers[i]);
    emit(e, "/*\n * %s.c - the trainer of model `%s`, generated by nnc %s from %s.\n", m->name, m->name, NNC_VERSION,
         m->source_path);
    emit(e, " * Do not edit: change the model file and run `make generated`.\n *\n");
    emit(e, " * Layout: NHWC activations, one flat parameter buffer (offsets below), batch of at most B.\n");
    emit(e, " * Forward pass: %.0f multiply-adds per image. Build: cc -O3 -march=native -fopenmp %s.c -lnncrt -lopenblas -lpng -lz -lm\n */\n",
         macs, m->name);
    emit(e, "#include <math.h>\n#include <stdint.h>\n#include <string.h>\n\n#include \"nncrt.h\"\n\n");
    emit(e, "#define B %d /* the largest batch a step sees */\n", m->recipe.batch);
    emit(e, "#define CHUNKS %d /* fixed slices of the batch; the arithmetic never depends on the thread count */\n", CHUNKS);
    emit(e, "#define LO(c) (n * (c) / CHUNKS) /* slice c is samples [LO(c), HI(c)) */\n");
    emit(e, "#define HI(c) (n * ((c) + 1) / CHUNKS)\n");
    emit(e, "#define IN_H %d /* one input image: IN_H x IN_W x IN_C */\n#define IN_W %d\n#define IN_C %d\n", m->input.h,
         m->input.w, m->input.c);
    emit(e, "#define N_CLASSES %d\n", m->n_classes);
    emit(e, "#define N_PARAMS %zu\n#define N_STATE %zu\n", m->n_params, m->n_state);
    emit(e, "#define ALIGNED __attribute__((aligned(64)))\n");
    emit(e, "#define VEC %d /* floats in one vector register */\n", VEC);
    /* Which vector helpers the blocked kernels will call (clang warns about unused ones). */
    int vectors = 0, load_tails = 0, store_tails = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (choose_kernel(l) != KERNEL_BLOCKED)
            continue;
        vectors = 1;
        load_tails |= l->out.c % VEC != 0;
        store_tails |= l->out.c % VEC != 0 || (!e->input_is_x[i] && l->in.c % VEC != 0);
    }
    if (vectors) {
        /* Vectors pass by pointer: a vector passed or returned by value has another
         * ABI with AVX-512 than without, and GCC warns about that on every other CPU. */
        emit(e, "\n/* 16 floats, one AVX-512 register (two AVX2 registers where there is no AVX-512). */\n");
        emit(e, "typedef float v16 __attribute__((vector_size(16 * sizeof(float))));\n");
        emit(e, "static inline void load16(v16 *v, const float *p)\n{\n    memcpy(v, p, sizeof *v);\n}\n");
        emit(e, "static inline void store16(float *p, const v16 *v)\n{\n    memcpy(p, v, sizeof *v);\n}\n");
        if (load_tails || store_tails)
            emit(e, "/* The first `count` floats only: the last, shorter vector of a row. */\n");
        if (load_tails)
            emit(e, "static inline void load_tail(v16 *v, const float *p, int count)\n{\n    memset(v, 0, sizeof *v);\n"
                    "    memcpy(v, p, sizeof(float) * (size_t)count);\n}\n");
        if (store_tails)
            emit(e, "static inline void store_tail(float *p, const v16 *v, int count)\n{\n"
                    "    memcpy(p, v, sizeof(float) * (size_t)count);\n}\n");
    }
}

int nnc_emit(FILE *out, const model *m)
{
    emitter e = {.out = out, .m = m};
    e.out_name = calloc((size_t)m->n_layers, sizeof *e.out_name);
    e.dout_name = calloc((size_t)m->n_layers, sizeof *e.dout_name);
    e.input_is_x = calloc((size_t)m->n_layers, sizeof *e.input_is_x);
    if (!e.out_name || !e.dout_name || !e.input_is_x) {
        free(e.out_name);
        free(e.dout_name);
        free(e.input_is_x);
        return -1;
    }
    int reads_x = 1; /* every layer so far was a view of the input */
    int computing = 0; /* layers so far that compute (not views) */
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        e.input_is_x[i] = reads_x;
        if (choose_kernel(l) == KERNEL_NONE) {
            /* a view of its input: the same buffers (names are shorter than the arrays) */
            const char *out = i == 0 ? "x" : e.out_name[i - 1];
            const char *dout = i == 0 ? "NULL" : e.dout_name[i - 1];
            memcpy(e.out_name[i], out, strlen(out) + 1);
            memcpy(e.dout_name[i], dout, strlen(dout) + 1);
        } else {
            snprintf(e.out_name[i], sizeof e.out_name[i], "%s_out", l->ident);
            /*
             * A layer's backward reads its own output's gradient and writes its input's, so two
             * buffers taking turns suffice. GRAD() gives each slice its own region of them.
             */
            snprintf(e.dout_name[i], sizeof e.dout_name[i], "GRAD(%s, %d)", computing++ % 2 == 0 ? "grad_a" : "grad_b",
                     shape_size(l->out));
            reads_x = 0;
        }
    }
    emit_header(&e);
    emit_parameter_offsets(&e);
    emit_tensor_table(&e);
    emit_buffers(&e);
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (choose_kernel(l) == KERNEL_NONE)
            continue;
        emit_layer_banner(&e, l);
        switch (l->kind) {
        case LAYER_DENSE: emit_dense(&e, i); break;
        case LAYER_CONV:
            if (choose_kernel(l) == KERNEL_BLOCKED)
                emit_conv_blocked(&e, i);
            else
                emit_conv(&e, i);
            break;
        case LAYER_MAXPOOL:
        case LAYER_AVGPOOL: emit_pool(&e, i); break;
        case LAYER_DROPOUT: emit_dropout(&e, i); break;
        case LAYER_ACTIVATION: emit_activation(&e, i); break;
        case LAYER_BATCHNORM: emit_batchnorm(&e, i); break;
        case LAYER_FLATTEN: break;
        }
    }
    emit_loss(&e);
    emit_init(&e);
    emit_train_batch(&e);
    emit_infer_batch(&e);
    emit_model_description(&e);
    free(e.out_name);
    free(e.dout_name);
    free(e.input_is_x);
    return ferror(out) ? -1 : 0;
}
