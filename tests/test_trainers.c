/*
 * test_trainers.c - the whole chain from the outside: nnc's command line,
 * golden generated code, generated code under both C compilers, and trainers
 * run on real MNIST (../shared/data/mnist, or wherever NNC_DATA points).
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* Every model of models/ (the seeds' and the ones beyond them), by name: generated/NAME.c. */
static const char *const every_model[] = {"linear",     "mlp800",   "mlp64x5",   "cnn_baseline", "cnn_larger", "vgg",
                                          "vgg_dropout", "vgg_bn",  "vgg_bn_aug", "conv4_bn",    "mnist_fast",
                                          "cifar_vgg"};
#define N_MODELS (sizeof every_model / sizeof every_model[0])

Test(golden, every_model_file_is_listed)
{
    char *out = NULL;
    cr_assert_eq(run(&out, "ls models/*.nn | wc -l"), 0, "%s", out);
    cr_expect_eq((size_t)atoi(out), N_MODELS, "models/ holds %d model files, every_model[] names %zu: add the new one",
                 atoi(out), N_MODELS);
    free(out);
}

/* The "test accuracy 98.12%" figure a trainer prints last. */
static double final_accuracy(const char *output)
{
    const char *at = strstr(output, "test accuracy ");
    cr_assert_not_null(at, "no final accuracy in:\n%s", output);
    return atof(at + strlen("test accuracy "));
}

Test(golden, generated_code_is_what_the_compiler_emits)
{
    char *dir = scratch_dir();
    for (size_t i = 0; i < N_MODELS; i++) {
        const char *m = every_model[i];
        cr_expect_eq(run(NULL, "$B/nnc models/%s.nn -o %s/%s.c && cmp -s %s/%s.c generated/%s.c", m, dir, m, dir, m, m),
                     0, "generated/%s.c is stale: run `make generated`", m);
    }
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

Test(golden, compiling_twice_gives_identical_bytes)
{
    char *dir = scratch_dir();
    cr_expect_eq(run(NULL, "$B/nnc models/vgg_bn.nn -o %s/a.c && $B/nnc models/vgg_bn.nn -o %s/b.c && cmp %s/a.c %s/b.c",
                     dir, dir, dir, dir),
                 0);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

Test(cli, error_leaves_no_output_file, .timeout = 30)
{
    char *dir = scratch_dir(), *out = NULL;
    int status = run(&out, "printf 'input 28x28x1\\nconv 8 29x29\\ndense 10 softmax\\n' > %s/bad.nn && "
                           "$B/nnc %s/bad.nn -o %s/bad.c",
                     dir, dir, dir);
    cr_expect_eq(status, 1, "exit status %d", status);
    cr_expect(strstr(out, "bad.nn:2:8: error: conv kernel 29x29 is larger than its 28x28x1 input") != NULL, "%s", out);
    cr_expect(strstr(out, "1 error generated.") != NULL, "%s", out);
    cr_expect_neq(run(NULL, "ls %s/bad.c* 2>/dev/null | grep -q .", dir), 0, "an output file was left behind");
    free(out);
    cr_expect_eq(run(&out, "$B/nnc --bogus"), 2);
    cr_expect(strstr(out, "unknown option '--bogus'") != NULL, "%s", out);
    free(out);
    cr_expect_eq(run(&out, "$B/nnc /nonexistent.nn"), 1);
    cr_expect(strstr(out, "nnc: /nonexistent.nn: cannot open: No such file or directory") != NULL, "%s", out);
    free(out);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

/*
 * Every generated file compiles warning-free for the CPUs users have: this
 * one, the x86-64 baseline, AVX2 without AVX-512 (most laptops), and aarch64
 * (with Debian's cross compiler; compiling is enough). The vector helpers
 * once returned 16-float vectors by value, which GCC flags on every CPU
 * without AVX-512 (-Wpsabi): only a build for another target shows that.
 */
static const struct {
    const char *compiler, *flags;
    int x86_only;
} build_targets[] = {
    {"gcc", "-march=native", 0},
    {"gcc", "-march=x86-64", 1},
    {"gcc", "-march=x86-64-v3", 1},
    {"aarch64-linux-gnu-gcc", "", 0},
    {"clang", "-march=native", 0},
    {"clang", "-march=x86-64", 1},
    {"clang", "-march=x86-64-v3", 1},
    {"clang", "--target=aarch64-linux-gnu", 0},
};

/* Compile `file` warning-free with compiler and flags: 0, or the status with the messages in *out. */
static int compile_clean(char **out, const char *compiler, const char *flags, const char *file)
{
    return run(out, "%s %s -std=c11 -Wall -Wextra -Werror -O2 -fopenmp -Iruntime -c %s -o /dev/null", compiler, flags,
               file);
}

Test(compile, generated_code_builds_warning_free_for_every_target, .timeout = 900)
{
    int x86 = run(NULL, "test \"$(uname -m)\" = x86_64") == 0;
    for (size_t t = 0; t < sizeof build_targets / sizeof build_targets[0]; t++) {
        if (build_targets[t].x86_only && !x86)
            continue;
        for (size_t i = 0; i < N_MODELS; i++) {
            char *out = NULL;
            char file[128];
            snprintf(file, sizeof file, "generated/%s.c", every_model[i]);
            int status = compile_clean(&out, build_targets[t].compiler, build_targets[t].flags, file);
            cr_expect_eq(status, 0, "%s %s on generated/%s.c:\n%s", build_targets[t].compiler, build_targets[t].flags,
                         every_model[i], out);
            free(out);
        }
    }
}

/* CPUs with AVX512_BF16 (and AVX512_FP16, whose part of <immintrin.h> once met the file's macro B). */
static const struct {
    const char *compiler, *flags;
} bf16_targets[] = {{"gcc", "-march=sapphirerapids"}, {"clang", "-march=sapphirerapids"}};

/*
 * `nnc --precision bf16` builds warning-free for every target above, which run its fp32 kernels (this CPU:
 * the bfloat16 ones, where it has AVX512_BF16), and for CPUs with AVX512_BF16: vgg_bn (bfloat16
 * convolutions and dense layer) and cifar_vgg (bfloat16 convolutions over padded copies).
 */
Test(compile, bf16_code_builds_warning_free_for_every_target, .timeout = 600)
{
    static const char *const bf16_models[] = {"vgg_bn", "cifar_vgg"};
    char *dir = scratch_dir(), file[512], *out = NULL;
    int x86 = run(NULL, "test \"$(uname -m)\" = x86_64") == 0;
    for (size_t m = 0; m < sizeof bf16_models / sizeof bf16_models[0]; m++) {
        snprintf(file, sizeof file, "%s/%s_bf16.c", dir, bf16_models[m]);
        cr_assert_eq(run(NULL, "$B/nnc --precision bf16 models/%s.nn -o %s", bf16_models[m], file), 0);
        cr_expect_eq(run(NULL, "grep -q '_forward_bf16(' %s", file), 0, "%s: no bfloat16 kernel was emitted",
                     bf16_models[m]);
        for (size_t t = 0; t < sizeof build_targets / sizeof build_targets[0]; t++) {
            if (build_targets[t].x86_only && !x86)
                continue;
            cr_expect_eq(compile_clean(&out, build_targets[t].compiler, build_targets[t].flags, file), 0,
                         "%s %s on %s:\n%s", build_targets[t].compiler, build_targets[t].flags, bf16_models[m], out);
            free(out);
        }
        for (size_t t = 0; x86 && t < sizeof bf16_targets / sizeof bf16_targets[0]; t++) {
            cr_expect_eq(compile_clean(&out, bf16_targets[t].compiler, bf16_targets[t].flags, file), 0,
                         "%s %s on %s:\n%s", bf16_targets[t].compiler, bf16_targets[t].flags, bf16_models[m], out);
            free(out);
        }
    }
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

Test(mnist, cnn_baseline_one_epoch_reaches_97_percent, .timeout = 600)
{
    char *dir = scratch_dir(), *out = NULL;
    int status = run(&out, "$B/bin/cnn_baseline --epochs 1 --save %s/w.nncw", dir);
    cr_assert_eq(status, 0, "trainer failed:\n%s", out);
    double acc = final_accuracy(out);
    cr_log_info("cnn_baseline, 1 epoch: test accuracy %.2f%%", acc);
    cr_expect_geq(acc, 97.0, "cnn_baseline after one epoch: %.2f%%", acc);

    /* Save, load, evaluate: the same accuracy to the last digit. */
    char *eval = NULL;
    cr_assert_eq(run(&eval, "$B/bin/cnn_baseline --eval --load %s/w.nncw", dir), 0, "%s", eval);
    cr_expect_eq(final_accuracy(eval), acc, "evaluating the saved weights gave %.2f%%, training %.2f%%",
                 final_accuracy(eval), acc);
    free(eval);

    /* Another model's weights are refused with a clear message. */
    char *wrong = NULL;
    cr_expect_eq(run(&wrong, "$B/bin/vgg --eval --load %s/w.nncw", dir), 1);
    cr_expect(strstr(wrong, "another model") != NULL, "%s", wrong);
    free(wrong);
    free(out);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

Test(mnist, same_weights_with_one_or_two_threads, .timeout = 600)
{
    char *dir = scratch_dir(), *out = NULL;
    cr_assert_eq(run(&out, "$B/bin/mlp800 --epochs 1 --threads 1 --save %s/t1.nncw && "
                           "$B/bin/mlp800 --epochs 1 --threads 2 --save %s/t2.nncw && "
                           "$B/bin/mlp800 --epochs 1 --threads 2 --save %s/t3.nncw",
                     dir, dir, dir),
                 0, "%s", out);
    cr_expect_eq(run(NULL, "cmp %s/t1.nncw %s/t2.nncw", dir, dir), 0, "1 and 2 threads gave different weights");
    cr_expect_eq(run(NULL, "cmp %s/t2.nncw %s/t3.nncw", dir, dir), 0, "two identical runs gave different weights");
    free(out);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

/* Long DSL lines (a comment after the statement) fold into C that still compiles, no line over 100 columns:
 * the folding once broke a string literal in two at an operator. */
Test(golden, long_model_lines_fold_into_compiling_c, .timeout = 60)
{
    char *dir = scratch_dir(), *out = NULL;
    int status = run(&out,
                     "printf 'model longline\\ninput 28x28x1\\nflatten\\ndense 10 softmax init=glorot_uniform "
                     "bias_init=zeros l2=0.0001    # a long comment that goes on, and on + on, and on\\n' > %s/l.nn && "
                     "$B/nnc %s/l.nn -o %s/l.c && gcc -std=c11 -Wall -Wextra -Werror -fopenmp -Iruntime -c %s/l.c "
                     "-o /dev/null && ! awk 'length > 100' %s/l.c | grep -q .",
                     dir, dir, dir, dir, dir);
    cr_expect_eq(status, 0, "%s", out);
    free(out);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}
