/*
 * schema.h - a statement's options, described as data.
 *
 * A layer kind lists what its statement takes (layers/<kind>.c); read_options()
 * walks a statement's arguments against that list: it places positional
 * arguments, reads key=value options, checks ranges, warns about a key given
 * twice and names the nearest key for a misspelt one. The kind's check then
 * sees values, not syntax.
 */
#ifndef NNC_SCHEMA_H
#define NNC_SCHEMA_H

#include "model.h"

typedef enum {
    OPT_COUNT,      /* positional: the first whole number (units, filters), 1..hi */
    OPT_WINDOW,     /* positional: KxK or K, after the count */
    OPT_VALUE,      /* positional: a number, checked by the kind (dropout's rate) */
    OPT_ACTIVATION, /* positional word: relu | sigmoid | tanh | softmax | linear */
    OPT_STRIDE,     /* `stride S` or `stride=S`, a whole number 1..1000 */
    OPT_PADDING,    /* `valid` | `same`, or `pad valid|same`, or `pad=valid|same` */
    OPT_NUMBER,     /* key=number, within [lo, hi] */
    OPT_INIT,       /* key=initializer name */
} option_type;

typedef struct {
    const char *key;  /* the option's name; for positionals, the name of the repeat warning */
    option_type type;
    double lo, hi;    /* OPT_NUMBER's range; OPT_COUNT's largest value */
    const char *what; /* in messages: "the number of filters", "a conv kernel" */
} option_spec;

#define MAX_OPTIONS 16 /* options a statement may have: a kind with more is refused at start-up (kinds.c) */

/* What a statement gave for one option. */
typedef struct {
    int given;
    const nnc_arg *arg; /* the argument that gave it (for locations) */
    double number;      /* OPT_COUNT, OPT_VALUE, OPT_NUMBER, OPT_STRIDE */
    int h, w;           /* OPT_WINDOW */
    int flag;           /* OPT_PADDING: 1 for same */
    act_kind act;       /* OPT_ACTIVATION */
    nnc_init_kind init; /* OPT_INIT */
} option_value;

/*
 * Read st's arguments against specs (n of them, at most MAX_OPTIONS) into
 * values[n]. Errors and warnings go to src; an option with a bad value is left
 * not given. usage is the statement's grammar, for messages.
 */
void read_options(nnc_source *src, const nnc_stmt *st, const option_spec *specs, int n, const char *usage,
                  option_value *values);

/* "unexpected word 'x' in 'conv'; usage: ...". */
void unexpected_argument(nnc_source *src, const nnc_stmt *st, const nnc_arg *a, const char *usage);
/* key=number, checked to lie in [lo, hi]: 1, or 0 after an error. */
int number_option(nnc_source *src, const nnc_arg *opt, double lo, double hi, double *out);
/* A whole number from 1 to max: 1, or 0 after an error naming `what`. */
int whole_number(nnc_source *src, const nnc_arg *a, const char *what, double max, double *out);

/* Keys given on one line, to warn when a line gives one twice. */
typedef struct {
    const char *names[16];
    int n;
} key_set;
/* Note that `key` was given at `a`; warn ("the later value is used") when the line already gave it.
 * Returns 1 the first time. */
int note_key(nnc_source *src, key_set *keys, const nnc_arg *a, const char *key);

/* The candidate nearest to word by edit distance, or NULL when none is close: for "did you mean". */
const char *closest_word(const char *word, const char *const *candidates);

#endif
