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
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nncrt.h"

/* Which PCG32 stream the trainer uses; any fixed odd-making value would do. */
#define NNC_RNG_STREAM 54u
/* Keras clips probabilities to [eps, 1 - eps] before taking the log. */

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
    size_t n = (size_t)ds->n * (size_t)ds->h * (size_t)ds->w * (size_t)ds->c;
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

/* The conversion of every channel's pixel values (channels past the last
 * table use the last: only NNC_PREP_CHANNELS tells channels apart). */
typedef struct {
    float v[NNC_MAX_PREP_CHANNELS][256];
} prep_tables;

static void prep_tables_fill(const nnc_model *m, const float prep[2], prep_tables *t) {
    for (int c = 0; c < NNC_MAX_PREP_CHANNELS; c++) nnc_prep_table(m, prep, c, t->v[c]);
}

/* How many samples ahead gather_batch asks for a shuffled sample's bytes. */
#define GATHER_PREFETCH_AHEAD 4

/* gcc 12 deletes a loop of nothing but __builtin_prefetch as dead code (-O2 and -O3 alike). */
static inline void prefetch_line(const void *p) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#else
    __builtin_prefetch(p);
#endif
}

/* Ask for every cache line of sample idx[b], when b < n. */
static void prefetch_sample(const nnc_dataset *ds, const uint32_t *idx, int b, int n, size_t bytes) {
    if (b >= n) return;
    const uint8_t *src = ds->images + (size_t)idx[b] * bytes;
    for (size_t off = 0; off < bytes; off += 64) prefetch_line(src + off);
    prefetch_line(src + bytes - 1);
}

/*
 * Convert samples idx[0..n) (or samples first..first+n when idx is NULL) to
 * floats. A shuffled epoch reads its images from all over the training set,
 * each a short run of cache lines that the hardware prefetcher does not
 * foresee: the loop asks for the bytes of the image GATHER_PREFETCH_AHEAD
 * samples ahead (mlp800, 1 thread: 1.41 -> 0.89 us an image, see README).
 */
static void gather_batch(const nnc_dataset *ds, const uint32_t *idx, size_t first, int n, const prep_tables *t,
                         float *x, uint8_t *labels) {
    const size_t pixels = (size_t)ds->h * (size_t)ds->w, floats = pixels * (size_t)ds->c;
    if (idx)
        for (int b = 0; b < GATHER_PREFETCH_AHEAD; b++) prefetch_sample(ds, idx, b, n, floats);
    for (int b = 0; b < n; b++) {
        if (idx) prefetch_sample(ds, idx, b + GATHER_PREFETCH_AHEAD, n, floats);
        size_t sample = idx ? idx[b] : first + (size_t)b;
        const uint8_t *src = ds->images + sample * floats;
        float *dst = x + (size_t)b * floats;
        if (ds->c == 1) {
            for (size_t p = 0; p < pixels; p++) dst[p] = t->v[0][src[p]];
        } else {
            for (int c = 0; c < ds->c; c++) {
                const float *table = t->v[c < NNC_MAX_PREP_CHANNELS ? c : NNC_MAX_PREP_CHANNELS - 1];
                for (size_t p = 0; p < pixels; p++) dst[p * ds->c + c] = table[src[p * ds->c + c]];
            }
        }
        labels[b] = ds->labels[sample];
    }
}

/* ------------------------------------------------------------------------ */
/* Evaluation                                                               */
/* ------------------------------------------------------------------------ */

/* One evaluated sample: what the evaluation adds up, in sample order. */
typedef struct {
    double loss;
    int32_t predicted;
    int32_t pad; /* explicit, so that the struct, exchanged as bytes, has no undefined padding */
} sample_result;

/* Evaluate batches [first, end) of ds into results (indexed by sample). */
static void evaluate_batches(const nnc_model *m, const nnc_dataset *ds, const float *params, const float *state,
                             const prep_tables *table, nnc_step_ctx *ctx, int first, int end, float *x, float *probs,
                             uint8_t *labels, sample_result *results) {
    for (int k = first; k < end; k++) {
        int start = k * m->max_batch, n = ds->n - start < m->max_batch ? ds->n - start : m->max_batch;
        gather_batch(ds, NULL, (size_t)start, n, table, x, labels);
        m->infer_batch(ctx, x, n, params, state, probs);
        for (int b = 0; b < n; b++) {
            const float *p = probs + (size_t)b * m->n_classes;
            results[start + b].loss = nnc_sample_loss(m->recipe.loss, p, m->n_classes, labels[b]);
            results[start + b].predicted = nnc_argmax(p, m->n_classes);
        }
    }
}

/*
 * Evaluate on ds in batches of the model's batch. The step workspace is the
 * caller's when it has one (training lends its own between epochs: a second
 * workspace would double the trainer's largest allocation), else our own.
 * Several processes (dist) each evaluate their share of the batches and
 * exchange the per-sample results; every process then adds them up in sample
 * order, so the figures are one process's to the last bit.
 */
static int evaluate_in(const nnc_model *m, const nnc_dataset *ds, const float *params, const float *state,
                       const float prep[2], int threads, const nnc_dist *dist, void *workspace, double *loss,
                       double *acc, long *confusion, char *err, size_t errlen) {
    if (nnc_dataset_check(ds, m, "evaluation data", err, errlen) != 0) return -1;
    const int n_batches = (ds->n + m->max_batch - 1) / m->max_batch;
    size_t in_floats = (size_t)m->in_h * m->in_w * m->in_c;
    float *x = malloc((size_t)m->max_batch * in_floats * sizeof(float));
    float *probs = malloc((size_t)m->max_batch * m->n_classes * sizeof(float));
    uint8_t *labels = malloc((size_t)m->max_batch);
    sample_result *results = calloc((size_t)n_batches * m->max_batch + 1, sizeof *results);
    void *own = workspace ? NULL : nnc_workspace_new(m);
    void *ws = workspace ? workspace : own;
    if (!x || !probs || !labels || !results || !ws) {
        nnc_set_error(err, errlen, "out of memory for evaluation buffers");
        free(x), free(probs), free(labels), free(results), nnc_workspace_free(own);
        return -1;
    }
    prep_tables table;
    prep_tables_fill(m, prep, &table);
    nnc_step_ctx ctx = {.threads = threads, .dropout_key = 0, .workspace = ws};
    int first, end;
    nnc_dist_blocks(dist, n_batches, &first, &end);
    evaluate_batches(m, ds, params, state, &table, &ctx, first, end, x, probs, labels, results);
    const size_t batch_bytes = (size_t)m->max_batch * sizeof *results;
    nnc_dist_share(dist, results, batch_bytes, batch_bytes, n_batches);

    if (confusion) memset(confusion, 0, (size_t)m->n_classes * m->n_classes * sizeof *confusion);
    double loss_sum = 0.0;
    long correct = 0;
    for (int i = 0; i < ds->n; i++) {
        loss_sum += results[i].loss;
        correct += results[i].predicted == ds->labels[i];
        if (confusion) confusion[(size_t)ds->labels[i] * m->n_classes + results[i].predicted]++;
    }
    *loss = ds->n ? loss_sum / ds->n : 0.0;
    *acc = ds->n ? (double)correct / ds->n : 0.0;
    free(x), free(probs), free(labels), free(results), nnc_workspace_free(own);
    return 0;
}

int nnc_evaluate_confusion(const nnc_model *m, const nnc_dataset *ds, const float *params, const float *state,
                           const float prep[2], int threads, double *loss, double *acc, long *confusion, char *err,
                           size_t errlen) {
    return evaluate_in(m, ds, params, state, prep, threads, NULL, NULL, loss, acc, confusion, err, errlen);
}

int nnc_evaluate(const nnc_model *m, const nnc_dataset *ds, const float *params, const float *state,
                 const float prep[2], int threads, double *loss, double *acc, char *err, size_t errlen) {
    return evaluate_in(m, ds, params, state, prep, threads, NULL, NULL, loss, acc, NULL, err, errlen);
}

/* Widest count in the matrix, so the columns line up whatever the set's size. */
static int count_width(const long *confusion, int n_classes) {
    long most = 0;
    for (int i = 0; i < n_classes * n_classes; i++)
        if (confusion[i] > most) most = confusion[i];
    int width = 1;
    for (; most >= 10; most /= 10) width++;
    return width < 3 ? 3 : width;
}

/* Class t's name, or "" when the data has none or the name is only its number (folders 0..9). */
static const char *class_name(const nnc_dataset *ds, int t) {
    const char *name = nnc_class_name(ds, t);
    return name ? name : "";
}

/* Class t's accuracy: its row's diagonal share of the row; NAN when the class has no sample. */
static double class_accuracy(const long *confusion, int n_classes, int t) {
    const long *row = confusion + (size_t)t * n_classes;
    long total = 0;
    for (int k = 0; k < n_classes; k++) total += row[k];
    return total > 0 ? (double)row[t] / (double)total : NAN;
}

void nnc_print_confusion(FILE *out, const long *confusion, int n_classes, const nnc_dataset *ds, const char *what) {
    const int w = count_width(confusion, n_classes);
    int name_w = 0; /* rows are "  3 cat" when there are names, "    3" otherwise */
    for (int t = 0; t < n_classes; t++)
        if ((int)strlen(class_name(ds, t)) > name_w) name_w = (int)strlen(class_name(ds, t));
    const int label_w = name_w ? 4 + name_w : 5;
    fprintf(out, "confusion matrix on %s (rows: true class, columns: predicted; last: the class's accuracy)\n", what);
    fprintf(out, "%*s", label_w, "");
    for (int k = 0; k < n_classes; k++) fprintf(out, " %*d", w, k);
    fprintf(out, "\n");
    for (int t = 0; t < n_classes; t++) {
        const long *row = confusion + (size_t)t * n_classes;
        if (name_w)
            fprintf(out, "%3d %-*s", t, name_w, class_name(ds, t));
        else
            fprintf(out, "%5d", t);
        for (int k = 0; k < n_classes; k++) fprintf(out, " %*ld", w, row[k]);
        const double acc = class_accuracy(confusion, n_classes, t);
        if (!isnan(acc))
            fprintf(out, "  %6.2f%%\n", 100.0 * acc);
        else
            fprintf(out, "  %7s\n", "-"); /* no sample of this class */
    }
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
    void *workspace;  /* the model's step buffers */
} train_buffers;

static void train_buffers_free(train_buffers *tb) {
    free(tb->x), free(tb->augmented), free(tb->labels), free(tb->grads), free(tb->order);
    nnc_workspace_free(tb->workspace);
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
    tb->workspace = nnc_workspace_new(m);
    if (!tb->x || !tb->augmented || !tb->labels || !tb->grads || !tb->order || !tb->workspace) {
        train_buffers_free(tb);
        return -1;
    }
    return 0;
}

int nnc_train_state_init(nnc_train_state *ts, const nnc_model *m, int epochs) {
    memset(ts, 0, sizeof *ts);
    ts->cap_history = epochs > 0 ? epochs : 1;
    ts->history = calloc((size_t)ts->cap_history, sizeof *ts->history);
    ts->n_classes = m->n_classes;
    ts->class_accuracy = malloc((size_t)ts->cap_history * m->n_classes * sizeof *ts->class_accuracy);
    if (!ts->history || !ts->class_accuracy || nnc_optimizer_init(&ts->opt, &m->recipe.optimizer, m->n_params) != 0) {
        free(ts->history), free(ts->class_accuracy);
        ts->history = NULL, ts->class_accuracy = NULL;
        return -1;
    }
    for (size_t i = 0; i < (size_t)ts->cap_history * m->n_classes; i++) ts->class_accuracy[i] = NAN;
    return 0;
}

void nnc_train_state_free(nnc_train_state *ts) {
    nnc_optimizer_free(&ts->opt);
    free(ts->history), free(ts->class_accuracy);
    memset(ts, 0, sizeof *ts);
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
        nnc_set_error(err, errlen, "model %s: batch size %d is not in 1..%d", m->name, m->recipe.batch, m->max_batch);
        return -1;
    }
    if (train->n < 1) {
        nnc_set_error(err, errlen, "the training set is empty");
        return -1;
    }
    if (opts->epochs < 1) {
        nnc_set_error(err, errlen, "epochs must be at least 1 (got %d)", opts->epochs);
        return -1;
    }
    if (opts->state && opts->state->cap_history < opts->epochs) {
        nnc_set_error(err, errlen, "the training state was made for %d epochs, not %d", opts->state->cap_history,
                opts->epochs);
        return -1;
    }
    return 0;
}

/* ---- numerics ---- */

/*
 * After a step: is everything finite? The loss is one number and the gradients
 * one flat pass, cheap next to the step; the layer-by-layer search
 * (m->first_nonfinite) runs when something is wrong, or after every step with
 * --check-numerics. Returns 0, or -1 with a message naming the place.
 */
static int check_step_numerics(const nnc_model *m, const nnc_train_opts *opts, const nnc_batch_stats *stats,
                               const float *grads, const void *workspace, int n, int epoch, int step, char *err,
                               size_t errlen) {
    const char *what = NULL;
    if (!isfinite(stats->loss_sum))
        what = isnan(stats->loss_sum) ? "the loss is NaN" : "the loss is infinite";
    else if (!nnc_all_finite(grads, m->n_params))
        what = "the gradients are not finite";
    if (!what && !opts->check_numerics) return 0;
    const char *layer = m->first_nonfinite ? m->first_nonfinite(workspace, n) : NULL;
    if (!what && !layer) return 0;
    if (!what) what = "a layer's output is not finite (--check-numerics)";
    char where[256];
    if (layer)
        snprintf(where, sizeof where, "first non-finite layer: %s", layer);
    else
        snprintf(where, sizeof where, m->first_nonfinite ? "every layer's output is finite" : "no per-layer check");
    nnc_set_error(err, errlen, "epoch %d, step %d: %s (%s); training diverged (try a lower learning rate, e.g. --lr)",
            epoch + 1, step + 1, what, where);
    return -1;
}

/* Before a checkpoint: an update can overflow even when the gradients were finite. */
static int check_weights_finite(const nnc_model *m, const float *params, const nnc_train_state *ts, char *err,
                                size_t errlen) {
    if (nnc_all_finite(params, m->n_params)) return 0;
    nnc_set_error(err, errlen,
            "epoch %d, step %d: the weights became non-finite after the update; training diverged (try a lower "
            "learning rate, e.g. --lr)",
            ts->epoch + 1, ts->step);
    return -1;
}

/* ---- progress on a terminal ---- */

#define PROGRESS_INTERVAL 0.1 /* seconds between updates of the line: at most 10 a second */
#define PROGRESS_BAR 24

/* Keras's fit(verbose=1): `epoch 1/10  312/938 [=======>....]  ETA 3s  loss .. acc ..`, redrawn with \r. */
static void print_progress(FILE *log, const nnc_train_opts *opts, const nnc_train_state *ts, int n_steps,
                           double seconds) {
    int done = ts->step, filled = (int)((long)PROGRESS_BAR * done / n_steps);
    char bar[PROGRESS_BAR + 1];
    for (int i = 0; i < PROGRESS_BAR; i++) bar[i] = i < filled ? '=' : i == filled ? '>' : '.';
    bar[PROGRESS_BAR] = '\0';
    double eta = done > 0 ? seconds / done * (n_steps - done) : 0.0;
    fprintf(log, "\repoch %*d/%d  %*d/%d [%s]  ETA %.0fs  loss %.4f  acc %.2f%%\033[K", opts->epochs >= 100 ? 3 : 2,
            ts->epoch + 1, opts->epochs, (int)(log10(n_steps) + 1), done, n_steps, bar, eta,
            ts->seen ? ts->loss_sum / (double)ts->seen : 0.0,
            ts->seen ? 100.0 * (double)ts->correct / (double)ts->seen : 0.0);
    fflush(log);
}

/* ---- one epoch ---- */

/* What runs the steps of an epoch needs besides the state. */
typedef struct {
    const nnc_model *m;
    const nnc_dataset *train;
    const nnc_train_opts *opts;
    train_buffers *tb;
    const prep_tables *table;
    float *params, *state;
} step_env;

/* A mid-epoch checkpoint is due every checkpoint_steps updates, or when
 * checkpoint_seconds have passed since the last one. */
static int mid_epoch_checkpoint_due(const nnc_train_opts *opts, const nnc_train_state *ts, double since_last) {
    if (!opts->on_checkpoint) return 0;
    if (opts->checkpoint_steps > 0 && ts->opt.step % opts->checkpoint_steps == 0) return 1;
    return opts->checkpoint_seconds > 0 && since_last >= opts->checkpoint_seconds;
}

/*
 * The steps of epoch ts->epoch from step ts->step on. The last batch holds
 * whatever is left (n % batch samples) instead of being dropped, as Keras's
 * fit() does: every sample is seen once per epoch. Starting at step 0 draws
 * the epoch's order from the RNG; a resumed epoch redraws the same order from
 * the RNG as it was when the epoch began. Each step updates at the schedule's
 * rate for that step (nnc_schedule_lr_at).
 */
static int train_epoch_steps(const step_env *env, nnc_train_state *ts, char *err, size_t errlen) {
    const nnc_model *m = env->m;
    const nnc_train_opts *opts = env->opts;
    const int batch = m->recipe.batch, n_train = env->train->n;
    const int n_steps = (n_train + batch - 1) / batch;
    if (ts->step == 0) {
        ts->rng_epoch = ts->rng;
        shuffle_order(env->tb->order, n_train, &ts->rng);
        ts->loss_sum = 0.0, ts->correct = ts->seen = 0, ts->seconds = 0.0;
    } else {
        nnc_rng at_start = ts->rng_epoch;
        shuffle_order(env->tb->order, n_train, &at_start);
    }
    const double before = ts->seconds, t0 = now_seconds();
    double last_checkpoint = t0, last_progress = 0.0;
    while (ts->step < n_steps) {
        int start = ts->step * batch, n = n_train - start < batch ? n_train - start : batch;
        gather_batch(env->train, env->tb->order + start, 0, n, env->table, env->tb->x, env->tb->labels);
        if (m->recipe.augment) augment_batch(m, env->tb->x, n, env->tb->augmented, &ts->rng);
        nnc_step_ctx ctx = {.threads = opts->threads, .dropout_key = rng_u64(&ts->rng), .workspace = env->tb->workspace,
                            .dist = opts->dist};
        nnc_batch_stats stats = m->train_batch(&ctx, env->tb->x, env->tb->labels, n, env->params, env->tb->grads,
                                               env->state);
        if (check_step_numerics(m, opts, &stats, env->tb->grads, env->tb->workspace, n, ts->epoch, ts->step, err, errlen) != 0)
            return -1;
        nnc_optimizer_update(&ts->opt, env->params, env->tb->grads,
                             nnc_schedule_lr_at(&m->recipe, ts->epoch, ts->step, n_steps));
        ts->loss_sum += stats.loss_sum;
        ts->correct += stats.correct;
        ts->seen += n;
        ts->step++;
        double now = now_seconds();
        ts->seconds = before + (now - t0);
        if (opts->progress && opts->log && (now - last_progress >= PROGRESS_INTERVAL || ts->step == n_steps)) {
            print_progress(opts->log, opts, ts, n_steps, ts->seconds);
            last_progress = now;
        }
        if (ts->step < n_steps && mid_epoch_checkpoint_due(opts, ts, now - last_checkpoint)) {
            if (check_weights_finite(m, env->params, ts, err, errlen) != 0) return -1;
            if (opts->on_checkpoint(opts->hook_ctx, ts, env->params, env->state, err, errlen) != 0) return -1;
            last_checkpoint = now_seconds();
        }
    }
    return 0;
}

/* ---- after an epoch ---- */

/* The epoch line (one per epoch, the same on a terminal after its progress line). */
static void print_epoch_line(FILE *log, const nnc_train_opts *opts, const nnc_history_row *h, int has_val) {
    const char *val = opts->val_name ? opts->val_name : "test";
    if (opts->progress) fprintf(log, "\r\033[K");
    fprintf(log, "epoch %*d/%d  lr %g  loss %.4f  acc %.2f%%", opts->epochs >= 100 ? 3 : 2, h->epoch, opts->epochs,
            h->lr, h->loss, 100.0 * h->accuracy);
    if (has_val) fprintf(log, "  %s_loss %.4f  %s_acc %.2f%%", val, h->val_loss, val, 100.0 * h->val_accuracy);
    fprintf(log, "  %.1f s  %.0f img/s\n", h->seconds, h->images_per_second);
    fflush(log);
}

/* Each class's accuracy from a confusion matrix, for the history; NAN for a class without images. */
static void class_accuracy_row(const long *confusion, int k, float *row) {
    for (int t = 0; t < k; t++) row[t] = (float)class_accuracy(confusion, k, t);
}

/* Record the finished epoch: evaluate, add its history row, track the best
 * epoch, log it, and move the state to the start of the next epoch. */
static int finish_epoch(const step_env *env, const nnc_dataset *test, const float prep[2], nnc_train_state *ts,
                        float lr, char *err, size_t errlen) {
    const nnc_train_opts *opts = env->opts;
    double t0 = now_seconds();
    nnc_history_row h = {.epoch = ts->epoch + 1,
                         .lr = lr,
                         .loss = ts->loss_sum / (double)ts->seen,
                         .accuracy = (double)ts->correct / (double)ts->seen,
                         .val_loss = NAN,
                         .val_accuracy = NAN,
                         .images_per_second = ts->seconds > 0 ? (double)ts->seen / ts->seconds : 0.0};
    if (test) {
        const int k = env->m->n_classes;
        long *confusion = malloc((size_t)k * k * sizeof *confusion);
        if (!confusion) {
            nnc_set_error(err, errlen, "out of memory for the confusion matrix");
            return -1;
        }
        int rc = evaluate_in(env->m, test, env->params, env->state, prep, opts->threads, opts->dist,
                             env->tb->workspace, &h.val_loss, &h.val_accuracy, confusion, err, errlen);
        if (rc == 0 && ts->n_history < ts->cap_history)
            class_accuracy_row(confusion, k, ts->class_accuracy + (size_t)ts->n_history * k);
        free(confusion);
        if (rc != 0) return -1;
        if (ts->best_epoch == 0 || h.val_accuracy > ts->best_accuracy) {
            ts->best_epoch = h.epoch;
            ts->best_accuracy = h.val_accuracy;
            ts->since_best = 0;
        } else {
            ts->since_best++;
        }
    }
    h.seconds = ts->seconds + (now_seconds() - t0);
    if (ts->n_history < ts->cap_history) ts->history[ts->n_history++] = h;
    if (opts->log) print_epoch_line(opts->log, opts, &h, test != NULL);
    ts->epoch++;
    ts->step = 0;
    return 0;
}

static int early_stop_due(const nnc_train_opts *opts, const nnc_train_state *ts) {
    return opts->early_stop > 0 && ts->best_epoch > 0 && ts->since_best >= opts->early_stop;
}

static void fill_result(nnc_train_result *result, const nnc_train_state *ts, const nnc_train_opts *opts,
                        double last_train_seconds) {
    result->epochs_done = ts->n_history;
    if (ts->n_history > 0) {
        const nnc_history_row *h = &ts->history[ts->n_history - 1];
        result->train_loss = h->loss;
        result->train_acc = h->accuracy;
        result->test_loss = isnan(h->val_loss) ? 0.0 : h->val_loss;
        result->test_acc = isnan(h->val_accuracy) ? 0.0 : h->val_accuracy;
    }
    result->train_seconds = last_train_seconds;
    result->best_epoch = ts->best_epoch;
    result->best_acc = ts->best_accuracy;
    result->stopped_early = ts->epoch < opts->epochs && early_stop_due(opts, ts);
}

int nnc_train(const nnc_model *m, const nnc_dataset *train, const nnc_dataset *test, const nnc_train_opts *opts,
              float *params, float *state, const float prep[2], nnc_train_result *result, char *err,
              size_t errlen) {
    memset(result, 0, sizeof *result);
    if (check_train_args(m, train, test, opts, err, errlen) != 0) return -1;
    train_buffers tb;
    nnc_train_state own;
    nnc_train_state *ts = opts->state ? opts->state : &own;
    if (train_buffers_alloc(&tb, m, train->n) != 0 || (!opts->state && nnc_train_state_init(&own, m, opts->epochs))) {
        nnc_set_error(err, errlen, "out of memory for training buffers (%zu parameters)", m->n_params);
        train_buffers_free(&tb);
        return -1;
    }
    if (!ts->started) {
        nnc_rng_seed(&ts->rng, opts->seed, NNC_RNG_STREAM);
        if (opts->init_params) m->init(params, state, &ts->rng);
        ts->started = 1;
    }
    prep_tables table;
    prep_tables_fill(m, prep, &table);
    step_env env = {m, train, opts, &tb, &table, params, state};

    int rc = 0;
    double last_train_seconds = 0.0, steps = 0.0;
    nnc_traffic traffic = {0.0, 0.0, 0.0}; /* the steps', evaluation excluded */
    while (rc == 0 && ts->epoch < opts->epochs && !early_stop_due(opts, ts)) {
        float lr = nnc_schedule_lr(&m->recipe, ts->epoch);
        const int first_step = ts->step;
        const nnc_traffic before = nnc_dist_traffic(opts->dist);
        rc = train_epoch_steps(&env, ts, err, errlen);
        const nnc_traffic after = nnc_dist_traffic(opts->dist);
        traffic.sent += after.sent - before.sent;
        traffic.received += after.received - before.received;
        traffic.exchanges += after.exchanges - before.exchanges;
        steps += ts->step - first_step;
        if (rc == 0) rc = check_weights_finite(m, params, ts, err, errlen);
        if (rc != 0) break;
        last_train_seconds = ts->seconds;
        rc = finish_epoch(&env, test, prep, ts, lr, err, errlen);
        if (rc == 0 && opts->on_epoch) rc = opts->on_epoch(opts->hook_ctx, ts, params, state, err, errlen);
    }
    if (rc == 0 && opts->log && early_stop_due(opts, ts) && ts->epoch < opts->epochs) {
        fprintf(opts->log, "early stop: %s accuracy has not improved for %d epochs (best: epoch %d, %.2f%%)\n",
                opts->val_name ? opts->val_name : "test", ts->since_best, ts->best_epoch, 100.0 * ts->best_accuracy);
        fflush(opts->log);
    }
    fill_result(result, ts, opts, last_train_seconds);
    if (steps > 0) {
        result->step_traffic.sent = traffic.sent / steps;
        result->step_traffic.received = traffic.received / steps;
        result->step_traffic.exchanges = traffic.exchanges / steps;
    }
    train_buffers_free(&tb);
    if (!opts->state) nnc_train_state_free(&own);
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
    void *workspace;        /* the model's step buffers */
    int nonfinite;          /* set when a training step's loss was not finite */
} bench_ctx;

/* Step number i of a measurement; cycles through the pool. */
typedef void (*bench_step_fn)(bench_ctx *bc, long i);

/* One training step as the epoch loop does it, minus the data handling. */
static void bench_train_step(bench_ctx *bc, long i) {
    size_t k = (size_t)(i % bc->pool_batches);
    nnc_step_ctx ctx = {.threads = bc->threads, .dropout_key = rng_u64(bc->rng), .workspace = bc->workspace};
    nnc_batch_stats stats = bc->m->train_batch(&ctx, bc->pool + k * (size_t)bc->batch * bc->in_floats,
                                               bc->labels + k * (size_t)bc->batch, bc->batch, bc->params,
                                               bc->grads, bc->state);
    if (!isfinite(stats.loss_sum)) bc->nonfinite = 1;
    nnc_optimizer_update(bc->opt, bc->params, bc->grads, bc->lr);
}

static void bench_infer_step(bench_ctx *bc, long i) {
    size_t k = (size_t)(i % bc->pool_batches);
    nnc_step_ctx ctx = {.threads = bc->threads, .dropout_key = 0, .workspace = bc->workspace};
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
        nnc_set_error(err, errlen, "model %s: batch size %d is not in 1..%d", m->name, batch, m->max_batch);
        return -1;
    }
    if (!(opts->seconds > 0)) {
        nnc_set_error(err, errlen, "the benchmark needs a positive time budget (got %g s)", opts->seconds);
        return -1;
    }
    const size_t in_floats = (size_t)m->in_h * m->in_w * m->in_c;
    /* The synthetic training set: n images of in_floats bytes each, random labels. */
    nnc_dataset set = {.n = batch > BENCH_SET_SIZE ? batch : BENCH_SET_SIZE, .h = m->in_h, .w = m->in_w, .c = m->in_c};
    const int pool_batches = set.n / batch < BENCH_POOL_BATCHES ? set.n / batch : BENCH_POOL_BATCHES;
    set.images = malloc((size_t)set.n * in_floats);
    set.labels = malloc((size_t)set.n);
    float *pool = malloc((size_t)pool_batches * batch * in_floats * sizeof(float));
    float *params = calloc(m->n_params ? m->n_params : 1, sizeof(float));
    float *state = calloc(m->n_state ? m->n_state : 1, sizeof(float));
    float *grads = calloc(m->n_params ? m->n_params : 1, sizeof(float));
    float *probs = malloc((size_t)batch * m->n_classes * sizeof(float));
    void *workspace = nnc_workspace_new(m);
    nnc_optimizer opt;
    int opt_rc = nnc_optimizer_init(&opt, &m->recipe.optimizer, m->n_params);
    int rc = -1;
    if (!set.images || !set.labels || !pool || !params || !state || !grads || !probs || !workspace || opt_rc != 0) {
        nnc_set_error(err, errlen, "out of memory for the benchmark's buffers (%zu parameters)", m->n_params);
        goto done;
    }

    nnc_rng rng;
    nnc_rng_seed(&rng, opts->seed, NNC_RNG_STREAM);
    random_bytes(set.images, (size_t)set.n * in_floats, &rng);
    for (int s = 0; s < set.n; s++) set.labels[s] = (uint8_t)nnc_rng_below(&rng, (uint32_t)m->n_classes);
    float prep[2];
    nnc_prep_compute(m, &set, prep);
    prep_tables table;
    prep_tables_fill(m, prep, &table);
    gather_batch(&set, NULL, 0, pool_batches * batch, &table, pool, set.labels);
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
        .opt = &opt, .lr = 0.0f, .rng = &rng, .workspace = workspace,
    };
    bench_measure(&bc, bench_train_step, BENCH_SHARE_TRAIN * opts->seconds, &res->train);
    if (bc.nonfinite) {
        nnc_set_error(err, errlen, "model %s: the loss on synthetic data is not finite; its timings would mislead",
                m->name);
        goto done;
    }
    bench_measure(&bc, bench_infer_step, BENCH_SHARE_INFER * opts->seconds, &res->infer);
    /* The epoch loop allocates what a real run does: give back the steady-state
     * buffers first, so that the peak RSS is a real run's, not two workspaces. */
    free(pool), free(grads), free(probs);
    nnc_workspace_free(workspace);
    pool = grads = probs = NULL, workspace = NULL;
    if (bench_epochs(m, opts, &set, res->train.median, BENCH_SHARE_EPOCH * opts->seconds, params, state, prep, res,
                     err, errlen) != 0)
        goto done;
    rc = 0;
done:
    nnc_dataset_free(&set);
    free(pool), free(params), free(state), free(grads), free(probs);
    nnc_workspace_free(workspace);
    nnc_optimizer_free(&opt);
    return rc;
}
