/*
 * test_interop.c - weights for other tools (runtime/interop.c): a trainer's
 * weights exported as .safetensors and .npz (--export), loaded back
 * (--load F.safetensors), read by PyTorch and NumPy (tests/tools/interop_torch.py
 * with Debian's python3-torch), a PyTorch state_dict loaded by a trainer, and
 * malformed safetensors files refused with a message, never a crash.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* A scratch directory with MNIST's first 2000 training and 1000 test images in dir/d. */
static char *make_data(void)
{
    char *dir = scratch_dir(), *out = NULL;
    int status = run(&out, "src=$(sh tests/tools/find_mnist.sh) && sh tests/tools/mnist_subset.sh \"$src\" %s/d 2000 1000",
                     dir);
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

static void require_torch(void)
{
    if (run(NULL, "/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null") != 0)
        skip_visibly("skipped: python3-torch not installed (/usr/bin/python3 -c 'import torch, numpy' failed)");
}

Test(interop, round_trip, .timeout = 600)
{
    char *dir = make_data(), *out = NULL;
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

Test(interop, into_pytorch_and_numpy, .timeout = 600)
{
    require_torch();
    char *dir = make_data(), *out = NULL;
    train_cnn(dir);
    int status = run(&out,
                     "$B/bin/cnn_baseline --load %s/w.nncw --export %s/w.npz >/dev/null && "
                     "SAN_FLAGS='" SAN_FLAGS "' sh tests/tools/build_trainer_run.sh $B cnn_baseline %s/trainer_run && "
                     "%s/trainer_run %s/w.nncw %s/d/t10k-images-idx3-ubyte 1000 > %s/trainer.txt 2>/dev/null && "
                     "/usr/bin/python3 tests/tools/interop_torch.py to_torch models/cnn_baseline.nn %s/w.safetensors "
                     "%s/w.npz %s/d %s/trainer.txt",
                     dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir);
    cr_assert_eq(status, 0, "%s", out);
    int n = -1, mis = -1;
    double maxdiff = 1;
    const char *at = strstr(out, "torch ");
    cr_assert(at && sscanf(at, "torch %d %d %lf", &n, &mis, &maxdiff) == 3, "%s", out);
    cr_expect_eq(n, 1000, "%s", out);
    cr_expect_leq(mis, 1, "%d of 1000 argmax differ between PyTorch and the trainer", mis);
    cr_expect_leq(maxdiff, 1e-4, "a probability differs by %g", maxdiff);
    cr_expect(strstr(out, "npz SAME"), "the .npz does not hold the .safetensors' arrays: %s", out);
    free(out);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

Test(interop, from_pytorch, .timeout = 600)
{
    require_torch();
    char *dir = make_data(), *out = NULL;
    int status = run(&out, "/usr/bin/python3 tests/tools/interop_torch.py from_torch models/vgg_bn.nn "
                           "%s/pt.safetensors %s/d 2>&1 && $B/bin/vgg_bn --data %s/d --load %s/pt.safetensors --eval",
                     dir, dir, dir, dir);
    cr_assert_eq(status, 0, "%s", out);
    double torch_acc = -1, nnc_acc = -2;
    const char *t = strstr(out, "torch_accuracy "), *c = strstr(out, "test accuracy ");
    cr_assert(t && sscanf(t, "torch_accuracy %lf", &torch_acc) == 1, "%s", out);
    cr_assert(c && sscanf(c, "test accuracy %lf", &nnc_acc) == 1, "%s", out);
    cr_expect(torch_acc - nnc_acc < 0.005 && nnc_acc - torch_acc < 0.005, "PyTorch %.2f%%, nnc %.2f%%", torch_acc,
              nnc_acc);
    cr_expect(torch_acc > 20.0, "PyTorch's model hardly learned (%.2f%%): a weak test", torch_acc);
    cr_expect(strstr(out, "computed from") != NULL, "no note on the normalize constants:\n%s", out);
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
    int status = run(&out, "$B/bin/cnn_baseline --load x.nncw --export %s/w.onnx", dir);
    cr_expect_eq(status, 2, "%s", out);
    cr_expect(strstr(out, ".safetensors or .npz") != NULL, "%s", out);
    free(out);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}
