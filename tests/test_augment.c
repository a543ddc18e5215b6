/*
 * Tests for runtime/augment.c against Keras's ImageDataGenerator definitions
 * (keras_preprocessing.image.apply_affine_transform; see augment.c's header
 * for what each DSL range means). Known images through known transforms land
 * where Keras's matrix says; random draws stay in their ranges; labels travel
 * with their images through nnc_train.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nncrt.h"

#define S 28 /* MNIST's side */

static float img_in[S * S], img_out[S * S];

static void clear(float *img) { memset(img, 0, S * S * sizeof(float)); }

/* The brightest pixel of img_out. */
static void brightest(int *row, int *col) {
    int best = 0;
    for (int p = 1; p < S * S; p++)
        if (img_out[p] > img_out[best]) best = p;
    *row = best / S, *col = best % S;
}

static void apply(double theta, double tx, double ty, double shear, double zx, double zy) {
    nnc_augment_params p = {.theta = theta, .tx = tx, .ty = ty, .shear = shear, .zx = zx, .zy = zy};
    nnc_augment_apply(&p, S, S, 1, img_in, img_out);
}

Test(augment, all_ranges_zero_is_the_identity_and_draws_nothing) {
    nnc_rng rng, before;
    nnc_rng_seed(&rng, 9, 2);
    for (int p = 0; p < S * S; p++) img_in[p] = 255.0f * nnc_rng_uniform(&rng);
    before = rng;
    nnc_augment_cfg none = {0};
    nnc_augment_image(&none, S, S, 1, img_in, img_out, &rng);
    cr_expect_eq(memcmp(img_in, img_out, sizeof img_in), 0, "not the identity");
    cr_expect(rng.state == before.state, "the RNG moved although nothing is random");
}

/*
 * A single bright pixel turned by +90 and -90 degrees. Keras samples input
 * (o + R(theta) (out - o)) for each output pixel, with o = h/2 + 0.5 = 14.5
 * (its centre, a pixel off the true 13.5). For +90: out(r, c) = in(29 - c, r),
 * so in(5, 20), above and right of the centre, lands at out(20, 24), below and
 * right: positive angles turn the content clockwise as displayed.
 */
Test(augment, rotation_by_90_degrees_lands_where_keras_puts_it) {
    clear(img_in);
    img_in[5 * S + 20] = 255.0f;
    int r, c;
    apply(90, 0, 0, 0, 1, 1);
    brightest(&r, &c);
    cr_expect(r == 20 && c == 24, "+90: the pixel went to (%d, %d), not (20, 24)", r, c);
    cr_expect_float_eq(img_out[20 * S + 24], 255.0f, 1e-3f);
    apply(-90, 0, 0, 0, 1, 1);
    brightest(&r, &c);
    cr_expect(r == 9 && c == 5, "-90: the pixel went to (%d, %d), not (9, 5)", r, c);
    cr_expect_float_eq(img_out[9 * S + 5], 255.0f, 1e-3f);
    /* Mass is conserved by a quarter turn: nothing else lit up. */
    double sum = 0;
    for (int p = 0; p < S * S; p++) sum += img_out[p];
    cr_expect_float_eq(sum, 255.0, 1e-2);
}

/* A vertical bar (rows 4..23 of column 14) turned by 90 degrees becomes the
 * horizontal bar out(14, c) = in(29 - c, 14): columns 6..25 of row 14. */
Test(augment, a_vertical_bar_turned_90_degrees_is_horizontal) {
    clear(img_in);
    for (int r = 4; r <= 23; r++) img_in[r * S + 14] = 255.0f;
    apply(90, 0, 0, 0, 1, 1);
    for (int r = 0; r < S; r++)
        for (int c = 0; c < S; c++) {
            float want = r == 14 && c >= 6 && c <= 25 ? 255.0f : 0.0f;
            cr_assert_float_eq(img_out[r * S + c], want, 1e-3f, "out(%d, %d) = %g, not %g", r, c, img_out[r * S + c],
                               want);
        }
}

/* A small angle, against the formula: out(r, c) samples in at
 * 14.5 + cos t (r - 14.5) - sin t (c - 14.5), 14.5 + sin t (r - 14.5) + cos t (c - 14.5). */
Test(augment, rotation_by_8_degrees_matches_the_matrix) {
    for (int p = 0; p < S * S; p++) img_in[p] = (float)(p % S); /* value = column: a ramp */
    apply(8, 0, 0, 0, 1, 1);
    double t = 8 * 3.14159265358979323846 / 180;
    for (int r = 3; r < S - 3; r++)
        for (int c = 3; c < S - 3; c++) {
            double in_c = 14.5 + sin(t) * (r - 14.5) + cos(t) * (c - 14.5);
            if (in_c < 0 || in_c > S - 1) continue; /* 'nearest' fill there */
            /* bilinear on a ramp in c is exact */
            cr_assert_float_eq(img_out[r * S + c], in_c, 1e-4, "out(%d, %d) = %g, want %g", r, c, img_out[r * S + c],
                               in_c);
        }
}

/* Keras's tx is along rows (height_shift), ty along columns; out(r, c) = in(r + tx, c + ty). */
Test(augment, shift_moves_content_by_whole_pixels) {
    clear(img_in);
    img_in[10 * S + 12] = 255.0f;
    int r, c;
    apply(0, 3, -2, 0, 1, 1);
    brightest(&r, &c);
    cr_expect(r == 7 && c == 14, "the pixel went to (%d, %d), not (7, 14)", r, c);
    cr_expect_float_eq(img_out[7 * S + 14], 255.0f, 1e-4f);
}

/*
 * Shear in RADIANS (Keras 1's and < 2.2's shear_range; seed 001 is Keras 1):
 * out(r, c) samples row r - sin(s) (c - 14.5) (times cos for the column). A
 * horizontal bar along row 14 tilts: at column c it sits at row
 * 14 + sin(0.3) (c - 14.5), 11.2 at column 5 and 16.8 at column 24. Read as
 * degrees, 0.3 would move nothing.
 */
Test(augment, shear_is_in_radians) {
    clear(img_in);
    for (int c = 0; c < S; c++) img_in[14 * S + c] = 255.0f;
    apply(0, 0, 0, 0.3, 1, 1);
    for (int c = 2; c < S - 2; c++) {
        double want = 14 + sin(0.3) * (c - 14.5);
        /* the bar's centre row in this column, from its mass */
        double mass = 0, mr = 0;
        for (int r = 0; r < S; r++) mass += img_out[r * S + c], mr += r * img_out[r * S + c];
        cr_assert_gt(mass, 0);
        cr_expect_float_eq(mr / mass, want, 1e-3, "column %d: bar at row %.3f, want %.3f", c, mr / mass, want);
    }
}

/* zx = zy = 2 samples twice as far from the centre: a 20-pixel bar becomes 10. */
Test(augment, zoom_above_one_shrinks) {
    clear(img_in);
    for (int r = 4; r <= 23; r++) img_in[r * S + 14] = 255.0f;
    apply(0, 0, 0, 0, 2, 2);
    double mass = 0;
    int lit = 0;
    for (int p = 0; p < S * S; p++) mass += img_out[p], lit += img_out[p] > 100.0f;
    cr_expect(lit >= 9 && lit <= 11, "%d pixels above 100, not about 10", lit);
    /* out(r, c) samples column 14.5 + 2 (c - 14.5): column 14 reads 13.5, half the bar. */
    cr_expect_float_eq(mass / 255.0, 20.0 / 2 / 2, 0.6);
}

Test(augment, draws_stay_in_keras_ranges) {
    nnc_augment_cfg cfg = {.rotation = 8, .width_shift = 0.08f, .height_shift = 0.1f, .shear = 0.3f, .zoom = 0.08f};
    nnc_rng rng;
    nnc_rng_seed(&rng, 4, 1);
    double lo[6] = {1e9, 1e9, 1e9, 1e9, 1e9, 1e9}, hi[6] = {-1e9, -1e9, -1e9, -1e9, -1e9, -1e9};
    double bound[6] = {8, 0.1 * S, 0.08 * S, 0.3, 0.08, 0.08}; /* theta, tx (rows), ty (cols), shear, zx - 1, zy - 1 */
    for (int i = 0; i < 20000; i++) {
        nnc_augment_params p;
        nnc_augment_draw(&cfg, S, S, &rng, &p);
        double v[6] = {p.theta, p.tx, p.ty, p.shear, p.zx - 1, p.zy - 1};
        for (int k = 0; k < 6; k++) lo[k] = fmin(lo[k], v[k]), hi[k] = fmax(hi[k], v[k]);
    }
    for (int k = 0; k < 6; k++) {
        cr_expect(lo[k] >= -bound[k] - 1e-9 && hi[k] <= bound[k] + 1e-9, "draw %d in [%g, %g], outside +-%g", k,
                  lo[k], hi[k], bound[k]);
        cr_expect(lo[k] < -0.99 * bound[k] && hi[k] > 0.99 * bound[k], "draw %d covers only [%g, %g] of +-%g", k,
                  lo[k], hi[k], bound[k]);
    }
}

Test(augment, outputs_stay_within_the_input_range) {
    nnc_augment_cfg cfg = {.rotation = 45, .width_shift = 0.3f, .height_shift = 0.3f, .shear = 1.0f, .zoom = 0.5f};
    nnc_rng rng;
    nnc_rng_seed(&rng, 11, 1);
    for (int i = 0; i < 2000; i++) {
        for (int p = 0; p < S * S; p++) img_in[p] = (float)nnc_rng_below(&rng, 256);
        if (i % 2) img_in[nnc_rng_below(&rng, S * S)] = 255.0f, img_in[nnc_rng_below(&rng, S * S)] = 0.0f;
        nnc_augment_image(&cfg, S, S, 1, img_in, img_out, &rng);
        for (int p = 0; p < S * S; p++)
            cr_assert(img_out[p] >= 0.0f && img_out[p] <= 255.0f, "image %d pixel %d is %g", i, p, img_out[p]);
    }
}

/* ---- through the training loop -------------------------------------------- */

#define N_TRAIN 500
#define BATCH 16
static int labels_checked, mismatches;

static void stub_init(float *params, float *state, nnc_rng *rng) {
    (void)state, (void)rng;
    params[0] = 0;
}

/* Each training image is a constant 20 * label, which every distortion keeps
 * (bilinear of a constant, 'nearest' fill): so any image whose pixels do not
 * all equal 20 * its label was paired with the wrong label. */
static nnc_batch_stats stub_train(const nnc_step_ctx *ctx, const float *x, const uint8_t *labels, int n,
                                  const float *params, float *grads, float *state) {
    (void)ctx, (void)params, (void)state;
    grads[0] = 0;
    for (int b = 0; b < n; b++) {
        for (int p = 0; p < S * S; p++)
            if (x[b * S * S + p] != 20.0f * labels[b]) {
                mismatches++;
                break;
            }
        labels_checked++;
    }
    return (nnc_batch_stats){0.0, 0};
}

static void stub_infer(const nnc_step_ctx *ctx, const float *x, int n, const float *params, const float *state,
                       float *probs) {
    (void)ctx, (void)x, (void)params, (void)state;
    for (int i = 0; i < n * 10; i++) probs[i] = 0.1f;
}

Test(augment, labels_travel_with_their_images_through_training) {
    nnc_model m = {
        .name = "stub", .in_h = S, .in_w = S, .in_c = 1, .n_classes = 10, .n_params = 1, .max_batch = BATCH,
        .prep = NNC_PREP_NONE, .init = stub_init, .train_batch = stub_train, .infer_batch = stub_infer,
        .recipe = {.loss = NNC_LOSS_CROSSENTROPY, .optimizer = {.kind = NNC_OPT_SGD, .lr = 0.01f}, .batch = BATCH,
                   .epochs = 2, .seed = 5, .augment = 1,
                   .aug = {.rotation = 30, .width_shift = 0.2f, .height_shift = 0.2f, .shear = 0.5f, .zoom = 0.3f}},
    };
    nnc_dataset ds = {.n = N_TRAIN, .h = S, .w = S, .c = 1};
    ds.images = malloc((size_t)N_TRAIN * S * S);
    ds.labels = malloc(N_TRAIN);
    for (int i = 0; i < N_TRAIN; i++) {
        ds.labels[i] = (uint8_t)(i * 7 % 10);
        memset(ds.images + (size_t)i * S * S, 20 * ds.labels[i], S * S);
    }
    float params[1], prep[2] = {0, 0};
    nnc_train_opts opts = {.epochs = 2, .seed = 5, .threads = 1, .init_params = 1, .log = NULL};
    nnc_train_result res;
    char err[256];
    cr_assert_eq(nnc_train(&m, &ds, NULL, &opts, params, NULL, prep, &res, err, sizeof err), 0, "%s", err);
    cr_expect_eq(labels_checked, 2 * N_TRAIN);
    cr_expect_eq(mismatches, 0, "%d images arrived with another image's label", mismatches);
    /* and the dataset's own labels are as they were */
    for (int i = 0; i < N_TRAIN; i++) cr_assert_eq(ds.labels[i], i * 7 % 10);
    nnc_dataset_free(&ds);
}

/* What augmentation adds to an epoch: seed 001's ranges over 60000 images,
 * as train.c does it (one image at a time, on the training thread). */
Test(augment, one_epoch_cost, .timeout = 60) {
    nnc_augment_cfg cfg = {.rotation = 8, .width_shift = 0.08f, .height_shift = 0.08f, .shear = 0.3f, .zoom = 0.08f};
    nnc_rng rng;
    nnc_rng_seed(&rng, 1, 1);
    for (int p = 0; p < S * S; p++) img_in[p] = (float)nnc_rng_below(&rng, 256);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 60000; i++) {
        nnc_augment_image(&cfg, S, S, 1, img_in, img_out, &rng);
        img_in[i % (S * S)] = img_out[(i * 31) % (S * S)]; /* keep the work observable */
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = 1e3 * (double)(t1.tv_sec - t0.tv_sec) + 1e-6 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_log_info("augmenting 60000 28x28 images: %.0f ms", ms);
    cr_expect_lt(ms, 10000.0, "augmentation takes %.0f ms an epoch", ms);
}

/* horizontal_flip on its own: a mirror image of every channel (RGB pixels keep their channel order), one draw. */
Test(augment, horizontal_flip_mirrors_every_channel) {
    enum { H = 4, W = 5, C = 3 };
    float in[H * W * C], out[H * W * C];
    for (int i = 0; i < H * W * C; i++) in[i] = (float)i;
    nnc_augment_params p = {.zx = 1, .zy = 1, .flip = 1};
    nnc_augment_apply(&p, H, W, C, in, out);
    for (int r = 0; r < H; r++)
        for (int c = 0; c < W; c++)
            for (int ch = 0; ch < C; ch++)
                cr_assert_eq(out[(r * W + c) * C + ch], in[(r * W + (W - 1 - c)) * C + ch], "(%d, %d, %d)", r, c, ch);
    nnc_augment_cfg flip_only = {.horizontal_flip = 1};
    nnc_rng rng, one_draw;
    nnc_rng_seed(&rng, 4, 2);
    one_draw = rng;
    (void)nnc_rng_u32(&one_draw);
    int flips = 0;
    for (int i = 0; i < 1000; i++) {
        nnc_augment_params d;
        nnc_augment_draw(&flip_only, H, W, &rng, &d);
        if (i == 0) cr_expect(rng.state == one_draw.state, "a flip takes one draw");
        cr_expect(d.theta == 0 && d.tx == 0 && d.ty == 0 && d.zx == 1 && d.zy == 1, "only the flip is random");
        flips += d.flip;
    }
    cr_expect(flips > 400 && flips < 600, "%d flips in 1000 draws, not about half", flips);
}

/* A recipe without horizontal_flip draws what it drew before flips existed: its
 * draws are those of the same ranges with the flip's draw left off the end. */
Test(augment, recipes_without_flip_draw_as_before) {
    nnc_augment_cfg keras = {.rotation = 10, .width_shift = 0.1f, .height_shift = 0.1f, .zoom = 0.1f};
    nnc_augment_cfg flipping = keras;
    flipping.horizontal_flip = 1;
    nnc_rng a, b;
    nnc_rng_seed(&a, 11, 2);
    b = a;
    nnc_augment_params pa, pb;
    nnc_augment_draw(&keras, S, S, &a, &pa);
    nnc_augment_draw(&flipping, S, S, &b, &pb);
    cr_expect(pa.flip == 0);
    cr_expect(pa.theta == pb.theta && pa.tx == pb.tx && pa.ty == pb.ty && pa.zx == pb.zx && pa.zy == pb.zy);
    (void)nnc_rng_u32(&a);
    cr_expect(a.state == b.state, "the flip's draw is the last one, after Keras's affine draws");
}
