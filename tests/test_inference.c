/*
 * test_inference.c - the inference back end (nnc --emit=inference): for every
 * seed model, trained one epoch on a subset of MNIST, the dependency-free C
 * classifies the 10,000 test images as the trainer's own inference does
 * (argmax identical on at least 9,999, probabilities within 1e-4), builds
 * warning-free with gcc and clang as C99 -pedantic, gives the same lines as a
 * static aarch64 build under qemu (on all 10,000 images for six models, on 300
 * for the five VGG-style ones: see ARM_IMAGES_ALL), and builds for a Cortex-M4F
 * (tests/tools/inference_check.sh). And bad inputs: another model's weights,
 * a damaged weights file, an unwritable output.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/*
 * Images classified by the aarch64 build under qemu-aarch64 (two processes, half each). qemu
 * emulates every float operation (~12 ns a multiply-add here), so a model's cost there is its
 * multiply-adds: measured with one process, 10,000 images take linear 2 s, mlp64x5 7 s, cnn_larger
 * 72 s, mlp800 92 s, mnist_fast 120 s, cnn_baseline 124 s (about 420 s of CPU for the six, 3.5
 * minutes of the suite's two cores), but 577 s for conv4_bn and 740-850 s each for vgg, vgg_dropout,
 * vgg_bn and vgg_bn_aug (~14 images/s; about 55 minutes of CPU for the five). So the six run the
 * whole test set and the five convolutional VGG-style models their first ARM_IMAGES_SOME. The
 * sanitizer suite runs the same uninstrumented aarch64 build again: there every model takes
 * ARM_IMAGES_SOME (the host side still compares all 10,000 with ASan on).
 */
#define ARM_IMAGES_SOME 300
#define ARM_IMAGES_ALL (SAN_FLAGS[0] ? ARM_IMAGES_SOME : 10000)

/* The first 2048 training and all 10,000 test images of MNIST, as raw IDX files in dir. */
static void make_data(const char *dir)
{
    char *out = NULL;
    int status = run(&out, "src=$(sh tests/tools/find_mnist.sh) && sh tests/tools/mnist_subset.sh \"$src\" %s 2048 10000",
                     dir);
    if (status == 77)
        skip_visibly("%s", out);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
}

/* The value after `key ` on the line that starts with it, or -1 when there is none. */
static int line_values(const char *text, const char *key, double v[3])
{
    const char *at = strstr(text, key);
    if (!at || (at != text && at[-1] != '\n'))
        return -1;
    return sscanf(at + strlen(key), "%lf %lf %lf", &v[0], &v[1], &v[2]);
}

static void check_model(const char *model, int arm_images)
{
    char *dir = scratch_dir(), *out = NULL;
    make_data(dir);
    int status = run(&out, "mkdir -p %s/work && SAN_FLAGS='%s' sh tests/tools/inference_check.sh $B %s %s %s/work %d",
                     dir, SAN_FLAGS, model, dir, dir, arm_images);
    cr_assert_eq(status, 0, "%s:\n%s", model, out);
    cr_log_info("%s: %s", model, out);
    double v[3];
    cr_assert_eq(line_values(out, "host ", v), 3, "%s: no host line in:\n%s", model, out);
    cr_expect_eq(v[0], 10000, "%s: %g test images classified", model, v[0]);
    cr_expect_leq(v[1], 1, "%s: %g of 10000 argmax differ from the trainer's", model, v[1]);
    cr_expect_leq(v[2], 1e-4, "%s: a probability differs from the trainer's by %g", model, v[2]);
    if (line_values(out, "aarch64 ", v) == 3) {
        cr_expect_eq(v[0], arm_images);
        cr_expect_leq(v[1], arm_images == 10000 ? 1 : 0, "%s: %g of %d argmax differ between aarch64 and this machine",
                      model, v[1], arm_images);
        cr_expect_leq(v[2], 1e-4, "%s: aarch64 probabilities differ by %g", model, v[2]);
    } else {
        cr_expect(strstr(out, "skipped: aarch64") != NULL, "%s", out);
        fprintf(stderr, "[SKIP] inference::%s on aarch64: %s", model, strstr(out, "skipped: aarch64") + 9);
    }
    if (line_values(out, "cortex-m4 ", v) >= 1)
        cr_expect_gt(v[0], 0);
    else
        fprintf(stderr, "[SKIP] inference::%s for the Cortex-M4F: arm-none-eabi-gcc not installed\n", model);
    free(out);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

#define INFERENCE_TEST(model, arm_images)                                                                              \
    Test(inference, model, .timeout = 900)                                                                             \
    {                                                                                                                  \
        check_model(#model, arm_images);                                                                               \
    }

INFERENCE_TEST(linear, ARM_IMAGES_ALL)
INFERENCE_TEST(mlp800, ARM_IMAGES_ALL)
INFERENCE_TEST(mlp64x5, ARM_IMAGES_ALL)
INFERENCE_TEST(cnn_baseline, ARM_IMAGES_ALL)
INFERENCE_TEST(cnn_larger, ARM_IMAGES_ALL)
INFERENCE_TEST(vgg, ARM_IMAGES_SOME)
INFERENCE_TEST(vgg_dropout, ARM_IMAGES_SOME)
INFERENCE_TEST(vgg_bn, ARM_IMAGES_SOME)
INFERENCE_TEST(vgg_bn_aug, ARM_IMAGES_SOME)
INFERENCE_TEST(conv4_bn, ARM_IMAGES_SOME)
INFERENCE_TEST(mnist_fast, ARM_IMAGES_ALL)

/* Another model's weights, a damaged file, an unwritable place: a clear error, and no .c or .h left behind. */
Test(inference, bad_inputs_leave_nothing_behind, .timeout = 120)
{
    char *dir = scratch_dir(), *out = NULL;
    cr_assert_eq(run(&out, "$B/bin/linear --data $(sh tests/tools/find_mnist.sh) --epochs 1 --save %s/linear.nncw "
                           "--no-history >/dev/null 2>&1 || echo no-mnist", dir),
                 0);
    if (strstr(out, "no-mnist"))
        skip_visibly("no MNIST to train the weights on");
    free(out);
    cr_expect_eq(run(&out, "$B/nnc --emit=inference --weights %s/linear.nncw models/mlp800.nn -o %s/net.c", dir, dir), 1);
    cr_expect(strstr(out, "another model") != NULL || strstr(out, "mlp800") != NULL, "%s", out);
    free(out);
    cr_expect_eq(run(&out, "head -c 100 %s/linear.nncw > %s/cut.nncw && "
                           "$B/nnc --emit=inference --weights %s/cut.nncw models/linear.nn -o %s/net.c",
                     dir, dir, dir, dir),
                 1);
    cr_expect(strstr(out, "cut.nncw") != NULL, "%s", out);
    free(out);
    cr_expect_eq(run(&out, "$B/nnc --emit=inference --weights %s/linear.nncw models/linear.nn -o /nonexistent/net.c",
                     dir),
                 1);
    cr_expect(strstr(out, "/nonexistent/net") != NULL, "%s", out);
    free(out);
    cr_expect_eq(run(&out, "$B/nnc --emit=inference models/linear.nn -o %s/net.c", dir), 2);
    cr_expect(strstr(out, "--weights") != NULL, "%s", out);
    free(out);
    cr_expect_neq(run(NULL, "ls %s/net.* %s/*.tmp.* 2>/dev/null | grep -q .", dir, dir), 0, "a file was left behind");
    /* and a good run writes the pair */
    cr_expect_eq(run(&out, "$B/nnc --emit=inference --weights %s/linear.nncw models/linear.nn -o %s/digits.c", dir, dir),
                 0, "%s", out);
    cr_expect_eq(run(NULL, "test -s %s/digits.c && grep -q 'DIGITS_SCRATCH_BYTES' %s/digits.h", dir, dir), 0);
    free(out);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}
