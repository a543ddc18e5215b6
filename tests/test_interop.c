/*
 * test_interop.c - weights for other tools (runtime/interop.c, runtime/onnx.c):
 * a trainer's weights exported as .safetensors, .npz and .onnx (--export),
 * loaded back (--load F.safetensors); for every seed model, the three read by
 * the tools they are for (tests/tools/interop_check.sh: PyTorch and NumPy
 * through Debian's python3-torch, onnx.checker through python3-onnx, and
 * onnxruntime-node) against the trainer's own predictions on the 10,000 test
 * images, and a PyTorch-trained state_dict loaded by its trainer with
 * PyTorch's accuracy; and malformed safetensors files refused with a message,
 * never a crash.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* A scratch directory with MNIST's first 2000 training and the first `tests` test images in dir/d. */
static char *make_data(int tests)
{
    char *dir = scratch_dir(), *out = NULL;
    int status = run(&out, "src=$(sh tests/tools/find_mnist.sh) && sh tests/tools/mnist_subset.sh \"$src\" %s/d 2000 %d",
                     dir, tests);
    if (status == 77) {
        run(NULL, "rm -rf %s", dir);
        skip_visibly("%s", out);
    }
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    return dir;
}

/* cnn_baseline trained one epoch, saved as dir/w.nncw and exported as dir/w.safetensors. */
static void train_cnn(const char *dir)
{
    char *out = NULL;
    int status = run(&out, "$B/bin/cnn_baseline --data %s/d --epochs 1 --save %s/w.nncw --no-history --export "
                     "%s/w.safetensors", dir, dir, dir);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(strstr(out, "exported weights to"), "%s", out);
    free(out);
}

/* The accuracy in the `test accuracy X%` line of an --eval run, or -1. */
static double eval_accuracy(const char *fmt_cmd, const char *dir, const char *weights)
{
    char *out = NULL;
    int status = run(&out, fmt_cmd, dir, weights);
    double acc = -1;
    const char *at = out ? strstr(out, "test accuracy ") : NULL;
    cr_assert_eq(status, 0, "%s", out);
    cr_assert(at && sscanf(at, "test accuracy %lf", &acc) == 1, "%s", out);
    free(out);
    return acc;
}

Test(interop, round_trip, .timeout = 600)
{
    char *dir = make_data(1000), *out = NULL;
    train_cnn(dir);
    const char *eval = "$B/bin/cnn_baseline --data %s/d --load %s --eval";
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/w.nncw", dir);
    snprintf(b, sizeof b, "%s/w.safetensors", dir);
    double acc_nncw = eval_accuracy(eval, dir, a), acc_st = eval_accuracy(eval, dir, b);
    cr_expect_eq(acc_nncw, acc_st, "accuracy %.2f%% from .nncw, %.2f%% from .safetensors", acc_nncw, acc_st);
    cr_expect_gt(acc_st, 50.0);
    /* The floats parse back exactly: converting .safetensors -> .safetensors and
     * .nncw -> .safetensors (no data needed) gives the same bytes as the export. */
    int status = run(&out, "b=$(cd $B && pwd) && cd %s && $b/bin/cnn_baseline --load w.safetensors --export again.safetensors && "
                           "$b/bin/cnn_baseline --load w.nncw --export conv.safetensors && mv d d.away && "
                           "cmp w.safetensors again.safetensors && cmp w.safetensors conv.safetensors",
                     dir);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    /* The .onnx is the same bytes each time, and a place it cannot be written gets a message and no file. */
    status = run(&out, "b=$(cd $B && pwd) && cd %s && $b/bin/cnn_baseline --load w.nncw --export a.onnx && "
                       "$b/bin/cnn_baseline --load w.safetensors --export b.onnx && cmp a.onnx b.onnx && "
                       "! $b/bin/cnn_baseline --load w.nncw --export missing/c.onnx && test ! -e missing",
                 dir);
    cr_assert_eq(status, 0, "%s", out);
    cr_expect(strstr(out, "missing/c.onnx"), "the failed export does not name its file:\n%s", out);
    free(out);
    /* The header: a multiple of 8 bytes, starting with '{', with the metadata. */
    status = run(&out, "cd %s && h=$(head -c 8 w.safetensors | od -An -tu8 | tr -d ' ') && echo $((h %% 8)) && "
                       "tail -c +9 w.safetensors | head -c $h",
                 dir);
    cr_assert_eq(status, 0, "%s", out);
    cr_expect(strncmp(out, "0\n{", 3) == 0, "header length not a multiple of 8, or no object: %.200s", out);
    cr_expect(strstr(out, "\"model\":\"cnn_baseline\"") && strstr(out, "\"source\":\"models/cnn_baseline.nn\"") &&
                  strstr(out, "\"nnc_version\":\"") && strstr(out, "\"prep\":\"scale\"") &&
                  strstr(out, "\"prep_scale\":\"0.00392156886\"") && strstr(out, "\"layout.conv2d_1.kernel\":\"HWIO\"") &&
                  strstr(out, "\"conv2d_1.kernel\":{\"dtype\":\"F32\",\"shape\":[5,5,1,32],\"data_offsets\":[0,3200]}"),
              "%.2000s", out);
    free(out);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

/* The `NAME IMAGES DIFFERENT MAXDIFF` line a tool printed about model m, held to the bar: the
 * argmax of at least 9,999 of 10,000 images and every probability within 1e-4 of the trainer's. */
static void expect_same_predictions(const char *out, const char *tool, const char *m)
{
    char key[64];
    snprintf(key, sizeof key, "\n%s ", tool);
    const char *at = strstr(out, key);
    int n = -1, mis = -1;
    double maxdiff = 1;
    cr_assert(at && sscanf(at + strlen(key), "%d %d %lf", &n, &mis, &maxdiff) == 3, "%s: no '%s' line:\n%s", m, tool,
              out);
    cr_expect_eq(n, 10000, "%s, %s: %d images compared, not 10000", m, tool, n);
    cr_expect_leq(mis, 1, "%s: %d of %d argmax differ between %s and the trainer", m, mis, n, tool);
    cr_expect_leq(maxdiff, 1e-4, "%s: a probability differs by %g between %s and the trainer", m, maxdiff, tool);
}

/* Back from PyTorch: nnc's accuracy with a PyTorch-trained state_dict is PyTorch's, to 0.01 points (one
 * image in 10,000). */
static void expect_accuracy_back_from_torch(const char *out, const char *m)
{
    const char *t = strstr(out, "\ntorch_accuracy "), *c = strstr(out, "\nnnc_accuracy_from_torch ");
    double torch_acc = -1, nnc_acc = -2;
    cr_assert(t && sscanf(t, "\ntorch_accuracy %lf", &torch_acc) == 1, "%s: no torch_accuracy:\n%s", m, out);
    cr_assert(c && sscanf(c, "\nnnc_accuracy_from_torch %lf", &nnc_acc) == 1, "%s: no nnc accuracy:\n%s", m, out);
    cr_expect(torch_acc - nnc_acc < 0.0101 && nnc_acc - torch_acc < 0.0101, "%s: PyTorch %.2f%%, nnc %.2f%%", m,
              torch_acc, nnc_acc);
    cr_expect(torch_acc > 20.0, "%s: PyTorch's model hardly learned (%.2f%%): a weak test", m, torch_acc);
    /* A PyTorch file has no preprocessing constants: nnc computes normalize's and says so. */
    int normalizes = run(NULL, "grep -q '^normalize' models/%s.nn", m) == 0;
    cr_expect_eq(strstr(out, "\nnnc_prep_note computed") != NULL, normalizes,
                 "%s: %s note on the normalize constants:\n%s", m, normalizes ? "no" : "a", out);
}

/* A seed model's .safetensors, .npz and .onnx, each read by its tools (interop_check.sh). A tool that is
 * not installed is skipped visibly; with none of them, so is the test. */
static void check_model_interop(const char *m)
{
    char *dir = make_data(10000), *out = NULL;
    int status = run(&out, "printf '\\n' && SAN_FLAGS='" SAN_FLAGS "' sh tests/tools/interop_check.sh $B %s %s", m,
                     dir);
    cr_assert_eq(status, 0, "%s", out);
    int skipped = 0;
    for (const char *s = strstr(out, "skipped: "); s; s = strstr(s + 1, "skipped: ")) {
        note_skip("%.*s", (int)strcspn(s, "\n"), s);
        skipped++;
    }
    if (skipped == 3)
        skip_visibly("skipped: none of python3-torch, python3-onnx, onnxruntime-node installed");
    if (!strstr(out, "skipped: python3-torch")) {
        expect_same_predictions(out, "torch", m);
        cr_expect(strstr(out, "\nnpz SAME"), "%s: the .npz does not hold the .safetensors' arrays:\n%s", m, out);
        expect_accuracy_back_from_torch(out, m);
    }
    if (!strstr(out, "skipped: python3-onnx"))
        cr_expect(strstr(out, "\nonnx_checker OK"), "%s: onnx.checker:\n%s", m, out);
    if (!strstr(out, "skipped: onnxruntime-node"))
        expect_same_predictions(out, "onnxruntime", m);
    free(out);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

/* One test a seed model (models/), so that they run side by side and a failure names the model. */
#define SEED_MODEL_INTEROP(m)                                                                                          \
    Test(interop, m, .timeout = 900)                                                                                   \
    {                                                                                                                  \
        check_model_interop(#m);                                                                                       \
    }
SEED_MODEL_INTEROP(linear)
SEED_MODEL_INTEROP(mlp800)
SEED_MODEL_INTEROP(mlp64x5)
SEED_MODEL_INTEROP(cnn_baseline)
SEED_MODEL_INTEROP(cnn_larger)
SEED_MODEL_INTEROP(vgg)
SEED_MODEL_INTEROP(vgg_dropout)
SEED_MODEL_INTEROP(vgg_bn)
SEED_MODEL_INTEROP(vgg_bn_aug)
SEED_MODEL_INTEROP(conv4_bn)
SEED_MODEL_INTEROP(mnist_fast)

/* Every layer kind's model (tests/layers/): what the seed models do not have (pad=same, strides,
 * avgpool, globalavgpool, sigmoid, tanh, batchnorm on flat vectors, ...) through onnx.checker and
 * onnxruntime, on random weights and images. */
Test(interop, onnx_layer_kinds, .timeout = 900)
{
    if (run(NULL, "/usr/bin/python3 -c 'import onnx' 2>/dev/null") != 0)
        skip_visibly("skipped: python3-onnx not installed (/usr/bin/python3 -c 'import onnx' failed)");
    if (run(NULL, "NODE_PATH=$(cd $B && pwd)/node/node_modules node -e 'require(\"onnxruntime-node\")' 2>/dev/null") != 0)
        skip_visibly("skipped: onnxruntime-node not installed (no node, or no $B/node/node_modules: make test-deps)");
    char *dir = scratch_dir(), *out = NULL;
    int status = run(&out, "SAN_FLAGS='" SAN_FLAGS "' sh tests/tools/onnx_layers_check.sh $B %s", dir);
    cr_assert_eq(status, 0, "%s", out);
    int kinds = 0;
    for (const char *line = out; *line; line += strcspn(line, "\n") + (line[strcspn(line, "\n")] != '\0')) {
        char kind[64], tool[32];
        int n = -1, mis = -1;
        double maxdiff = 1;
        if (sscanf(line, "%63s %31s", kind, tool) != 2)
            continue;
        if (!strcmp(tool, "onnx_checker")) {
            cr_expect(strncmp(strchr(line, ' ') + 1, "onnx_checker OK", 15) == 0, "%s: %.200s", kind, line);
            kinds++;
        } else if (!strcmp(tool, "onnxruntime")) {
            cr_assert(sscanf(line, "%*s onnxruntime %d %d %lf", &n, &mis, &maxdiff) == 3, "%.200s", line);
            /* Measured at most 5.6e-6 (conv_bf16), but conv_winograd 1.9e-5: the trainer's inference runs
               Winograd F(4x4, 3x3) (1.4e-6 of the products' magnitudes, tests/layers/conv_winograd), which its
               five random-weight convolutions carry further; it gets the seed models' 1e-4. */
            double bound = strcmp(kind, "conv_winograd") == 0 ? 1e-4 : 1e-5;
            cr_expect(n == 300 && mis == 0 && maxdiff <= bound, "%s: %d of %d argmax differ, outputs by up to %g",
                      kind, mis, n, maxdiff);
        }
    }
    cr_expect_geq(kinds, 13, "only %d layer models checked:\n%s", kinds, out);
    free(out);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

/* cnn_baseline's tensors, each `"NAME":{"dtype":"F32","shape":[..],"data_offsets":[b,e]}`. */
#define T(name, shape, b, e) "\"" name "\":{\"dtype\":\"F32\",\"shape\":[" shape "],\"data_offsets\":[" #b "," #e "]}"
#define CONV_K T("conv2d_1.kernel", "5,5,1,32", 0, 3200)
#define CONV_B T("conv2d_1.bias", "32", 3200, 3328)
#define D1_K T("dense_1.kernel", "4608,128", 3328, 2362624)
#define D1_B T("dense_1.bias", "128", 2362624, 2363136)
#define D2_K T("dense_2.kernel", "128,10", 2363136, 2368256)
#define D2_B T("dense_2.bias", "10", 2368256, 2368296)
#define DATA_BYTES 2368296L

/* Write a safetensors file: header (padded to 8), then data_bytes zero bytes; hlen_override >= 0 replaces the length. */
static void write_st(const char *path, const char *header, long data_bytes, long long hlen_override)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    size_t n = strlen(header), padded = (n + 7) / 8 * 8;
    unsigned long long h = hlen_override >= 0 ? (unsigned long long)hlen_override : padded;
    for (int i = 0; i < 8; i++) fputc((int)(h >> (8 * i)) & 0xff, f);
    fputs(header, f);
    for (size_t i = n; i < padded; i++) fputc(' ', f);
    for (long i = 0; i < data_bytes; i++) fputc(0, f);
    fclose(f);
}

typedef struct {
    const char *name, *header;
    long data_bytes;
    long long hlen;  /* -1: the header's */
    const char *says; /* in the message */
} bad_case;

Test(interop, bad_input, .timeout = 300)
{
    char *dir = scratch_dir(), *out = NULL, path[4200];
    const bad_case cases[] = {
        {"good", "{" CONV_K "," CONV_B "," D1_K "," D1_B "," D2_K "," D2_B "}", DATA_BYTES, -1, NULL},
        {"good_torch_prefix", "{\"model.conv2d_1.weight\":{\"dtype\":\"F32\",\"shape\":[32,1,5,5],\"data_offsets\":[0,3200]},"
                              "\"model.conv2d_1.bias\":{\"dtype\":\"F32\",\"shape\":[32],\"data_offsets\":[3200,3328]},"
                              "\"model.dense_1.weight\":{\"dtype\":\"F32\",\"shape\":[128,4608],\"data_offsets\":[3328,2362624]},"
                              "\"model.dense_1.bias\":{\"dtype\":\"F32\",\"shape\":[128],\"data_offsets\":[2362624,2363136]},"
                              "\"model.dense_2.weight\":{\"dtype\":\"F32\",\"shape\":[10,128],\"data_offsets\":[2363136,2368256]},"
                              "\"model.dense_2.bias\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[2368256,2368296]}}",
         DATA_BYTES, -1, NULL},
        {"empty_header", "", 0, -1, "not a JSON object"},
        {"short", "", -8, -1, "truncated"}, /* 8 bytes removed below: 0-byte file */
        {"truncated_data", "{" CONV_K "," CONV_B "," D1_K "," D1_B "," D2_K "," D2_B "}", DATA_BYTES - 4, -1,
         "run past the end"},
        {"header_past_end", "{}", 0, 1LL << 40, "past the end of the file"},
        {"not_object", "[1, 2, 3]", 0, -1, "not a JSON object"},
        {"bad_json", "{\"conv2d_1.kernel\": {\"dtype\": \"F32\",}}", 0, -1, "not valid JSON"},
        {"unterminated", "{\"conv2d_1.ker", 0, -1, "not valid JSON"},
        {"deep", "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":[1]}}}}}", 0, -1, "nested too deeply"},
        {"duplicate", "{" CONV_K "," CONV_K "," CONV_B "," D1_K "," D1_B "," D2_K "," D2_B "}", DATA_BYTES, -1,
         "appears twice"},
        {"unknown_dtype", "{\"conv2d_1.kernel\":{\"dtype\":\"F33\",\"shape\":[5,5,1,32],\"data_offsets\":[0,3200]}}",
         3200, -1, "unknown dtype 'F33'"},
        {"f64", "{\"conv2d_1.kernel\":{\"dtype\":\"F64\",\"shape\":[5,5,1,32],\"data_offsets\":[0,6400]}}", 6400, -1,
         "F32"},
        {"overlap", "{" CONV_K "," T("conv2d_1.bias", "32", 3100, 3228) "," D1_K "," D1_B "," D2_K "," D2_B "}",
         DATA_BYTES, -1, "overlap"},
        {"offsets_past_end", "{" CONV_K "," CONV_B "," D1_K "," D1_B "," D2_K "," T("dense_2.bias", "10", 2368256,
                                                                                     2368296) "}",
         DATA_BYTES - 40, -1, "run past the end"},
        {"missing", "{" CONV_K "," CONV_B "," D1_K "," D1_B "," D2_K "}", DATA_BYTES - 40, -1, "dense_2.bias is missing"},
        {"extra", "{" CONV_K "," CONV_B "," D1_K "," D1_B "," D2_K "," D2_B "," T("dense_3.kernel", "1", 2368296,
                                                                                 2368300) "}",
         DATA_BYTES + 4, -1, "'dense_3.kernel' is not a tensor"},
        {"shape", "{" T("conv2d_1.kernel", "5,5,32,1", 0, 3200) "," CONV_B "," D1_K "," D1_B "," D2_K "," D2_B "}",
         DATA_BYTES, -1, "'conv2d_1.kernel' has shape [5, 5, 32, 1]"},
        {"two_prefixes", "{\"a.conv2d_1.kernel\":{\"dtype\":\"F32\",\"shape\":[5,5,1,32],\"data_offsets\":[0,3200]},"
                         "\"b.conv2d_1.bias\":{\"dtype\":\"F32\",\"shape\":[32],\"data_offsets\":[3200,3328]}}",
         3328, -1, "one common prefix"},
        {"big_number", "{\"conv2d_1.kernel\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999999],\"data_offsets\":[0,4]}}",
         4, -1, "expected"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, c->name);
        write_st(path, c->header, c->data_bytes > 0 ? c->data_bytes : 0, c->hlen);
        if (c->data_bytes < 0) run(NULL, "truncate -s 3 %s", path);
        int status = run(&out, "b=$(cd $B && pwd) && cd %s && $b/bin/cnn_baseline --load %s.safetensors --export out_%s.npz", dir, c->name,
                         c->name);
        if (!c->says) {
            cr_expect_eq(status, 0, "%s: %s", c->name, out);
        } else {
            cr_expect_eq(status, 1, "%s: exit status %d (not 1):\n%s", c->name, status, out);
            cr_expect(strstr(out, path + strlen(dir) + 1) != NULL, "%s: the message does not name the file:\n%s",
                      c->name, out);
            cr_expect(strstr(out, c->says) != NULL, "%s: no '%s' in:\n%s", c->name, c->says, out);
            snprintf(path, sizeof path, "%s/out_%s.npz", dir, c->name);
            FILE *f = fopen(path, "rb");
            cr_expect(f == NULL, "%s: an output file was written", c->name);
            if (f) fclose(f);
        }
        free(out);
        out = NULL;
    }
    /* The export side refuses an unknown extension as a usage error. */
    int status = run(&out, "$B/bin/cnn_baseline --load x.nncw --export %s/w.pt", dir);
    cr_expect_eq(status, 2, "%s", out);
    cr_expect(strstr(out, ".safetensors, .npz or .onnx") != NULL, "%s", out);
    free(out);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}
