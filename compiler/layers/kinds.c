/* kinds.c - the table of layer kinds (kinds.def), and lookups over it. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kind.h"

#define KIND(name) extern const layer_kind name##_kind;
#include "kinds.def"
#undef KIND

#define KIND(name) &name##_kind,
const layer_kind *const layer_kinds[] = {
#include "kinds.def"
};
#undef KIND
const int n_layer_kinds = sizeof layer_kinds / sizeof layer_kinds[0];

const layer_kind *layer_kind_for_word(const char *word)
{
    for (int k = 0; k < n_layer_kinds; k++)
        for (const char *const *w = layer_kinds[k]->words; *w; w++)
            if (strcmp(*w, word) == 0)
                return layer_kinds[k];
    return NULL;
}

const char *const *layer_words(void)
{
    static const char *words[64];
    if (!words[0]) {
        int n = 0;
        for (int k = 0; k < n_layer_kinds; k++)
            for (const char *const *w = layer_kinds[k]->words; *w && n + 1 < 64; w++)
                words[n++] = *w;
    }
    return words;
}

void ws_add(ws_list *ws, const char *comment, const char *fmt, ...)
{
    if (ws->n == ws->cap) {
        ws->cap = ws->cap ? 2 * ws->cap : 16;
        ws->members = nnc_xrealloc(ws->members, (size_t)ws->cap * sizeof *ws->members);
    }
    ws_member *m = &ws->members[ws->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->decl, sizeof m->decl, fmt, ap);
    va_end(ap);
    snprintf(m->comment, sizeof m->comment, "%s", comment);
}

void ws_comment(ws_list *ws, const char *comment)
{
    ws_add(ws, comment, "%s", "");
}

/* A sample's floats of a scratch buffer, in whole 64-byte lines: the next buffer of its phase starts aligned. */
static int cache_lines(int floats)
{
    return (floats + 15) / 16 * 16;
}

/* Floats a sample before buffer k: its phase's buffers listed ahead of it. */
static int scratch_before(const scratch_buf *bufs, int k)
{
    int before = 0;
    for (int j = 0; j < k; j++)
        if (bufs[j].phase == bufs[k].phase)
            before += cache_lines(bufs[j].floats);
    return before;
}

void ws_scratch(ws_list *ws, const scratch_buf *bufs, int n)
{
    char list[96] = "in the scratch arena, a phase at a time: ";
    size_t used = strlen(list);
    int prev = -1; /* the last buffer listed */
    for (int k = 0; k < n; k++) {
        if (bufs[k].floats == 0)
            continue; /* an empty entry of a table (conv_padded's inner kernels' share, over fp32 kernels) */
        /* + VEC: a vector kernel may read one vector past a buffer's last channel (as it may past an
           activation's, which have the same slack), and those reads must stay in the slice's share. */
        int end = scratch_before(bufs, k) + cache_lines(bufs[k].floats) + VEC;
        if (end > ws->scratch)
            ws->scratch = end;
        const char *sep = prev < 0 ? "" : bufs[k].phase == bufs[prev].phase ? ", " : "; then ";
        used += (size_t)snprintf(list + used, used < sizeof list ? sizeof list - used : 0, "%s%s", sep, bufs[k].name);
        used = used < sizeof list ? used : sizeof list;
        prev = k;
    }
    ws_comment(ws, list);
}

const char *scratch_arg(char *buf, size_t len, const char *ctype, const scratch_buf *bufs, int k)
{
    snprintf(buf, len, "(%s *)scratch_region(ws->scratch, lo, hi, %d, %d)", ctype, scratch_before(bufs, k),
             bufs[k].floats);
    return buf;
}

const char *strategy_kernel(const layer *l)
{
    return l->kind->strategy(l)->description;
}

unsigned strategy_helpers(const layer *l, const layer_role *r)
{
    const kernel_strategy *s = l->kind->strategy(l);
    return s->helpers ? s->helpers(l, r) : 0;
}

void strategy_workspace(const layer *l, const layer_role *r, ws_list *ws)
{
    const kernel_strategy *s = l->kind->strategy(l);
    if (s->workspace)
        s->workspace(l, r, ws);
}

void strategy_emit(cgen *g, const layer *l, const layer_role *r)
{
    l->kind->strategy(l)->emit(g, l, r);
}

void strategy_prepare(cgen *g, const layer *l, const layer_role *r, pass_kind pass)
{
    const kernel_strategy *s = l->kind->strategy(l);
    if (s->prepare) /* the planner asks layer_prepares() first; nothing to print otherwise */
        s->prepare(g, l, r, pass);
}

void strategy_print_forward(cgen *g, const layer *l, const step_args *a)
{
    l->kind->strategy(l)->print_forward(g, l, a);
}

void strategy_print_backward(cgen *g, const layer *l, const step_args *a)
{
    l->kind->strategy(l)->print_backward(g, l, a);
}

precision_kind strategy_precision(const layer *l)
{
    return l->kind->strategy(l)->precision;
}

int layer_prepares(const layer *l)
{
    if (l->kind->strategy)
        return l->kind->strategy(l)->prepare != NULL;
    return l->kind->prepare != NULL;
}

step_list layer_forward_steps(const layer *l, pass_kind pass)
{
    if (l->kind->forward)
        return l->kind->forward(l, pass);
    return l->kind->print_forward ? one_step(STEP_SLICE, l->kind->print_forward) : no_steps();
}

step_list layer_backward_steps(const layer *l, const layer_role *r)
{
    if (l->kind->backward)
        return l->kind->backward(l, r);
    /* A layer without weights only passes the gradient on: at the network's input there is nothing to do. */
    if (!l->kind->print_backward || (l->n_weights == 0 && !r->needs_din))
        return no_steps();
    return one_step(STEP_SLICE, l->kind->print_backward);
}

void apply_weight_options(layer *l, const option_value *v)
{
    if (v[0].given)
        l->kernel_init = v[0].init;
    if (v[1].given)
        l->bias_init = v[1].init;
    if (v[2].given)
        l->l1 = (float)v[2].number;
    if (v[3].given)
        l->l2 = (float)v[3].number;
}

void print_forward_in_out(cgen *g, const layer *l, const step_args *a)
{
    cgi(g, "%s_forward(%s, %s, lo, hi);\n", l->name, a->out, a->in);
}

void print_act_backward(cgen *g, const layer *l, const layer_role *r, int width)
{
    if (r->act_grad_above)
        cg(g, "    /* %s: its derivative is applied by the layer above (a max pooling), to what it routes back */\n",
           act_name(l->act));
    else
        cg_act_backward(g, l->act, "dout", "out", width);
}

void print_backward_din_dout(cgen *g, const layer *l, const step_args *a)
{
    cgi(g, "%s_backward(%s, %s, lo, hi);\n", l->name, a->din, a->dout);
}

void print_single_weights(cgen *g, const layer *l, const single_ctx *sc, int outputs, int padded)
{
    size_t rows = l->n_weights / (size_t)outputs, P = (size_t)padded;
    float *w = nnc_xmalloc(sizeof(float) * (rows * P + P)), *b = w + rows * P;
    for (size_t r = 0; r <= rows; r++) /* the kernel's rows, then the bias as one more */
        for (size_t j = 0; j < P; j++)
            w[r * P + j] = j >= (size_t)outputs ? 0.0f
                           : r < rows           ? sc->weights[r * (size_t)outputs + j]
                                                : sc->bias[j];
    char name[96];
    if (padded != outputs)
        cg(g, "/* the outputs (the last axis) padded from %d to %d with zeros */\n", outputs, padded);
    snprintf(name, sizeof name, "%s_%s_w", sc->prefix, l->name);
    cg_float_array(g, name, w, rows * P);
    snprintf(name, sizeof name, "%s_%s_b", sc->prefix, l->name);
    cg_float_array(g, name, b, P);
    free(w);
}
