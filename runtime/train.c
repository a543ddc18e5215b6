/*
 * train.c - preprocessing, evaluation and the training loop.
 *
 * Everything here works on in-memory datasets so that tests can drive the very
 * same loop the command line uses (see main.c for the command line).
 *
 * Determinism: one PCG32 stream, seeded once, supplies the initial weights,
 * every epoch's shuffle, every step's dropout key and the augmentation draws,
 * always in the same order. Nothing depends on the clock or on thread timing.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nncrt.h"

/* Which PCG32 stream the trainer uses; any fixed odd-making value would do. */
#define NNC_RNG_STREAM 54u
/* Keras clips probabilities to [eps, 1 - eps] before taking the log. */
#define KERAS_EPSILON 1e-7

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* Preprocessing                                                            */
/* ------------------------------------------------------------------------ */

/* Mean and population std of every pixel, in double, like numpy's
 * train_x.mean() and train_x.std(). A histogram makes it exact and fast. */
static void pixel_mean_std(const nnc_dataset *ds, double *mean, double *std) {
    size_t n = (size_t)ds->n * (size_t)ds->h * (size_t)ds->w;
    uint64_t histogram[256] = {0};
    for (size_t i = 0; i < n; i++) histogram[ds->images[i]]++;
    double sum = 0.0;
    for (int v = 0; v < 256; v++) sum += (double)v * (double)histogram[v];
    *mean = n ? sum / (double)n : 0.0;
    double sq = 0.0;
    for (int v = 0; v < 256; v++) sq += (double)histogram[v] * (v - *mean) * (v - *mean);
    *std = n ? sqrt(sq / (double)n) : 0.0;
}

void nnc_prep_compute(const nnc_model *m, const nnc_dataset *train, float prep[2]) {
    prep[0] = prep[1] = 0.0f;
    if (m->prep == NNC_PREP_SCALE) prep[0] = m->prep_scale;
    if (m->prep == NNC_PREP_NORMALIZE) {
        double mean, std;
        pixel_mean_std(train, &mean, &std);
        /* Rounded to float here because that is what a checkpoint keeps: a
         * loaded model then sees exactly the inputs it was trained on. */
        prep[0] = (float)mean;
        prep[1] = (float)std;
    }
}

void nnc_prep_table(const nnc_model *m, const float prep[2], float table[256]) {
    for (int v = 0; v < 256; v++) {
        switch (m->prep) {
        case NNC_PREP_NONE: table[v] = (float)v; break;
        case NNC_PREP_SCALE: table[v] = (float)v * m->prep_scale; break;
        case NNC_PREP_NORMALIZE: {
            /* Constant images have std 0; numpy would give inf/nan, we leave them centred. */
            double std = prep[1] > 0.0f ? (double)prep[1] : 1.0;
            table[v] = (float)(((double)v - (double)prep[0]) / std);
            break;
        }
        }
    }
}

/* Convert samples idx[0..n) (or samples first..first+n when idx is NULL) to floats. */
static void gather_batch(const nnc_dataset *ds, const uint32_t *idx, size_t first, int n, const float table[256],
                         float *x, uint8_t *labels) {
    size_t pixels = (size_t)ds->h * (size_t)ds->w;
    for (int b = 0; b < n; b++) {
        size_t sample = idx ? idx[b] : first + (size_t)b;
        const uint8_t *src = ds->images + sample * pixels;
        float *dst = x + (size_t)b * pixels;
        for (size_t p = 0; p < pixels; p++) dst[p] = table[src[p]];
        labels[b] = ds->labels[sample];
    }
}

/* ------------------------------------------------------------------------ */
/* Evaluation                                                               */
/* ------------------------------------------------------------------------ */

/* numpy's argmax: the first of equal maxima. */
static int argmax(const float *p, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (p[i] > p[best]) best = i;
    return best;
}

/* One sample's loss from predicted probabilities, as Keras computes it. */
static double sample_loss(nnc_loss_kind kind, const float *p, int n_classes, int label) {
    if (kind == NNC_LOSS_MSE) {
        double sum = 0.0;
        for (int k = 0; k < n_classes; k++) {
            double d = (double)p[k] - (k == label ? 1.0 : 0.0);
            sum += d * d;
        }
        return sum / n_classes;
    }
    double q = p[label];
    if (q < KERAS_EPSILON) q = KERAS_EPSILON;
    if (q > 1.0 - KERAS_EPSILON) q = 1.0 - KERAS_EPSILON;
    return -log(q);
}

int nnc_evaluate(const nnc_model *m, const nnc_dataset *ds, const float *params, const float *state,
                 const float prep[2], int threads, double *loss, double *acc, char *err, size_t errlen) {
    if (nnc_dataset_check(ds, m, "evaluation data", err, errlen) != 0) return -1;
    size_t in_floats = (size_t)m->in_h * m->in_w * m->in_c;
    float *x = malloc((size_t)m->max_batch * in_floats * sizeof(float));
    float *probs = malloc((size_t)m->max_batch * m->n_classes * sizeof(float));
    uint8_t *labels = malloc((size_t)m->max_batch);
    if (!x || !probs || !labels) {
        set_err(err, errlen, "out of memory for evaluation buffers");
        free(x), free(probs), free(labels);
        return -1;
    }
    float table[256];
    nnc_prep_table(m, prep, table);
    nnc_step_ctx ctx = {.threads = threads, .dropout_key = 0};
    double loss_sum = 0.0;
    long correct = 0;
    for (int start = 0; start < ds->n; start += m->max_batch) {
        int n = ds->n - start < m->max_batch ? ds->n - start : m->max_batch;
        gather_batch(ds, NULL, (size_t)start, n, table, x, labels);
        m->infer_batch(&ctx, x, n, params, state, probs);
        for (int b = 0; b < n; b++) {
            const float *p = probs + (size_t)b * m->n_classes;
            loss_sum += sample_loss(m->recipe.loss, p, m->n_classes, labels[b]);
            correct += argmax(p, m->n_classes) == labels[b];
        }
    }
    *loss = ds->n ? loss_sum / ds->n : 0.0;
    *acc = ds->n ? (double)correct / ds->n : 0.0;
    free(x), free(probs), free(labels);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Training                                                                 */
/* ------------------------------------------------------------------------ */

/* Every buffer one training run needs, allocated once before the first step. */
typedef struct {
    float *x;         /* [max_batch][in_h][in_w][in_c] preprocessed inputs */
    float *augmented; /* one image, the augmentation's output */
    uint8_t *labels;  /* [max_batch] */
    float *grads;     /* [n_params] */
    uint32_t *order;  /* [n_train] this epoch's sample order */
    nnc_optimizer opt;
} train_buffers;

static void train_buffers_free(train_buffers *tb) {
    free(tb->x), free(tb->augmented), free(tb->labels), free(tb->grads), free(tb->order);
    nnc_optimizer_free(&tb->opt);
    memset(tb, 0, sizeof *tb);
}

static int train_buffers_alloc(train_buffers *tb, const nnc_model *m, int n_train) {
    memset(tb, 0, sizeof *tb);
    size_t in_floats = (size_t)m->in_h * m->in_w * m->in_c;
    tb->x = malloc((size_t)m->max_batch * in_floats * sizeof(float));
    tb->augmented = malloc(in_floats * sizeof(float));
    tb->labels = malloc((size_t)m->max_batch);
    tb->grads = calloc(m->n_params ? m->n_params : 1, sizeof(float));
    tb->order = malloc((size_t)n_train * sizeof(uint32_t) + 1);
    int opt_rc = nnc_optimizer_init(&tb->opt, &m->recipe.optimizer, m->n_params);
    if (!tb->x || !tb->augmented || !tb->labels || !tb->grads || !tb->order || opt_rc != 0) {
        train_buffers_free(tb);
        return -1;
    }
    return 0;
}

/* Fisher-Yates over a fresh 0..n-1, so an epoch's order depends only on the RNG. */
static void shuffle_order(uint32_t *order, int n, nnc_rng *rng) {
    for (int i = 0; i < n; i++) order[i] = (uint32_t)i;
    for (int i = n - 1; i > 0; i--) {
        uint32_t j = nnc_rng_below(rng, (uint32_t)i + 1);
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static uint64_t rng_u64(nnc_rng *rng) {
    uint64_t hi = nnc_rng_u32(rng);
    return (hi << 32) | nnc_rng_u32(rng);
}

static void augment_batch(const nnc_model *m, float *x, int n, float *scratch, nnc_rng *rng) {
    size_t in_floats = (size_t)m->in_h * m->in_w * m->in_c;
    for (int b = 0; b < n; b++) {
        float *img = x + (size_t)b * in_floats;
        nnc_augment_image(&m->recipe.aug, m->in_h, m->in_w, m->in_c, img, scratch, rng);
        memcpy(img, scratch, in_floats * sizeof(float));
    }
}

static int check_train_args(const nnc_model *m, const nnc_dataset *train, const nnc_dataset *test,
                            const nnc_train_opts *opts, char *err, size_t errlen) {
    /* The loop trusts shapes and labels blindly, so make sure once, up front. */
    if (nnc_dataset_check(train, m, "training data", err, errlen) != 0) return -1;
    if (test && nnc_dataset_check(test, m, "test data", err, errlen) != 0) return -1;
    if (m->recipe.batch < 1 || m->recipe.batch > m->max_batch) {
        set_err(err, errlen, "model %s: batch size %d is not in 1..%d", m->name, m->recipe.batch, m->max_batch);
        return -1;
    }
    if (train->n < 1) {
        set_err(err, errlen, "the training set is empty");
        return -1;
    }
    if (opts->epochs < 1) {
        set_err(err, errlen, "epochs must be at least 1 (got %d)", opts->epochs);
        return -1;
    }
    return 0;
}

/* Running totals over one epoch's training steps. */
typedef struct {
    double loss_sum;
    long correct, seen;
} epoch_totals;

/*
 * One pass over the training set. The last batch holds whatever is left
 * (n % batch samples) instead of being dropped, as Keras's fit() does: every
 * sample is seen once per epoch.
 */
static int train_one_epoch(const nnc_model *m, const nnc_dataset *train, const nnc_train_opts *opts,
                           train_buffers *tb, const float table[256], float *params, float *state, nnc_rng *rng,
                           int epoch, float lr, epoch_totals *tot, char *err, size_t errlen) {
    const int batch = m->recipe.batch;
    memset(tot, 0, sizeof *tot);
    shuffle_order(tb->order, train->n, rng);
    int step = 0;
    for (int start = 0; start < train->n; start += batch, step++) {
        int n = train->n - start < batch ? train->n - start : batch;
        gather_batch(train, tb->order + start, 0, n, table, tb->x, tb->labels);
        if (m->recipe.augment) augment_batch(m, tb->x, n, tb->augmented, rng);
        nnc_step_ctx ctx = {.threads = opts->threads, .dropout_key = rng_u64(rng)};
        nnc_batch_stats stats = m->train_batch(&ctx, tb->x, tb->labels, n, params, tb->grads, state);
        if (!isfinite(stats.loss_sum)) {
            set_err(err, errlen, "epoch %d, step %d: the loss is %s; training diverged (try a lower learning rate)",
                    epoch + 1, step + 1, isnan(stats.loss_sum) ? "NaN" : "infinite");
            return -1;
        }
        tot->loss_sum += stats.loss_sum;
        tot->correct += stats.correct;
        tot->seen += n;
        nnc_optimizer_update(&tb->opt, params, tb->grads, lr);
    }
    return 0;
}

int nnc_train(const nnc_model *m, const nnc_dataset *train, const nnc_dataset *test, const nnc_train_opts *opts,
              float *params, float *state, const float prep[2], nnc_train_result *result, char *err,
              size_t errlen) {
    memset(result, 0, sizeof *result);
    if (check_train_args(m, train, test, opts, err, errlen) != 0) return -1;
    train_buffers tb;
    if (train_buffers_alloc(&tb, m, train->n) != 0) {
        set_err(err, errlen, "out of memory for training buffers (%zu parameters)", m->n_params);
        return -1;
    }
    nnc_rng rng;
    nnc_rng_seed(&rng, opts->seed, NNC_RNG_STREAM);
    if (opts->init_params) m->init(params, state, &rng);
    float table[256];
    nnc_prep_table(m, prep, table);

    int rc = 0;
    for (int epoch = 0; epoch < opts->epochs; epoch++) {
        float lr = nnc_schedule_lr(&m->recipe, epoch);
        double t0 = now_seconds();
        epoch_totals tot;
        rc = train_one_epoch(m, train, opts, &tb, table, params, state, &rng, epoch, lr, &tot, err, errlen);
        if (rc != 0) break;
        double train_seconds = now_seconds() - t0;
        result->epochs_done = epoch + 1;
        result->train_loss = tot.loss_sum / (double)tot.seen;
        result->train_acc = (double)tot.correct / (double)tot.seen;
        if (test) {
            rc = nnc_evaluate(m, test, params, state, prep, opts->threads, &result->test_loss, &result->test_acc,
                              err, errlen);
            if (rc != 0) break;
        }
        double seconds = now_seconds() - t0;
        if (opts->log) {
            fprintf(opts->log, "epoch %*d/%d  lr %g  loss %.4f  acc %.2f%%", opts->epochs >= 100 ? 3 : 2, epoch + 1,
                    opts->epochs, (double)lr, result->train_loss, 100.0 * result->train_acc);
            if (test)
                fprintf(opts->log, "  test_loss %.4f  test_acc %.2f%%", result->test_loss, 100.0 * result->test_acc);
            fprintf(opts->log, "  %.1f s  %.0f img/s\n", seconds,
                    train_seconds > 0 ? (double)tot.seen / train_seconds : 0.0);
            fflush(opts->log);
        }
    }
    train_buffers_free(&tb);
    return rc;
}
