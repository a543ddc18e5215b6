/* test_support.c - see test_support.h. Holds no tests. */
#define _POSIX_C_SOURCE 200809L
#include "test_support.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#ifndef NNC_BUILD
#define NNC_BUILD "build"
#endif

void shell_prefix(char *cmd, size_t len)
{
    snprintf(cmd, len, "cd '%s' && B='%s' && ", NNC_ROOT, NNC_BUILD);
}

int run(char **out, const char *fmt, ...)
{
    char cmd[4096];
    shell_prefix(cmd, sizeof cmd);
    size_t n = strlen(cmd);
    n += (size_t)snprintf(cmd + n, sizeof cmd - n, "(");
    va_list ap;
    va_start(ap, fmt);
    n += (size_t)vsnprintf(cmd + n, sizeof cmd - n, fmt, ap);
    va_end(ap);
    snprintf(cmd + n, sizeof cmd - n, ") 2>&1");
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t cap = 1 << 16, len = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    int status = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

char *scratch_dir(void)
{
    char *dir = strdup("/tmp/nnc-test-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

/* "[SKIP] category::test: reason" on stderr, which `make test` shows; the reason into reason[len]. */
static void print_skip(char *reason, size_t len, const char *fmt, va_list ap)
{
    vsnprintf(reason, len, fmt, ap);
    fprintf(stderr, "[SKIP] %s::%s: %s\n", criterion_current_test->category, criterion_current_test->name, reason);
}

void skip_visibly(const char *fmt, ...)
{
    char reason[2048];
    va_list ap;
    va_start(ap, fmt);
    print_skip(reason, sizeof reason, fmt, ap);
    va_end(ap);
    cr_skip_test("%s", reason);
}

void note_skip(const char *fmt, ...)
{
    char reason[2048];
    va_list ap;
    va_start(ap, fmt);
    print_skip(reason, sizeof reason, fmt, ap);
    va_end(ap);
}
