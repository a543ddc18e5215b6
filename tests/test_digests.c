/*
 * test_digests.c - every trainer trains bit for bit as recorded: one epoch of
 * the trainer of every model in models/ on the first 2048 training and 512
 * test images of MNIST (tests/tools/all_digests.sh), each line (the SHA-256 of the weights,
 * the loss and accuracy figures) compared with tests/digests/KEY.txt, where
 * KEY is this kind of machine (tests/tools/digest_key.sh: floating-point
 * results depend on the instruction set and on OpenBLAS's kernel). A change
 * to the compiler or the runtime that is meant to keep the arithmetic must
 * keep every line; one that changes it on purpose records new lines with
 * `make digests`.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* The line of `text` whose first word is `model`, without its newline, malloc'ed; NULL if none. */
static char *line_of(const char *text, const char *model)
{
    size_t len = strlen(model);
    for (const char *at = text; *at;) {
        if (strncmp(at, model, len) == 0 && at[len] == ' ')
            return strndup(at, strcspn(at, "\n"));
        at += strcspn(at, "\n");
        at += *at == '\n';
    }
    return NULL;
}

/* For every line of `from`, expect its model's line in `in` (and, if equal, the same line);
 * returns how many lines `from` has. */
static int expect_lines(const char *from, const char *from_name, const char *in, const char *in_name, int equal)
{
    int n = 0;
    for (const char *at = from; *at; at += *at == '\n') {
        size_t len = strcspn(at, "\n");
        at += len;
        if (len == 0)
            continue;
        n++;
        char *line = strndup(at - len, len);
        char *model = strndup(line, strcspn(line, " "));
        char *other = line_of(in, model);
        if (!other)
            cr_expect_fail("%s has a line %s but none %s:\n  %8s: %s", model, from_name, in_name, from_name, line);
        else if (equal)
            cr_expect_str_eq(line, other, "%s trains differently:\n  %8s: %s\n  %8s: %s", model, from_name, line,
                             in_name, other);
        free(line), free(model), free(other);
    }
    return n;
}

Test(digests, every_trainer_trains_bit_for_bit_as_recorded, .timeout = 600)
{
    if (SAN_FLAGS[0]) /* this build is the sanitized one */
        skip_visibly("trainers built with sanitizers at -O1 (make test-asan) round differently from the "
                     "optimized build's recorded digests; make test checks them");
    char *key = NULL, *stored = NULL, *now = NULL, *log = NULL;
    cr_assert_eq(run(&key, "sh tests/tools/digest_key.sh"), 0, "%s", key);
    key[strcspn(key, "\n")] = '\0';
    if (run(&stored, "cat tests/digests/%s.txt", key) != 0)
        skip_visibly("no training digests for this kind of machine (%s): `make digests` writes "
                     "tests/digests/%s.txt from the trainers as built now; commit it to pin them", key, key);

    char *dir = scratch_dir();
    int status = run(&now, "sh tests/tools/all_digests.sh $B/bin 2>%s/log", dir);
    run(&log, "cat %s/log", dir);
    run(NULL, "rm -rf %s", dir);
    free(dir);
    if (status == 77) {
        log[strcspn(log, "\n")] = '\0';
        skip_visibly("%s", log);
    }
    cr_assert_eq(status, 0, "tests/tools/all_digests.sh failed:\n%s%s", now, log);

    int n = expect_lines(stored, "recorded", now, "now", 1);
    cr_expect_gt(n, 0, "tests/digests/%s.txt is empty", key);
    expect_lines(now, "now", stored, "recorded", 0);
    cr_log_info("training digests of %d models compared with tests/digests/%s.txt", n, key);
    free(key), free(stored), free(now), free(log);
}
