/*
 * train.c - preprocessing, evaluation and the training loop.
 *
 * Everything here works on in-memory datasets so that tests can drive the very
 * same loop the command line uses (see main.c for the command line). The
 * benchmark at the end (`--bench`) times that loop and its parts on synthetic
 * data.
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
        result->train_seconds = train_seconds;
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

/* ------------------------------------------------------------------------ */
/* Benchmark                                                                */
/* ------------------------------------------------------------------------ */

#define BENCH_SET_SIZE 60000  /* synthetic training images: as many as MNIST has */
#define BENCH_POOL_BATCHES 8  /* converted batches the steady-state steps cycle through */
#define BENCH_WARMUP_STEPS 3  /* untimed steps before the windows, at the least */
#define BENCH_WINDOWS 7       /* timed windows per rate; their median is the rate */
#define BENCH_MIN_WINDOWS 3   /* the fewest windows, even when one step exceeds the budget */
#define BENCH_EPOCHS 3        /* timed epochs of the data-path rate */
/* How the budget is shared: steady-state training, inference, epochs. The
 * warm-up takes BENCH_WARMUP_SHARE of each steady-state share. */
#define BENCH_SHARE_TRAIN 0.45
#define BENCH_SHARE_INFER 0.20
#define BENCH_SHARE_EPOCH 0.35
#define BENCH_WARMUP_SHARE 0.15

/* What the steady-state steps work on. */
typedef struct {
    const nnc_model *m;
    int threads, batch;
    size_t in_floats;       /* floats per image */
    int pool_batches;       /* how many batches pool holds */
    const float *pool;      /* [pool_batches][batch][in_floats] converted inputs */
    const uint8_t *labels;  /* [pool_batches][batch] */
    float *params, *state;  /* [n_params], [n_state] */
    float *grads;           /* [n_params] */
    float *probs;           /* [batch][n_classes] */
    nnc_optimizer *opt;
    float lr;               /* 0: see nnc_bench */
    nnc_rng *rng;           /* dropout keys */
    int nonfinite;          /* set when a training step's loss was not finite */
} bench_ctx;

/* Step number i of a measurement; cycles through the pool. */
typedef void (*bench_step_fn)(bench_ctx *bc, long i);

/* One training step as the epoch loop does it, minus the data handling. */
static void bench_train_step(bench_ctx *bc, long i) {
    size_t k = (size_t)(i % bc->pool_batches);
    nnc_step_ctx ctx = {.threads = bc->threads, .dropout_key = rng_u64(bc->rng)};
    nnc_batch_stats stats = bc->m->train_batch(&ctx, bc->pool + k * (size_t)bc->batch * bc->in_floats,
                                               bc->labels + k * (size_t)bc->batch, bc->batch, bc->params,
                                               bc->grads, bc->state);
    if (!isfinite(stats.loss_sum)) bc->nonfinite = 1;
    nnc_optimizer_update(bc->opt, bc->params, bc->grads, bc->lr);
}

static void bench_infer_step(bench_ctx *bc, long i) {
    size_t k = (size_t)(i % bc->pool_batches);
    nnc_step_ctx ctx = {.threads = bc->threads, .dropout_key = 0};
    bc->m->infer_batch(&ctx, bc->pool + k * (size_t)bc->batch * bc->in_floats, bc->batch, bc->params, bc->state,
                       bc->probs);
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median, min and max of rates[0..n); sorts rates. */
static void summarize_rates(nnc_bench_rate *rate, double *rates, int n, long steps) {
    qsort(rates, (size_t)n, sizeof *rates, compare_doubles);
    rate->median = n % 2 ? rates[n / 2] : 0.5 * (rates[n / 2 - 1] + rates[n / 2]);
    rate->min = rates[0];
    rate->max = rates[n - 1];
    rate->windows = n;
    rate->steps = steps;
}

/*
 * Warm up (at least BENCH_WARMUP_STEPS steps and BENCH_WARMUP_SHARE of the
 * budget), take the pace of the warm-up's steps after the first (which pays
 * for cold caches and page faults), then spend the rest of the budget on
 * BENCH_WINDOWS equal windows of whole steps.
 */
static void bench_measure(bench_ctx *bc, bench_step_fn step, double budget, nnc_bench_rate *rate) {
    long i = 0;
    double start = now_seconds();
    step(bc, i++);
    double pace_start = now_seconds();
    while (i < BENCH_WARMUP_STEPS || now_seconds() - start < BENCH_WARMUP_SHARE * budget) step(bc, i++);
    double per_step = (now_seconds() - pace_start) / (double)(i - 1);
    if (per_step < 1e-9) per_step = 1e-9;

    double left = budget - (now_seconds() - start);
    long steps = (long)(left / BENCH_WINDOWS / per_step);
    int windows = BENCH_WINDOWS;
    if (steps < 1) { /* slow steps: one per window, and fewer windows */
        steps = 1;
        windows = (int)(left / per_step);
        if (windows < BENCH_MIN_WINDOWS) windows = BENCH_MIN_WINDOWS;
        if (windows > BENCH_WINDOWS) windows = BENCH_WINDOWS;
    }
    double rates[BENCH_WINDOWS];
    for (int w = 0; w < windows; w++) {
        double t0 = now_seconds();
        for (long s = 0; s < steps; s++) step(bc, i++);
        double dt = now_seconds() - t0;
        rates[w] = (double)steps * bc->batch / (dt > 0 ? dt : 1e-9);
    }
    summarize_rates(rate, rates, windows, steps);
}

/*
 * The data-path rate: BENCH_EPOCHS runs of nnc_train, one epoch each, over the
 * first images of `set`, as many whole batches as fit the budget at the
 * steady-state pace (at least two, at most the whole set). Each epoch's rate
 * is nnc_train's own measure, the one its log prints as img/s.
 */
static int bench_epochs(const nnc_model *m, const nnc_bench_opts *opts, const nnc_dataset *set, double train_rate,
                        double budget, float *params, float *state, const float prep[2], nnc_bench_result *res,
                        char *err, size_t errlen) {
    const int batch = m->recipe.batch;
    long n = (long)(train_rate * budget / BENCH_EPOCHS / batch) * batch;
    if (n < 2L * batch) n = 2L * batch;
    if (n > set->n) n = set->n;
    nnc_dataset part = *set;
    part.n = (int)n;
    nnc_train_opts topts = {
        .epochs = 1, .seed = opts->seed, .threads = opts->threads, .init_params = 0, .log = NULL};
    double rates[BENCH_EPOCHS];
    for (int e = 0; e < BENCH_EPOCHS; e++) {
        nnc_train_result tr;
        if (nnc_train(m, &part, NULL, &topts, params, state, prep, &tr, err, errlen) != 0) return -1;
        rates[e] = (double)n / (tr.train_seconds > 0 ? tr.train_seconds : 1e-9);
    }
    summarize_rates(&res->epoch, rates, BENCH_EPOCHS, 1);
    res->epoch_images = (int)n;
    return 0;
}

/* Uniform random bytes, four per draw. */
static void random_bytes(uint8_t *p, size_t n, nnc_rng *rng) {
    for (size_t i = 0; i < n; i += 4) {
        uint32_t r = nnc_rng_u32(rng);
        for (size_t j = i; j < i + 4 && j < n; j++, r >>= 8) p[j] = (uint8_t)r;
    }
}

int nnc_bench(const nnc_model *m, const nnc_bench_opts *opts, nnc_bench_result *res, char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    const int batch = m->recipe.batch;
    if (batch < 1 || batch > m->max_batch) {
        set_err(err, errlen, "model %s: batch size %d is not in 1..%d", m->name, batch, m->max_batch);
        return -1;
    }
    if (!(opts->seconds > 0)) {
        set_err(err, errlen, "the benchmark needs a positive time budget (got %g s)", opts->seconds);
        return -1;
    }
    const size_t in_floats = (size_t)m->in_h * m->in_w * m->in_c;
    /* The synthetic training set: n images of in_floats bytes each (a valid
     * nnc_dataset when the input has one channel), random labels. */
    nnc_dataset set = {.n = batch > BENCH_SET_SIZE ? batch : BENCH_SET_SIZE, .h = m->in_h, .w = m->in_w};
    const int pool_batches = set.n / batch < BENCH_POOL_BATCHES ? set.n / batch : BENCH_POOL_BATCHES;
    set.images = malloc((size_t)set.n * in_floats);
    set.labels = malloc((size_t)set.n);
    float *pool = malloc((size_t)pool_batches * batch * in_floats * sizeof(float));
    float *params = calloc(m->n_params ? m->n_params : 1, sizeof(float));
    float *state = calloc(m->n_state ? m->n_state : 1, sizeof(float));
    float *grads = calloc(m->n_params ? m->n_params : 1, sizeof(float));
    float *probs = malloc((size_t)batch * m->n_classes * sizeof(float));
    nnc_optimizer opt;
    int opt_rc = nnc_optimizer_init(&opt, &m->recipe.optimizer, m->n_params);
    int rc = -1;
    if (!set.images || !set.labels || !pool || !params || !state || !grads || !probs || opt_rc != 0) {
        set_err(err, errlen, "out of memory for the benchmark's buffers (%zu parameters)", m->n_params);
        goto done;
    }

    nnc_rng rng;
    nnc_rng_seed(&rng, opts->seed, NNC_RNG_STREAM);
    random_bytes(set.images, (size_t)set.n * in_floats, &rng);
    for (int s = 0; s < set.n; s++) set.labels[s] = (uint8_t)nnc_rng_below(&rng, (uint32_t)m->n_classes);
    float prep[2], table[256];
    nnc_prep_compute(m, &set, prep);
    nnc_prep_table(m, prep, table);
    for (size_t i = 0; i < (size_t)pool_batches * batch * in_floats; i++) pool[i] = table[set.images[i]];
    m->init(params, state, &rng);

    res->batch = batch;
    res->lr = nnc_schedule_lr(&m->recipe, 0);
    /*
     * The steady-state steps update at learning rate 0: the optimizer does all
     * its arithmetic, but the weights stay as initialized. Thousands of steps
     * on a few batches of noise would otherwise wreck the model (dead ReLUs,
     * all-zero gradients, Adam moments decaying into denormal floats that run
     * several times slower): a state that no real training is in, and whose
     * timings mislead (mlp64x5's steps ran 40% slower than its epoch loop).
     */
    bench_ctx bc = {
        .m = m, .threads = opts->threads, .batch = batch, .in_floats = in_floats, .pool_batches = pool_batches,
        .pool = pool, .labels = set.labels, .params = params, .state = state, .grads = grads, .probs = probs,
        .opt = &opt, .lr = 0.0f, .rng = &rng,
    };
    bench_measure(&bc, bench_train_step, BENCH_SHARE_TRAIN * opts->seconds, &res->train);
    if (bc.nonfinite) {
        set_err(err, errlen, "model %s: the loss on synthetic data is not finite; its timings would mislead",
                m->name);
        goto done;
    }
    bench_measure(&bc, bench_infer_step, BENCH_SHARE_INFER * opts->seconds, &res->infer);
    if (m->in_c == 1 && bench_epochs(m, opts, &set, res->train.median, BENCH_SHARE_EPOCH * opts->seconds, params,
                                     state, prep, res, err, errlen) != 0)
        goto done;
    rc = 0;
done:
    nnc_dataset_free(&set);
    free(pool), free(params), free(state), free(grads), free(probs);
    nnc_optimizer_free(&opt);
    return rc;
}
