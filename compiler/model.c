/*
 * model.c - helpers every part of the compiler shares: memory, the names of
 * activations, initializers and optimizers, shapes, and the facts about a
 * whole model (its cost, its signature) that come from its layers' kinds.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layers/kind.h"
#include "model.h"

/* ---- names ---------------------------------------------------------------- */

static const char *const act_names[N_ACTS] = {
    [ACT_LINEAR] = "linear", [ACT_RELU] = "relu", [ACT_SIGMOID] = "sigmoid",
    [ACT_TANH] = "tanh",     [ACT_SOFTMAX] = "softmax",
};

const char *act_name(act_kind act)
{
    return act >= 0 && act < N_ACTS ? act_names[act] : "?";
}

int act_parse(const char *word, act_kind *act)
{
    for (int i = 0; i < N_ACTS; i++)
        if (strcmp(word, act_names[i]) == 0) {
            *act = (act_kind)i;
            return 1;
        }
    return 0;
}

static const struct {
    const char *name;
    nnc_init_kind kind;
} initializers[] = {
    {"glorot_uniform", NNC_INIT_GLOROT_UNIFORM}, {"glorot_normal", NNC_INIT_GLOROT_NORMAL},
    {"he_uniform", NNC_INIT_HE_UNIFORM},         {"he_normal", NNC_INIT_HE_NORMAL},
    {"uniform", NNC_INIT_UNIFORM},               {"zeros", NNC_INIT_ZEROS},
    {"ones", NNC_INIT_ONES},
};

const char *init_name(nnc_init_kind kind)
{
    for (size_t i = 0; i < sizeof initializers / sizeof initializers[0]; i++)
        if (initializers[i].kind == kind)
            return initializers[i].name;
    return "?";
}

int init_parse(const char *word, nnc_init_kind *kind)
{
    for (size_t i = 0; i < sizeof initializers / sizeof initializers[0]; i++)
        if (strcmp(word, initializers[i].name) == 0) {
            *kind = initializers[i].kind;
            return 1;
        }
    return 0;
}

const char *optimizer_name(nnc_optimizer_kind kind)
{
    switch (kind) {
    case NNC_OPT_SGD: return "sgd";
    case NNC_OPT_ADAM: return "adam";
    case NNC_OPT_RMSPROP: return "rmsprop";
    }
    return "?";
}

const char *shape_text(char *buf, size_t len, shape s)
{
    if (shape_is_flat(s))
        snprintf(buf, len, "%d", s.c);
    else
        snprintf(buf, len, "%dx%dx%d", s.h, s.w, s.c);
    return buf;
}

void model_set_precision(model *m, precision_kind precision)
{
    m->precision = precision;
    for (int i = 0; i < m->n_layers; i++)
        m->layers[i].precision = precision;
}

void model_note_default(model *m, int line, const char *fmt, ...)
{
    m->defaults = nnc_xrealloc(m->defaults, (size_t)(m->n_defaults + 1) * sizeof *m->defaults);
    applied_default *d = &m->defaults[m->n_defaults++];
    d->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->text, sizeof d->text, fmt, ap);
    va_end(ap);
}

/* ---- whole-model facts ---------------------------------------------------- */

double model_forward_macs(const model *m)
{
    double macs = 0;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind->forward_macs)
            macs += m->layers[i].kind->forward_macs(&m->layers[i]);
    return macs;
}

/* FNV-1a over the facts that decide the parameter layout. */
unsigned long long model_signature(const model *m)
{
    uint64_t h = 1469598103934665603ULL;
#define MIX(v)                                                                                                         \
    do {                                                                                                               \
        uint64_t x_ = (uint64_t)(v);                                                                                   \
        for (int b_ = 0; b_ < 8; b_++) {                                                                               \
            h ^= (x_ >> (8 * b_)) & 0xff;                                                                              \
            h *= 1099511628211ULL;                                                                                     \
        }                                                                                                              \
    } while (0)
    MIX(m->input.h);
    MIX(m->input.w);
    MIX(m->input.c);
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        int facts[] = {l->kind->signature_id, l->out.h,           l->out.w,           l->out.c,
                       (int)l->n_weights,     (int)l->n_bias,     (int)l->n_state};
        for (size_t k = 0; k < sizeof facts / sizeof facts[0]; k++)
            MIX(facts[k]);
    }
#undef MIX
    return (unsigned long long)h;
}
