/*
 * cgen.h - printing C: the helpers the layer kinds and the printer share.
 *
 * Everything the compiler writes goes through cg(); nnc_emit() then folds
 * lines longer than CGEN_WIDTH (cgen_fold) so that no generated line is wider.
 */
#ifndef NNC_CGEN_H
#define NNC_CGEN_H

#include <stdio.h>

#include "model.h"

#define CGEN_WIDTH 100 /* the widest line nnc writes */
#define VEC 16         /* floats in one v16: an AVX-512 register, two AVX2 registers */

typedef struct cgen {
    FILE *out;
    const char *indent; /* where cgi() starts a statement: the printer sets it for the kinds' calls */
} cgen;

void cg(cgen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A statement at the current indent. */
void cgi(cgen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The shortest decimal that reads back as the same float, as a C literal ("0.5f"). */
const char *flt(char *buf, size_t len, float v);
/* "conv2d_1" -> "CONV2D_1", the prefix of a layer's offset macros. */
const char *upper(char *buf, size_t len, const char *s);
/* "[n][26][26][32]" or "[n][10]": a buffer's shape, in comments. */
const char *dims_comment(char *buf, size_t len, shape s);
/* text as a C string literal over several lines, one per line of text. */
void cg_string_literal(cgen *g, const char *text);

/* `v` through activation act, as a C expression (linear: v itself). */
const char *act_expr(act_kind act, char *buf, size_t len, const char *v);
/* Softmax over each of the slice's rows of `width` floats in `buf`, in place. */
void cg_softmax_rows(cgen *g, const char *buf, int width, const char *indent);
/* In place over the slice's rows: d(out) -> d(pre-activation), from the stored output. */
void cg_act_backward(cgen *g, act_kind act, const char *grad, const char *out, int width);

/* "x * 3" as "x * 3", "x * 1" as "x", "0 * 3 + y" as "y": index arithmetic without the degenerate terms. */
const char *times(char *buf, size_t len, const char *var, int factor);

/* `static const float name[n] = {...};`, the values as the shortest literals that read back exactly. */
void cg_float_array(cgen *g, const char *name, const float *values, size_t n);
/* The activation over out[0..n) in place, as a loop (nothing for linear; softmax: the row). */
void cg_act_loop(cgen *g, act_kind act, const char *out, int n, const char *indent);

/* Copy text to out with every line longer than width folded as a person would:
 * code after a comma, comments between words. */
int cgen_fold(FILE *out, const char *text, size_t len, int width);

#endif
