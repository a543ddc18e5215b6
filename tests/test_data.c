/*
 * test_data.c - the data layouts beside IDX: CIFAR-10's binary files (decoded
 * into NHWC, class names from batches.meta.txt, a file of the wrong length
 * named), per-channel normalization, and RGB trainers trained on synthetic
 * CIFAR-format files (tests/tools/cifar_synth.c) through the command line.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nncrt.h"
#include "test_support.h"

#define PLANE (NNC_CIFAR_SIDE * NNC_CIFAR_SIDE)

/* Two records: pixel p of record r has red r*10 + p % 7, green 100 + p % 11, blue 200 + p % 13. */
static uint8_t *two_records(void) {
    uint8_t *b = malloc(2 * NNC_CIFAR_RECORD);
    for (int r = 0; r < 2; r++) {
        uint8_t *rec = b + r * NNC_CIFAR_RECORD;
        rec[0] = (uint8_t)(7 - r);
        for (int p = 0; p < PLANE; p++) {
            rec[1 + p] = (uint8_t)(r * 10 + p % 7);
            rec[1 + PLANE + p] = (uint8_t)(100 + p % 11);
            rec[1 + 2 * PLANE + p] = (uint8_t)(200 + p % 13);
        }
    }
    return b;
}

Test(data, cifar_records_become_nhwc_images) {
    uint8_t *bytes = two_records();
    nnc_dataset ds = {0};
    char err[512];
    cr_assert_eq(nnc_cifar_decode("mem", bytes, 2 * NNC_CIFAR_RECORD, &ds, err, sizeof err), 0, "%s", err);
    /* a second file appends */
    cr_assert_eq(nnc_cifar_decode("mem", bytes, NNC_CIFAR_RECORD, &ds, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ds.n, 3);
    cr_expect(ds.h == 32 && ds.w == 32 && ds.c == 3);
    cr_expect(ds.labels[0] == 7 && ds.labels[1] == 6 && ds.labels[2] == 7);
    for (int r = 0; r < 3; r++)
        for (int p = 0; p < PLANE; p++) {
            const uint8_t *px = ds.images + ((size_t)r * PLANE + p) * 3;
            int rec = r % 2;
            cr_assert(px[0] == rec * 10 + p % 7 && px[1] == 100 + p % 11 && px[2] == 200 + p % 13,
                      "image %d pixel %d is (%d, %d, %d)", r, p, px[0], px[1], px[2]);
        }
    nnc_dataset_free(&ds);
    free(bytes);
}

Test(data, cifar_file_of_the_wrong_length_is_named) {
    uint8_t *bytes = two_records();
    nnc_dataset ds = {0};
    char err[512];
    cr_expect_eq(nnc_cifar_decode("dir/data_batch_3.bin", bytes, NNC_CIFAR_RECORD + 1000, &ds, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "dir/data_batch_3.bin: 4073 bytes is not a whole number of CIFAR-10 records"),
                       "%s", err);
    cr_expect_eq(nnc_cifar_decode("empty.bin", bytes, 0, &ds, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "empty.bin"), "%s", err);
    cr_expect_eq(ds.n, 0);
    nnc_dataset_free(&ds);
    free(bytes);
}

Test(data, class_names_skip_blank_lines_and_carriage_returns) {
    char *dir = scratch_dir();
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/batches.meta.txt", dir);
    FILE *f = fopen(path, "wb");
    fputs("airplane\r\nautomobile  \n\nbird\n\n\n", f);
    fclose(f);
    nnc_dataset ds = {0};
    cr_assert_eq(nnc_class_names_read(path, &ds, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ds.n_class_names, 3);
    cr_expect_str_eq(ds.class_names[0], "airplane");
    cr_expect_str_eq(ds.class_names[1], "automobile");
    cr_expect_str_eq(ds.class_names[2], "bird");
    nnc_dataset_free(&ds);
    f = fopen(path, "wb");
    fwrite("cat\0dog\n", 1, 8, f);
    fclose(f);
    cr_expect_eq(nnc_class_names_read(path, &ds, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "batches.meta.txt: not a text file"), "%s", err);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

/* torchvision: ToTensor (v / 255), then Normalize((x - mean[c]) / std[c]). */
Test(data, per_channel_normalization_is_torchvisions) {
    nnc_model m = {.prep = NNC_PREP_CHANNELS, .in_c = 3,
                   .prep_mean = {0.4914f, 0.4822f, 0.4465f}, .prep_std = {0.2470f, 0.2435f, 0.2616f}};
    float prep[2] = {0, 0}, table[256];
    for (int c = 0; c < 3; c++) {
        nnc_prep_table(&m, prep, c, table);
        for (int v = 0; v < 256; v += 51) {
            float want = (float)(((double)v / 255.0 - (double)m.prep_mean[c]) / (double)m.prep_std[c]);
            cr_expect_eq(table[v], want, "channel %d value %d: %g, not %g", c, v, (double)table[v], (double)want);
        }
    }
}

/* A dataset with more class names than the model has outputs is refused, naming both. */
Test(data, more_classes_than_outputs_is_an_error) {
    char *names[3] = {strdup("a"), strdup("b"), strdup("c")};
    uint8_t image[2 * 2 * 3] = {0}, label = 0;
    nnc_dataset ds = {.n = 1, .h = 2, .w = 2, .c = 3, .images = image, .labels = &label, .n_class_names = 3,
                      .class_names = names};
    nnc_model m = {.name = "two", .in_h = 2, .in_w = 2, .in_c = 3, .n_classes = 2};
    char err[512];
    cr_expect_eq(nnc_dataset_check(&ds, &m, "DIR/train", err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "DIR/train: has 3 classes (a .. c) but model two has 2 outputs"), "%s", err);
    for (int i = 0; i < 3; i++) free(names[i]);
}

/* ---- through the command line ------------------------------------------- */

static char *data_dir, *bin_dir;

/* Synthetic CIFAR-10 files (RECORDS a file) and the trainer of tests/models/cifar_tiny.nn. */
#define RECORDS 300
static void make_cifar_and_trainer(void) {
    data_dir = scratch_dir();
    bin_dir = scratch_dir();
    cr_assert_eq(run(NULL, "cc -std=c11 -O2 -o %s/cifar_synth tests/tools/cifar_synth.c && %s/cifar_synth %s %d",
                     bin_dir, bin_dir, data_dir, RECORDS),
                 0);
    char *out = NULL;
    cr_assert_eq(run(&out, "SAN_FLAGS='%s' sh tests/tools/build_trainer.sh $B tests/models/cifar_tiny.nn %s/cifar_tiny",
                     SAN_FLAGS, bin_dir),
                 0, "%s", out);
    free(out);
}

static void remove_dirs(void) {
    run(NULL, "rm -rf %s %s", data_dir, bin_dir);
    free(data_dir), free(bin_dir);
}

Test(data, rgb_model_trains_on_cifar_layout, .init = make_cifar_and_trainer, .fini = remove_dirs) {
    char *out = NULL;
    int status = run(&out, "cd %s && %s/cifar_tiny --data %s --threads 2 --save w.nncw --export w.safetensors", bin_dir,
                     bin_dir, data_dir);
    cr_assert_eq(status, 0, "%s", out);
    char found[600];
    snprintf(found, sizeof found,
             "data: CIFAR-10 binary layout in %s (data_batch_1..5.bin, test_batch.bin, batches.meta.txt)", data_dir);
    cr_expect_not_null(strstr(out, found), "%s", out);
    cr_expect_not_null(strstr(out, "1500 training and 300 test images"), "%s", out);
    /* the confusion matrix names the classes from batches.meta.txt */
    cr_expect_not_null(strstr(out, "  0 airplane "), "%s", out);
    cr_expect_not_null(strstr(out, "  9 truck "), "%s", out);
    const char *acc = strstr(out, "test accuracy ");
    cr_assert_not_null(acc, "%s", out);
    double pct = atof(acc + strlen("test accuracy "));
    cr_expect(pct >= 90.0, "test accuracy %.2f%% on colours a small conv net tells apart: the channels are mixed up?",
              pct);
    free(out);
    /* the exported metadata names the classes (a JSON array in a string) and the per-channel constants */
    cr_expect_eq(run(NULL, "head -c 3000 %s/w.safetensors | grep -qF '\"classes\":\"[\\\"airplane\\\",\\\"automobile\\\",'",
                     bin_dir),
                 0, "no class names in the exported metadata");
    cr_expect_eq(run(NULL, "head -c 3000 %s/w.safetensors | grep -qF '\\\"truck\\\"]\",'", bin_dir), 0,
                 "the exported list of class names is not a whole JSON array");
    cr_expect_eq(run(NULL, "head -c 3000 %s/w.safetensors | grep -qF '\"prep_channel_std\":\"0.25,0.25,0.25\"'", bin_dir),
                 0, "no per-channel constants in the exported metadata");
    /* --predict on RGB files: the first test image as a 32x32 PNG and enlarged to 64x64 (resized back) */
    char path[600];
    snprintf(path, sizeof path, "%s/test_batch.bin", data_dir);
    FILE *f = fopen(path, "rb");
    uint8_t rec[NNC_CIFAR_RECORD], rgb[64 * 64 * 3];
    cr_assert_eq(fread(rec, 1, sizeof rec, f), sizeof rec);
    fclose(f);
    for (int side = 32; side <= 64; side *= 2) {
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
                for (int c = 0; c < 3; c++)
                    rgb[(y * side + x) * 3 + c] = rec[1 + c * PLANE + (y * 32 / side) * 32 + x * 32 / side];
        png_image img;
        memset(&img, 0, sizeof img);
        img.version = PNG_IMAGE_VERSION;
        img.width = img.height = (png_uint_32)side;
        img.format = PNG_FORMAT_RGB;
        snprintf(path, sizeof path, "%s/x%d.png", bin_dir, side);
        cr_assert(png_image_write_to_file(&img, path, 0, rgb, 0, NULL));
    }
    cr_assert_eq(run(&out, "cd %s && ./cifar_tiny --load w.nncw --predict x32.png x64.png", bin_dir), 0, "%s", out);
    char want[64];
    snprintf(want, sizeof want, "x32.png: %d (p=", rec[0]);
    cr_expect_not_null(strstr(out, want), "label %d:\n%s", rec[0], out);
    snprintf(want, sizeof want, "x64.png: %d (p=", rec[0]);
    cr_expect_not_null(strstr(out, want), "label %d:\n%s", rec[0], out);
    cr_expect_not_null(strstr(out, "each image as RGB"), "%s", out);
    free(out);
    /* named after batches.meta.txt: from the exported .safetensors' metadata, or from --data */
    static const char *const cifar_names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                                "dog", "frog", "horse", "ship", "truck"};
    cr_assert_eq(run(&out, "cd %s && ./cifar_tiny --load w.safetensors --predict x32.png && ./cifar_tiny --load w.nncw "
                           "--data %s --predict x64.png",
                     bin_dir, data_dir),
                 0, "%s", out);
    snprintf(want, sizeof want, "x32.png: %d %s (p=", rec[0], cifar_names[rec[0]]);
    cr_expect_not_null(strstr(out, want), "wanted '%s' in:\n%s", want, out);
    snprintf(want, sizeof want, "x64.png: %d %s (p=", rec[0], cifar_names[rec[0]]);
    cr_expect_not_null(strstr(out, want), "wanted '%s' in:\n%s", want, out);
    free(out);
    /* the same run again: the same weights, bit for bit (flips and shifts are deterministic draws) */
    cr_assert_eq(run(&out, "cd %s && %s/cifar_tiny --data %s --threads 1 --save w2.nncw && cmp w.nncw w2.nncw",
                     bin_dir, bin_dir, data_dir),
                 0, "%s", out);
    free(out);
}

Test(data, cifar_file_of_the_wrong_length_stops_the_trainer, .init = make_cifar_and_trainer, .fini = remove_dirs) {
    char *out = NULL;
    cr_assert_eq(run(NULL, "truncate -s -1 %s/data_batch_3.bin", data_dir), 0);
    int status = run(&out, "cd %s && %s/cifar_tiny --data %s --save w.nncw", bin_dir, bin_dir, data_dir);
    cr_expect_eq(status, 1, "%s", out);
    char want[600];
    snprintf(want, sizeof want, "error: %s/data_batch_3.bin: %d bytes is not a whole number of CIFAR-10 records",
             data_dir, RECORDS * NNC_CIFAR_RECORD - 1);
    cr_expect_not_null(strstr(out, want), "%s", out);
    free(out);
    /* a missing batch is named too */
    cr_assert_eq(run(NULL, "rm %s/data_batch_5.bin %s/data_batch_3.bin", data_dir, data_dir), 0);
    status = run(&out, "cd %s && %s/cifar_tiny --data %s --save w.nncw", bin_dir, bin_dir, data_dir);
    cr_expect_eq(status, 1, "%s", out);
    cr_expect_not_null(strstr(out, "data_batch_3.bin"), "%s", out);
    free(out);
}

/* An MNIST (one-channel) model pointed at CIFAR-10 says what does not fit. */
Test(data, grey_model_on_rgb_data_names_the_shapes, .init = make_cifar_and_trainer, .fini = remove_dirs) {
    char *out = NULL;
    int status = run(&out, "linear=$(pwd)/$B/bin/linear && cd %s && $linear --data %s --epochs 1 --save w.nncw", bin_dir,
                     data_dir);
    cr_expect_eq(status, 1, "%s", out);
    cr_expect_not_null(strstr(out, "images are 32x32x3 but model linear expects 28x28x1"), "%s", out);
    free(out);
}

/* The inference C of an RGB model with per-channel normalization (nnc --emit=inference: a pixel
 * table a channel) against the trainer's own inference, on the 300 synthetic test images. */
Test(data, inference_c_matches_the_trainer_on_rgb, .init = make_cifar_and_trainer, .fini = remove_dirs,
     .timeout = 300) {
    char *out = NULL;
    cr_assert_eq(run(&out, "cd %s && ./cifar_tiny --data %s --save w.nncw --no-history", bin_dir, data_dir), 0, "%s",
                 out);
    free(out);
    /* the test images as an IDX file of 32 x 96 "pixels" each: NHWC rows, channels fastest */
    nnc_dataset test;
    char err[512], path[600];
    cr_assert_eq(nnc_cifar_load(&test, data_dir, "test", err, sizeof err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/rgb-idx3-ubyte", bin_dir);
    FILE *f = fopen(path, "wb");
    const uint8_t head[16] = {0, 0, 8, 3, 0, 0, (uint8_t)(test.n >> 8), (uint8_t)test.n, 0, 0, 0, 32, 0, 0, 0, 96};
    fwrite(head, 1, sizeof head, f);
    fwrite(test.images, 1, (size_t)test.n * 32 * 32 * 3, f);
    fclose(f);
    nnc_dataset_free(&test);
    int status = run(&out,
                     "$B/nnc --emit=inference --weights %s/w.nncw tests/models/cifar_tiny.nn -o %s/net.c && "
                     "gcc -std=c99 -Wall -Wextra -Werror -pedantic -O2 -I%s -DINFER_H='\"net.h\"' -DPREFIX=net "
                     "-DPREFIX_UPPER=NET tests/tools/infer_run.c %s/net.c -o %s/infer_run -lm && "
                     "SAN_FLAGS='%s' sh tests/tools/build_trainer_run.sh $B %s/cifar_tiny.c %s/trainer_run && "
                     "%s/infer_run %s > %s/infer.txt 2>/dev/null && %s/trainer_run %s/w.nncw %s > %s/trainer.txt && "
                     "paste -d' ' %s/infer.txt %s/trainer.txt | awk '{ k = NF / 2; if ($1 != $(k + 1)) mis++; "
                     "for (i = 2; i <= k; i++) { d = $i - $(k + i); if (d < 0) d = -d; if (d > max) max = d } } "
                     "END { printf \"images %%d different %%d max %%g\\n\", NR, mis + 0, max + 0 }'",
                     bin_dir, bin_dir, bin_dir, bin_dir, bin_dir, SAN_FLAGS, bin_dir, bin_dir, bin_dir, path, bin_dir,
                     bin_dir, bin_dir, path, bin_dir, bin_dir, bin_dir);
    cr_assert_eq(status, 0, "%s", out);
    int images = 0, different = -1;
    double max = 1;
    const char *line = strstr(out, "images ");
    cr_assert_not_null(line, "%s", out);
    cr_assert_eq(sscanf(line, "images %d different %d max %lf", &images, &different, &max), 3, "%s", out);
    cr_expect_eq(images, RECORDS, "%s", out);
    cr_expect_eq(different, 0, "%s", out);
    cr_expect_lt(max, 1e-4, "%s", out);
    free(out);
}
