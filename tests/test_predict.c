/*
 * Tests for runtime/predict.c: classifying the user's own PNG and PGM files.
 *
 * The model is tests/models/predict_mlp.nn (784-128-10), trained here for one
 * epoch on real MNIST. Its test digits are then saved the ways people save
 * digits: PGM (binary, ASCII, 16-bit), PNG (grey, 16-bit, palette, grey+alpha,
 * RGBA), white on black or inverted to black on white, with a white border,
 * enlarged. predict.c must make each of them the MNIST digit it came from.
 * PNGs are written by hand (zlib + CRC) so that every colour type and bit depth
 * can be produced, and broken, on purpose.
 */
#define _POSIX_C_SOURCE 200809L
#define NNC_NO_MAIN
#include "predict_mlp.c"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "nncrt.h"

#ifndef NNC_ROOT
#define NNC_ROOT "."
#endif
#define MNIST_DIR NNC_ROOT "/../shared/data/mnist"
#define N_DIGITS 20   /* test-set digits classified from files */
#define N_VARIANTS 4  /* files per digit */
#define SIDE 28

/* ---- writing images ------------------------------------------------------ */

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* PGM of grey values 0..maxval: P5 (binary) or P2 (ASCII, with a comment). */
static void write_pgm(const char *path, int binary, const uint16_t *px, int h, int w, int maxval) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    fprintf(f, "P%c\n# written by test_predict\n%d %d\n%d\n", binary ? '5' : '2', w, h, maxval);
    for (int i = 0; i < h * w; i++) {
        if (!binary) fprintf(f, "%d%c", px[i], (i + 1) % w ? ' ' : '\n');
        else if (maxval > 255) fputc(px[i] >> 8, f), fputc(px[i] & 255, f);
        else fputc(px[i], f);
    }
    fclose(f);
}

static size_t put_chunk(uint8_t *out, const char *type, const uint8_t *data, uint32_t n) {
    uint8_t *p = out;
    p[0] = (uint8_t)(n >> 24), p[1] = (uint8_t)(n >> 16), p[2] = (uint8_t)(n >> 8), p[3] = (uint8_t)n;
    memcpy(p + 4, type, 4);
    if (n) memcpy(p + 8, data, n);
    uint32_t crc = (uint32_t)crc32(crc32(0, NULL, 0), p + 4, n + 4);
    p[8 + n] = (uint8_t)(crc >> 24), p[9 + n] = (uint8_t)(crc >> 16), p[10 + n] = (uint8_t)(crc >> 8),
    p[11 + n] = (uint8_t)crc;
    return 12 + (size_t)n;
}

/*
 * A PNG of `channels` samples a pixel (bit depth 8 or 16, big-endian as PNG
 * stores them), colour type `ctype` (0 grey, 2 RGB, 3 palette, 4 grey+alpha,
 * 6 RGBA). For palette images `plte` holds 3*n_plte bytes. Returns its size;
 * *png is malloc'ed. `width_in_header` lets a test write a zero-size image.
 */
static size_t make_png(uint8_t **png, int ctype, int depth, int h, int w, int width_in_header, const uint8_t *samples,
                       const uint8_t *plte, int n_plte) {
    static const int channels_of[7] = {1, 0, 3, 1, 2, 0, 4};
    size_t row = (size_t)w * channels_of[ctype] * (depth / 8);
    size_t raw_n = (size_t)h * (row + 1);
    uint8_t *raw = malloc(raw_n);
    for (int r = 0; r < h; r++) {
        raw[r * (row + 1)] = 0; /* filter type None */
        memcpy(raw + r * (row + 1) + 1, samples + r * row, row);
    }
    uLongf z_n = compressBound((uLong)raw_n);
    uint8_t *z = malloc(z_n);
    cr_assert_eq(compress2(z, &z_n, raw, (uLong)raw_n, 9), Z_OK);
    *png = malloc(8 + 25 + 12 + 3 * 256 + 12 + z_n + 12);
    uint8_t *p = *png;
    memcpy(p, "\x89PNG\r\n\x1a\n", 8);
    size_t n = 8;
    uint8_t ihdr[13] = {0};
    ihdr[0] = (uint8_t)(width_in_header >> 24), ihdr[1] = (uint8_t)(width_in_header >> 16),
    ihdr[2] = (uint8_t)(width_in_header >> 8), ihdr[3] = (uint8_t)width_in_header;
    ihdr[4] = (uint8_t)(h >> 24), ihdr[5] = (uint8_t)(h >> 16), ihdr[6] = (uint8_t)(h >> 8), ihdr[7] = (uint8_t)h;
    ihdr[8] = (uint8_t)depth, ihdr[9] = (uint8_t)ctype;
    n += put_chunk(p + n, "IHDR", ihdr, 13);
    if (ctype == 3) n += put_chunk(p + n, "PLTE", plte, (uint32_t)(3 * n_plte));
    n += put_chunk(p + n, "IDAT", z, (uint32_t)z_n);
    n += put_chunk(p + n, "IEND", NULL, 0);
    free(raw), free(z);
    return n;
}

static void write_png(const char *path, int ctype, int depth, int h, int w, const uint8_t *samples) {
    uint8_t plte[3 * 256];
    for (int i = 0; i < 256; i++) plte[3 * i] = plte[3 * i + 1] = plte[3 * i + 2] = (uint8_t)i; /* a grey ramp */
    uint8_t *png;
    size_t n = make_png(&png, ctype, depth, h, w, w, samples, plte, 256);
    write_bytes(path, png, n);
    free(png);
}

/* ---- digits as people save them ------------------------------------------ */

/*
 * The digit d (white on black, 28x28) inverted to black on white when `invert`,
 * inside a white (or black) border of `border` pixels, each pixel enlarged to
 * `zoom` x `zoom`. Returns a malloc'ed [*h][*w] image.
 */
static uint8_t *dress(const uint8_t *d, int invert, int border, int zoom, int *h, int *w) {
    int side = (SIDE + 2 * border) * zoom;
    uint8_t *img = malloc((size_t)side * side);
    for (int r = 0; r < side; r++)
        for (int c = 0; c < side; c++) {
            int y = r / zoom - border, x = c / zoom - border;
            uint8_t v = y >= 0 && y < SIDE && x >= 0 && x < SIDE ? d[y * SIDE + x] : 0;
            img[r * side + c] = invert ? (uint8_t)(255 - v) : v;
        }
    *h = *w = side;
    return img;
}

/* Variant k of digit i, written into dir; its path goes into path. */
static void write_variant(const char *dir, int i, int k, const uint8_t *d, char *path, size_t pathlen) {
    int h, w;
    uint16_t px16[200 * 200];
    switch (k) {
    case 0: { /* binary PGM, as MNIST stores it */
        snprintf(path, pathlen, "%s/d%02d_plain.pgm", dir, i);
        for (int p = 0; p < SIDE * SIDE; p++) px16[p] = d[p];
        write_pgm(path, 1, px16, SIDE, SIDE, 255);
        break;
    }
    case 1: { /* ASCII PGM, black on white with a white border: ink on paper */
        snprintf(path, pathlen, "%s/d%02d_paper.pgm", dir, i);
        uint8_t *img = dress(d, 1, 10, 1, &h, &w);
        for (int p = 0; p < h * w; p++) px16[p] = img[p];
        write_pgm(path, 0, px16, h, w, 255);
        free(img);
        break;
    }
    case 2: { /* grey PNG, black on white, bordered and enlarged 3x: a scan */
        snprintf(path, pathlen, "%s/d%02d_scan.png", dir, i);
        uint8_t *img = dress(d, 1, 6, 3, &h, &w);
        write_png(path, 0, 8, h, w, img);
        free(img);
        break;
    }
    default: { /* one of the rarer encodings, in turn */
        uint8_t *img = dress(d, 1, 4, 2, &h, &w); /* black on white, 72x72 */
        uint8_t *s = malloc((size_t)h * w * 8);
        switch (i % 5) {
        case 0: /* 16-bit grey PNG */
            snprintf(path, pathlen, "%s/d%02d_grey16.png", dir, i);
            for (int p = 0; p < h * w; p++) s[2 * p] = s[2 * p + 1] = img[p]; /* v * 257: the same level */
            write_png(path, 0, 16, h, w, s);
            break;
        case 1: /* RGBA: dark blue ink on opaque white */
            snprintf(path, pathlen, "%s/d%02d_rgba.png", dir, i);
            for (int p = 0; p < h * w; p++) {
                int ink = 255 - img[p];
                s[4 * p] = (uint8_t)(255 - ink), s[4 * p + 1] = (uint8_t)(255 - ink * 9 / 10),
                s[4 * p + 2] = (uint8_t)(255 - ink / 3), s[4 * p + 3] = 255;
            }
            write_png(path, 6, 8, h, w, s);
            break;
        case 2: /* grey+alpha: black ink on a transparent background (what drawing apps export) */
            snprintf(path, pathlen, "%s/d%02d_alpha.png", dir, i);
            for (int p = 0; p < h * w; p++) s[2 * p] = 0, s[2 * p + 1] = (uint8_t)(255 - img[p]);
            write_png(path, 4, 8, h, w, s);
            break;
        case 3: /* palette */
            snprintf(path, pathlen, "%s/d%02d_palette.png", dir, i);
            write_png(path, 3, 8, h, w, img);
            break;
        default: /* 16-bit binary PGM */
            snprintf(path, pathlen, "%s/d%02d_16bit.pgm", dir, i);
            for (int p = 0; p < h * w; p++) px16[p] = (uint16_t)(img[p] * 257);
            write_pgm(path, 1, px16, h, w, 65535);
            break;
        }
        free(s), free(img);
        break;
    }
    }
}

/* ---- the model -------------------------------------------------------------- */

static nnc_dataset test_set;
static float params[N_PARAMS], state[N_STATE + 1], prep[2];

static void load_test_set(void) {
    char err[512];
    cr_assert_eq(nnc_dataset_load(&test_set, MNIST_DIR, "t10k", err, sizeof err), 0, "%s", err);
}

/* One epoch of predict_mlp on MNIST's training set. */
static void train_model(void) {
    nnc_dataset train;
    char err[512];
    cr_assert_eq(nnc_dataset_load(&train, MNIST_DIR, "train", err, sizeof err), 0, "%s", err);
    nnc_prep_compute(&nnc_model_predict_mlp, &train, prep);
    nnc_train_opts opts = {.epochs = 1, .seed = 3, .threads = nnc_model_predict_mlp.default_threads, .init_params = 1, .log = NULL};
    nnc_train_result res;
    cr_assert_eq(nnc_train(&nnc_model_predict_mlp, &train, &test_set, &opts, params, state, prep, &res, err, sizeof err),
                 0, "%s", err);
    cr_log_info("predict_mlp after one epoch: test accuracy %.2f%%", 100.0 * res.test_acc);
    cr_assert_gt(res.test_acc, 0.94);
    nnc_dataset_free(&train);
}

static void make_dir(char *dir, size_t n) {
    snprintf(dir, n, "/tmp/nnc_predict_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* Run nnc_predict_files with stdout into *out_text and stderr into *err_text. */
static int run_predict_named(const nnc_dataset *classes, int n, char **files, char **out_text, char **err_text);

static int run_predict(int n, char **files, char **out_text, char **err_text) {
    return run_predict_named(NULL, n, files, out_text, err_text);
}

static int run_predict_named(const nnc_dataset *classes, int n, char **files, char **out_text, char **err_text) {
    FILE *out = tmpfile(), *err = tmpfile();
    cr_assert(out && err);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(err), 2);
    int rc = nnc_predict_files_named(&nnc_model_predict_mlp, params, state, prep, classes, n, files, 2, out);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char **texts[2] = {out_text, err_text};
    FILE *fs[2] = {out, err};
    for (int t = 0; t < 2; t++) {
        long len = (fseek(fs[t], 0, SEEK_END), ftell(fs[t]));
        rewind(fs[t]);
        *texts[t] = calloc((size_t)len + 1, 1);
        cr_assert_eq(fread(*texts[t], 1, (size_t)len, fs[t]), (size_t)len);
        fclose(fs[t]);
    }
    return rc;
}

/* The digit printed for `path`, or -1 when it has no line. */
static int predicted(const char *text, const char *path) {
    size_t n = strlen(path);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, path, n) == 0 && line[n] == ':' && line[n + 1] == ' ') return atoi(line + n + 2);
    return -1;
}

/* ---- classifying files ---------------------------------------------------- */

Test(predict, classifies_mnist_digits_saved_as_files, .timeout = 300) {
    load_test_set();
    train_model();
    char dir[64];
    make_dir(dir, sizeof dir);
    static char paths[N_DIGITS * N_VARIANTS][256];
    char *files[N_DIGITS * N_VARIANTS];
    for (int i = 0; i < N_DIGITS; i++)
        for (int k = 0; k < N_VARIANTS; k++) {
            write_variant(dir, i, k, test_set.images + (size_t)i * SIDE * SIDE, paths[i * N_VARIANTS + k], 256);
            files[i * N_VARIANTS + k] = paths[i * N_VARIANTS + k];
        }
    char *out, *err;
    int rc = run_predict(N_DIGITS * N_VARIANTS, files, &out, &err);
    cr_assert_eq(rc, 0, "nnc_predict_files failed:\n%s", err);
    cr_assert_str_empty(err);
    cr_assert(strncmp(out, "# predict_mlp: each image made MNIST-like", 40) == 0, "no preprocessing line:\n%s", out);
    cr_assert_not_null(strstr(out, "x * 0.00392157 as in training"), "%s", out);

    static const char *const names[N_VARIANTS] = {"plain PGM", "ASCII PGM on paper", "scanned PNG", "other encodings"};
    for (int k = 0; k < N_VARIANTS; k++) {
        int correct = 0;
        for (int i = 0; i < N_DIGITS; i++) {
            int got = predicted(out, paths[i * N_VARIANTS + k]);
            cr_assert_geq(got, 0, "no line for %s:\n%s", paths[i * N_VARIANTS + k], out);
            correct += got == test_set.labels[i];
        }
        cr_log_info("%s: %d of %d correct", names[k], correct, N_DIGITS);
        cr_expect_geq(correct, 18, "%s: only %d of %d digits classified correctly:\n%s", names[k], correct, N_DIGITS,
                      out);
    }
    /* The line format: `path: D (p=0.xxx)  [p0 ... p9]`, probabilities summing to 1. */
    const char *line = strstr(out, paths[0]);
    int digit;
    float p, probs[10], sum = 0;
    char rest[8];
    cr_assert_eq(sscanf(line + strlen(paths[0]), ": %d (p=%f)  [%f %f %f %f %f %f %f %f %f %f%1[]]", &digit, &p,
                        &probs[0], &probs[1], &probs[2], &probs[3], &probs[4], &probs[5], &probs[6], &probs[7],
                        &probs[8], &probs[9], rest),
                 13, "bad line: %.200s", line);
    for (int c = 0; c < 10; c++) sum += probs[c];
    cr_expect_float_eq(sum, 1.0f, 0.006f);
    cr_expect_float_eq(p, probs[digit], 1e-6f);
    free(out), free(err);
    remove_dir(dir);
    nnc_dataset_free(&test_set);
}

/* Every variant of an MNIST digit is made back into that very digit. */
Test(predict, files_become_the_mnist_digit_again, .timeout = 60) {
    load_test_set();
    char dir[64];
    make_dir(dir, sizeof dir);
    int exact = 0, near = 0, total = 0;
    for (int i = 0; i < N_DIGITS; i++) {
        const uint8_t *d = test_set.images + (size_t)i * SIDE * SIDE;
        for (int k = 0; k < N_VARIANTS; k++) {
            char path[256], err[512];
            uint8_t img[SIDE * SIDE];
            write_variant(dir, i, k, d, path, sizeof path);
            cr_assert_eq(nnc_image_load_mnist(path, SIDE, SIDE, img, err, sizeof err), 0, "%s", err);
            int maxdiff = 0;
            for (int p = 0; p < SIDE * SIDE; p++) {
                int diff = abs((int)img[p] - (int)d[p]);
                if (diff > maxdiff) maxdiff = diff;
            }
            exact += maxdiff == 0;
            near += maxdiff <= 3; /* the RGBA variant's luma rounds */
            total++;
        }
    }
    cr_log_info("%d of %d files give back the digit exactly, %d within 3 grey levels", exact, total, near);
    /* Exact for the grey encodings; the RGBA one's luma rounds by a level or two. */
    cr_expect_eq(near, total, "only %d of %d files give back their digit", near, total);
    cr_expect_geq(exact, total * 3 / 4, "only %d of %d files give back their digit exactly", exact, total);
    remove_dir(dir);
    nnc_dataset_free(&test_set);
}

/* A digit not in MNIST's framing: small, off-centre, in a wide grey photo. */
Test(predict, crops_scales_and_centres_by_mass) {
    char dir[64];
    make_dir(dir, sizeof dir);
    /* A 6-wide, 40-tall dark bar (a "1") at the left of a light-grey 120x90 page. */
    int h = 90, w = 120;
    uint16_t *px = malloc(sizeof(uint16_t) * h * w);
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) px[r * w + c] = r >= 20 && r < 60 && c >= 10 && c < 16 ? 40 : 200;
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/bar.pgm", dir);
    write_pgm(path, 1, px, h, w, 255);
    uint8_t img[SIDE * SIDE];
    cr_assert_eq(nnc_image_load_mnist(path, SIDE, SIDE, img, err, sizeof err), 0, "%s", err);
    int top = SIDE, bottom = -1, left = SIDE, right = -1;
    double mass = 0, mr = 0, mc = 0;
    for (int r = 0; r < SIDE; r++)
        for (int c = 0; c < SIDE; c++) {
            int v = img[r * SIDE + c];
            if (v) {
                if (r < top) top = r;
                if (r > bottom) bottom = r;
                if (c < left) left = c;
                if (c > right) right = c;
            }
            mass += v, mr += v * r, mc += v * c;
        }
    cr_expect_eq(bottom - top + 1, 20, "height %d, not 20", bottom - top + 1);
    cr_expect_eq(right - left + 1, 3, "width %d, not 40:6 scaled to 20:3", right - left + 1);
    cr_expect_float_eq(mr / mass, 14.0, 0.51);
    cr_expect_float_eq(mc / mass, 14.0, 0.51);
    /* white ink at full strength on an exact-zero background */
    cr_expect_eq(img[14 * SIDE + (left + 1)], 255);
    cr_expect_eq(img[0], 0);
    free(px);
    remove_dir(dir);
}

/* ---- bad files -------------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *expect; /* part of the message */
} bad_file;

Test(predict, bad_files_are_named_and_the_rest_still_classified, .timeout = 60) {
    nnc_rng rng;
    nnc_rng_seed(&rng, 1, 1);
    nnc_model_predict_mlp.init(params, state, &rng); /* any weights: this is about the files */
    prep[0] = nnc_model_predict_mlp.prep_scale, prep[1] = 0; /* what nnc_prep_compute gives a scaled model */
    char dir[64];
    make_dir(dir, sizeof dir);
    char path[256];

    /* A good digit first and last: both must still be classified. */
    uint16_t bar[20 * 20];
    for (int p = 0; p < 400; p++) bar[p] = p % 20 >= 8 && p % 20 < 12 ? 255 : 0;
    snprintf(path, sizeof path, "%s/good1.pgm", dir);
    write_pgm(path, 1, bar, 20, 20, 255);
    snprintf(path, sizeof path, "%s/good2.pgm", dir);
    write_pgm(path, 0, bar, 20, 20, 255);

    /* A valid 20x20 grey PNG to break. */
    uint8_t s8[400];
    for (int p = 0; p < 400; p++) s8[p] = (uint8_t)bar[p];
    uint8_t *png;
    size_t png_n = make_png(&png, 0, 8, 20, 20, 20, s8, NULL, 0);
    snprintf(path, sizeof path, "%s/truncated.png", dir);
    write_bytes(path, png, png_n - 30); /* cut inside IDAT */
    png[8 + 8 + 13 + 2] ^= 0xff;        /* IHDR's CRC */
    snprintf(path, sizeof path, "%s/bad_crc.png", dir);
    write_bytes(path, png, png_n);
    free(png);
    png_n = make_png(&png, 0, 8, 20, 20, 0, s8, NULL, 0);
    snprintf(path, sizeof path, "%s/zero_width.png", dir);
    write_bytes(path, png, png_n);
    free(png);
    snprintf(path, sizeof path, "%s/signature_only.png", dir);
    write_bytes(path, "\x89PNG\r\n\x1a\n", 8);

    snprintf(path, sizeof path, "%s/truncated.pgm", dir);
    write_bytes(path, "P5\n20 20\n255\n\x01\x02\x03", 16);
    snprintf(path, sizeof path, "%s/short_ascii.pgm", dir);
    write_bytes(path, "P2\n2 2\n255\n0 255 0\n", 19);
    snprintf(path, sizeof path, "%s/zero_size.pgm", dir);
    write_bytes(path, "P5\n0 0\n255\n", 11);
    snprintf(path, sizeof path, "%s/maxval0.pgm", dir);
    write_bytes(path, "P2\n1 1\n0\n0\n", 11);
    snprintf(path, sizeof path, "%s/maxval70000.pgm", dir);
    write_bytes(path, "P2\n1 1\n70000\n0\n", 15);
    snprintf(path, sizeof path, "%s/above_maxval.pgm", dir);
    write_bytes(path, "P2\n2 1\n100\n0 101\n", 17);
    snprintf(path, sizeof path, "%s/no_header.pgm", dir);
    write_bytes(path, "P5\nwide\n", 8);
    uint16_t blank[16] = {0};
    snprintf(path, sizeof path, "%s/blank.pgm", dir);
    write_pgm(path, 1, blank, 4, 4, 255);
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    write_bytes(path, "a seven\n", 8);
    snprintf(path, sizeof path, "%s/empty.png", dir);
    write_bytes(path, "", 0);
    snprintf(path, sizeof path, "%s/a_directory.png", dir);
    cr_assert_eq(mkdir(path, 0700), 0);

    static const bad_file bad[] = {
        {"missing.png", "cannot open: No such file"},
        {"truncated.png", "corrupt or truncated PNG"},
        {"bad_crc.png", "corrupt PNG"},
        {"zero_width.png", "corrupt PNG"},
        {"signature_only.png", "corrupt PNG"},
        {"truncated.pgm", "truncated PGM"},
        {"short_ascii.pgm", "sample 4 of 4 is missing"},
        {"zero_size.pgm", "zero-size image (0x0)"},
        {"maxval0.pgm", "maxval 0 is not in 1..65535"},
        {"maxval70000.pgm", "maxval 70000 is not in 1..65535"},
        {"above_maxval.pgm", "sample 2 is 101, above maxval 100"},
        {"no_header.pgm", "corrupt PGM header"},
        {"blank.pgm", "no digit found"},
        {"notes.txt", "not a PNG or PGM"},
        {"empty.png", "empty file"},
        {"a_directory.png", "not a regular file but a directory"},
    };
    enum { N_BAD = sizeof bad / sizeof bad[0] };
    static char paths[N_BAD + 2][256];
    char *files[N_BAD + 2];
    snprintf(paths[0], 256, "%s/good1.pgm", dir);
    for (int i = 0; i < N_BAD; i++) snprintf(paths[i + 1], 256, "%s/%s", dir, bad[i].name);
    snprintf(paths[N_BAD + 1], 256, "%s/good2.pgm", dir);
    for (int i = 0; i < N_BAD + 2; i++) files[i] = paths[i];

    char *out, *err;
    int rc = run_predict(N_BAD + 2, files, &out, &err);
    cr_expect_eq(rc, 1, "a bad file must make the result 1");
    cr_expect_geq(predicted(out, paths[0]), 0, "the good file before the bad ones has no line:\n%s", out);
    cr_expect_geq(predicted(out, paths[N_BAD + 1]), 0, "the good file after the bad ones has no line:\n%s", out);
    for (int i = 0; i < N_BAD; i++) {
        char want[600];
        snprintf(want, sizeof want, "error: %s: ", paths[i + 1]);
        const char *at = strstr(err, want);
        cr_expect_not_null(at, "no message naming %s in:\n%s", bad[i].name, err);
        if (at) {
            const char *eol = strchr(at, '\n');
            char msg[1024];
            snprintf(msg, sizeof msg, "%.*s", (int)(eol ? eol - at : (long)strlen(at)), at);
            cr_expect_not_null(strstr(msg, bad[i].expect), "%s: expected \"%s\" in \"%s\"", bad[i].name,
                               bad[i].expect, msg);
        }
        cr_expect_eq(predicted(out, paths[i + 1]), -1, "%s was classified", bad[i].name);
    }
    free(out), free(err);
    remove_dir(dir);
}

/* With class names (image folders, CIFAR-10) each line names the class after its number; folders named
 * by their digits, and MNIST, keep the number alone. */
Test(predict, names_the_class_when_the_data_has_names, .timeout = 60) {
    nnc_rng rng;
    nnc_rng_seed(&rng, 2, 1);
    nnc_model_predict_mlp.init(params, state, &rng); /* any weights: this is about the line */
    prep[0] = nnc_model_predict_mlp.prep_scale, prep[1] = 0;
    char dir[64], path[256];
    make_dir(dir, sizeof dir);
    uint16_t px[SIDE * SIDE] = {0};
    for (int r = 6; r < 22; r++) px[r * SIDE + 13] = px[r * SIDE + 14] = 255; /* a stroke: a "1" */
    snprintf(path, sizeof path, "%s/one.pgm", dir);
    write_pgm(path, 1, px, SIDE, SIDE, 255);
    char *files[1] = {path}, *out, *err;
    char *words[10] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};
    char *digits[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    nnc_dataset named = {.n_class_names = 10, .class_names = words}, numbered = {.n_class_names = 10, .class_names = digits};

    cr_assert_eq(run_predict_named(&named, 1, files, &out, &err), 0, "%s", err);
    int k = predicted(out, path);
    cr_assert(k >= 0 && k < 10, "%s", out);
    char want[400];
    snprintf(want, sizeof want, "%s: %d %s (p=", path, k, words[k]);
    cr_expect_not_null(strstr(out, want), "wanted '%s' in:\n%s", want, out);
    free(out), free(err);

    const nnc_dataset *plain[2] = {&numbered, NULL};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(run_predict_named(plain[i], 1, files, &out, &err), 0, "%s", err);
        snprintf(want, sizeof want, "%s: %d (p=", path, k);
        cr_expect_not_null(strstr(out, want), "wanted '%s' in:\n%s", want, out);
        free(out), free(err);
    }
    remove_dir(dir);
}
