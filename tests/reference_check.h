/*
 * reference_check.h - compare one nnc training step against PyTorch.
 *
 * Include after a generated model (`#define NNC_NO_MAIN`, then the .c) and
 * call ref_check_model("<model>", <last layer's output buffer>), or write
 * REFERENCE_TEST(<model>, <that buffer's workspace member>). The fixture
 * tests/reference/fixtures/<model>.txt (written by
 * tests/reference/make_fixtures.py, `make reference`) says how to rebuild the
 * parameters, the BN running statistics and the inputs bit for bit from
 * nnc_hash_uniform, and holds PyTorch's float64 results for one step: the
 * training-mode output, the batch-mean loss, sampled gradients per tensor
 * with each tensor's max |grad|, the running statistics after the step and
 * the inference-mode output. As llm.c's check_tensor, every tensor reports
 * its largest difference and fails when
 *     |got - ref| > REF_TOLERANCE * max(1, max |ref| of that tensor).
 *
 * The optimizer test uses only the parsing and comparison helpers; define
 * REF_NO_MODEL before including to leave out the model-specific part.
 */
#ifndef REFERENCE_CHECK_H
#define REFERENCE_CHECK_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nncrt.h"

#ifndef NNC_ROOT
#define NNC_ROOT "."
#endif

#define REF_TOLERANCE 1e-4
#define REF_MAX_LINE 65536

/* ---- reading fixtures ---------------------------------------------------- */

static inline FILE *ref_open(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/reference/fixtures/%s.txt", NNC_ROOT, name);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s: run `make reference` (/usr/bin/python3 tests/reference/make_fixtures.py)",
                       path);
    return f;
}

/* The next whitespace-separated word; 0 at the end of the file. */
static inline int ref_word(FILE *f, char *buf, size_t len)
{
    char fmt[16];
    snprintf(fmt, sizeof fmt, "%%%zus", len - 1);
    return fscanf(f, fmt, buf) == 1;
}

static inline double ref_number(FILE *f, const char *what)
{
    char buf[128];
    cr_assert(ref_word(f, buf, sizeof buf), "fixture ends while reading %s", what);
    char *end;
    double v = strtod(buf, &end);
    cr_assert(*end == '\0', "fixture: '%s' is not a number (%s)", buf, what);
    return v;
}

static inline long long ref_integer(FILE *f, const char *what)
{
    char buf[128];
    cr_assert(ref_word(f, buf, sizeof buf), "fixture ends while reading %s", what);
    char *end;
    long long v = strtoll(buf, &end, 10);
    cr_assert(*end == '\0', "fixture: '%s' is not an integer (%s)", buf, what);
    return v;
}

static inline void ref_expect_word(FILE *f, const char *want)
{
    char buf[256];
    cr_assert(ref_word(f, buf, sizeof buf), "fixture ends; expected '%s'", want);
    cr_assert(strcmp(buf, want) == 0, "fixture: expected '%s', found '%s'", want, buf);
}

/* dst[k] = (float)(center + half * (2u - 1)), u = nnc_hash_uniform(key, k): make_fixtures.py's fill(). */
static inline void ref_fill(float *dst, size_t count, uint64_t key, double center, double half)
{
    for (size_t k = 0; k < count; k++) {
        double u = (double)nnc_hash_uniform(key, (uint64_t)k);
        dst[k] = (float)(center + half * (2.0 * u - 1.0));
    }
}

/* ---- comparing ----------------------------------------------------------- */

/*
 * Compare got[idx[k]] (or got[k] when idx is NULL) with ref[k], k < count.
 * maxabs_ref: max |ref| over the whole tensor (the fixture's, which may cover
 * more than the sampled entries). Prints one line; returns 1 when within tolerance.
 */
static inline int ref_check_tensor(const char *label, const float *got, const size_t *idx, const double *ref,
                                   size_t count, double maxabs_ref, int verbose, double *worst_rel)
{
    double scale = maxabs_ref > 1.0 ? maxabs_ref : 1.0;
    double tol = REF_TOLERANCE * scale, worst = 0.0;
    size_t worst_at = 0, bad = 0;
    for (size_t k = 0; k < count; k++) {
        size_t i = idx ? idx[k] : k;
        double d = fabs((double)got[i] - ref[k]);
        if (!(d <= worst)) { /* NaN counts as the worst */
            worst = isnan(d) ? INFINITY : d;
            worst_at = k;
        }
        if (!(d <= tol))
            bad++;
    }
    if (worst_rel && worst / scale > *worst_rel)
        *worst_rel = worst / scale;
    int ok = bad == 0;
    if (verbose || !ok)
        fprintf(stderr, "  %-36s max |diff| %.3e  max |ref| %.3e  diff/max|ref| %.1e  tol %.1e%s\n", label, worst,
                maxabs_ref, maxabs_ref > 0 ? worst / maxabs_ref : worst, tol, ok ? "" : "  FAIL");
    if (!ok) {
        size_t i = idx ? idx[worst_at] : worst_at;
        fprintf(stderr, "      %zu of %zu entries off; worst at index %zu: nnc %.9g, reference %.9g\n", bad, count, i,
                (double)got[i], ref[worst_at]);
    }
    return ok;
}

static inline double ref_maxabs(const float *v, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double a = fabs((double)v[i]);
        if (!(a <= m))
            m = a;
    }
    return m;
}

#ifndef REF_NO_MODEL

/* ---- one model ------------------------------------------------------------ */

typedef struct {
    char name[128];
    size_t offset, count, k;
    double maxabs;
    size_t *idx;
    double *ref;
} ref_tensor;

typedef struct {
    int n;
    uint64_t dropout_key;
    uint8_t labels[256];
    float *x, *params, *state0;
    double loss;
    size_t n_probs;
    double *probs, *infer;
    int n_grads;
    ref_tensor grads[N_TENSORS];
    int have_state;
    ref_tensor state;
} ref_fixture;

static inline void ref_read_samples(FILE *f, ref_tensor *t)
{
    t->idx = malloc(sizeof(size_t) * (t->k ? t->k : 1));
    t->ref = malloc(sizeof(double) * (t->k ? t->k : 1));
    cr_assert(t->idx && t->ref);
    for (size_t k = 0; k < t->k; k++) {
        t->idx[k] = (size_t)ref_integer(f, t->name);
        t->ref[k] = ref_number(f, t->name);
    }
}

static inline void ref_load(ref_fixture *fx, const char *model)
{
    memset(fx, 0, sizeof *fx);
    FILE *f = ref_open(model);
    char word[256];
    ref_expect_word(f, "model");
    cr_assert(ref_word(f, word, sizeof word));
    cr_assert(strcmp(word, model) == 0, "fixture is for model '%s', not '%s'", word, model);
    ref_expect_word(f, "n");
    fx->n = (int)ref_integer(f, "n");
    cr_assert(fx->n >= 1 && fx->n <= B, "fixture batch %d does not fit the model's %d", fx->n, B);
    ref_expect_word(f, "n_params");
    cr_assert_eq(ref_integer(f, "n_params"), (long long)N_PARAMS, "fixture and generated code disagree on N_PARAMS");
    ref_expect_word(f, "n_state");
    cr_assert_eq(ref_integer(f, "n_state"), (long long)N_STATE, "fixture and generated code disagree on N_STATE");
    ref_expect_word(f, "dropout_key");
    fx->dropout_key = (uint64_t)ref_integer(f, "dropout_key");

    fx->params = calloc(N_PARAMS, sizeof(float));
    fx->state0 = calloc(N_STATE + 1, sizeof(float));
    cr_assert(fx->params && fx->state0);
    size_t params_filled = 0;
    while (ref_word(f, word, sizeof word)) {
        if (strcmp(word, "end") == 0) {
            break;
        } else if (strcmp(word, "labels") == 0) {
            long long m = ref_integer(f, "labels");
            cr_assert_eq(m, fx->n);
            for (int b = 0; b < fx->n; b++) {
                long long y = ref_integer(f, "label");
                cr_assert(y >= 0 && y < N_CLASSES, "label %lld out of range", y);
                fx->labels[b] = (uint8_t)y;
            }
        } else if (strcmp(word, "input") == 0) {
            size_t count = (size_t)ref_integer(f, "input count");
            cr_assert_eq(count, (size_t)fx->n * IN_H * IN_W * IN_C, "input count %zu", count);
            uint64_t key = (uint64_t)ref_integer(f, "input key");
            double center = ref_number(f, "input center"), half = ref_number(f, "input half");
            fx->x = malloc(sizeof(float) * count);
            cr_assert_not_null(fx->x);
            ref_fill(fx->x, count, key, center, half);
        } else if (strcmp(word, "param") == 0 || strcmp(word, "state") == 0) {
            int is_param = word[0] == 'p';
            size_t off = (size_t)ref_integer(f, "offset"), count = (size_t)ref_integer(f, "count");
            uint64_t key = (uint64_t)ref_integer(f, "key");
            double center = ref_number(f, "center"), half = ref_number(f, "half");
            cr_assert(off + count <= (is_param ? (size_t)N_PARAMS : (size_t)N_STATE), "fill out of range");
            ref_fill((is_param ? fx->params : fx->state0) + off, count, key, center, half);
            if (is_param)
                params_filled += count;
        } else if (strcmp(word, "loss") == 0) {
            fx->loss = ref_number(f, "loss");
        } else if (strcmp(word, "probs") == 0 || strcmp(word, "infer") == 0) {
            size_t count = (size_t)ref_integer(f, word);
            cr_assert_eq(count, (size_t)fx->n * N_CLASSES);
            double *v = malloc(sizeof(double) * count);
            cr_assert_not_null(v);
            for (size_t i = 0; i < count; i++)
                v[i] = ref_number(f, "probabilities");
            fx->n_probs = count;
            *(word[0] == 'p' ? &fx->probs : &fx->infer) = v;
        } else if (strcmp(word, "grad") == 0) {
            cr_assert(fx->n_grads < N_TENSORS, "more gradient tensors in the fixture than the model's %d", N_TENSORS);
            ref_tensor *t = &fx->grads[fx->n_grads];
            const nnc_tensor_info *info = &param_tensors[fx->n_grads];
            fx->n_grads++;
            cr_assert(ref_word(f, t->name, sizeof t->name));
            t->offset = (size_t)ref_integer(f, "offset");
            t->count = (size_t)ref_integer(f, "count");
            t->maxabs = ref_number(f, "maxabs");
            t->k = (size_t)ref_integer(f, "samples");
            cr_assert(strcmp(t->name, info->name) == 0 && t->offset == info->offset && t->count == info->count,
                      "tensor %d: fixture has %s [%zu, +%zu), the generated table %s [%zu, +%zu)", fx->n_grads - 1,
                      t->name, t->offset, t->count, info->name, info->offset, info->count);
            ref_read_samples(f, t);
            for (size_t k = 0; k < t->k; k++)
                cr_assert(t->idx[k] >= t->offset && t->idx[k] < t->offset + t->count, "%s: sample outside", t->name);
        } else if (strcmp(word, "newstate") == 0) {
            ref_tensor *t = &fx->state;
            fx->have_state = 1;
            snprintf(t->name, sizeof t->name, "running statistics");
            t->offset = (size_t)ref_integer(f, "offset");
            t->count = (size_t)ref_integer(f, "count");
            t->maxabs = ref_number(f, "maxabs");
            t->k = (size_t)ref_integer(f, "samples");
            cr_assert(t->offset + t->count <= (size_t)N_STATE);
            ref_read_samples(f, t);
        } else {
            cr_assert_fail("fixture: unknown entry '%s'", word);
        }
    }
    fclose(f);
    cr_assert_not_null(fx->x, "fixture has no input");
    cr_assert_not_null(fx->probs, "fixture has no probabilities");
    cr_assert_eq(params_filled, (size_t)N_PARAMS, "fixture fills %zu of %d parameters", params_filled, N_PARAMS);
    cr_assert_eq(fx->n_grads, N_TENSORS, "fixture has %d gradient tensors, the model %d", fx->n_grads, N_TENSORS);
    cr_assert(N_STATE == 0 || fx->have_state, "fixture has no running statistics");
}

static inline void ref_free(ref_fixture *fx)
{
    for (int t = 0; t < fx->n_grads; t++) {
        free(fx->grads[t].idx);
        free(fx->grads[t].ref);
    }
    free(fx->state.idx);
    free(fx->state.ref);
    free(fx->x);
    free(fx->params);
    free(fx->state0);
    free(fx->probs);
    free(fx->infer);
}

/*
 * One step with `threads` threads: compares and returns how many checks
 * failed; grads_out (N_PARAMS floats) keeps the gradient for the caller.
 */
static workspace ref_workspace; /* the included model's buffers */

static inline int ref_step(const char *model, ref_fixture *fx, const float *last_out, int threads, float *grads,
                           double *worst_rel)
{
    int verbose = threads == 1, failed = 0;
    float *state = malloc(sizeof(float) * (N_STATE + 1));
    float *probs = malloc(sizeof(float) * fx->n_probs);
    cr_assert(state && probs);
    memcpy(state, fx->state0, sizeof(float) * (N_STATE + 1));
    for (size_t i = 0; i < N_PARAMS; i++)
        grads[i] = NAN; /* every gradient must be written */

    nnc_step_ctx ctx = {.threads = threads, .dropout_key = fx->dropout_key, .workspace = &ref_workspace};
    nnc_batch_stats stats = train_batch(&ctx, fx->x, fx->labels, fx->n, fx->params, grads, state);

    fprintf(stderr, "reference %s, %d thread%s, batch %d:\n", model, threads, threads == 1 ? "" : "s", fx->n);
    float loss = (float)(stats.loss_sum / fx->n);
    double ref_loss = fx->loss;
    failed += !ref_check_tensor("loss", &loss, NULL, &ref_loss, 1, fabs(ref_loss), verbose, worst_rel);
    failed += !ref_check_tensor("probabilities (training)", last_out, NULL, fx->probs, fx->n_probs, 1.0, verbose,
                                worst_rel);
    for (int t = 0; t < fx->n_grads; t++) {
        const ref_tensor *rt = &fx->grads[t];
        char label[200];
        snprintf(label, sizeof label, "grad %s", rt->name);
        failed += !ref_check_tensor(label, grads, rt->idx, rt->ref, rt->k, rt->maxabs, verbose, worst_rel);
        /* the whole tensor, through its largest entry */
        float got_max = (float)ref_maxabs(grads + rt->offset, rt->count);
        snprintf(label, sizeof label, "max|grad| %s", rt->name);
        failed += !ref_check_tensor(label, &got_max, NULL, &rt->maxabs, 1, rt->maxabs, 0, worst_rel);
    }
    if (fx->have_state)
        failed += !ref_check_tensor("running mean/variance after", state, fx->state.idx, fx->state.ref, fx->state.k,
                                    fx->state.maxabs, verbose, worst_rel);
    if (fx->infer) {
        infer_batch(&ctx, fx->x, fx->n, fx->params, state, probs);
        failed += !ref_check_tensor("probabilities (inference)", probs, NULL, fx->infer, fx->n_probs, 1.0, verbose,
                                    worst_rel);
    }
    free(state);
    free(probs);
    return failed;
}

/* The whole check: 1 thread and 2 threads against the reference, and against each other.
 * The summary's "worst relative difference" is the largest |diff| / max(1, max |ref|): the fraction of the
 * tolerance used is that divided by REF_TOLERANCE. */
static inline void ref_check_model(const char *model, const float *last_out)
{
    ref_fixture fx;
    ref_load(&fx, model);
    float *g1 = malloc(sizeof(float) * N_PARAMS), *g2 = malloc(sizeof(float) * N_PARAMS);
    cr_assert(g1 && g2);
    double worst1 = 0.0, worst2 = 0.0;
    int failed1 = ref_step(model, &fx, last_out, 1, g1, &worst1);
    int failed2 = ref_step(model, &fx, last_out, 2, g2, &worst2);
    int same = memcmp(g1, g2, sizeof(float) * N_PARAMS) == 0;
    fprintf(stderr, "reference %s: worst relative difference %.2e (1 thread), %.2e (2 threads); %s\n", model, worst1,
            worst2, same ? "1 and 2 threads agree bit for bit" : "1 and 2 threads DIFFER");
    cr_expect_eq(failed1, 0, "%s: %d check(s) against PyTorch failed with 1 thread (see the log)", model, failed1);
    cr_expect_eq(failed2, 0, "%s: %d check(s) against PyTorch failed with 2 threads (see the log)", model, failed2);
    cr_expect(same, "%s: the gradient with 2 threads differs from 1 thread", model);
    free(g1);
    free(g2);
    ref_free(&fx);
}

/*
 * A kind's PyTorch check (tests/layers/KIND/reference.c): the Criterion test KIND/reference, on the
 * model KIND included bare (NNC_BARE: its gradient check includes the same generated file), whose
 * last layer writes ref_workspace.LAST_OUT.
 */
#define REFERENCE_TEST(model, last_out)                                                                                \
    Test(model, reference, .timeout = 120)                                                                             \
    {                                                                                                                  \
        (void)init; /* bare: nothing else refers to it */                                                              \
        ref_check_model(#model, ref_workspace.last_out);                                                               \
    }

#endif /* REF_NO_MODEL */
#endif /* REFERENCE_CHECK_H */
