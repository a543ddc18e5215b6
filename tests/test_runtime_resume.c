/*
 * test_runtime_resume.c - the trainers' command line from the outside, on real
 * MNIST: kill -9 in the middle of training, --resume, and the final weights
 * are bit-identical to an uninterrupted run's (issue "Reliability"); and the
 * reports a user reads (validation, confusion matrix, divergence, --help).
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nncrt.h"
#include "test_support.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_seconds(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) continue; /* resumes after a signal */
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The trainer's flags for both runs: 2 epochs of mlp800, a checkpoint every 25 steps. */
#define RESUME_ARGS "--epochs 2 --checkpoint-steps 25 --threads 2"

Test(resume, kill_9_mid_training_then_resume_gives_bit_identical_weights, .timeout = 120) {
    double t_start = now();
    char *dir = scratch_dir(), *out = NULL;
    int status = run(&out, "$B/bin/mlp800 " RESUME_ARGS " --save %s/a.nncw", dir);
    cr_assert_eq(status, 0, "uninterrupted run failed:\n%s", out);
    free(out);
    double t_whole = now() - t_start;

    /* The same run in the background, killed with SIGKILL at a seeded random
     * moment after its first checkpoint: 0.2 s to 0.2 + 40% of a whole run. */
    char cmd[4096], ckpt[256], log[256];
    snprintf(ckpt, sizeof ckpt, "%s/b.ckpt", dir);
    snprintf(log, sizeof log, "%s/b.log", dir);
    shell_prefix(cmd, sizeof cmd);
    snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), "exec $B/bin/mlp800 " RESUME_ARGS " --save %s/b.nncw >%s 2>&1",
             dir, log);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    double t_wait = now();
    while (!file_exists(ckpt) && now() - t_wait < 60) sleep_seconds(0.005);
    cr_assert(file_exists(ckpt), "no checkpoint appeared within 60 s");
    nnc_rng rng;
    nnc_rng_seed(&rng, 20261122, 1);
    double delay = 0.2 + nnc_rng_uniform(&rng) * 0.4 * t_whole;
    sleep_seconds(delay);
    int wstatus;
    cr_assert_eq(waitpid(pid, &wstatus, WNOHANG), 0, "the run finished before the kill (%.2f s after its first "
                 "checkpoint): not a mid-training kill", delay);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    cr_assert_eq(waitpid(pid, &wstatus, 0), pid);
    cr_assert(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL);
    char *killed_log = NULL;
    run(&killed_log, "tail -c 300 %s", log);
    cr_log_info("killed %.2f s after the first checkpoint; the log ended with:\n%s", delay, killed_log);
    free(killed_log);

    status = run(&out, "$B/bin/mlp800 " RESUME_ARGS " --save %s/b.nncw --resume", dir);
    cr_assert_eq(status, 0, "resumed run failed:\n%s", out);
    cr_expect_not_null(strstr(out, "resuming from"), "%s", out);
    free(out);
    cr_expect_eq(run(NULL, "cmp %s/a.nncw %s/b.nncw", dir, dir), 0,
                 "the resumed run's weights differ from the uninterrupted run's");
    cr_expect_eq(run(NULL, "cmp %s/a.best.nncw %s/b.best.nncw", dir, dir), 0, "the best weights differ");
    cr_expect_eq(run(NULL, "test $(wc -l < %s/b.history.csv) -eq 3", dir), 0, "the history is not 2 epochs");
    cr_expect_eq(run(NULL, "ls %s | grep -q '\\.tmp\\.'", dir), 1, "a temporary file was left behind");
    cr_expect(!file_exists(ckpt), "the checkpoint of a completed run is still there");
    cr_log_info("kill/resume test: %.1f s in all (one whole run %.1f s)", now() - t_start, t_whole);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

Test(trainer_cli, help_documents_every_flag) {
    char *out = NULL;
    cr_assert_eq(run(&out, "$B/bin/linear --help"), 0);
    const char *flags[] = {"--data",       "--epochs",     "--seed",       "--threads",          "--lr",
                           "--validation", "--early-stop", "--save",       "--load",             "--history",
                           "--no-history", "--resume",     "--checkpoint-steps", "--eval",       "--predict",
                           "--bench",      "--bench-seconds", "--check-numerics", "--help"};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "\n  %s ", flags[i]);
        char alone[64];
        snprintf(alone, sizeof alone, "\n  %s\n", flags[i]);
        cr_expect(strstr(out, needle) || strstr(out, alone), "--help does not document %s:\n%s", flags[i], out);
    }
    free(out);
    cr_expect_eq(run(&out, "$B/bin/linear --lr fast"), 2);
    cr_expect_not_null(strstr(out, "--lr needs a positive learning rate such as 0.01, not 'fast'"), "%s", out);
    free(out);
    cr_expect_eq(run(&out, "$B/bin/linear --validation 60000 --epochs 1 --no-history"), 2);
    cr_expect_not_null(strstr(out, "--validation 60000 holds out every training image"), "%s", out);
    free(out);
}

Test(trainer_cli, validation_picks_the_weights_the_test_set_sees, .timeout = 120) {
    char *dir = scratch_dir(), *out = NULL;
    int status = run(&out, "$B/bin/linear --epochs 6 --validation 5000 --early-stop 2 --save %s/v.nncw", dir);
    cr_assert_eq(status, 0, "%s", out);
    cr_expect_not_null(strstr(out, "55000 training and 10000 test images"), "%s", out);
    cr_expect_not_null(strstr(out, "validation data: the last 5000 training images"), "%s", out);
    cr_expect_not_null(strstr(out, "  val_loss "), "%s", out);
    cr_expect_not_null(strstr(out, "  val_acc "), "%s", out);
    const char *picked = strstr(out, "test set: the weights of epoch ");
    cr_assert_not_null(picked, "%s", out);
    int best = atoi(picked + strlen("test set: the weights of epoch "));
    cr_expect_not_null(strstr(picked, "picked by the best validation accuracy"), "%s", out);
    /* The reported test accuracy is the best weights', as --eval of the best file gives it. */
    const char *acc = strstr(picked, "test accuracy ");
    cr_assert_not_null(acc, "%s", out);
    char *eval = NULL;
    cr_assert_eq(run(&eval, "$B/bin/linear --eval --load %s/v.best.nncw", dir), 0, "%s", eval);
    const char *eval_acc = strstr(eval, "test accuracy ");
    cr_assert_not_null(eval_acc, "%s", eval);
    cr_expect_eq(strncmp(acc, eval_acc, 30), 0, "%.30s vs %.30s", acc, eval_acc);
    /* The confusion matrix: 10 rows of 10 counts, summing to the 10000 test images. */
    const char *cm = strstr(eval, "confusion matrix on the test set");
    cr_assert_not_null(cm, "%s", eval);
    cm = strchr(cm, '\n') + 1;
    cm = strchr(cm, '\n') + 1; /* the column header */
    long total = 0;
    for (int row = 0; row < 10; row++) {
        char *end;
        cr_assert_eq(strtol(cm, &end, 10), row, "row %d: %.60s", row, cm);
        cm = end;
        for (int k = 0; k < 10; k++) {
            total += strtol(cm, &end, 10);
            cr_assert_neq(end, cm, "row %d, column %d", row, k);
            cm = end;
        }
        cm = strchr(cm, '\n') + 1;
    }
    cr_expect_eq(total, 10000);
    cr_log_info("linear, --validation 5000: best epoch %d", best);
    free(eval);
    free(out);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}

Test(trainer_cli, absurd_learning_rate_stops_naming_the_layer_and_keeps_the_weights, .timeout = 120) {
    char *dir = scratch_dir(), *out = NULL;
    cr_assert_eq(run(&out, "$B/bin/mlp800 --epochs 1 --no-history --save %s/w.nncw && cp %s/w.nncw %s/good.nncw",
                     dir, dir, dir),
                 0, "%s", out);
    free(out);
    int status = run(&out, "$B/bin/mlp800 --epochs 1 --lr 1e10 --save %s/w.nncw --load %s/good.nncw", dir, dir);
    cr_expect_eq(status, 1, "%s", out);
    cr_expect_not_null(strstr(out, "error: epoch 1, step "), "%s", out);
    cr_expect_not_null(strstr(out, "first non-finite layer: dense_"), "%s", out);
    cr_expect_not_null(strstr(out, "weights not saved"), "%s", out);
    cr_expect_eq(run(NULL, "cmp %s/w.nncw %s/good.nncw", dir, dir), 0, "the good weights were overwritten");
    free(out);
    run(NULL, "rm -rf %s", dir);
    free(dir);
}
