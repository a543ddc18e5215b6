/*
 * test_mpi.c - several processes training one model (runtime/dist.c) from the
 * outside, under Open MPI's mpirun, on a small subset of real MNIST: the
 * weights, the best weights and every figure of the log are bit-identical to
 * one process's, whatever the number of processes and of threads in each; a
 * rank count the slices do not allow, and a trainer built without MPI, are
 * refused; a killed rank stops the job; --resume under mpirun finishes it.
 *
 * The MPI trainers are build/bin-mpi/ (`make mpi`). Under `make test-asan`
 * these tests are skipped: the MPI trainers are built for `make test` only.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

#ifndef NNC_MPI_TESTS
#define NNC_MPI_TESTS 1
#endif

/* Open MPI refuses root without these; the tests run as root in CI. --oversubscribe: more
 * processes than this machine's 2 cores. */
#define MPIRUN "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe "
/* The run every comparison makes: 2 epochs of the subset, the recipe's seed. */
#define RUN_ARGS "--data %s/data --epochs 2 --history %s/%s"

static void require_mpi(void) {
    if (!NNC_MPI_TESTS) skip_visibly("the MPI trainers are built for `make test`, not under the sanitizers");
    if (run(NULL, "command -v mpirun >/dev/null") != 0)
        skip_visibly("mpirun is not installed (Debian: openmpi-bin; `make test-deps` installs it)");
}

/* A scratch directory holding data/: the first 2048 training and 512 test images of MNIST. */
static char *scratch_with_data(void) {
    char *dir = scratch_dir(), *out = NULL;
    int status = run(&out, "src=$(sh tests/tools/find_mnist.sh) && sh tests/tools/mnist_subset.sh \"$src\" %s/data 2048 512",
                     dir);
    if (status == 77) skip_visibly("%s", out);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    return dir;
}

/* The log's figures: its epoch lines without their timings (seconds, images a second vary). */
static char *figures(const char *log) {
    char *out = NULL;
    run(&out, "sed -n 's/^\\(epoch .*test_acc [0-9.]*%%\\).*/\\1/p; s/^\\(test accuracy.*\\)/\\1/p' %s", log);
    return out;
}

/* Everything one run wrote, STEM.nncw, STEM.best.nncw, STEM.history.csv, equals run `a`'s (the
 * history's seconds and images a second aside), and its log has the same figures. */
static void expect_same_run(const char *dir, const char *stem, const char *what) {
    cr_expect_eq(run(NULL, "cmp %s/a.nncw %s/%s.nncw", dir, dir, stem), 0, "%s: the weights differ", what);
    cr_expect_eq(run(NULL, "cmp %s/a.best.nncw %s/%s.best.nncw", dir, dir, stem), 0, "%s: the best weights differ",
                 what);
    cr_expect_eq(run(NULL, "cut -d, -f1-6 %s/a.history.csv >%s/a.h && cut -d, -f1-6 %s/%s.history.csv | cmp -s - %s/a.h",
                     dir, dir, dir, stem, dir),
                 0, "%s: the history differs", what);
    char a_log[512], log[512];
    snprintf(a_log, sizeof a_log, "%s/a.log", dir);
    snprintf(log, sizeof log, "%s/%s.log", dir, stem);
    char *want = figures(a_log), *got = figures(log);
    cr_expect(want && got && strlen(want) > 0 && strcmp(want, got) == 0, "%s: the log's figures differ:\n%s\n---\n%s",
              what, want, got);
    free(want), free(got);
}

/* One process with 2 threads (`a`), then 2 processes with 1 thread and with 2 threads each. */
static void check_model(const char *model) {
    require_mpi();
    char *dir = scratch_with_data(), *out = NULL;
    int status = run(&out, "$B/bin/%s " RUN_ARGS " --threads 2 --save %s/a.nncw >%s/a.log 2>&1 || cat %s/a.log",
                     model, dir, dir, "a", dir, dir, dir);
    cr_assert_eq(status, 0, "%s, one process:\n%s", model, out);
    free(out);
    for (int threads = 1; threads <= 2; threads++) {
        char stem[16];
        snprintf(stem, sizeof stem, "np2t%d", threads);
        status = run(&out, MPIRUN "-np 2 $B/bin-mpi/%s " RUN_ARGS " --threads %d --save %s/%s.nncw >%s/%s.log 2>&1 || "
                                  "cat %s/%s.log",
                     model, dir, dir, stem, threads, dir, stem, dir, stem, dir, stem);
        cr_assert_eq(status, 0, "%s, 2 processes x %d threads:\n%s", model, threads, out);
        free(out);
        char what[64];
        snprintf(what, sizeof what, "%s, 2 processes x %d thread%s", model, threads, threads > 1 ? "s" : "");
        expect_same_run(dir, stem, what);
    }
    char *log = NULL;
    run(&log, "cat %s/np2t1.log", dir);
    cr_expect_not_null(strstr(log, "in each of 2 processes"), "%s: the log does not say it ran in 2 processes", model);
    /* Each process sends its slice's gradient and receives the other's: 4 bytes a parameter, both ways, besides
     * the slice's loss and right answers (a double and an int) and batchnorm's statistics. */
    double params = 0, sent = 0, received = 0;
    const char *at = strstr(log, "parameters;"), *traffic = strstr(log, "MPI: a training step exchanged");
    while (at && at > log && at[-1] != ':') at--;
    cr_assert(at && traffic && sscanf(at + 1, "%lf", &params) == 1 &&
                  sscanf(traffic, "MPI: a training step exchanged %lf bytes out and %lf in", &sent, &received) == 2,
              "%s: no parameter count or traffic line in:\n%s", model, log);
    cr_expect_eq(sent, received, "%s: %g bytes out, %g in", model, sent, received);
    if (strcmp(model, "cnn_larger") == 0) /* no batchnorm */
        cr_expect_eq(sent, 4 * params + 8 + 4, "%s: %g bytes a step for %g parameters", model, sent, params);
    else
        cr_expect_gt(sent, 4 * params + 8 + 4, "%s: %g bytes a step for %g parameters", model, sent, params);
    free(log);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

Test(mpi, cnn_larger_in_two_processes_trains_as_one, .timeout = 300) { check_model("cnn_larger"); }

/* Batchnorm: its statistics and its parameter gradients cross the processes mid-step. */
Test(mpi, vgg_bn_in_two_processes_trains_as_one, .timeout = 300) { check_model("vgg_bn"); }

/* Four processes need four slices: vgg_bn compiled with `nnc --slices 4`, against one process of the same file. */
Test(mpi, vgg_bn_with_four_slices_in_four_processes_trains_as_one, .timeout = 600) {
    require_mpi();
    char *dir = scratch_with_data(), *out = NULL;
    int status = run(&out,
                     "$B/nnc --slices 4 models/vgg_bn.nn -o %s/vgg_bn4.c && grep -q '^#define CHUNKS 4$' %s/vgg_bn4.c && "
                     "cc -std=c11 -O2 -fopenmp -Iruntime %s/vgg_bn4.c -o %s/one $B/libnncrt.a -lopenblas -lpng -ljpeg "
                     "-lz -lm && "
                     "mpicc -std=c11 -O2 -fopenmp -Iruntime %s/vgg_bn4.c -o %s/four $B/libnncrt_mpi.a -lopenblas "
                     "-lpng -ljpeg -lz -lm",
                     dir, dir, dir, dir, dir, dir);
    cr_assert_eq(status, 0, "building vgg_bn with 4 slices:\n%s", out);
    free(out);
    status = run(&out, "%s/one " RUN_ARGS " --threads 2 --save %s/a.nncw >%s/a.log 2>&1 || cat %s/a.log", dir, dir,
                 dir, "a", dir, dir, dir);
    cr_assert_eq(status, 0, "one process:\n%s", out);
    free(out);
    status = run(&out, MPIRUN "-np 4 %s/four " RUN_ARGS " --threads 1 --save %s/np4.nncw >%s/np4.log 2>&1 || cat %s/np4.log",
                 dir, dir, dir, "np4", dir, dir, dir);
    cr_assert_eq(status, 0, "4 processes:\n%s", out);
    free(out);
    expect_same_run(dir, "np4", "vgg_bn with 4 slices, 4 processes");
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

/*
 * `mpirun -np NP TRAINER` in a directory holding only data/ must be refused:
 * non-zero, `message` said exactly once, no training, no file written.
 */
static void expect_refused(int np, const char *trainer, const char *message) {
    require_mpi();
    char *dir = scratch_with_data(), *out = NULL;
    int status = run(&out, "cd %s && " MPIRUN "-np %d $OLDPWD/$B/%s --data data --epochs 1 2>&1", dir, np, trainer);
    cr_expect_neq(status, 0, "%d processes of %s were not refused:\n%s", np, trainer, out);
    int said = 0;
    for (const char *at = out; (at = strstr(at, message)) != NULL; at++) said++;
    cr_expect_eq(said, 1, "\"%s\" was said %d times:\n%s", message, said, out);
    cr_expect_null(strstr(out, "epoch"), "it trained:\n%s", out);
    free(out);
    cr_expect_eq(run(NULL, "test -z \"$(ls %s | grep -v '^data$')\"", dir), 0, "the refused run wrote files");
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

/* 3 processes cannot share 2 slices: one message, from rank 0. */
Test(mpi, a_rank_count_that_does_not_divide_the_slices_is_refused, .timeout = 120) {
    expect_refused(3, "bin-mpi/cnn_larger", "3 processes cannot share this model's 2 slices");
}

/* A trainer linked without MPI, started by mpirun, says so instead of training two copies (rank 0 says it). */
Test(mpi, a_trainer_built_without_mpi_refuses_mpirun, .timeout = 120) {
    expect_refused(2, "bin/cnn_larger", "as process 0 of 2, but it was built without MPI");
}

/*
 * Rank 1 is killed (SIGKILL) mid-training, after rank 0 wrote a mid-epoch
 * checkpoint: the job ends, with a message naming the rank, instead of rank 0
 * waiting for it forever; no final weights appear. Then the same command with
 * --resume under mpirun finishes the run, and its weights are one process's
 * uninterrupted run's, bit for bit.
 */
Test(mpi, a_killed_rank_stops_the_job_and_resume_under_mpirun_finishes_it, .timeout = 600) {
    require_mpi();
    char *dir = scratch_with_data(), *out = NULL;
    int status = run(&out, "$B/bin/vgg_bn " RUN_ARGS " --threads 2 --save %s/a.nncw >%s/a.log 2>&1 || cat %s/a.log",
                     dir, dir, "a", dir, dir, dir);
    cr_assert_eq(status, 0, "one process:\n%s", out);
    free(out);
    /* Rank 1's shell waits for the checkpoint, then kills itself: exec made the trainer its process. */
    status = run(&out,
                 "timeout 120 env " MPIRUN "-np 2 sh -c 'if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then "
                 "(while [ ! -f %s/k.ckpt ]; do sleep 0.02; done; sleep 0.3; kill -9 $$) & fi; "
                 "exec %s/%s/bin-mpi/vgg_bn " RUN_ARGS " --threads 1 --checkpoint-steps 10 --save %s/k.nncw' 2>&1",
                 dir, NNC_ROOT, NNC_BUILD, dir, dir, "k", dir);
    cr_expect_neq(status, 124, "the job hung after rank 1 was killed:\n%s", out);
    cr_expect_neq(status, 0, "the job did not fail when rank 1 was killed:\n%s", out);
    cr_expect_not_null(strstr(out, "process rank 1"), "no message names the dead rank:\n%s", out);
    cr_log_info("a killed rank: mpirun said:\n%s", out);
    free(out);
    cr_expect_neq(run(NULL, "test -f %s/k.nncw", dir), 0, "final weights were written by a failed job");
    cr_assert_eq(run(NULL, "test -f %s/k.ckpt", dir), 0, "no checkpoint to resume from");

    status = run(&out, MPIRUN "-np 2 $B/bin-mpi/vgg_bn " RUN_ARGS " --threads 1 --checkpoint-steps 10 --save %s/k.nncw "
                              "--resume >%s/k.log 2>&1 || cat %s/k.log",
                 dir, dir, "k", dir, dir, dir);
    cr_assert_eq(status, 0, "resume under mpirun failed:\n%s", out);
    free(out);
    cr_expect_eq(run(NULL, "grep -q 'resuming from' %s/k.log", dir), 0, "the second run did not resume");
    cr_expect_eq(run(NULL, "cmp %s/a.nncw %s/k.nncw", dir, dir), 0,
                 "the resumed MPI run's weights differ from one process's uninterrupted run");
    cr_expect_eq(run(NULL, "ls %s | grep -q '\\.tmp\\.'", dir), 1, "a temporary file was left behind");
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

/*
 * Each process reads the data set and its flags itself: processes given different files, or
 * different options (mpirun's MPMD form, `A : B`), stop before the first step, rank 0 saying what.
 */
static void expect_mismatch_refused(const char *dir, const char *rank0_flags, const char *rank1_flags,
                                    const char *message) {
    char *out = NULL;
    int status = run(&out, "cd %s && " MPIRUN "-np 1 $OLDPWD/$B/bin-mpi/cnn_larger %s : "
                           "-np 1 $OLDPWD/$B/bin-mpi/cnn_larger %s 2>&1",
                     dir, rank0_flags, rank1_flags);
    cr_expect_neq(status, 0, "%s", out);
    cr_expect_not_null(strstr(out, message), "%s", out);
    cr_expect_null(strstr(out, "epoch 1"), "it trained:\n%s", out);
    free(out);
}

Test(mpi, processes_given_different_data_or_options_stop_before_training, .timeout = 120) {
    require_mpi();
    char *dir = scratch_with_data(), *out = NULL;
    int status = run(&out, "src=$(sh tests/tools/find_mnist.sh) && sh tests/tools/mnist_subset.sh \"$src\" %s/other 2000 512",
                     dir);
    cr_assert_eq(status, 0, "%s", out);
    free(out);
    expect_mismatch_refused(dir, "--data data --epochs 1", "--data other --epochs 1",
                            "the training data differs between processes");
    expect_mismatch_refused(dir, "--data data --epochs 1", "--data data --epochs 2",
                            "the run (model, slices or options) differs between processes");
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

/* Flags that run as one process are refused under mpirun, once, by rank 0, and nothing is aborted. */
Test(mpi, one_process_flags_are_refused_under_mpirun, .timeout = 120) {
    require_mpi();
    char *out = NULL;
    int status = run(&out, MPIRUN "-np 2 $B/bin-mpi/cnn_larger --bench 2>&1");
    cr_expect_neq(status, 0, "%s", out);
    int said = 0;
    for (const char *at = out; (at = strstr(at, "--bench measures one process")) != NULL; at++) said++;
    cr_expect_eq(said, 1, "said %d times:\n%s", said, out);
    cr_expect_null(strstr(out, "MPI_ABORT"), "the refusal aborted the job:\n%s", out);
    free(out);
}
