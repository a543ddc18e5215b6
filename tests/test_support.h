/*
 * test_support.h - helpers for the tests that drive nnc and the trainers from
 * the outside, through a shell (defined in test_support.c, which the Makefile
 * builds into the suite with every other tests/test_*.c). Commands run from
 * the repository root (NNC_ROOT) with $B set to the build directory
 * (NNC_BUILD: build/, or build-asan/ under `make test-asan`).
 */
#ifndef NNC_TEST_SUPPORT_H
#define NNC_TEST_SUPPORT_H

#include <stddef.h>

/* Write "cd ROOT && B=BUILD && " into cmd[len]: the prefix every command runs under. */
void shell_prefix(char *cmd, size_t len);

/* Run a shell command (a printf format) under shell_prefix; returns its exit
 * status (-1 if it did not exit) and, if out, its stdout+stderr, malloc'ed. */
int run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A new empty directory under /tmp, malloc'ed; the caller removes it. */
char *scratch_dir(void);

/* Skip the test (cr_skip_test) with a reason that `make test` shows: Criterion
 * prints a skip only under --verbose, and its cr_log_warn makes the run fail,
 * so the line "[SKIP] suite::test: reason" goes to stderr as well. */
void skip_visibly(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* The same line for a part of a test that cannot run (a tool not installed), the rest going on. */
void note_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The compiler flags a program needs to link this build's runtime: the sanitizers under `make
 * test-asan` (the runtime is instrumented there), nothing otherwise. */
#if defined(__SANITIZE_ADDRESS__)
#define SAN_FLAGS "-fsanitize=address,undefined"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SAN_FLAGS "-fsanitize=address,undefined"
#endif
#endif
#ifndef SAN_FLAGS
#define SAN_FLAGS ""
#endif

#endif /* NNC_TEST_SUPPORT_H */
