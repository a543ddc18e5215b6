/*
 * optim.c - SGD (momentum, Nesterov), Adam and RMSprop as Keras 2 writes them,
 * plus the learning-rate schedules (per epoch).
 *
 * Every update is one plain loop over the flat buffers in index order: no
 * reductions, no threads, so the result is bit-for-bit reproducible. Scalars
 * such as Adam's bias correction are computed in double, then rounded once.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nncrt.h"

#define PI 3.14159265358979323846

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

/* The phases in order; past their end (e.g. --epochs beyond the recipe) the last rate stays. */
static double piecewise_lr(const nnc_recipe *r, int epoch) {
    int phase_end = 0;
    for (int i = 0; i < r->n_phases; i++) {
        phase_end += r->phases[i].epochs;
        if (epoch < phase_end) return r->phases[i].lr;
    }
    return r->phases[r->n_phases - 1].lr;
}

/* lr * factor^floor(epoch / every). */
static double step_lr(const nnc_recipe *r, int epoch) {
    int every = r->step_every > 0 ? r->step_every : 1;
    return (double)r->optimizer.lr * pow((double)r->step_factor, (double)(epoch / every));
}

/* Half a cosine from `hi` at t = 0 down to `lo` at t = 1. */
static double cosine_between(double hi, double lo, double t) {
    if (t >= 1.0) return lo;
    return lo + (hi - lo) * (1.0 + cos(PI * t)) / 2.0;
}

/* The last epoch's index as a denominator: a 1-epoch run divides by 1, not 0. */
static int last_epoch(const nnc_recipe *r) {
    return r->epochs > 1 ? r->epochs - 1 : 1;
}

/* lr at epoch 0 down to min_lr at the last epoch (and after it). */
static double cosine_lr(const nnc_recipe *r, int epoch) {
    return cosine_between(r->optimizer.lr, r->min_lr, (double)epoch / last_epoch(r));
}

/*
 * One cycle over the whole run, as PyTorch's OneCycleLR: u = the fraction of
 * the run done (epochs, fractional within an epoch). For the first 30% the
 * rate rises from lr to max_lr, then falls to lr / 1e4 at the end, each half
 * a cosine. It moves every step, not every epoch: short runs (one or two
 * epochs) are where one cycle pays, and a per-epoch staircase would spend them
 * at a few flat rates.
 */
#define ONECYCLE_RISE 0.3
static double onecycle_lr(const nnc_recipe *r, double u) {
    const double lo = r->optimizer.lr, hi = r->max_lr, final = lo / 1e4;
    if (u <= ONECYCLE_RISE) return cosine_between(hi, lo, 1.0 - u / ONECYCLE_RISE);
    return cosine_between(hi, final, (u - ONECYCLE_RISE) / (1.0 - ONECYCLE_RISE));
}

float nnc_schedule_lr(const nnc_recipe *recipe, int epoch) {
    return nnc_schedule_lr_at(recipe, epoch, 0, 1);
}

float nnc_schedule_lr_at(const nnc_recipe *recipe, int epoch, int step, int steps_per_epoch) {
    int has_phases = recipe->n_phases > 0 && recipe->phases;
    switch (recipe->schedule) {
    case NNC_SCHED_CONSTANT:
        /* Recipes written before `schedule` existed say PIECEWISE only by their phases. */
        return has_phases ? (float)piecewise_lr(recipe, epoch) : recipe->optimizer.lr;
    case NNC_SCHED_PIECEWISE: return has_phases ? (float)piecewise_lr(recipe, epoch) : recipe->optimizer.lr;
    case NNC_SCHED_STEP: return (float)step_lr(recipe, epoch);
    case NNC_SCHED_COSINE: return (float)cosine_lr(recipe, epoch);
    case NNC_SCHED_ONECYCLE: {
        const int epochs = recipe->epochs > 0 ? recipe->epochs : 1;
        return (float)onecycle_lr(recipe, (epoch + (double)step / steps_per_epoch) / epochs);
    }
    }
    return recipe->optimizer.lr;
}
