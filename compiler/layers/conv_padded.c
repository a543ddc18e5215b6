/*
 * conv_padded.c - 'same' padding through the register-blocked kernels.
 *
 * The slice's input is copied with its zero border into the scratch arena
 * (kind.h), and the valid convolution's kernels run on the copy as the valid
 * convolution of the padded shape, whose output is the 'same' convolution's.
 * Backward copies the input again (scratch lives only within a call), runs
 * the valid backward into a zero-bordered input gradient, and keeps its
 * interior. The copies are memory passes over the input; what they buy is
 * whole windows everywhere, so the register blocks need no bounds checks.
 * (The plain loops this replaced, which checked every tap against the
 * border, trained cifar_vgg at half the speed: 237 -> 472 images/s.)
 *
 * The kernels on the copy are whichever conv_choose() picks for the padded
 * shape: conv_blocked's, conv_winograd's (conv_blocked's, with Winograd's
 * forward pass at inference) where a 3x3 window fits it, or conv_bf16's under
 * `precision bf16` where the channels fit it, which makes this file three
 * strategies, conv_padded, conv_padded_winograd and conv_padded_bf16, alike
 * but for their description and precision. The
 * padded copies lie in the arena after the inner kernels' own scratch, which
 * is alive during the same call.
 */
#include <stdlib.h>

#include "conv.h"

/* The padded input's height or width: every window whole, and at least the input itself. */
static int padded_axis(int in, int out, int k, int stride)
{
    int span = (out - 1) * stride + k;
    return span > in ? span : in;
}

/* The layer as the kernels on the copy see it: the padded input, valid padding. */
static layer padded_view(const layer *l)
{
    const conv_params *c = &l->u.conv;
    layer v = *l;
    v.in.h = padded_axis(l->in.h, l->out.h, c->kh, c->sh);
    v.in.w = padded_axis(l->in.w, l->out.w, c->kw, c->sw);
    v.u.conv.same = 0;
    v.u.conv.pad_top = v.u.conv.pad_left = 0;
    return v;
}

/* The kernels that run on the padded copy: the valid convolution's strategy for the padded shape. */
static const kernel_strategy *inner(const layer *v)
{
    return conv_choose(v);
}

const kernel_strategy *conv_padded_choose(const layer *l)
{
    layer v = padded_view(l);
    const kernel_strategy *s = inner(&v);
    return s->precision == PRECISION_BF16 ? &conv_padded_bf16 : s == &conv_winograd ? &conv_padded_winograd : &conv_padded;
}

/*
 * The floats a sample of the arena the inner kernels use within one call (0 for
 * conv_blocked's), from their own workspace on a list of its own. Only
 * needs_din is known where the calls are printed (step_args), so the inner
 * strategy's scratch must depend on no other part of the role: conv_bf16's
 * depends on needs_din alone.
 */
static int inner_scratch(const layer *v, int needs_din)
{
    layer_role r = {.needs_din = needs_din};
    ws_list own = {0};
    if (inner(v)->workspace)
        inner(v)->workspace(v, &r, &own);
    free(own.members);
    return own.scratch;
}

/*
 * The padded input and, where the layer has one, its gradient: alive together
 * in backward, and with whatever the inner kernels keep in the arena, which
 * comes first (an empty entry for conv_blocked's kernels, which keep nothing).
 */
enum { SCRATCH_INNER, SCRATCH_IN, SCRATCH_DIN, N_SCRATCH };
static int scratch_bufs(const layer *l, int needs_din, scratch_buf bufs[N_SCRATCH])
{
    layer v = padded_view(l);
    bufs[SCRATCH_INNER] = (scratch_buf){"after those", 0, inner_scratch(&v, needs_din)};
    bufs[SCRATCH_IN] = (scratch_buf){"the padded input", 0, shape_size(v.in)};
    bufs[SCRATCH_DIN] = (scratch_buf){"its gradient", 0, shape_size(v.in)};
    return needs_din ? N_SCRATCH : SCRATCH_DIN;
}

static unsigned helpers(const layer *l, const layer_role *r)
{
    layer v = padded_view(l);
    return inner(&v)->helpers ? inner(&v)->helpers(&v, r) : 0;
}

static void workspace(const layer *l, const layer_role *r, ws_list *ws)
{
    layer v = padded_view(l);
    scratch_buf bufs[N_SCRATCH];
    if (inner(&v)->workspace)
        inner(&v)->workspace(&v, r, ws);
    ws_scratch(ws, bufs, scratch_bufs(l, r->needs_din, bufs));
}

/* memset(p, 0, n floats), printed only when n > 0. */
static void print_zero(cgen *g, const char *indent, const char *p, int n)
{
    if (n > 0)
        cg(g, "%smemset(%s, 0, sizeof(float) * %d);\n", indent, p, n);
}

/* NAME_pad_input: the slice's input into the middle of the zeroed padded copy. */
static void emit_pad(cgen *g, const layer *l, const layer *v)
{
    const conv_params *c = &l->u.conv;
    int H = l->in.h, W = l->in.w, C = l->in.c, PH = v->in.h, PW = v->in.w;
    int top = c->pad_top, left = c->pad_left, bottom = PH - H - top, right = PW - W - left;
    char at[32];
    cg(g, "/* The slice's input with its zero border (%d above, %d below, %d left, %d right), [b][%d][%d][%d]. */\n", top,
       bottom, left, right, PH, PW, C);
    cg(g, "static void %s_pad_input(float *restrict padded, const float *restrict in, int lo, int hi)\n{\n", l->name);
    cg(g, "    for (int b = lo; b < hi; b++) {\n");
    cg(g, "        float *p = padded + (size_t)b * %d;\n", PH * PW * C);
    print_zero(g, "        ", "p", top * PW * C);
    cg(g, "        for (int y = 0; y < %d; y++) {\n", H);
    cg(g, "            float *row = p + (size_t)(y + %d) * %d;\n", top, PW * C);
    print_zero(g, "            ", "row", left * C);
    cg(g, "            memcpy(row + %d, in + ((size_t)b * %d + y) * %d, sizeof(float) * %d);\n", left * C, H, W * C,
       W * C);
    snprintf(at, sizeof at, "row + %d", (left + W) * C);
    print_zero(g, "            ", at, right * C);
    cg(g, "        }\n");
    snprintf(at, sizeof at, "p + %d", (top + H) * PW * C);
    print_zero(g, "        ", at, bottom * PW * C);
    cg(g, "    }\n}\n\n");
}

/* NAME_crop_grad: din, the padded input gradient's interior. */
static void emit_crop(cgen *g, const layer *l, const layer *v)
{
    const conv_params *c = &l->u.conv;
    int H = l->in.h, W = l->in.w, C = l->in.c, PH = v->in.h, PW = v->in.w;
    cg(g, "/* din: the interior of the padded input's gradient (the border's is the padding's, dropped). */\n");
    cg(g, "static void %s_crop_grad(float *restrict din, const float *restrict dpadded, int lo, int hi)\n{\n", l->name);
    cg(g, "    for (int b = lo; b < hi; b++)\n        for (int y = 0; y < %d; y++)\n", H);
    cg(g, "            memcpy(din + ((size_t)b * %d + y) * %d, dpadded + (((size_t)b * %d + y + %d) * %d + %d) * %d,\n",
       H, W * C, PH, c->pad_top, PW, c->pad_left, C);
    cg(g, "                   sizeof(float) * %d);\n}\n\n", W * C);
}

static void emit(cgen *g, const layer *l, const layer_role *r)
{
    layer v = padded_view(l);
    emit_pad(g, l, &v);
    if (r->needs_din)
        emit_crop(g, l, &v);
    inner(&v)->emit(g, &v, r);
}

static void prepare(cgen *g, const layer *l, const layer_role *r, pass_kind pass)
{
    layer v = padded_view(l);
    if (inner(&v)->prepare)
        inner(&v)->prepare(g, &v, r, pass);
}

/* The call that pads the slice's input into the scratch arena; `padded` gets the copy's expression. */
static void print_pad_call(cgen *g, const layer *l, const step_args *a, const scratch_buf *bufs, char *padded,
                           size_t len)
{
    scratch_arg(padded, len, "float", bufs, SCRATCH_IN);
    cgi(g, "%s_pad_input(%s, %s, lo, hi);\n", l->name, padded, a->in);
}

static void print_forward(cgen *g, const layer *l, const step_args *a)
{
    layer v = padded_view(l);
    step_args pa = *a;
    scratch_buf bufs[N_SCRATCH];
    char padded[96];
    scratch_bufs(l, 0, bufs);
    print_pad_call(g, l, a, bufs, padded, sizeof padded);
    pa.in = padded;
    inner(&v)->print_forward(g, &v, &pa);
}

static void print_backward(cgen *g, const layer *l, const step_args *a)
{
    layer v = padded_view(l);
    step_args pa = *a;
    scratch_buf bufs[N_SCRATCH];
    char padded[96], dpadded[96];
    scratch_bufs(l, a->din != NULL, bufs);
    print_pad_call(g, l, a, bufs, padded, sizeof padded);
    pa.in = padded;
    if (a->din)
        pa.din = scratch_arg(dpadded, sizeof dpadded, "float", bufs, SCRATCH_DIN);
    inner(&v)->print_backward(g, &v, &pa);
    if (a->din)
        cgi(g, "%s_crop_grad(%s, %s, lo, hi);\n", l->name, a->din, dpadded);
}

#define PADDED_HOOKS                                                                                                   \
    .helpers = helpers, .workspace = workspace, .emit = emit, .prepare = prepare, .print_forward = print_forward,    \
    .print_backward = print_backward

const kernel_strategy conv_padded = {
    .description = "register-blocked direct convolution over a zero-padded copy of the input",
    .precision = PRECISION_FP32,
    PADDED_HOOKS,
};

const kernel_strategy conv_padded_winograd = {
    .description = "register-blocked direct convolution over a zero-padded copy of the input; at inference "
                   "Winograd F(4x4, 3x3) or F(2x2, 3x3) over it by shape",
    .precision = PRECISION_FP32,
    PADDED_HOOKS,
};

const kernel_strategy conv_padded_bf16 = {
    .description = "register-blocked direct convolution over a zero-padded copy of the input, bfloat16 products "
                   "and fp32 sums where the target has AVX512_BF16 (else fp32)",
    .precision = PRECISION_BF16,
    PADDED_HOOKS,
};
