/*
 * ast.h - the syntax tree the parser builds: syntax only, no meaning.
 *
 * A model file is a list of statements, one a line. A statement is a head
 * word followed by arguments:
 *
 *   conv 32 3x3 stride=2 relu      head "conv", args: 32, 3x3, stride=2, relu
 *   schedule 1:0.01 5:0.1          head "schedule", args: 1:0.01, 5:0.1
 *
 * Whether `conv` is a layer and what its arguments mean is decided by the
 * checker (check.c), which can then point at the exact argument at fault.
 */
#ifndef NNC_AST_H
#define NNC_AST_H

#include "diag.h"

typedef enum {
    ARG_NUMBER, /* 32, 0.5, 1e-3, 1/255 */
    ARG_DIMS,   /* 28x28x1, 3x3 */
    ARG_WORD,   /* relu, same, nesterov */
    ARG_OPTION, /* key=value; value is a NUMBER or WORD argument */
    ARG_PAIR,   /* 5:0.1 (schedule phases) */
    ARG_LIST,   /* 0.4914,0.4822,0.4465 (an option's value: one number a channel) */
} nnc_arg_kind;

#define NNC_MAX_DIMS 4
#define NNC_MAX_LIST 4 /* numbers in a list: one a channel, RGBA at most */

typedef struct nnc_arg {
    nnc_arg_kind kind;
    nnc_loc loc;
    char *text; /* the argument as written (OPTION: the key) */
    double number;
    int is_integer;
    int dims[NNC_MAX_DIMS]; /* ARG_DIMS */
    int ndims;
    struct nnc_arg *value; /* ARG_OPTION: the value */
    double first, second;  /* ARG_PAIR */
    double list[NNC_MAX_LIST]; /* ARG_LIST */
    int nlist;
    struct nnc_arg *next;
} nnc_arg;

typedef struct nnc_stmt {
    nnc_loc loc;      /* the head word */
    char *head;
    nnc_arg *args;    /* in source order */
    struct nnc_stmt *next;
} nnc_stmt;

nnc_arg *nnc_arg_new(nnc_arg_kind kind, nnc_loc loc, const char *text);
nnc_arg *nnc_arg_append(nnc_arg *list, nnc_arg *arg);
void nnc_arg_free(nnc_arg *arg);
nnc_stmt *nnc_stmt_new(nnc_loc loc, char *head, nnc_arg *args);
nnc_stmt *nnc_stmt_append(nnc_stmt *list, nnc_stmt *stmt);
void nnc_stmt_free(nnc_stmt *stmt);

/*
 * Parse a whole source. Returns the statements (NULL for an empty file);
 * syntax errors are reported through src and counted in src->errors.
 */
nnc_stmt *nnc_parse(nnc_source *src);

#endif
