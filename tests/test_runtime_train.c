/*
 * Tests for runtime/train.c and runtime/main.c, driven by a hand-written model:
 * softmax regression on 4x4 images whose class is the bright row (3 classes),
 * which is linearly separable, so the shared training loop must reach 100%.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
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
    return st;
}

static void tiny_infer_batch(const nnc_step_ctx *ctx, const float *x, int n, const float *params, const float *state,
                             float *probs) {
    (void)ctx, (void)state;
    for (int s = 0; s < n; s++) softmax_forward(x + s * PIXELS, params, probs + s * CLASSES);
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
    ds->n = n, ds->h = H, ds->w = W;
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
    nnc_dataset ds = {.n = 2, .h = 1, .w = 2};
    uint8_t img[4] = {0, 255, 255, 0}, lab[2] = {0, 1};
    ds.images = img, ds.labels = lab;
    nnc_model m = tiny;
    m.prep = NNC_PREP_NORMALIZE;
    float prep[2], table[256];
    nnc_prep_compute(&m, &ds, prep);
    cr_expect_eq(prep[0], 127.5f);
    cr_expect_eq(prep[1], 127.5f);
    nnc_prep_table(&m, prep, table);
    cr_expect_eq(table[0], -1.0f);
    cr_expect_eq(table[255], 1.0f);
    m.prep = NNC_PREP_SCALE;
    nnc_prep_compute(&m, &ds, prep);
    nnc_prep_table(&m, prep, table);
    cr_expect_eq(table[255], 255.0f * (1.0f / 255.0f));
    m.prep = NNC_PREP_NONE;
    nnc_prep_table(&m, prep, table);
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
