/*
 * schema.c - reading a statement's arguments against its option schema
 * (schema.h): one walk for every layer kind, so that positional arguments,
 * key=value options, ranges, repeats and misspellings are handled alike.
 */
#include <string.h>

#include "schema.h"

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    int row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int cost = a[i - 1] == b[j - 1] ? 0 : 1;
            int best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *closest_word(const char *word, const char *const *candidates)
{
    const char *best = NULL;
    int best_d = 3;
    for (; *candidates; candidates++) {
        int d = edit_distance(word, *candidates);
        if (d < best_d) {
            best_d = d;
            best = *candidates;
        }
    }
    return best;
}

int note_key(nnc_source *src, key_set *keys, const nnc_arg *a, const char *key)
{
    for (int i = 0; i < keys->n; i++)
        if (strcmp(keys->names[i], key) == 0) {
            nnc_warning(src, a->loc, "'%s' is given twice in this line; the later value is used", key);
            return 0;
        }
    if (keys->n < (int)(sizeof keys->names / sizeof keys->names[0]))
        keys->names[keys->n++] = key;
    return 1;
}

/* ---- one value each ------------------------------------------------------- */

static const char *arg_kind_name(nnc_arg_kind kind)
{
    switch (kind) {
    case ARG_NUMBER: return "number";
    case ARG_DIMS: return "size";
    case ARG_WORD: return "word";
    case ARG_OPTION: return "option";
    case ARG_PAIR: return "pair";
    case ARG_LIST: return "list";
    }
    return "argument";
}

int whole_number(nnc_source *src, const nnc_arg *a, const char *what, double max, double *out)
{
    if (a->kind != ARG_NUMBER || !a->is_integer || a->number < 1) {
        nnc_error(src, a->loc, "%s must be a positive whole number, not '%s'", what, a->text);
        return 0;
    }
    if (a->number > max) {
        nnc_error(src, a->loc, "%s %s is too large (at most %.0f)", what, a->text, max);
        return 0;
    }
    *out = a->number;
    return 1;
}

/* A square or rectangular window: `3x3`, `3` (square), `2x2`. */
static int window(nnc_source *src, const nnc_arg *a, const char *what, option_value *v)
{
    if (a->kind == ARG_NUMBER && a->is_integer && a->number >= 1 && a->number <= 1000) {
        v->h = v->w = (int)a->number;
        return 1;
    }
    if (a->kind == ARG_DIMS && a->ndims == 2 && a->dims[0] >= 1 && a->dims[1] >= 1) {
        v->h = a->dims[0];
        v->w = a->dims[1];
        return 1;
    }
    nnc_error(src, a->loc, "%s must be written HxW, such as 3x3, not '%s'", what, a->text);
    return 0;
}

int number_option(nnc_source *src, const nnc_arg *opt, double lo, double hi, double *out)
{
    const nnc_arg *v = opt->value;
    if (v->kind != ARG_NUMBER) {
        nnc_error(src, v->loc, "'%s' needs a number, not '%s'", opt->text, v->text);
        return 0;
    }
    if (!(v->number >= lo && v->number <= hi)) {
        nnc_error(src, v->loc, "'%s=%s' is out of range [%g, %g]", opt->text, v->text, lo, hi);
        return 0;
    }
    *out = v->number;
    return 1;
}

static int initializer(nnc_source *src, const nnc_arg *opt, nnc_init_kind *out)
{
    if (opt->value->kind == ARG_WORD && init_parse(opt->value->text, out))
        return 1;
    nnc_error(src, opt->value->loc,
              "unknown initializer '%s' (glorot_uniform, glorot_normal, he_uniform, he_normal, uniform, zeros, ones)",
              opt->value->text);
    return 0;
}

/* ---- the walk ------------------------------------------------------------- */

/* The first spec of `type` not given yet, or -1. */
static int open_positional(const option_spec *specs, int n, option_type type, const option_value *values)
{
    for (int i = 0; i < n; i++)
        if (specs[i].type == type && !values[i].arg)
            return i;
    return -1;
}

static int spec_of_type(const option_spec *specs, int n, option_type type)
{
    for (int i = 0; i < n; i++)
        if (specs[i].type == type)
            return i;
    return -1;
}

static int keyed(option_type t)
{
    return t == OPT_STRIDE || t == OPT_PADDING || t == OPT_NUMBER || t == OPT_INIT;
}

static int is_padding_word(const nnc_arg *a)
{
    return a->kind == ARG_WORD && (strcmp(a->text, "same") == 0 || strcmp(a->text, "valid") == 0);
}

/* Which spec an argument is for, or -1; *a may move on to the value of `stride S` / `pad same`. */
static int match(const option_spec *specs, int n, const option_value *values, const nnc_arg **a)
{
    const nnc_arg *arg = *a;
    act_kind act;
    int i;
    if (arg->kind == ARG_OPTION) {
        for (i = 0; i < n; i++)
            if (keyed(specs[i].type) && strcmp(specs[i].key, arg->text) == 0)
                return i;
        return -1;
    }
    if (arg->kind == ARG_NUMBER && (i = open_positional(specs, n, OPT_COUNT, values)) >= 0)
        return i;
    if ((arg->kind == ARG_NUMBER || arg->kind == ARG_DIMS) && (i = open_positional(specs, n, OPT_WINDOW, values)) >= 0)
        return i;
    if (arg->kind == ARG_NUMBER && (i = open_positional(specs, n, OPT_VALUE, values)) >= 0)
        return i;
    if (arg->kind != ARG_WORD)
        return -1;
    if (act_parse(arg->text, &act))
        return spec_of_type(specs, n, OPT_ACTIVATION);
    if (is_padding_word(arg))
        return spec_of_type(specs, n, OPT_PADDING);
    /* `stride 2`, `pad same`: a key word, then its value. */
    if (arg->next && ((strcmp(arg->text, "stride") == 0 && arg->next->kind == ARG_NUMBER) ||
                      (strcmp(arg->text, "pad") == 0 && arg->next->kind == ARG_WORD))) {
        i = spec_of_type(specs, n, arg->text[0] == 's' ? OPT_STRIDE : OPT_PADDING);
        if (i >= 0)
            *a = arg->next;
        return i;
    }
    return -1;
}

/* Read one value; 0 when it is wrong (reported). */
static int read_value(nnc_source *src, const option_spec *spec, const nnc_arg *head, const nnc_arg *a,
                      option_value *v)
{
    const nnc_arg *val = a->kind == ARG_OPTION ? a->value : a;
    switch (spec->type) {
    case OPT_COUNT: return whole_number(src, a, spec->what, spec->hi, &v->number);
    case OPT_WINDOW: return window(src, a, spec->what, v);
    case OPT_VALUE: v->number = a->number; return 1;
    case OPT_ACTIVATION: return act_parse(a->text, &v->act);
    case OPT_STRIDE: return whole_number(src, val, "the stride", 1000, &v->number);
    case OPT_PADDING:
        if (!is_padding_word(val)) {
            nnc_error(src, val->loc, "padding must be 'valid' or 'same', not '%s'", val->text);
            return 0;
        }
        v->flag = strcmp(val->text, "same") == 0;
        return 1;
    case OPT_NUMBER: return number_option(src, a, spec->lo, spec->hi, &v->number);
    case OPT_INIT: return initializer(src, a, &v->init);
    }
    (void)head;
    return 0;
}

void unexpected_argument(nnc_source *src, const nnc_stmt *st, const nnc_arg *a, const char *usage)
{
    nnc_error(src, a->loc, "unexpected %s '%s' in '%s'; usage: %s", arg_kind_name(a->kind), a->text, st->head, usage);
}

void read_options(nnc_source *src, const nnc_stmt *st, const option_spec *specs, int n, const char *usage,
                  option_value *values)
{
    key_set given = {0};
    memset(values, 0, sizeof *values * (size_t)n);
    for (const nnc_arg *a = st->args; a; a = a->next) {
        const nnc_arg *head = a;
        int i = match(specs, n, values, &a);
        if (i < 0 && head->kind == ARG_OPTION) {
            const char *keys[MAX_OPTIONS + 1];
            int k = 0;
            for (int j = 0; j < n; j++)
                if (keyed(specs[j].type))
                    keys[k++] = specs[j].key;
            keys[k] = NULL;
            const char *hint = closest_word(head->text, keys);
            if (hint)
                nnc_error(src, head->loc, "'%s' has no option '%s'; did you mean '%s'?", st->head, head->text, hint);
            else
                nnc_error(src, head->loc, "'%s' has no option '%s'", st->head, head->text);
            continue;
        }
        if (i < 0) {
            unexpected_argument(src, st, head, usage);
            continue;
        }
        if (keyed(specs[i].type) || specs[i].type == OPT_ACTIVATION)
            note_key(src, &given, head, specs[i].key);
        values[i].arg = head;
        values[i].given = read_value(src, &specs[i], head, a, &values[i]);
    }
}
