/*
 * dropout.c - inverted dropout: in training, each element is kept with
 * probability 1 - rate and scaled by 1 / (1 - rate); at inference it is the
 * identity. The mask is a pure function of (the layer's key, the element), so
 * it does not depend on which thread drew it.
 */
#include "kind.h"

enum { RATE };
static const option_spec options[] = {
    [RATE] = {"rate", OPT_VALUE, 0, 0, NULL},
};
#define USAGE "dropout P"

static void check(layer_check *lc, layer *l, const option_value *v)
{
    const nnc_arg *a = v[RATE].arg;
    l->out = l->in;
    if (!a)
        nnc_error(lc->src, lc->st->loc, "'dropout' needs the fraction to drop, such as 'dropout 0.5'");
    else if (!(a->number >= 0 && a->number < 1))
        nnc_error(lc->src, a->loc, "dropout rate %s must be at least 0 and below 1", a->text);
    else {
        l->u.rate = (float)a->number;
        if (a->number >= 0.9)
            nnc_warning(lc->src, a->loc, "dropout rate %s drops nearly everything", a->text);
    }
}

static const char *kernel(const layer *l)
{
    (void)l;
    return "elementwise loops";
}

static unsigned helpers(const layer *l, const layer_role *r)
{
    (void)l;
    (void)r;
    return HELPER_DROPOUT_KEY;
}

static void workspace(const layer *l, const layer_role *r, ws_list *ws)
{
    (void)r;
    ws_add(ws, "0 or 1 / (1 - rate)", "float %s_mask[B * %d]", l->name, shape_size(l->out));
}

static void emit(cgen *g, const layer *l, const layer_role *r)
{
    int S = shape_size(l->out);
    char rate[32], keep_scale[32];
    flt(rate, sizeof rate, l->u.rate);
    flt(keep_scale, sizeof keep_scale, 1.0f / (1.0f - l->u.rate));
    char up[64];
    cg(g, "#define %s_STREAM %d /* its position in the model: each dropout layer draws its own masks */\n",
       upper(up, sizeof up, l->name), l->index + 1);
    cg(g, "static void %s_forward(float *restrict out, float *restrict mask, const float *restrict in, uint64_t key, int lo, int hi)\n{\n", l->name);
    cg(g, "    for (size_t i = (size_t)lo * %d; i < (size_t)hi * %d; i++) {\n", S, S);
    cg(g, "        /* keep with p = 1 - rate, scaled by 1 / (1 - rate) */\n");
    cg(g, "        mask[i] = nnc_hash_uniform(key, i) < %s ? 0.0f : %s;\n", rate, keep_scale);
    cg(g, "        out[i] = in[i] * mask[i];\n    }\n}\n");
    if (!r->needs_din)
        return;
    cg(g, "\nstatic void %s_backward(float *restrict din, const float *restrict dout, const float *restrict mask, int lo, int hi)\n{\n", l->name);
    cg(g, "    for (size_t i = (size_t)lo * %d; i < (size_t)hi * %d; i++)\n        din[i] = dout[i] * mask[i];\n}\n", S, S);
}

static void print_train(cgen *g, const layer *l, const step_args *a)
{
    char up[64];
    cgi(g, "%s_forward(%s, ws->%s_mask, %s, dropout_key(key, %s_STREAM), lo, hi);\n", l->name, a->out, l->name,
        a->in, upper(up, sizeof up, l->name));
}

/* Off at inference: the input passes through. */
static void print_infer(cgen *g, const layer *l, const step_args *a)
{
    int S = shape_size(l->out);
    cgi(g, "memcpy(%s + (size_t)lo * %d, %s + (size_t)lo * %d, sizeof(float) * (size_t)(hi - lo) * %d);\n", a->out, S,
        a->in, S, S);
}

static void print_backward(cgen *g, const layer *l, const step_args *a)
{
    cgi(g, "%s_backward(%s, %s, ws->%s_mask, lo, hi);\n", l->name, a->din, a->dout, l->name);
}

static step_list forward(const layer *l, pass_kind pass)
{
    (void)l;
    return one_step(STEP_SLICE, pass == PASS_TRAIN ? print_train : print_infer);
}

static step_list backward(const layer *l, const layer_role *r)
{
    (void)l;
    return r->needs_din ? one_step(STEP_SLICE, print_backward) : no_steps();
}

const layer_kind dropout_kind = {
    .words = (const char *const[]){"dropout", NULL},
    .keras = "Dropout",
    .prefix = "dropout",
    .signature_id = 5,
    .flags = KIND_TRAIN_ONLY,
    .usage = USAGE,
    .n_options = sizeof options / sizeof options[0],
    .options = options,
    .check = check,
    .kernel = kernel,
    .helpers = helpers,
    .workspace = workspace,
    .emit = emit,
    .forward = forward,
    .backward = backward,
};
