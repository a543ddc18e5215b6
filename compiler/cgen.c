/*
 * cgen.c - printing C (cgen.h): formatting helpers, the activation snippets
 * several kinds share, and the folding of long lines.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cgen.h"

void cg(cgen *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(g->out, fmt, ap);
    va_end(ap);
}

void cgi(cgen *g, const char *fmt, ...)
{
    fputs(g->indent ? g->indent : "", g->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(g->out, fmt, ap);
    va_end(ap);
}

const char *flt(char *buf, size_t len, float v)
{
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, len, "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v)
            break;
    }
    if (!strpbrk(buf, ".eEn"))
        strncat(buf, ".0", len - strlen(buf) - 1);
    strncat(buf, "f", len - strlen(buf) - 1);
    return buf;
}

const char *upper(char *buf, size_t len, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++)
        buf[i] = (char)toupper((unsigned char)s[i]);
    buf[i] = '\0';
    return buf;
}

const char *dims_comment(char *buf, size_t len, shape s)
{
    if (shape_is_flat(s))
        snprintf(buf, len, "[n][%d]", s.c);
    else
        snprintf(buf, len, "[n][%d][%d][%d]", s.h, s.w, s.c);
    return buf;
}

const char *times(char *buf, size_t len, const char *var, int factor)
{
    if (factor == 1)
        snprintf(buf, len, "%s", var);
    else
        snprintf(buf, len, "%s * %d", var, factor);
    return buf;
}

void cg_string_literal(cgen *g, const char *text)
{
    cg(g, "    \"");
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            cg(g, "\\n\"\n");
            if (p[1])
                cg(g, "    \"");
            else
                return;
        } else if (*p == '"' || *p == '\\') {
            cg(g, "\\%c", *p);
        } else if (isprint((unsigned char)*p)) {
            cg(g, "%c", *p);
        } else {
            cg(g, "\\%03o", (unsigned char)*p);
        }
    }
    cg(g, "\"");
}

/* ---- activations ---------------------------------------------------------- */

const char *act_expr(act_kind act, char *buf, size_t len, const char *v)
{
    switch (act) {
    case ACT_RELU: snprintf(buf, len, "%s > 0.0f ? %s : 0.0f", v, v); break;
    case ACT_SIGMOID: snprintf(buf, len, "1.0f / (1.0f + expf(-%s))", v); break;
    case ACT_TANH: snprintf(buf, len, "tanhf(%s)", v); break;
    default: snprintf(buf, len, "%s", v); break;
    }
    return buf;
}

/* Subtracting the row's max first keeps expf from overflowing. */
void cg_softmax_rows(cgen *g, const char *buf, int width, const char *indent)
{
    cg(g, "%sfor (int b = lo; b < hi; b++) {\n", indent);
    cg(g, "%s    float *row = %s + (size_t)b * %d;\n", indent, buf, width);
    cg(g, "%s    float max = row[0];\n", indent);
    cg(g, "%s    for (int j = 1; j < %d; j++)\n%s        max = row[j] > max ? row[j] : max;\n", indent, width, indent);
    cg(g, "%s    float sum = 0.0f;\n", indent);
    cg(g, "%s    for (int j = 0; j < %d; j++) {\n", indent, width);
    cg(g, "%s        row[j] = expf(row[j] - max);\n%s        sum += row[j];\n%s    }\n", indent, indent, indent);
    cg(g, "%s    for (int j = 0; j < %d; j++)\n%s        row[j] /= sum;\n", indent, width, indent);
    cg(g, "%s}\n", indent);
}

void cg_act_backward(cgen *g, act_kind act, const char *grad, const char *out, int width)
{
    switch (act) {
    case ACT_LINEAR:
        return;
    case ACT_SOFTMAX:
        cg(g, "    /* softmax: dz = y * (dy - sum(dy * y)) per row */\n");
        cg(g, "    for (int b = lo; b < hi; b++) {\n");
        cg(g, "        float *g = %s + (size_t)b * %d;\n", grad, width);
        cg(g, "        const float *y = %s + (size_t)b * %d;\n", out, width);
        cg(g, "        float dot = 0.0f;\n");
        cg(g, "        for (int j = 0; j < %d; j++)\n            dot += g[j] * y[j];\n", width);
        cg(g, "        for (int j = 0; j < %d; j++)\n            g[j] = y[j] * (g[j] - dot);\n", width);
        cg(g, "    }\n");
        return;
    default:
        break;
    }
    cg(g, "    /* %s: the derivative from the stored output y */\n", act_name(act));
    cg(g, "    for (size_t i = (size_t)lo * %d; i < (size_t)hi * %d; i++) {\n", width, width);
    switch (act) {
    case ACT_RELU: cg(g, "        if (%s[i] <= 0.0f)\n            %s[i] = 0.0f;\n", out, grad); break;
    case ACT_SIGMOID: cg(g, "        %s[i] *= %s[i] * (1.0f - %s[i]);\n", grad, out, out); break;
    case ACT_TANH: cg(g, "        %s[i] *= 1.0f - %s[i] * %s[i];\n", grad, out, out); break;
    default: break;
    }
    cg(g, "    }\n");
}

void cg_float_array(cgen *g, const char *name, const float *values, size_t n)
{
    char buf[32];
    cg(g, "static const float %s[%zu] = {", name, n);
    for (size_t i = 0; i < n; i++)
        cg(g, "%s%s,", i % 8 ? " " : "\n    ", flt(buf, sizeof buf, values[i]));
    cg(g, "\n};\n");
}

void cg_act_loop(cgen *g, act_kind act, const char *out, int n, const char *indent)
{
    char buf[128], v[64];
    if (act == ACT_LINEAR)
        return;
    if (act == ACT_SOFTMAX) {
        cg(g, "%ssoftmax(%s, %d);\n", indent, out, n);
        return;
    }
    snprintf(v, sizeof v, "%s[i]", out);
    cg(g, "%sfor (int i = 0; i < %d; i++)\n%s    %s[i] = %s;\n", indent, n, indent, out, act_expr(act, buf, sizeof buf, v));
}

/* ---- folding long lines --------------------------------------------------- */

/* The first `what` within text[0..len), or NULL: lines here are not NUL-terminated. */
static const char *find_in(const char *text, int len, const char *what)
{
    int n = (int)strlen(what);
    for (int i = 0; i + n <= len; i++)
        if (strncmp(text + i, what, (size_t)n) == 0)
            return text + i;
    return NULL;
}

static int indent_of(const char *line, int len)
{
    int i = 0;
    while (i < len && line[i] == ' ')
        i++;
    return i;
}

/* Words of a comment's text onto lines of at most width, each starting with prefix. */
static int fold_words(FILE *out, const char *first_prefix, const char *prefix, const char *text, int len, int width)
{
    int col = fprintf(out, "%s", first_prefix);
    int at_start = 1, i = 0;
    while (i < len) {
        while (i < len && text[i] == ' ')
            i++;
        int j = i;
        while (j < len && text[j] != ' ')
            j++;
        if (j == i)
            break;
        int word = j - i;
        if (!at_start && col + 1 + word > width) {
            fputc('\n', out);
            col = fprintf(out, "%s", prefix);
            at_start = 1;
        }
        if (!at_start)
            col += fprintf(out, " ");
        col += fprintf(out, "%.*s", word, text + i);
        at_start = 0;
        i = j;
    }
    return fputc('\n', out) == EOF ? -1 : 0;
}

/* Where a break may go in code: after the last ", " before limit, else before a binary operator;
 * never inside a string literal. -1 when there is no such place. */
static int break_point(const char *line, int len, int limit)
{
    static const char *const ops[] = {" && ", " || ", " ? ", " : ", " + ", " - ", " * ", " = "};
    int in_string = 0, comma = -1, op = -1;
    for (int i = 0; i < len && i < limit; i++) {
        char ch = line[i];
        if (ch == '"' && (i == 0 || line[i - 1] != '\\'))
            in_string = !in_string;
        if (in_string)
            continue;
        if (ch == ',' && i + 1 < len && line[i + 1] == ' ')
            comma = i + 1;
        for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
            if (i > 0 && i + (int)strlen(ops[k]) <= len && strncmp(line + i, ops[k], strlen(ops[k])) == 0)
                op = i;
    }
    return comma >= 0 ? comma : op;
}

/* The last space inside a string literal before limit (the split goes after it), or -1. */
static int string_split_point(const char *line, int len, int limit)
{
    int in_string = 0, best = -1;
    for (int i = 0; i < len && i < limit; i++) {
        if (line[i] == '"' && (i == 0 || line[i - 1] != '\\'))
            in_string = !in_string;
        else if (in_string && line[i] == ' ' && line[i - 1] != '\\')
            best = i + 1;
    }
    return best;
}

/* The column after the innermost parenthesis still open at `pos`, or -1. */
static int open_paren_column(const char *line, int pos)
{
    int stack[64], depth = 0, in_string = 0;
    for (int i = 0; i < pos; i++) {
        char ch = line[i];
        if (ch == '"' && (i == 0 || line[i - 1] != '\\'))
            in_string = !in_string;
        if (in_string)
            continue;
        if ((ch == '(' || ch == '[' || ch == '{') && depth < 64)
            stack[depth++] = i + 1;
        else if ((ch == ')' || ch == ']' || ch == '}') && depth > 0)
            depth--;
    }
    return depth > 0 ? stack[depth - 1] : -1;
}

static void fold_code(FILE *out, const char *text, int len, int width)
{
    static char line[8192], next[8192];
    if (len >= (int)sizeof line) {
        fprintf(out, "%.*s\n", len, text);
        return;
    }
    memcpy(line, text, (size_t)len);
    int indent = indent_of(line, len), cont = -1;
    if (line[indent] == '#') { /* a directive would need a backslash at every fold: keep it whole */
        fprintf(out, "%.*s\n", len, text);
        return;
    }
    while (len > width) {
        int at = break_point(line, len, width);
        if (at <= indent || (cont >= 0 && at <= cont)) { /* a break there would not shorten the line */
            /* no place in the code: split a long string literal at a space, "ab" "cd" being "abcd" */
            int split = string_split_point(line, len, width - 1);
            if (split <= indent)
                break;
            fprintf(out, "%.*s\"\n", split, line);
            int rest = len - split;
            int pad = cont >= 0 ? cont : indent + 8;
            if (pad + 1 + rest >= (int)sizeof next)
                return;
            memset(next, ' ', (size_t)pad);
            next[pad] = '"';
            memcpy(next + pad + 1, line + split, (size_t)rest);
            len = pad + 1 + rest;
            memcpy(line, next, (size_t)len);
            cont = pad;
            continue;
        }
        int head = at; /* the text before the break, without trailing blanks */
        while (head > 0 && line[head - 1] == ' ')
            head--;
        fprintf(out, "%.*s\n", head, line);
        if (cont < 0) {
            cont = open_paren_column(line, at);
            if (cont < 0 || cont > width / 2)
                cont = indent + 8;
        }
        int skip = at;
        while (skip < len && line[skip] == ' ')
            skip++;
        int rest = len - skip;
        if (cont + rest >= (int)sizeof next)
            break;
        memset(next, ' ', (size_t)cont);
        memcpy(next + cont, line + skip, (size_t)rest);
        len = cont + rest;
        memcpy(line, next, (size_t)len);
    }
    fprintf(out, "%.*s\n", len, line);
}

static void fold_line(FILE *out, const char *line, int len, int width)
{
    if (len <= width) {
        fprintf(out, "%.*s\n", len, line);
        return;
    }
    int indent = indent_of(line, len);
    const char *body = line + indent;
    int blen = len - indent;
    char prefix[160], first[160];
    if (indent >= 100) {
        fprintf(out, "%.*s\n", len, line);
        return;
    }
    /* a one-line block comment: its words over lines, aligned under the text */
    if (blen >= 4 && strncmp(body, "/*", 2) == 0 && find_in(body + 2, blen - 2, "*/") == body + blen - 2) {
        snprintf(first, sizeof first, "%.*s/*", indent, line);
        snprintf(prefix, sizeof prefix, "%.*s * ", indent, line);
        int text = 2;
        while (text < blen && body[text] == ' ')
            text++;
        fprintf(out, "%s\n", first);
        fold_words(out, prefix, prefix, body + text, blen - 2 - text, width);
        fprintf(out, "%.*s */\n", indent, line);
        return;
    }
    /* the first line of a block comment that goes on: its words, then " * " lines */
    if (blen >= 2 && strncmp(body, "/*", 2) == 0 && !find_in(body + 2, blen - 2, "*/")) {
        snprintf(first, sizeof first, "%.*s/* ", indent, line);
        snprintf(prefix, sizeof prefix, "%.*s * ", indent, line);
        fold_words(out, first, prefix, body + 2, blen - 2, width);
        return;
    }
    /* a line inside a block comment */
    if (blen >= 2 && body[0] == '*' && body[1] == ' ') {
        snprintf(prefix, sizeof prefix, "%.*s* ", indent, line);
        fold_words(out, prefix, prefix, body + 2, blen - 2, width);
        return;
    }
    /* code with a comment after it: the comment goes on its own line above */
    const char *c = NULL;
    for (int i = 0, in_string = 0; i + 1 < blen; i++) {
        if (body[i] == '"' && (i == 0 || body[i - 1] != '\\'))
            in_string = !in_string;
        if (!in_string && body[i] == '/' && body[i + 1] == '*') {
            c = body + i;
            break;
        }
    }
    if (c && c > body && find_in(c, (int)(line + len - c), "*/") == line + len - 2) {
        int code_end = (int)(c - line);
        while (code_end > 0 && line[code_end - 1] == ' ')
            code_end--;
        char comment[1024];
        snprintf(comment, sizeof comment, "%.*s%.*s", indent, line, (int)(line + len - c), c);
        fold_line(out, comment, (int)strlen(comment), width);
        fold_line(out, line, code_end, width);
        return;
    }
    fold_code(out, line, len, width);
}

int cgen_fold(FILE *out, const char *text, size_t len, int width)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && text[j] != '\n')
            j++;
        fold_line(out, text + i, (int)(j - i), width);
        i = j + 1;
    }
    return ferror(out) ? -1 : 0;
}
