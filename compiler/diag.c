/* diag.c - gcc-style diagnostics with the offending line and a caret. */
#define _POSIX_C_SOURCE 200809L
#include "diag.h"
#include "../runtime/nncrt.h"

#include <stdlib.h>
#include <string.h>

int nnc_source_read(nnc_source *src, const char *path, char *err, size_t errlen)
{
    uint8_t *bytes;
    size_t len;
    if (nnc_read_file(path, "a model file", NNC_MAX_SOURCE_BYTES, &bytes, &len, err, errlen) != 0)
        return -1;
    char *text = realloc(bytes, len + 1); /* the lexer wants the text NUL-terminated */
    if (!text) {
        free(bytes);
        nnc_set_error(err, errlen, "%s: out of memory", path);
        return -1;
    }
    text[len] = '\0';
    memset(src, 0, sizeof *src);
    src->path = path;
    src->text = text;
    src->length = len;
    src->out = stderr;
    return 0;
}

void nnc_source_from_string(nnc_source *src, const char *path, const char *text, size_t length)
{
    memset(src, 0, sizeof *src);
    src->path = path;
    src->text = nnc_xmalloc(length + 1);
    memcpy(src->text, text, length);
    src->text[length] = '\0';
    src->length = length;
    src->out = stderr;
}

void nnc_source_free(nnc_source *src)
{
    free(src->text);
    src->text = NULL;
}

const char *nnc_source_line(const nnc_source *src, int line, int *len)
{
    const char *p = src->text, *end = src->text + src->length;
    for (int l = 1; l < line && p < end; p++)
        if (*p == '\n')
            l++;
    const char *eol = p;
    while (eol < end && *eol != '\n' && *eol != '\r')
        eol++;
    *len = (int)(eol - p);
    return p;
}

/* Print the source line under the message, with ^~~~ under the span. */
static void show_line(const nnc_source *src, nnc_loc loc)
{
    if (loc.first_line < 1)
        return;
    int len;
    const char *text = nnc_source_line(src, loc.first_line, &len);
    fprintf(src->out, "%5d | ", loc.first_line);
    for (int i = 0; i < len; i++) /* control bytes as '?', one column each, so the caret stays under them */
        fputc(text[i] == '\t' || ((unsigned char)text[i] >= 0x20 && text[i] != 0x7f) ? text[i] : '?', src->out);
    fputs("\n      | ", src->out);
    int first = loc.first_column < 1 ? 1 : loc.first_column;
    int last = loc.last_line == loc.first_line ? loc.last_column : len;
    if (last < first)
        last = first;
    for (int col = 1; col < first; col++)
        fputc(col <= len && text[col - 1] == '\t' ? '\t' : ' ', src->out);
    fputc('^', src->out);
    for (int col = first + 1; col <= last; col++)
        fputc('~', src->out);
    fputc('\n', src->out);
}

static void report(nnc_source *src, nnc_loc loc, const char *kind, const char *fmt, va_list ap)
{
    if (loc.first_line > 0)
        fprintf(src->out, "%s:%d:%d: %s: ", src->path, loc.first_line, loc.first_column, kind);
    else
        fprintf(src->out, "%s: %s: ", src->path, kind);
    vfprintf(src->out, fmt, ap);
    fputc('\n', src->out);
    show_line(src, loc);
}

/* Past the error limit nothing more is shown: not errors, nor their notes. */
static int over_error_limit(const nnc_source *src) { return src->errors > NNC_ERROR_LIMIT; }

void nnc_error(nnc_source *src, nnc_loc loc, const char *fmt, ...)
{
    src->errors++;
    if (src->errors == NNC_ERROR_LIMIT + 1)
        fprintf(src->out, "%s: fatal error: too many errors (more than %d); the rest are not shown\n", src->path,
                NNC_ERROR_LIMIT);
    if (over_error_limit(src))
        return;
    va_list ap;
    va_start(ap, fmt);
    report(src, loc, "error", fmt, ap);
    va_end(ap);
}

void nnc_warning(nnc_source *src, nnc_loc loc, const char *fmt, ...)
{
    src->warnings++;
    if (over_error_limit(src))
        return;
    va_list ap;
    va_start(ap, fmt);
    report(src, loc, "warning", fmt, ap);
    va_end(ap);
}

void nnc_note(nnc_source *src, nnc_loc loc, const char *fmt, ...)
{
    if (over_error_limit(src))
        return;
    va_list ap;
    va_start(ap, fmt);
    report(src, loc, "note", fmt, ap);
    va_end(ap);
}

/* ---- memory ---- */

_Noreturn void nnc_out_of_memory(void)
{
    fprintf(stderr, "nnc: out of memory\n");
    exit(1);
}

void *nnc_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        nnc_out_of_memory();
    return p;
}

void *nnc_xrealloc(void *p, size_t size)
{
    p = realloc(p, size ? size : 1);
    if (!p)
        nnc_out_of_memory();
    return p;
}

char *nnc_xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        nnc_out_of_memory();
    return d;
}
