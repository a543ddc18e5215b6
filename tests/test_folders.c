/*
 * test_folders.c - the image-folder layout (runtime/folders.c, image.c):
 * MNIST written as PNG folders (tests/tools/idx_to_folders.c) trains
 * cnn_baseline to the same weights, bit for bit, as the same images in IDX
 * files in the folders' order; JPEG folders train; every bad input is a clear
 * error naming the file or folder; bilinear resizing is TensorFlow's.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nncrt.h"
#include "test_support.h"

/* An h x w grey PNG whose pixel i is 16 * i (mod 256), written by libpng. */
static void write_grey_png(const char *path, int h, int w) {
    uint8_t *px = malloc((size_t)h * w);
    for (int i = 0; i < h * w; i++) px[i] = (uint8_t)(16 * i);
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w, img.height = (png_uint_32)h;
    img.format = PNG_FORMAT_GRAY;
    cr_assert(png_image_write_to_file(&img, path, 0, px, 0, NULL), "%s: %s", path, img.message);
    free(px);
}

/* ---- decoding and resizing ------------------------------------------------ */

/* tf.image.resize([[0, 100], [200, 255]], (4, 4), "bilinear"): half-pixel centres, edges clamped (the same
 * figures as torch.nn.functional.interpolate(mode="bilinear", align_corners=False), rounded). */
Test(folders, bilinear_resize_is_tensorflows) {
    uint8_t px[4] = {0, 100, 200, 255}, out[16];
    nnc_image in = {.h = 2, .w = 2, .c = 1, .px = px};
    nnc_image_resize_bilinear(&in, 4, 4, out);
    static const uint8_t want[16] = {0, 25, 75, 100, 50, 72, 117, 139, 150, 167, 200, 216, 200, 214, 241, 255};
    for (int i = 0; i < 16; i++) cr_expect_eq(out[i], want[i], "pixel %d: %d, not %d", i, out[i], want[i]);
}

Test(folders, neither_png_nor_jpeg_is_named) {
    nnc_image img;
    char err[512];
    const uint8_t text[] = "hello, not an image";
    cr_expect_eq(nnc_image_decode("dir/x.png", text, sizeof text, 1, &img, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "dir/x.png: neither a PNG nor a JPEG file"), "%s", err);
    const uint8_t png_head[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H'};
    cr_expect_eq(nnc_image_decode("y.png", png_head, sizeof png_head, 3, &img, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "y.png: corrupt"), "%s", err);
    const uint8_t jpeg_head[] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F'};
    cr_expect_eq(nnc_image_decode("z.jpg", jpeg_head, sizeof jpeg_head, 1, &img, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "z.jpg: corrupt JPEG"), "%s", err);
}

/* ---- MNIST as folders, through the trainers --------------------------------- */

static char *dir;

/* DIR/sub: 2048 + 512 MNIST images as IDX; DIR/png and DIR/jpg: the same as folders (and DIR/png/idx in their order). */
static void make_folders(void) {
    dir = scratch_dir();
    char *out = NULL;
    int status = run(&out,
                     "src=$(sh tests/tools/find_mnist.sh) && sh tests/tools/mnist_subset.sh \"$src\" %s/sub 2048 512 && "
                     "cc -std=c11 -O2 -o %s/idx_to_folders tests/tools/idx_to_folders.c -lpng -ljpeg && "
                     "%s/idx_to_folders %s/sub %s/png png && %s/idx_to_folders %s/sub %s/jpg jpg 95",
                     dir, dir, dir, dir, dir, dir, dir, dir);
    if (status == 77 || (out && strstr(out, "no MNIST"))) {
        run(NULL, "rm -rf %s", dir);
        skip_visibly("skipped: %s", out);
    }
    cr_assert_eq(status, 0, "%s", out);
    free(out);
}

static void remove_folders(void) {
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

/* Train cnn_baseline one epoch on DIR/data with extra arguments; its output. */
static int train(char **out, const char *data, const char *save) {
    return run(out, "$B/bin/cnn_baseline --data %s/%s --epochs 1 --threads 2 --no-history --save %s/%s", dir, data,
               dir, save);
}

Test(folders, png_folders_train_bit_for_bit_as_idx, .init = make_folders, .fini = remove_folders, .timeout = 300) {
    char *out = NULL;
    cr_assert_eq(train(&out, "png", "png.nncw"), 0, "%s", out);
    char want[600];
    snprintf(want, sizeof want, "data: image-folder layout in %s/png", dir);
    cr_expect_not_null(strstr(out, want), "%s", out);
    snprintf(want, sizeof want, "decoded 2048 images from %s/png/train into 28x28x1", dir);
    cr_expect_not_null(strstr(out, want), "%s", out);
    free(out);
    cr_assert_eq(train(&out, "png/idx", "idx.nncw"), 0, "%s", out);
    cr_expect_not_null(strstr(out, "data: IDX layout (MNIST)"), "%s", out);
    free(out);
    cr_expect_eq(run(NULL, "cmp %s/png.nncw %s/idx.nncw", dir, dir), 0,
                 "PNG folders and the same images as IDX in the same order trained different weights");
    /* and JPEG at quality 95 trains too: the same recipe, a few grey levels off per pixel */
    cr_assert_eq(train(&out, "jpg", "jpg.nncw"), 0, "%s", out);
    const char *acc = strstr(out, "test accuracy ");
    cr_assert_not_null(acc, "%s", out);
    cr_expect_gt(atof(acc + strlen("test accuracy ")), 70.0, "%s", out);
    free(out);
}

/* Each bad input: exit status 1 and a message naming the file or folder. */
static void expect_refusal(const char *data, const char *message) {
    char *out = NULL;
    int status = train(&out, data, "bad.nncw");
    cr_expect_eq(status, 1, "exit status %d:\n%s", status, out);
    cr_expect_not_null(strstr(out, message), "wanted: %s\ngot:\n%s", message, out);
    cr_expect_null(strstr(out, "saved weights"), "%s", out);
    free(out);
}

Test(folders, bad_inputs_are_named, .init = make_folders, .fini = remove_folders, .timeout = 300) {
    char msg[1200];
    /* a corrupt image: the PNG cut short */
    cr_assert_eq(run(NULL, "cp -r %s/png %s/cut && truncate -s 100 %s/cut/train/4/00002.png", dir, dir, dir), 0);
    snprintf(msg, sizeof msg, "error: %s/cut/train/4/00002.png: corrupt or truncated PNG", dir);
    expect_refusal("cut", msg);
    /* not an image at all, with an image's name */
    cr_assert_eq(run(NULL, "cp -r %s/png %s/text && echo hello > %s/text/test/7/00000.png", dir, dir, dir), 0);
    snprintf(msg, sizeof msg, "error: %s/text/test/7/00000.png: neither a PNG nor a JPEG file", dir);
    expect_refusal("text", msg);
    /* an empty class folder */
    cr_assert_eq(run(NULL, "cp -r %s/png %s/empty && mkdir %s/empty/train/zebra", dir, dir, dir), 0);
    snprintf(msg, sizeof msg, "error: %s/empty/train/zebra: empty class folder (no .png, .jpg or .jpeg file)", dir);
    expect_refusal("empty", msg);
    /* a test class the training folders lack */
    cr_assert_eq(run(NULL, "cp -r %s/png %s/extra && mv %s/extra/test/9 %s/extra/test/nine", dir, dir, dir, dir), 0);
    snprintf(msg, sizeof msg, "error: %s/extra/test/nine: class 'nine' is not among the training classes", dir);
    expect_refusal("extra", msg);
    /* more classes than the model's 10 outputs */
    cr_assert_eq(run(NULL, "cp -r %s/png %s/eleven && cp -r %s/eleven/train/9 %s/eleven/train/99", dir, dir, dir, dir),
                 0);
    snprintf(msg, sizeof msg, "error: %s/eleven/train: has 11 classes (0 .. 99) but model cnn_baseline has 10 outputs",
             dir);
    expect_refusal("eleven", msg);
    /* mixed sizes without resize=: the first other-sized file in the loading order is named */
    cr_assert_eq(run(NULL, "cp -r %s/png %s/mixed", dir, dir), 0);
    snprintf(msg, sizeof msg, "%s/mixed/train/5/00000.png", dir);
    write_grey_png(msg, 20, 20);
    snprintf(msg, sizeof msg,
             "error: %s/mixed/train/5/00000.png: the image is 20x20 but the model's input is 28x28 (the first of "
             "another size, in the loading order; add resize=bilinear",
             dir);
    expect_refusal("mixed", msg);
}

/* DIR/val/: the validation data while training (its own line, the epochs' val_ figures, the best epoch's
 * weights for the test set at the end); class names in the history's columns, the confusion matrix and
 * --predict (with --data); a val class that the training folders lack is named. */
Test(folders, val_folder_validates_and_class_names_show, .init = make_folders, .fini = remove_folders,
     .timeout = 300) {
    char *out = NULL, want[1200];
    cr_assert_eq(run(NULL, "cd %s && cp -r png named && mv named/train/3 named/train/three && "
                           "mv named/test/3 named/test/three && mkdir named/val && "
                           "for k in 0 1 2 three 4 5 6 7 8 9; do mkdir named/val/$k && "
                           "mv $(ls -d named/train/$k/* | tail -n 20) named/val/$k/; done",
                     dir),
                 0);
    cr_assert_eq(run(&out, "b=$(cd $B && pwd) && cd %s && $b/bin/cnn_baseline --data named --epochs 2 --threads 2 --save n.nncw "
                           "--export n.safetensors",
                     dir),
                 0,
                 "%s", out);
    cr_expect_not_null(strstr(out, "val/<class>/ (the validation data)"), "%s", out);
    cr_expect_not_null(strstr(out, "decoded 200 images from named/val into 28x28x1"), "%s", out);
    cr_expect_not_null(strstr(out, "1848 training and 512 test images"), "%s", out);
    cr_expect_not_null(strstr(out, "validation data: named/val (200 images) (not trained on"), "%s", out);
    cr_expect_not_null(strstr(out, "  val_acc "), "the epochs do not report the validation data:\n%s", out);
    cr_expect_null(strstr(out, "  test_acc "), "%s", out);
    cr_expect_not_null(strstr(out, "picked by the best validation accuracy"), "%s", out);
    cr_expect_not_null(strstr(out, "on named/val (200 images)"), "%s", out);
    cr_expect_not_null(strstr(out, "  9 three "), "no class name in the confusion matrix:\n%s", out);
    free(out);
    char *csv = NULL;
    cr_assert_eq(run(&csv, "cat %s/n.history.csv", dir), 0);
    cr_expect_not_null(strstr(csv, ",val_accuracy_0,val_accuracy_1,val_accuracy_2,val_accuracy_4,"), "%s", csv);
    cr_expect_not_null(strstr(csv, ",val_accuracy_9,val_accuracy_three\n"), "%s", csv);
    cr_expect_not_null(strstr(csv, "\n2,"), "%s", csv);
    free(csv);
    cr_assert_eq(run(&csv, "cat %s/n.classes.svg", dir), 0);
    cr_expect_not_null(strstr(csv, ">three</text>"), "no class name in the per-class chart:\n%s", csv);
    free(csv);
    /* --predict names the class when --data says what the classes are called */
    cr_assert_eq(run(&out, "b=$(cd $B && pwd) && cd %s && $b/bin/cnn_baseline --load n.nncw --data named --predict "
                           "$(ls named/test/three/*.png | head -n 5)",
                     dir),
                 0, "%s", out);
    cr_expect_not_null(strstr(out, ": 9 three (p="), "%s", out);
    free(out);
    cr_assert_eq(run(&out, "b=$(cd $B && pwd) && cd %s && $b/bin/cnn_baseline --load n.nncw --predict $(ls named/test/three/*.png | head -n 5)",
                     dir),
                 0, "%s", out);
    cr_expect_not_null(strstr(out, ": 9 (p="), "without --data, the numbers:\n%s", out);
    free(out);
    /* or the names an --export wrote into the .safetensors metadata */
    cr_assert_eq(run(&out, "b=$(cd $B && pwd) && cd %s && $b/bin/cnn_baseline --load n.safetensors --predict "
                           "$(ls named/test/three/*.png | head -n 5)",
                     dir),
                 0, "%s", out);
    cr_expect_not_null(strstr(out, ": 9 three (p="), "%s", out);
    free(out);
    /* --validation N beside DIR/val/: which one validates? Neither silently. */
    cr_expect_eq(run(&out, "b=$(cd $B && pwd) && cd %s && $b/bin/cnn_baseline --data named --epochs 1 --validation 100 --save v.nncw", dir),
                 2, "%s", out);
    cr_expect_not_null(strstr(out, "error: --validation 100 would hold out training images, but named/val/ is the "
                                   "validation data already"),
                       "%s", out);
    free(out);
    /* a val class that the training folders lack */
    cr_assert_eq(run(NULL, "cd %s && mv named/val/9 named/val/nine", dir), 0);
    snprintf(want, sizeof want, "error: %s/named/val/nine: class 'nine' is not among the training classes", dir);
    cr_assert_eq(run(&out, "$B/bin/cnn_baseline --data %s/named --epochs 1 --no-history --save %s/x.nncw", dir, dir),
                 1, "%s", out);
    cr_expect_not_null(strstr(out, want), "wanted: %s\ngot:\n%s", want, out);
    cr_expect_null(strstr(out, "epoch  1/1"), "%s", out);
    free(out);
}

/* A model that asks for resizing takes images of another size; one that does not names the first one. */
Test(folders, resize_only_when_the_model_asks, .init = make_folders, .fini = remove_folders, .timeout = 300) {
    char *out = NULL;
    cr_assert_eq(run(&out, "SAN_FLAGS='%s' sh tests/tools/build_trainer.sh $B tests/models/folder_resize.nn "
                           "%s/folder_resize && SAN_FLAGS='%s' sh tests/tools/build_trainer.sh $B "
                           "tests/models/folder_small.nn %s/folder_small",
                     SAN_FLAGS, dir, SAN_FLAGS, dir),
                 0, "%s", out);
    free(out);
    cr_assert_eq(run(&out, "cd %s && ./folder_resize --data png --epochs 1 --no-history --save r.nncw", dir), 0, "%s",
                 out);
    cr_expect_not_null(strstr(out, "decoded 2048 images from png/train into 16x16x1"), "%s", out);
    const char *acc = strstr(out, "test accuracy ");
    cr_assert_not_null(acc, "%s", out);
    cr_expect_gt(atof(acc + strlen("test accuracy ")), 50.0, "%s", out);
    free(out);
    cr_assert_eq(run(&out, "cd %s && ./folder_small --data png --epochs 1 --no-history --save s.nncw", dir), 1, "%s",
                 out);
    cr_expect_not_null(strstr(out, "error: png/train/0/00001.png: the image is 28x28 but the model's input is 16x16 "
                                   "(the first of another size, in the loading order; add resize=bilinear"),
                       "%s", out);
    free(out);
}

/* Many small files: one listing buffer and one image per thread at a time; a line says how it went. */
Test(folders, many_tiny_files_load_in_bounded_memory, .timeout = 300) {
    enum { FILES = 20000 };
    char *d = scratch_dir(), path[600], target[600];
    snprintf(target, sizeof target, "%s/one.png", d);
    write_grey_png(target, 4, 4);
    cr_assert_eq(run(NULL, "mkdir -p %s/train/a %s/train/b", d, d), 0);
    for (int i = 0; i < FILES; i++) {
        snprintf(path, sizeof path, "%s/train/%c/%06d.png", d, i % 2 ? 'b' : 'a', i);
        cr_assert_eq(link(target, path), 0, "%s", path);
    }
    nnc_dataset ds;
    char err[1024];
    snprintf(path, sizeof path, "%s/train", d);
    FILE *progress = tmpfile();
    cr_assert_eq(nnc_folder_load(&ds, path, NULL, 4, 4, 1, 0, 2, progress, err, sizeof err), 0, "%s", err);
    cr_expect_eq(ds.n, FILES);
    cr_expect_eq(ds.n_class_names, 2);
    cr_expect(ds.labels[0] == 0 && ds.labels[FILES / 2 - 1] == 0 && ds.labels[FILES / 2] == 1);
    cr_expect_eq(ds.images[(size_t)(FILES - 1) * 16 + 5], 5 * 16, "the last image's pixel 5");
    rewind(progress);
    char line[512] = "";
    cr_expect_not_null(fgets(line, sizeof line, progress));
    cr_expect_not_null(strstr(line, "decoded 20000 images from"), "%s", line);
    fclose(progress);
    nnc_dataset_free(&ds);
    run(NULL, "rm -rf %s", d);
    free(d);
}
