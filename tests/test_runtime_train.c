/*
 * Tests for runtime/train.c and runtime/main.c, driven by a hand-written model:
 * softmax regression on 4x4 images whose class is the bright row (3 classes),
 * which is linearly separable, so the shared training loop must reach 100%.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "nncrt.h"

#define H 4
#define W 4
#define PIXELS (H * W)
#define CLASSES 3
#define N_PARAMS (PIXELS * CLASSES + CLASSES) /* W[PIXELS][CLASSES], then b[CLASSES] */
#define BATCH 16
#define N_TRAIN 90 /* not a multiple of BATCH: the last batch holds 10 */
#define N_TEST 30

/* Observations of the steps the loop made, for the tests to check. */
static int steps_seen, samples_seen, last_batch_n, nan_at_step;
/* Faults to inject: infinite gradients at a step; a layer that "goes" non-finite at a step. */
static int inf_grad_at_step, bad_layer_at_step;

static void tiny_init(float *params, float *state, nnc_rng *rng) {
    (void)state;
    nnc_init_fill(params, PIXELS * CLASSES, NNC_INIT_GLOROT_UNIFORM, PIXELS, CLASSES, rng);
    nnc_init_fill(params + PIXELS * CLASSES, CLASSES, NNC_INIT_ZEROS, PIXELS, CLASSES, rng);
}

static void softmax_forward(const float *x, const float *params, float *p) {
    const float *w = params, *b = params + PIXELS * CLASSES;
    float logits[CLASSES], max = -INFINITY, sum = 0;
    for (int k = 0; k < CLASSES; k++) {
        logits[k] = b[k];
        for (int i = 0; i < PIXELS; i++) logits[k] += x[i] * w[i * CLASSES + k];
        if (logits[k] > max) max = logits[k];
    }
    for (int k = 0; k < CLASSES; k++) sum += (p[k] = expf(logits[k] - max));
    for (int k = 0; k < CLASSES; k++) p[k] /= sum;
}

static int argmax3(const float *p) {
    int best = 0;
    for (int k = 1; k < CLASSES; k++)
        if (p[k] > p[best]) best = k;
    return best;
}

static nnc_batch_stats tiny_train_batch(const nnc_step_ctx *ctx, const float *x, const uint8_t *labels, int n,
                                        const float *params, float *grads, float *state) {
    (void)ctx, (void)state;
    steps_seen++;
    samples_seen += n;
    last_batch_n = n;
    nnc_batch_stats st = {0, 0};
    memset(grads, 0, N_PARAMS * sizeof(float));
    for (int s = 0; s < n; s++) {
        float p[CLASSES];
        softmax_forward(x + s * PIXELS, params, p);
        st.loss_sum += -log(p[labels[s]] > 1e-7f ? p[labels[s]] : 1e-7f);
        st.correct += argmax3(p) == labels[s];
        for (int k = 0; k < CLASSES; k++) {
            float d = (p[k] - (k == labels[s])) / (float)n; /* d(mean loss)/d logit */
            for (int i = 0; i < PIXELS; i++) grads[i * CLASSES + k] += d * x[s * PIXELS + i];
            grads[PIXELS * CLASSES + k] += d;
        }
    }
    if (nan_at_step && steps_seen == nan_at_step) st.loss_sum = NAN;
    if (inf_grad_at_step && steps_seen == inf_grad_at_step) grads[7] = INFINITY;
    return st;
}

static void tiny_infer_batch(const nnc_step_ctx *ctx, const float *x, int n, const float *params, const float *state,
                             float *probs) {
    (void)ctx, (void)state;
    for (int s = 0; s < n; s++) softmax_forward(x + s * PIXELS, params, probs + s * CLASSES);
}

/* The generated models' diagnosis, simulated: names a layer after a fault. */
static const char *tiny_first_nonfinite(const void *workspace, int n) {
    (void)workspace, (void)n;
    int faulty = (nan_at_step && steps_seen >= nan_at_step) || (bad_layer_at_step && steps_seen >= bad_layer_at_step);
    return faulty ? "softmax_1 (line 3, `dense 3 softmax`)" : NULL;
}

static const nnc_model tiny = {
    .name = "tiny",
    .source = "tests/test_runtime_train.c",
    .in_h = H, .in_w = W, .in_c = 1,
    .n_classes = CLASSES,
    .n_params = N_PARAMS,
    .n_state = 0,
    .signature = 0x7171,
    .max_batch = BATCH,
    .prep = NNC_PREP_SCALE,
    .prep_scale = 1.0f / 255.0f,
    .recipe = {.loss = NNC_LOSS_CROSSENTROPY,
               .optimizer = {.kind = NNC_OPT_SGD, .lr = 0.5f, .momentum = 0.9f},
               .batch = BATCH,
               .epochs = 8,
               .seed = 1234},
    .init = tiny_init,
    .train_batch = tiny_train_batch,
    .infer_batch = tiny_infer_batch,
};

/* Class c lights up row c; everything else is low noise. */
static void make_dataset(nnc_dataset *ds, int n, uint64_t seed) {
    nnc_rng rng;
    nnc_rng_seed(&rng, seed, 9);
    *ds = (nnc_dataset){.n = n, .h = H, .w = W, .c = 1};
    ds->images = malloc((size_t)n * PIXELS);
    ds->labels = malloc((size_t)n);
    for (int s = 0; s < n; s++) {
        int c = (int)nnc_rng_below(&rng, CLASSES);
        ds->labels[s] = (uint8_t)c;
        for (int i = 0; i < PIXELS; i++)
            ds->images[s * PIXELS + i] = (uint8_t)(i / W == c ? 180 + nnc_rng_below(&rng, 76) : nnc_rng_below(&rng, 60));
    }
}

static nnc_train_opts quiet_opts(int epochs) {
    return (nnc_train_opts){.epochs = epochs, .seed = 1234, .threads = 1, .init_params = 1, .log = NULL};
}

Test(runtime_train, all_finite_finds_nan_and_infinities_anywhere) {
    enum { N = 1000 };
    float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)(i - 500) * 1e-3f;
    x[1] = -0.0f, x[2] = 3.4028235e38f, x[3] = -3.4028235e38f, x[4] = 1e-45f; /* zero, extremes, a denormal */
    cr_expect(nnc_all_finite(x, N));
    cr_expect(nnc_all_finite(x, 0), "nothing to check is all finite");
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    const int where[4] = {0, 7, 500, N - 1}; /* the vector loop's first lanes, its middle, its tail */
    for (int b = 0; b < 3; b++)
        for (int w = 0; w < 4; w++) {
            float keep = x[where[w]];
            x[where[w]] = bad[b];
            cr_expect(!nnc_all_finite(x, N), "%g at index %d not found", (double)bad[b], where[w]);
            x[where[w]] = keep;
        }
}

Test(runtime_train, softmax_regression_reaches_100_percent) {
    nnc_dataset tr, te;
    make_dataset(&tr, N_TRAIN, 1);
    make_dataset(&te, N_TEST, 2);
    float params[N_PARAMS], state[1], prep[2];
    nnc_prep_compute(&tiny, &tr, prep);
    nnc_train_opts opts = quiet_opts(8);
    nnc_train_result res;
    char err[512] = "";
    cr_assert_eq(nnc_train(&tiny, &tr, &te, &opts, params, state, prep, &res, err, sizeof err), 0, "%s", err);
    cr_expect_eq(res.epochs_done, 8);
    cr_expect_eq(res.train_acc, 1.0, "train accuracy %g", res.train_acc);
    cr_expect_eq(res.test_acc, 1.0, "test accuracy %g", res.test_acc);
    cr_expect_lt(res.test_loss, 0.2, "test loss %g", res.test_loss);
    double loss, acc;
    cr_assert_eq(nnc_evaluate(&tiny, &te, params, state, prep, 2, &loss, &acc, err, sizeof err), 0);
    cr_expect_eq(acc, res.test_acc);
    cr_expect_eq(loss, res.test_loss);
    nnc_dataset_free(&tr);
    nnc_dataset_free(&te);
}

Test(runtime_train, every_sample_once_per_epoch_last_batch_partial) {
    nnc_dataset tr;
    make_dataset(&tr, N_TRAIN, 1);
    float params[N_PARAMS], state[1], prep[2];
    nnc_prep_compute(&tiny, &tr, prep);
    nnc_train_opts opts = quiet_opts(3);
    nnc_train_result res;
    char err[512] = "";
    cr_assert_eq(nnc_train(&tiny, &tr, NULL, &opts, params, state, prep, &res, err, sizeof err), 0, "%s", err);
    cr_expect_eq(steps_seen, 3 * ((N_TRAIN + BATCH - 1) / BATCH));
    cr_expect_eq(samples_seen, 3 * N_TRAIN);
    cr_expect_eq(last_batch_n, N_TRAIN % BATCH);
    nnc_dataset_free(&tr);
}

Test(runtime_train, same_seed_gives_identical_weights) {
    nnc_dataset tr;
    make_dataset(&tr, N_TRAIN, 1);
    float a[N_PARAMS], b[N_PARAMS], c[N_PARAMS], state[1], prep[2];
    nnc_prep_compute(&tiny, &tr, prep);
    nnc_train_opts opts = quiet_opts(2);
    nnc_train_result res;
    char err[512] = "";
    cr_assert_eq(nnc_train(&tiny, &tr, NULL, &opts, a, state, prep, &res, err, sizeof err), 0);
    cr_assert_eq(nnc_train(&tiny, &tr, NULL, &opts, b, state, prep, &res, err, sizeof err), 0);
    opts.seed = 99;
    cr_assert_eq(nnc_train(&tiny, &tr, NULL, &opts, c, state, prep, &res, err, sizeof err), 0);
    cr_expect_arr_eq(a, b, sizeof a);
    cr_expect_neq(memcmp(a, c, sizeof a), 0, "a different seed gave the same weights");
    nnc_dataset_free(&tr);
}

Test(runtime_train, non_finite_loss_stops_naming_epoch_and_step) {
    nnc_dataset tr;
    make_dataset(&tr, N_TRAIN, 1);
    float params[N_PARAMS], state[1], prep[2];
    nnc_prep_compute(&tiny, &tr, prep);
    nan_at_step = 9; /* 6 steps per epoch: epoch 2, step 3 */
    nnc_train_opts opts = quiet_opts(5);
    nnc_train_result res;
    char err[512] = "";
    cr_assert_eq(nnc_train(&tiny, &tr, NULL, &opts, params, state, prep, &res, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "epoch 2, step 3"), "%s", err);
    cr_expect_not_null(strstr(err, "NaN"), "%s", err);
    cr_expect_eq(steps_seen, 9, "kept training after the NaN");
    nnc_dataset_free(&tr);
}

Test(runtime_train, refuses_data_that_does_not_fit_the_model) {
    nnc_dataset tr;
    make_dataset(&tr, N_TRAIN, 1);
    tr.labels[5] = CLASSES;
    float params[N_PARAMS], state[1], prep[2] = {0, 0};
    nnc_train_opts opts = quiet_opts(1);
    nnc_train_result res;
    char err[512] = "";
    cr_expect_eq(nnc_train(&tiny, &tr, NULL, &opts, params, state, prep, &res, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "out of range"), "%s", err);
    cr_expect_eq(steps_seen, 0);
    tr.labels[5] = 0;
    tr.w = 2, tr.n = N_TRAIN * 2; /* same bytes, wrong shape */
    cr_expect_eq(nnc_train(&tiny, &tr, NULL, &opts, params, state, prep, &res, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "4x2"), "%s", err);
    tr.w = W, tr.n = N_TRAIN;
    nnc_dataset_free(&tr);
}

Test(runtime_train, augmented_training_still_learns) {
    nnc_dataset tr, te;
    make_dataset(&tr, N_TRAIN, 1);
    make_dataset(&te, N_TEST, 2);
    nnc_model m = tiny;
    m.recipe.augment = 1;
    m.recipe.aug = (nnc_augment_cfg){.rotation = 5, .zoom = 0.05f};
    float params[N_PARAMS], state[1], prep[2];
    nnc_prep_compute(&m, &tr, prep);
    nnc_train_opts opts = quiet_opts(8);
    nnc_train_result res;
    char err[512] = "";
    cr_assert_eq(nnc_train(&m, &tr, &te, &opts, params, state, prep, &res, err, sizeof err), 0, "%s", err);
    cr_expect_geq(res.test_acc, 0.9, "test accuracy %g", res.test_acc);
    nnc_dataset_free(&tr);
    nnc_dataset_free(&te);
}

Test(runtime_train, normalize_uses_population_mean_and_std) {
    nnc_dataset ds = {.n = 2, .h = 1, .w = 2, .c = 1};
    uint8_t img[4] = {0, 255, 255, 0}, lab[2] = {0, 1};
    ds.images = img, ds.labels = lab;
    nnc_model m = tiny;
    m.prep = NNC_PREP_NORMALIZE;
    float prep[2], table[256];
    nnc_prep_compute(&m, &ds, prep);
    cr_expect_eq(prep[0], 127.5f);
    cr_expect_eq(prep[1], 127.5f);
    nnc_prep_table(&m, prep, 0, table);
    cr_expect_eq(table[0], -1.0f);
    cr_expect_eq(table[255], 1.0f);
    m.prep = NNC_PREP_SCALE;
    nnc_prep_compute(&m, &ds, prep);
    nnc_prep_table(&m, prep, 0, table);
    cr_expect_eq(table[255], 255.0f * (1.0f / 255.0f));
    m.prep = NNC_PREP_NONE;
    nnc_prep_table(&m, prep, 0, table);
    cr_expect_eq(table[77], 77.0f);
}

Test(runtime_train, augmentation_identity_and_shift) {
    float src[PIXELS], dst[PIXELS];
    for (int i = 0; i < PIXELS; i++) src[i] = (float)i;
    nnc_rng rng;
    nnc_rng_seed(&rng, 1, 1);
    nnc_augment_cfg none = {0};
    nnc_augment_image(&none, H, W, 1, src, dst, &rng);
    for (int i = 0; i < PIXELS; i++) cr_expect(fabsf(dst[i] - src[i]) < 1e-5f, "pixel %d: %g", i, dst[i]);
    /* a rotation keeps values within the input's range (bilinear, edge-clamped) */
    nnc_augment_cfg rot = {.rotation = 30, .zoom = 0.2f, .width_shift = 0.2f, .height_shift = 0.2f, .shear = 0.3f};
    for (int t = 0; t < 20; t++) {
        nnc_augment_image(&rot, H, W, 1, src, dst, &rng);
        for (int i = 0; i < PIXELS; i++) cr_expect(dst[i] >= -1e-4f && dst[i] <= 15.0001f);
    }
}

/* ------------------------------------------------------------------------ */
/* nnc_main: the command line, on tiny IDX files in a temporary directory.   */
/* ------------------------------------------------------------------------ */

static char dir[64];

static void make_dir(void) {
    strcpy(dir, "/tmp/nnc_train_test.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_redirect_stdout();
    cr_redirect_stderr();
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

static void write_gz(const char *name, uint32_t magic, int ndims, const uint32_t *sizes, const uint8_t *data,
                     size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t h[16];
    uint32_t words[4] = {magic, sizes[0], ndims > 1 ? sizes[1] : 0, ndims > 2 ? sizes[2] : 0};
    for (int i = 0; i <= ndims; i++)
        for (int b = 0; b < 4; b++) h[4 * i + b] = (uint8_t)(words[i] >> (24 - 8 * b));
    gzFile f = gzopen(path, "wb");
    cr_assert_not_null(f);
    gzwrite(f, h, 4 + 4 * (unsigned)ndims);
    gzwrite(f, data, (unsigned)n);
    cr_assert_eq(gzclose(f), Z_OK);
}

static void write_mnist_like(const char *prefix, int n, uint64_t seed, uint8_t label_bump) {
    nnc_dataset ds;
    make_dataset(&ds, n, seed);
    if (label_bump) ds.labels[n - 1] = label_bump;
    char name[128];
    const uint32_t isz[3] = {(uint32_t)n, H, W}, lsz[1] = {(uint32_t)n};
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
    write_gz(name, 0x803, 3, isz, ds.images, (size_t)n * PIXELS);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
    write_gz(name, 0x801, 1, lsz, ds.labels, (size_t)n);
    nnc_dataset_free(&ds);
}

TestSuite(runtime_main, .init = make_dir, .fini = remove_dir);

static int run_main(const char *a1, const char *a2, const char *a3, const char *a4, const char *a5, const char *a6,
                    const char *a7) {
    char *argv[9] = {"tiny", (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5, (char *)a6, (char *)a7, NULL};
    int argc = 1;
    while (argc < 8 && argv[argc]) argc++;
    return nnc_main(&tiny, argc, argv);
}

Test(runtime_main, bad_flags_exit_2) {
    cr_expect_eq(run_main("--bogus", NULL, NULL, NULL, NULL, NULL, NULL), 2);
    cr_expect_eq(run_main("--epochs", "0", NULL, NULL, NULL, NULL, NULL), 2);
    cr_expect_eq(run_main("--epochs", "abc", NULL, NULL, NULL, NULL, NULL), 2);
    cr_expect_eq(run_main("--epochs", "-3", NULL, NULL, NULL, NULL, NULL), 2);
    cr_expect_eq(run_main("--epochs", "3x", NULL, NULL, NULL, NULL, NULL), 2);
    cr_expect_eq(run_main("--threads", "0", NULL, NULL, NULL, NULL, NULL), 2);
    cr_expect_eq(run_main("--seed", "-1", NULL, NULL, NULL, NULL, NULL), 2);
    cr_expect_eq(run_main("--seed", NULL, NULL, NULL, NULL, NULL, NULL), 2);
    cr_expect_eq(run_main("--eval", NULL, NULL, NULL, NULL, NULL, NULL), 2);
    cr_expect_eq(run_main("--help", NULL, NULL, NULL, NULL, NULL, NULL), 0);
}

Test(runtime_main, trains_saves_and_evaluates) {
    write_mnist_like("train", N_TRAIN, 1, 0);
    write_mnist_like("t10k", N_TEST, 2, 0);
    char save[128];
    snprintf(save, sizeof save, "%s/tiny.nncw", dir);
    cr_assert_eq(run_main("--data", dir, "--epochs", "6", "--save", save, "--threads=1"), 0);
    float params[N_PARAMS], state[1], prep[2];
    char err[512] = "";
    cr_assert_eq(nnc_checkpoint_load(save, &tiny, params, state, prep, err, sizeof err), 0, "%s", err);
    cr_expect_eq(prep[0], tiny.prep_scale);
    cr_expect_eq(run_main("--data", dir, "--eval", "--load", save, NULL, NULL), 0);
    /* a checkpoint that does not exist is a clean error */
    cr_expect_eq(run_main("--data", dir, "--eval", "--load", "/nonexistent/x.nncw", NULL, NULL), 1);
}

Test(runtime_main, label_out_of_range_is_an_error) {
    write_mnist_like("train", N_TRAIN, 1, 7);
    write_mnist_like("t10k", N_TEST, 2, 0);
    char save[128];
    snprintf(save, sizeof save, "%s/tiny.nncw", dir);
    cr_expect_eq(run_main("--data", dir, "--save", save, NULL, NULL, NULL), 1);
    cr_expect_neq(access(save, F_OK), 0, "saved weights despite the error");
}

Test(runtime_main, missing_data_dir_is_an_error) {
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none", dir);
    cr_expect_eq(run_main("--data", missing, NULL, NULL, NULL, NULL, NULL), 1);
}

/* ------------------------------------------------------------------------ */
/* The loop's additions: log format, progress, numerics, selection, resume.  */
/* ------------------------------------------------------------------------ */

/* Everything written to f so far, as a malloc'ed string. */
static char *slurp(FILE *f) {
    fflush(f);
    long n = ftell(f);
    char *s = malloc((size_t)n + 1);
    rewind(f);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    return s;
}

/* One epoch line, in the exact layout scripts parse; returns the epoch number or -1. */
static int parse_epoch_line(const char *line, const char *val) {
    int epoch, epochs, used = -1;
    double lr, loss, acc, vloss, vacc, secs, rate;
    char fmt[256];
    snprintf(fmt, sizeof fmt, "epoch %%d/%%d  lr %%lf  loss %%lf  acc %%lf%%%%  %s_loss %%lf  %s_acc %%lf%%%%  %%lf s  "
             "%%lf img/s%%n", val, val);
    if (sscanf(line, fmt, &epoch, &epochs, &lr, &loss, &acc, &vloss, &vacc, &secs, &rate, &used) != 9) return -1;
    return line[used] == '\0' ? epoch : -1;
}

Test(runtime_train, log_is_one_stable_line_per_epoch_without_a_terminal) {
    nnc_dataset tr, te;
    make_dataset(&tr, N_TRAIN, 1);
    make_dataset(&te, N_TEST, 2);
    float params[N_PARAMS], state[1], prep[2];
    nnc_prep_compute(&tiny, &tr, prep);
    nnc_train_opts opts = quiet_opts(3);
    opts.log = tmpfile();
    nnc_train_result res;
    char err[512] = "";
    cr_assert_eq(nnc_train(&tiny, &tr, &te, &opts, params, state, prep, &res, err, sizeof err), 0, "%s", err);
    char *out = slurp(opts.log);
    cr_expect_null(strchr(out, '\r'), "progress updates in a non-terminal log:\n%s", out);
    cr_expect_null(strchr(out, '\033'), "escape codes in a non-terminal log:\n%s", out);
    int lines = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"), lines++)
        cr_expect_eq(parse_epoch_line(line, "test"), lines + 1, "line %d is not an epoch line: '%s'", lines + 1, line);
    cr_expect_eq(lines, 3);
    cr_expect_not_null(strstr(slurp(opts.log), "epoch  1/3  lr 0.5  loss "), "the fixed prefix changed");
    fclose(opts.log);
    /* --validation names the columns val_ instead */
    opts.log = tmpfile(), opts.val_name = "val", opts.epochs = 1;
    cr_assert_eq(nnc_train(&tiny, &tr, &te, &opts, params, state, prep, &res, err, sizeof err), 0, "%s", err);
    out = slurp(opts.log);
    out[strcspn(out, "\n")] = '\0';
    cr_expect_eq(parse_epoch_line(out, "val"), 1, "'%s'", out);
    fclose(opts.log);
    nnc_dataset_free(&tr);
    nnc_dataset_free(&te);
}

Test(runtime_train, progress_on_a_terminal_is_redrawn_then_replaced_by_the_epoch_line) {
    nnc_dataset tr, te;
    make_dataset(&tr, N_TRAIN, 1);
    make_dataset(&te, N_TEST, 2);
    float params[N_PARAMS], state[1], prep[2];
    nnc_prep_compute(&tiny, &tr, prep);
    nnc_train_opts opts = quiet_opts(2);
    opts.log = tmpfile(), opts.progress = 1;
    nnc_train_result res;
    char err[512] = "";
    cr_assert_eq(nnc_train(&tiny, &tr, &te, &opts, params, state, prep, &res, err, sizeof err), 0, "%s", err);
    char *out = slurp(opts.log);
    /* The last step always draws: 6 of 6 steps, the running loss and accuracy, an ETA. */
    cr_expect_not_null(strstr(out, "\repoch  1/2  6/6 [========================]  ETA 0s  loss "), "%s", out);
    int lines = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        const char *last = line, *cr;
        while ((cr = strstr(last, "\r\033[K"))) last = cr + 4; /* what the terminal shows in the end */
        cr_expect_eq(parse_epoch_line(last, "test"), lines + 1, "'%s'", last);
    }
    cr_expect_eq(lines, 2);
    fclose(opts.log);
    nnc_dataset_free(&tr);
    nnc_dataset_free(&te);
}

Test(runtime_train, non_finite_loss_names_the_first_nonfinite_layer) {
    nnc_dataset tr;
    make_dataset(&tr, N_TRAIN, 1);
    nnc_model m = tiny;
    m.first_nonfinite = tiny_first_nonfinite;
    float params[N_PARAMS], state[1], prep[2];
    nnc_prep_compute(&m, &tr, prep);
    nan_at_step = 4;
    nnc_train_opts opts = quiet_opts(3);
    nnc_train_result res;
    char err[512] = "";
    cr_assert_eq(nnc_train(&m, &tr, NULL, &opts, params, state, prep, &res, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "epoch 1, step 4: the loss is NaN"), "%s", err);
    cr_expect_not_null(strstr(err, "first non-finite layer: softmax_1 (line 3"), "%s", err);
    nnc_dataset_free(&tr);
}

Test(runtime_train, non_finite_gradients_stop_training_before_the_update) {
    nnc_dataset tr;
    make_dataset(&tr, N_TRAIN, 1);
    float params[N_PARAMS], state[1], prep[2];
    nnc_prep_compute(&tiny, &tr, prep);
    inf_grad_at_step = 8; /* epoch 2, step 2 */
    nnc_train_opts opts = quiet_opts(3);
    nnc_train_result res;
    char err[512] = "";
    cr_assert_eq(nnc_train(&tiny, &tr, NULL, &opts, params, state, prep, &res, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "epoch 2, step 2: the gradients are not finite"), "%s", err);
    cr_expect(nnc_all_finite(params, N_PARAMS), "the infinite gradient reached the weights");
    cr_expect_eq(steps_seen, 8);
    nnc_dataset_free(&tr);
}

Test(runtime_train, check_numerics_looks_at_every_layer_after_every_step) {
    nnc_dataset tr;
    make_dataset(&tr, N_TRAIN, 1);
    nnc_model m = tiny;
    m.first_nonfinite = tiny_first_nonfinite;
    float params[N_PARAMS], state[1], prep[2];
    nnc_prep_compute(&m, &tr, prep);
    bad_layer_at_step = 5; /* the loss and gradients stay finite */
    nnc_train_opts opts = quiet_opts(2);
    nnc_train_result res;
    char err[512] = "";
    cr_expect_eq(nnc_train(&m, &tr, NULL, &opts, params, state, prep, &res, err, sizeof err), 0,
                 "without --check-numerics only the loss and gradients are checked: %s", err);
    steps_seen = 0;
    opts.check_numerics = 1;
    cr_assert_eq(nnc_train(&m, &tr, NULL, &opts, params, state, prep, &res, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "epoch 1, step 5"), "%s", err);
    cr_expect_not_null(strstr(err, "--check-numerics"), "%s", err);
    cr_expect_not_null(strstr(err, "softmax_1"), "%s", err);
    nnc_dataset_free(&tr);
}

Test(runtime_train, history_best_epoch_and_early_stop) {
    nnc_dataset tr, te;
    make_dataset(&tr, N_TRAIN, 1);
    make_dataset(&te, N_TEST, 2);
    float params[N_PARAMS], state[1], prep[2];
    nnc_prep_compute(&tiny, &tr, prep);
    nnc_train_opts opts = quiet_opts(30);
    opts.early_stop = 2;
    nnc_train_state ts;
    cr_assert_eq(nnc_train_state_init(&ts, &tiny, 30), 0);
    opts.state = &ts;
    nnc_train_result res;
    char err[512] = "";
    cr_assert_eq(nnc_train(&tiny, &tr, &te, &opts, params, state, prep, &res, err, sizeof err), 0, "%s", err);
    /* The separable set reaches 100% test accuracy early; nothing beats it, so two epochs later it stops. */
    cr_expect_eq(res.stopped_early, 1);
    cr_expect_eq(res.best_acc, 1.0);
    cr_expect_eq(res.epochs_done, res.best_epoch + 2, "best %d, done %d", res.best_epoch, res.epochs_done);
    cr_expect_lt(res.epochs_done, 30);
    cr_expect_eq(steps_seen, res.epochs_done * 6, "trained on after the stop");
    cr_expect_eq(ts.n_history, res.epochs_done);
    for (int i = 0; i < ts.n_history; i++) {
        const nnc_history_row *h = &ts.history[i];
        cr_expect_eq(h->epoch, i + 1);
        cr_expect_eq(h->lr, 0.5);
        cr_expect(h->accuracy >= 0 && h->accuracy <= 1 && h->val_accuracy >= 0 && h->val_accuracy <= 1);
        cr_expect(h->val_accuracy <= res.best_acc);
        cr_expect(h->loss > 0 && h->seconds >= 0 && h->images_per_second > 0);
    }
    cr_expect_eq(ts.history[res.best_epoch - 1].val_accuracy, 1.0);
    for (int i = 0; i < res.best_epoch - 1; i++) cr_expect_lt(ts.history[i].val_accuracy, 1.0, "epoch %d", i + 1);
    nnc_train_state_free(&ts);
    nnc_dataset_free(&tr);
    nnc_dataset_free(&te);
}

/* A hook that saves a checkpoint, then fails at a given update: a crash. */
typedef struct {
    const char *path;
    const float *prep;
    long crash_at_update;
    int saved;
} crash_ctx;

static int save_then_crash(void *ctx, const nnc_train_state *ts, const float *params, const float *state, char *err,
                           size_t errlen) {
    crash_ctx *c = ctx;
    nnc_run_key key = {.epochs = 5, .seed = 1234};
    if (nnc_checkpoint_save_train(c->path, &tiny, params, state, c->prep, &key, ts, err, errlen) != 0) return -1;
    c->saved++;
    if (ts->opt.step < c->crash_at_update) return 0;
    snprintf(err, errlen, "simulated crash");
    return -1;
}

Test(runtime_train, resume_from_a_mid_epoch_checkpoint_is_bit_identical) {
    nnc_dataset tr, te;
    make_dataset(&tr, N_TRAIN, 1);
    make_dataset(&te, N_TEST, 2);
    nnc_model m = tiny; /* augmentation draws from the RNG in every step: the RNG must resume exactly */
    m.recipe.augment = 1;
    m.recipe.aug = (nnc_augment_cfg){.rotation = 10, .zoom = 0.1f, .width_shift = 0.1f};
    float a[N_PARAMS], b[N_PARAMS], state[1], prep[2];
    nnc_prep_compute(&m, &tr, prep);
    nnc_train_opts opts = quiet_opts(5);
    nnc_train_result ra, rb;
    char err[512] = "";
    cr_assert_eq(nnc_train(&m, &tr, &te, &opts, a, state, prep, &ra, err, sizeof err), 0, "%s", err);

    char path[] = "/tmp/nnc_resume_test.XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    crash_ctx cc = {.path = path, .prep = prep, .crash_at_update = 16}; /* epoch 3, step 4 of 6 */
    opts.on_checkpoint = save_then_crash, opts.checkpoint_steps = 4, opts.hook_ctx = &cc;
    cr_assert_eq(nnc_train(&m, &tr, &te, &opts, b, state, prep, &rb, err, sizeof err), -1);
    cr_expect_str_eq(err, "simulated crash");
    /* mid-epoch only: update 12 ends epoch 2, where the epoch hook would save */
    cr_expect_eq(cc.saved, 3, "checkpoints at updates 4, 8, 16: %d", cc.saved);

    /* A new process, as it were: everything comes from the file. */
    memset(b, 0, sizeof b);
    nnc_train_state ts;
    nnc_run_key key;
    float prep2[2];
    cr_assert_eq(nnc_train_state_init(&ts, &m, 5), 0);
    cr_assert_eq(nnc_checkpoint_load_train(path, &m, b, state, prep2, &key, &ts, err, sizeof err), 0, "%s", err);
    cr_expect_eq(key.epochs, 5);
    cr_expect_eq(ts.epoch, 2);
    cr_expect_eq(ts.step, 4);
    cr_expect_eq(ts.opt.step, 16);
    cr_expect_eq(ts.n_history, 2);
    nnc_train_opts resume = quiet_opts(5);
    resume.init_params = 0, resume.state = &ts;
    cr_assert_eq(nnc_train(&m, &tr, &te, &resume, b, state, prep2, &rb, err, sizeof err), 0, "%s", err);
    cr_expect_arr_eq(a, b, sizeof a, "resumed weights differ from the uninterrupted run's");
    cr_expect_eq(rb.epochs_done, 5);
    cr_expect_eq(rb.train_loss, ra.train_loss);
    cr_expect_eq(rb.test_acc, ra.test_acc);
    cr_expect_eq(rb.best_epoch, ra.best_epoch);
    /* A weights-only file is not a checkpoint to resume from. */
    cr_assert_eq(nnc_checkpoint_save(path, &m, b, state, prep, err, sizeof err), 0);
    cr_expect_eq(nnc_checkpoint_load_train(path, &m, b, state, prep2, &key, &ts, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "weights only"), "%s", err);
    nnc_train_state_free(&ts);
    unlink(path);
    nnc_dataset_free(&tr);
    nnc_dataset_free(&te);
}

Test(runtime_train, confusion_matrix_counts_every_test_sample) {
    nnc_dataset te;
    make_dataset(&te, N_TEST, 2);
    float params[N_PARAMS] = {0}, state[1], prep[2] = {1.0f / 255.0f, 0};
    /* All-zero weights: equal probabilities, so argmax predicts class 0 for every sample. */
    long confusion[CLASSES * CLASSES];
    double loss, acc;
    char err[512] = "";
    cr_assert_eq(nnc_evaluate_confusion(&tiny, &te, params, state, prep, 1, &loss, &acc, confusion, err, sizeof err),
                 0, "%s", err);
    long per_class[CLASSES] = {0};
    for (int s = 0; s < N_TEST; s++) per_class[te.labels[s]]++;
    for (int t = 0; t < CLASSES; t++)
        for (int p = 0; p < CLASSES; p++)
            cr_expect_eq(confusion[t * CLASSES + p], p == 0 ? per_class[t] : 0, "true %d predicted %d", t, p);
    cr_expect_eq(acc, (double)per_class[0] / N_TEST);
    cr_expect(fabs(loss - log(3.0)) < 1e-6, "loss %g", loss);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    nnc_print_confusion(f, confusion, CLASSES, NULL, "the test set");
    fclose(f);
    char row0[128];
    snprintf(row0, sizeof row0, "    0 %3ld   0   0  100.00%%\n", per_class[0]);
    cr_expect_not_null(strstr(text, "confusion matrix on the test set"), "%s", text);
    cr_expect_not_null(strstr(text, "        0   1   2\n"), "%s", text);
    cr_expect_not_null(strstr(text, row0), "no '%s' in\n%s", row0, text);
    cr_expect_not_null(strstr(text, "    0.00%\n"), "%s", text);
    free(text);
    nnc_dataset_free(&te);
}

/* nnc_main on `model` with a NULL-terminated argument list. */
static int run_model_args(const nnc_model *model, const char *first, ...) {
    char *argv[32] = {"tiny"};
    int argc = 1;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && argc < 31; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return nnc_main(model, argc, argv);
}
#define RUN(...) run_model_args(&tiny, __VA_ARGS__, NULL)

static int exists_in_dir(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static int lines_in(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0;
    for (int c; (c = fgetc(f)) != EOF;) n += c == '\n';
    fclose(f);
    return n;
}

Test(runtime_main, bad_values_of_the_training_flags_exit_2) {
    cr_expect_eq(RUN("--lr", "abc"), 2);
    cr_expect_eq(RUN("--lr", "0"), 2);
    cr_expect_eq(RUN("--lr", "-0.1"), 2);
    cr_expect_eq(RUN("--lr", "nan"), 2);
    cr_expect_eq(RUN("--lr", "inf"), 2);
    cr_expect_eq(RUN("--lr", "0.1x"), 2);
    cr_expect_eq(RUN("--validation", "0"), 2);
    cr_expect_eq(RUN("--validation", "ten"), 2);
    cr_expect_eq(RUN("--early-stop", "0"), 2);
    cr_expect_eq(RUN("--early-stop", "-2"), 2);
    cr_expect_eq(RUN("--checkpoint-steps", "0"), 2);
    cr_expect_eq(RUN("--history"), 2);
    cr_expect_eq(RUN("--predict"), 2);
    cr_expect_eq(RUN("--predict", "a.png"), 2);              /* needs --load */
    cr_expect_eq(RUN("--predict", "--load", "w.nncw"), 2);   /* no files */
    cr_expect_eq(RUN("--resume", "--load", "w.nncw"), 2);
    cr_expect_eq(RUN("--history", "h", "--no-history"), 2);
    cr_expect_eq(RUN("--eval", "--load", "w.nncw", "--validation", "5"), 2);
    cr_expect_eq(RUN("--eval", "--load", "w.nncw", "--resume"), 2);
    cr_expect_eq(RUN("--bench", "--lr", "0.1"), 2);
    cr_expect_eq(RUN("--resume=yes"), 2, "a switch takes no value");
}

Test(runtime_main, validation_split_writes_best_weights_history_and_no_checkpoint) {
    write_mnist_like("train", N_TRAIN, 1, 0);
    write_mnist_like("t10k", N_TEST, 2, 0);
    char save[128];
    snprintf(save, sizeof save, "%s/run.nncw", dir);
    cr_assert_eq(RUN("--data", dir, "--epochs", "4", "--validation", "20", "--save", save, "--threads", "1"), 0);
    cr_expect(exists_in_dir("run.nncw"));
    cr_expect(exists_in_dir("run.best.nncw"));
    cr_expect(exists_in_dir("run.accuracy.svg"));
    cr_expect(exists_in_dir("run.loss.svg"));
    cr_expect(exists_in_dir("run.classes.svg"));
    cr_expect_eq(lines_in("run.history.csv"), 5, "header and 4 epochs");
    cr_expect(!exists_in_dir("run.ckpt"), "a completed run leaves no checkpoint behind");
    float params[N_PARAMS], state[1], prep[2];
    char err[512] = "";
    cr_assert_eq(nnc_checkpoint_load(save, &tiny, params, state, prep, err, sizeof err), 0, "%s", err);
    /* the held-out images are really held out: a too-large split is refused */
    cr_expect_eq(RUN("--data", dir, "--validation", "90", "--save", save), 2);
    cr_expect_eq(RUN("--data", dir, "--validation", "89", "--epochs", "1", "--save", save), 0);
}

Test(runtime_main, history_flags_move_or_suppress_the_files) {
    write_mnist_like("train", N_TRAIN, 1, 0);
    write_mnist_like("t10k", N_TEST, 2, 0);
    char save[128], hist[128];
    snprintf(save, sizeof save, "%s/w.nncw", dir);
    snprintf(hist, sizeof hist, "%s/elsewhere", dir);
    cr_assert_eq(RUN("--data", dir, "--epochs", "2", "--save", save, "--no-history"), 0);
    cr_expect(!exists_in_dir("w.history.csv") && !exists_in_dir("w.accuracy.svg") && !exists_in_dir("w.loss.svg") &&
              !exists_in_dir("w.classes.svg"));
    cr_expect(exists_in_dir("w.best.nncw"), "best weights do not depend on the history");
    cr_assert_eq(RUN("--data", dir, "--epochs", "3", "--save", save, "--history", hist), 0);
    cr_expect_eq(lines_in("elsewhere.history.csv"), 4);
    cr_expect(exists_in_dir("elsewhere.accuracy.svg") && exists_in_dir("elsewhere.loss.svg") &&
              exists_in_dir("elsewhere.classes.svg"));
    cr_expect(!exists_in_dir("w.history.csv"));
}

Test(runtime_main, resume_needs_this_models_checkpoint_of_this_run) {
    write_mnist_like("train", N_TRAIN, 1, 0);
    write_mnist_like("t10k", N_TEST, 2, 0);
    char save[128], ckpt[128], err[512] = "";
    snprintf(save, sizeof save, "%s/r.nncw", dir);
    snprintf(ckpt, sizeof ckpt, "%s/r.ckpt", dir);
    cr_expect_eq(RUN("--data", dir, "--save", save, "--resume"), 1, "no checkpoint");

    float params[N_PARAMS] = {0}, state[1] = {0}, prep[2] = {1.0f / 255.0f, 0};
    nnc_train_state ts;
    cr_assert_eq(nnc_train_state_init(&ts, &tiny, 8), 0);
    ts.started = 1, ts.epoch = 1;
    nnc_run_key key = {.epochs = 8, .seed = 1234, .n_train = N_TRAIN};
    /* another model's checkpoint */
    nnc_model other = tiny;
    other.signature = 0x5151;
    cr_assert_eq(nnc_checkpoint_save_train(ckpt, &other, params, state, prep, &key, &ts, err, sizeof err), 0, "%s",
                 err);
    cr_expect_eq(RUN("--data", dir, "--save", save, "--resume"), 1, "another model's checkpoint");
    /* this model's, but another run's: other epochs, then other data */
    key.epochs = 5;
    cr_assert_eq(nnc_checkpoint_save_train(ckpt, &tiny, params, state, prep, &key, &ts, err, sizeof err), 0);
    cr_expect_eq(RUN("--data", dir, "--save", save, "--resume"), 1, "other --epochs");
    key.epochs = 8;
    cr_assert_eq(nnc_checkpoint_save_train(ckpt, &tiny, params, state, prep, &key, &ts, err, sizeof err), 0);
    cr_expect_eq(RUN("--data", dir, "--save", save, "--resume"), 1, "other data (the CRC differs)");
    nnc_train_state_free(&ts);
    cr_expect(!exists_in_dir("r.nncw"), "saved weights despite the refusal");
}

Test(runtime_main, divergence_keeps_the_last_good_checkpoint) {
    write_mnist_like("train", N_TRAIN, 1, 0);
    write_mnist_like("t10k", N_TEST, 2, 0);
    char save[128], ckpt[128];
    snprintf(save, sizeof save, "%s/d.nncw", dir);
    snprintf(ckpt, sizeof ckpt, "%s/d.ckpt", dir);
    nan_at_step = 10; /* epoch 2, step 4: after epoch 1's checkpoint */
    cr_expect_eq(RUN("--data", dir, "--epochs", "3", "--save", save), 1);
    cr_expect(!exists_in_dir("d.nncw"), "saved weights after a NaN");
    cr_assert(exists_in_dir("d.ckpt"), "the last good checkpoint is gone");
    float params[N_PARAMS], state[1], prep[2];
    nnc_train_state ts;
    nnc_run_key key;
    char err[512] = "";
    cr_assert_eq(nnc_train_state_init(&ts, &tiny, 3), 0);
    cr_assert_eq(nnc_checkpoint_load_train(ckpt, &tiny, params, state, prep, &key, &ts, err, sizeof err), 0, "%s",
                 err);
    cr_expect_eq(ts.epoch, 1, "the checkpoint is epoch 1's, before the NaN");
    cr_expect_eq(ts.step, 0);
    cr_expect(nnc_all_finite(params, N_PARAMS));
    int kept = 0; /* epoch 1's per-class accuracies (the history's val_accuracy_K columns) came back */
    for (int k = 0; k < tiny.n_classes; k++) kept += ts.class_accuracy[k] >= 0.0f && ts.class_accuracy[k] <= 1.0f;
    cr_expect_gt(kept, 0, "the checkpoint lost the per-class accuracies");
    cr_expect(isnan(ts.class_accuracy[tiny.n_classes]), "epoch 2 has no per-class accuracies yet");
    nnc_train_state_free(&ts);
    /* and --resume continues from it (the fault does not recur) to the end */
    nan_at_step = 0;
    cr_expect_eq(RUN("--data", dir, "--epochs", "3", "--save", save, "--resume"), 0);
    cr_expect(exists_in_dir("d.nncw"));
    cr_expect_eq(lines_in("d.history.csv"), 4);
}
