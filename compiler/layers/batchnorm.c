/*
 * batchnorm.c - batch normalization over the last axis (Keras's defaults:
 * momentum 0.99, eps 0.001). Training uses the batch's statistics and
 * updates the running ones; inference uses the running ones.
 *
 * Every slice must see the statistics of the whole batch, so training runs
 * in steps: each slice's sums, one thread combining them in slice order, then
 * each slice's normalization. Backward likewise: each slice's dgamma and
 * dbeta, one thread summing them, then each slice's input gradient.
 */
#include <math.h>
#include <stdlib.h>

#include "kind.h"

enum { MOMENTUM, EPS };
static const option_spec options[] = {
    [MOMENTUM] = {"momentum", OPT_NUMBER, 0, 1, NULL},
    [EPS] = {"eps", OPT_NUMBER, 1e-12, 1, NULL},
};

static void check(layer_check *lc, layer *l, const option_value *v)
{
    l->u.bn.momentum = v[MOMENTUM].given ? (float)v[MOMENTUM].number : 0.99f;
    l->u.bn.eps = v[EPS].given ? (float)v[EPS].number : 1e-3f;
    if (!v[MOMENTUM].arg || !v[EPS].arg)
        model_note_default(lc->m, l->line, "%s: momentum=%g eps=%g", l->name, l->u.bn.momentum, l->u.bn.eps);
    l->out = l->in;
    l->n_weights = (size_t)l->in.c; /* gamma */
    l->n_bias = (size_t)l->in.c;    /* beta */
    l->kernel_init = NNC_INIT_ONES;
    l->bias_init = NNC_INIT_ZEROS;
    l->n_state = 2 * (size_t)l->in.c;
}

static int tensor_shape(const layer *l, int t, int dims[4])
{
    (void)t;
    dims[0] = l->out.c;
    return 1;
}

static void init_state(cgen *g, const layer *l)
{
    char up[64];
    upper(up, sizeof up, l->name);
    cg(g, "    for (int c = 0; c < %d; c++) {\n", l->out.c);
    cg(g, "        state[%s_RUNNING + c] = 0.0f;      /* running mean */\n", up);
    cg(g, "        state[%s_RUNNING + %d + c] = 1.0f; /* running variance */\n    }\n", up, l->out.c);
}

void batchnorm_fold(const layer *l, const float *gamma, const float *beta, const float *running, float *scale,
                    float *shift)
{
    int C = l->out.c;
    for (int c = 0; c < C; c++) {
        scale[c] = gamma[c] / sqrtf(running[C + c] + l->u.bn.eps);
        shift[c] = beta[c] - running[c] * scale[c];
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
    return r->needs_din ? HELPER_SUM_SLICES : 0;
}

static void workspace(const layer *l, const layer_role *r, ws_list *ws)
{
    int C = l->out.c;
    ws_add(ws, "per-slice channel sums of x and of x^2", "double %s_partial[CHUNKS][2][%d]", l->name, C);
    ws_add(ws, "this batch's mean", "float %s_mean[%d]", l->name, C);
    ws_add(ws, "and 1 / sqrt(variance + eps)", "float %s_inv_std[%d]", l->name, C);
    if (r->needs_din)
        ws_add(ws, "dgamma, dbeta summed over the slices", "float %s_totals[%d]", l->name, 2 * C);
}

static void emit(cgen *g, const layer *l, const layer_role *r)
{
    int C = l->out.c, P = l->out.h * l->out.w; /* channels, pixels per sample */
    const char *id = l->name;
    char eps[32], mom[32];
    flt(eps, sizeof eps, l->u.bn.eps);
    flt(mom, sizeof mom, l->u.bn.momentum);

    cg(g, "static void %s_sums(double *restrict sum, double *restrict sum_sq, const float *restrict in, int lo, int hi)\n{\n", id);
    cg(g, "    for (int c = 0; c < %d; c++)\n        sum[c] = sum_sq[c] = 0.0;\n", C);
    cg(g, "    for (size_t p = (size_t)lo * %d; p < (size_t)hi * %d; p++)\n", P, P);
    cg(g, "        for (int c = 0; c < %d; c++) {\n", C);
    cg(g, "            double v = in[p * %d + c];\n", C);
    cg(g, "            sum[c] += v;\n            sum_sq[c] += v * v;\n        }\n}\n\n");

    cg(g, "/*\n * One thread: the batch's mean and variance from the slices' sums, added in slice order\n");
    cg(g, " * (double precision makes E[x^2] - E[x]^2 safe here); then the running statistics.\n */\n");
    cg(g, "static void %s_combine(float *restrict mean, float *restrict inv_std, float *restrict running, const double (*partial)[2][%d], int n)\n{\n", id, C);
    cg(g, "    double count = (double)n * %d;\n", P);
    cg(g, "    for (int c = 0; c < %d; c++) {\n", C);
    cg(g, "        double sum = 0.0, sum_sq = 0.0;\n");
    cg(g, "        for (int k = 0; k < CHUNKS; k++) {\n            sum += partial[k][0][c];\n            sum_sq += partial[k][1][c];\n        }\n");
    cg(g, "        double batch_mean = sum / count;\n");
    cg(g, "        double var = sum_sq / count - batch_mean * batch_mean;\n");
    cg(g, "        var = var > 0.0 ? var : 0.0;\n");
    cg(g, "        mean[c] = (float)batch_mean;\n");
    cg(g, "        inv_std[c] = (float)(1.0 / sqrt(var + %s));\n", eps);
    cg(g, "        /* running mean and (unbiased) variance, with momentum %s as Keras */\n", mom);
    cg(g, "        double unbiased = count > 1 ? var * count / (count - 1) : var;\n");
    cg(g, "        running[c] = %s * running[c] + (1.0f - %s) * (float)batch_mean;\n", mom, mom);
    cg(g, "        running[%d + c] = %s * running[%d + c] + (1.0f - %s) * (float)unbiased;\n", C, mom, C, mom);
    cg(g, "    }\n}\n\n");

    cg(g, "/* out = gamma * xhat + beta, xhat = (in - mean) * inv_std: the batch's statistics. */\n");
    cg(g, "static void %s_normalize(float *restrict out, const float *restrict in, const float *restrict gamma, const float *restrict beta, const float *restrict mean, const float *restrict inv_std, int lo, int hi)\n{\n", id);
    cg(g, "    for (size_t p = (size_t)lo * %d; p < (size_t)hi * %d; p++)\n", P, P);
    cg(g, "        for (int c = 0; c < %d; c++) {\n", C);
    cg(g, "            size_t at = p * %d + c;\n", C);
    cg(g, "            out[at] = gamma[c] * ((in[at] - mean[c]) * inv_std[c]) + beta[c];\n        }\n}\n\n");

    cg(g, "/* Inference: the running statistics instead of the batch's. */\n");
    cg(g, "static void %s_forward_infer(float *restrict out, const float *restrict in, const float *restrict gamma, const float *restrict beta, const float *restrict running, int lo, int hi)\n{\n", id);
    cg(g, "    float scale[%d], shift[%d];\n", C, C);
    cg(g, "    for (int c = 0; c < %d; c++) {\n", C);
    cg(g, "        scale[c] = gamma[c] / sqrtf(running[%d + c] + %s);\n", C, eps);
    cg(g, "        shift[c] = beta[c] - running[c] * scale[c];\n    }\n");
    cg(g, "    for (size_t p = (size_t)lo * %d; p < (size_t)hi * %d; p++)\n", P, P);
    cg(g, "        for (int c = 0; c < %d; c++)\n", C);
    cg(g, "            out[p * %d + c] = in[p * %d + c] * scale[c] + shift[c];\n}\n\n", C, C);

    cg(g, "/* This slice's dgamma = sum(dy * xhat), dbeta = sum(dy); xhat is recomputed from the input, which\n");
    cg(g, "   is kept anyway, rather than stored. */\n");
    cg(g, "static void %s_backward_params(float *restrict dgamma, float *restrict dbeta, const float *restrict dout, const float *restrict in, const float *restrict mean, const float *restrict inv_std, int lo, int hi)\n{\n", id);
    cg(g, "    double sg[%d] = {0}, sb[%d] = {0};\n", C, C);
    cg(g, "    for (size_t p = (size_t)lo * %d; p < (size_t)hi * %d; p++)\n", P, P);
    cg(g, "        for (int c = 0; c < %d; c++) {\n", C);
    cg(g, "            size_t at = p * %d + c;\n", C);
    cg(g, "            sg[c] += (double)dout[at] * ((in[at] - mean[c]) * inv_std[c]);\n            sb[c] += dout[at];\n        }\n");
    cg(g, "    for (int c = 0; c < %d; c++) {\n        dgamma[c] = (float)sg[c];\n        dbeta[c] = (float)sb[c];\n    }\n}\n", C);

    if (!r->needs_din)
        return;
    cg(g, "\n/* din = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)), the means over the whole batch. */\n");
    cg(g, "static void %s_backward_input(float *restrict din, const float *restrict dout, const float *restrict in, const float *restrict gamma, const float *restrict mean, const float *restrict inv_std, const float *restrict dgamma_total, const float *restrict dbeta_total, int n, int lo, int hi)\n{\n", id);
    cg(g, "    float inv_count = 1.0f / ((float)n * %d);\n", P);
    cg(g, "    for (size_t p = (size_t)lo * %d; p < (size_t)hi * %d; p++)\n", P, P);
    cg(g, "        for (int c = 0; c < %d; c++) {\n", C);
    cg(g, "            size_t at = p * %d + c;\n", C);
    cg(g, "            float xhat = (in[at] - mean[c]) * inv_std[c];\n");
    cg(g, "            din[at] = gamma[c] * inv_std[c] * (dout[at] - dbeta_total[c] * inv_count - xhat * dgamma_total[c] * inv_count);\n");
    cg(g, "        }\n}\n");
}

/* ---- the steps ---- */

static void print_sums(cgen *g, const layer *l, const step_args *a)
{
    cgi(g, "%s_sums(ws->%s_partial[c][0], ws->%s_partial[c][1], %s, lo, hi);\n", l->name, l->name, l->name, a->in);
}

static void print_combine(cgen *g, const layer *l, const step_args *a)
{
    char up[64];
    (void)a;
    cgi(g, "%s_combine(ws->%s_mean, ws->%s_inv_std, state + %s_RUNNING, ws->%s_partial, n);\n", l->name, l->name,
        l->name, upper(up, sizeof up, l->name), l->name);
}

/* Before the combine: every slice's sums, from the processes that computed them. */
static void share_sums(cgen *g, const layer *l)
{
    cgi(g, "nnc_dist_share(dist, ws->%s_partial, sizeof ws->%s_partial[0], sizeof ws->%s_partial[0], CHUNKS);\n",
        l->name, l->name, l->name);
}

static void print_normalize(cgen *g, const layer *l, const step_args *a)
{
    char up[64];
    upper(up, sizeof up, l->name);
    cgi(g, "%s_normalize(%s, %s, params + %s_GAMMA, params + %s_BETA, ws->%s_mean, ws->%s_inv_std, lo, hi);\n",
        l->name, a->out, a->in, up, up, l->name, l->name);
}

static void print_infer(cgen *g, const layer *l, const step_args *a)
{
    char up[64];
    upper(up, sizeof up, l->name);
    cgi(g, "%s_forward_infer(%s, %s, params + %s_GAMMA, params + %s_BETA, state + %s_RUNNING, lo, hi);\n", l->name,
        a->out, a->in, up, up, up);
}

static void print_backward_params(cgen *g, const layer *l, const step_args *a)
{
    char up[64];
    upper(up, sizeof up, l->name);
    cgi(g, "%s_backward_params(%s + %s_GAMMA, %s + %s_BETA, %s, %s, ws->%s_mean, ws->%s_inv_std, lo, hi);\n",
        l->name, a->grads, up, a->grads, up, a->dout, a->in, l->name, l->name);
}

static void print_sum_params(cgen *g, const layer *l, const step_args *a)
{
    char up[64];
    (void)a;
    cgi(g, "sum_slices(ws->%s_totals, ws->slice_grads, %s_GAMMA, %d);\n", l->name, upper(up, sizeof up, l->name),
        2 * l->out.c);
}

/* Before the sum: every slice's dgamma and dbeta (adjacent in slice_grads), from the processes that computed them. */
static void share_params(cgen *g, const layer *l)
{
    char up[64];
    cgi(g, "nnc_dist_share(dist, ws->slice_grads[0] + %s_GAMMA, sizeof ws->slice_grads[0][0] * %d, sizeof ws->slice_grads[0], CHUNKS);\n",
        upper(up, sizeof up, l->name), 2 * l->out.c);
}

static void print_backward_input(cgen *g, const layer *l, const step_args *a)
{
    char up[64];
    upper(up, sizeof up, l->name);
    cgi(g, "%s_backward_input(%s, %s, %s, params + %s_GAMMA, ws->%s_mean, ws->%s_inv_std, ws->%s_totals, ws->%s_totals + %d, n, lo, hi);\n",
        l->name, a->din, a->dout, a->in, up, l->name, l->name, l->name, l->name, l->out.c);
}

static step_list forward(const layer *l, pass_kind pass)
{
    (void)l;
    if (pass == PASS_INFER)
        return one_step(STEP_SLICE, print_infer);
    step_list s = {3, {{.scope = STEP_SLICE, .print = print_sums},
                       {.scope = STEP_ONE_THREAD, .print = print_combine, .print_share = share_sums},
                       {.scope = STEP_SLICE, .print = print_normalize}}};
    return s;
}

static step_list backward(const layer *l, const layer_role *r)
{
    (void)l;
    if (!r->needs_din)
        return one_step(STEP_SLICE, print_backward_params);
    step_list s = {3, {{.scope = STEP_SLICE, .print = print_backward_params},
                       {.scope = STEP_ONE_THREAD, .print = print_sum_params, .print_share = share_params},
                       {.scope = STEP_SLICE, .print = print_backward_input}}};
    return s;
}

/* One sample, inference: out = in * scale + shift per channel, from the running statistics, computed
 * here as the trainer's forward_infer computes them. */
static void emit_single(cgen *g, const layer *l, const single_ctx *sc)
{
    int C = l->out.c, P = l->out.h * l->out.w;
    float *scale = nnc_xmalloc(sizeof(float) * 2 * (size_t)C), *shift = scale + C;
    batchnorm_fold(l, sc->weights, sc->bias, sc->state, scale, shift);
    char name[96];
    snprintf(name, sizeof name, "%s_%s_scale", sc->prefix, l->name);
    cg_float_array(g, name, scale, (size_t)C);
    snprintf(name, sizeof name, "%s_%s_shift", sc->prefix, l->name);
    cg_float_array(g, name, shift, (size_t)C);
    free(scale);
    cg(g, "\nstatic void %s_%s(const float *restrict in, float *restrict out)\n{\n", sc->prefix, l->name);
    cg(g, "    for (int p = 0; p < %d; p++)\n        for (int c = 0; c < %d; c++)\n", P, C);
    cg(g, "            out[p * %d + c] = in[p * %d + c] * %s_%s_scale[c] + %s_%s_shift[c];\n}\n", C, C, sc->prefix,
       l->name, sc->prefix, l->name);
}

static void graph_node(const layer *l, nnc_graph_node *n)
{
    n->op = NNC_NODE_BATCHNORM;
    n->eps = l->u.bn.eps;
}

const layer_kind batchnorm_kind = {
    .words = (const char *const[]){"batchnorm", NULL},
    .keras = "BatchNormalization",
    .prefix = "batch_normalization",
    .signature_id = 6,
    .usage = "batchnorm [momentum=M] [eps=E]",
    .n_options = sizeof options / sizeof options[0],
    .options = options,
    .check = check,
    .tensor = {"gamma", "beta"},
    .macro = {"GAMMA", "BETA"},
    .tensor_shape = tensor_shape,
    .layout = {"C", "C"},
    .state_macro = "RUNNING",
    .state_doc = "running mean, then running variance",
    .state_tensor = {"moving_mean", "moving_variance"},
    .init_state = init_state,
    .kernel = kernel,
    .helpers = helpers,
    .workspace = workspace,
    .emit = emit,
    .forward = forward,
    .backward = backward,
    .emit_single = emit_single,
    .graph_node = graph_node,
};
