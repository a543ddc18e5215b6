/*
 * diag.h - source files, locations and gcc-style diagnostics.
 *
 * Every message the compiler prints about a model file goes through here, so
 * that they all look the same:
 *
 *   models/x.nn:12:6: error: conv kernel 29x29 is larger than its 28x28x1 input
 *      12 | conv 8 29x29
 *         |        ^~~~~
 */
#ifndef NNC_DIAG_H
#define NNC_DIAG_H

#include <stdarg.h>
#include <stdio.h>

/* A span in a source file; lines and columns count from 1. */
typedef struct {
    int first_line, first_column;
    int last_line, last_column; /* inclusive */
} nnc_loc;

typedef struct {
    const char *path; /* as the user named it: messages repeat it verbatim */
    char *text;       /* the whole file, NUL-terminated */
    size_t length;
    int errors, warnings;
    FILE *out; /* where diagnostics go: stderr, or a test's buffer */
} nnc_source;

/* Model files are a few hundred bytes; anything near this is a wrong argument. */
#define NNC_MAX_SOURCE_BYTES ((size_t)16 << 20)

/* Read a whole model file. Returns 0, or -1 with a message in err. */
int nnc_source_read(nnc_source *src, const char *path, char *err, size_t errlen);
/* Use text already in memory (tests, fuzzing); the text is copied. */
void nnc_source_from_string(nnc_source *src, const char *path, const char *text, size_t length);
void nnc_source_free(nnc_source *src);

/* The text of line `line` (1-based), without its newline; *len gets its length. */
const char *nnc_source_line(const nnc_source *src, int line, int *len);

/* As clang's -ferror-limit: after this many errors the rest are counted but
 * not shown (a binary file given by mistake would otherwise print thousands). */
#define NNC_ERROR_LIMIT 20

void nnc_error(nnc_source *src, nnc_loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void nnc_warning(nnc_source *src, nnc_loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void nnc_note(nnc_source *src, nnc_loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Memory that cannot be had ends the compiler, with one message (diag.c). */
_Noreturn void nnc_out_of_memory(void);
void *nnc_xmalloc(size_t size);
void *nnc_xrealloc(void *p, size_t size);
char *nnc_xstrdup(const char *s);

#endif
