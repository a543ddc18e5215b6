/*
 * optim.c - SGD (momentum, Nesterov), Adam and RMSprop as Keras 2 writes them,
 * plus the piecewise-constant learning-rate schedule.
 *
 * Every update is one plain loop over the flat buffers in index order: no
 * reductions, no threads, so the result is bit-for-bit reproducible. Scalars
 * such as Adam's bias correction are computed in double, then rounded once.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nncrt.h"

int nnc_optimizer_init(nnc_optimizer *opt, const nnc_optimizer_cfg *cfg, size_t n) {
    memset(opt, 0, sizeof *opt);
    opt->cfg = *cfg;
    opt->n = n;
    size_t n_alloc = n > 0 ? n : 1; /* calloc(0) may return NULL legitimately */
    int needs_slot1 = cfg->kind != NNC_OPT_SGD || cfg->momentum != 0.0f;
    int needs_slot2 = cfg->kind == NNC_OPT_ADAM;
    if (needs_slot1 && !(opt->slot1 = calloc(n_alloc, sizeof(float)))) goto oom;
    if (needs_slot2 && !(opt->slot2 = calloc(n_alloc, sizeof(float)))) goto oom;
    return 0;
oom:
    nnc_optimizer_free(opt);
    return -1;
}

void nnc_optimizer_free(nnc_optimizer *opt) {
    free(opt->slot1);
    free(opt->slot2);
    opt->slot1 = opt->slot2 = NULL;
}

/* Plain SGD: p -= lr * g. Also what momentum SGD reduces to with v = 0. */
static void sgd_plain_update(size_t n, float *p, const float *g, float lr) {
    for (size_t i = 0; i < n; i++) p[i] -= lr * g[i];
}

/* Keras 2: v = mu*v - lr*g; p += v, or with Nesterov p += mu*v - lr*g. */
static void sgd_momentum_update(size_t n, float *p, const float *g, float *v, float lr, float mu, int nesterov) {
    for (size_t i = 0; i < n; i++) {
        v[i] = mu * v[i] - lr * g[i];
        p[i] += nesterov ? mu * v[i] - lr * g[i] : v[i];
    }
}

/* Keras 2: lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t); p -= lr_t * m / (sqrt(v) + eps). */
static void adam_update(size_t n, float *p, const float *g, float *m, float *v, float lr, long t,
                        const nnc_optimizer_cfg *c) {
    double b1 = c->beta1, b2 = c->beta2;
    float lr_t = (float)(lr * sqrt(1.0 - pow(b2, (double)t)) / (1.0 - pow(b1, (double)t)));
    float beta1 = c->beta1, beta2 = c->beta2, eps = c->eps;
    for (size_t i = 0; i < n; i++) {
        m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
        v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
        p[i] -= lr_t * m[i] / (sqrtf(v[i]) + eps);
    }
}

/* Keras 2: a = rho*a + (1-rho)*g^2; p -= lr * g / (sqrt(a) + eps). */
static void rmsprop_update(size_t n, float *p, const float *g, float *a, float lr, const nnc_optimizer_cfg *c) {
    float rho = c->rho, eps = c->eps;
    for (size_t i = 0; i < n; i++) {
        a[i] = rho * a[i] + (1.0f - rho) * g[i] * g[i];
        p[i] -= lr * g[i] / (sqrtf(a[i]) + eps);
    }
}

void nnc_optimizer_update(nnc_optimizer *opt, float *params, const float *grads, float lr) {
    const nnc_optimizer_cfg *c = &opt->cfg;
    opt->step++;
    switch (c->kind) {
    case NNC_OPT_SGD:
        if (opt->slot1)
            sgd_momentum_update(opt->n, params, grads, opt->slot1, lr, c->momentum, c->nesterov);
        else
            sgd_plain_update(opt->n, params, grads, lr);
        break;
    case NNC_OPT_ADAM: adam_update(opt->n, params, grads, opt->slot1, opt->slot2, lr, opt->step, c); break;
    case NNC_OPT_RMSPROP: rmsprop_update(opt->n, params, grads, opt->slot1, lr, c); break;
    }
}

float nnc_schedule_lr(const nnc_recipe *recipe, int epoch) {
    if (recipe->n_phases <= 0 || !recipe->phases) return recipe->optimizer.lr;
    int phase_end = 0;
    for (int i = 0; i < recipe->n_phases; i++) {
        phase_end += recipe->phases[i].epochs;
        if (epoch < phase_end) return recipe->phases[i].lr;
    }
    /* Past the schedule (e.g. --epochs larger than the recipe): keep the last lr. */
    return recipe->phases[recipe->n_phases - 1].lr;
}
