/*
 * check.c - meaning: from statements to a checked model.
 *
 * One function a statement kind, each with its grammar as a comment. Every
 * shape is inferred here, at compile time; anything that cannot work is an
 * error that points at the argument at fault, and checking goes on so that
 * one run reports every error it can.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* Activation buffers above this many bytes are refused: a typo, not a model. */
#define MAX_ACTIVATION_BYTES (4.0 * 1024 * 1024 * 1024)
/* Per-sample tensor and per-layer weight counts stay far below INT_MAX, so shape arithmetic cannot overflow. */
#define MAX_ELEMENTS (1 << 26)
#define MAX_LAYER_WEIGHTS (1 << 28)

typedef struct {
    nnc_source *src;
    model *m;
    shape cur;        /* the shape flowing out of the last layer */
    int have_input;   /* given, or assumed once a layer came first */
    int in_train;     /* after the `train` statement */
    int counters[LAYER_ACTIVATION + 1];
    /* Statements that say one thing once: the latest of each, for repeats and contradictions. */
    const nnc_stmt *model_stmt, *input_stmt, *prep_stmt, *train_stmt;
    const nnc_stmt *loss_stmt, *optimizer_stmt, *batch_stmt, *epochs_stmt, *schedule_stmt, *seed_stmt, *augment_stmt;
    float weight_decay; /* optimizer weight_decay=: an L2 penalty on every kernel */
} checker;

static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size);
    if (!p) {
        fprintf(stderr, "nnc: out of memory\n");
        exit(1);
    }
    return p;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        fprintf(stderr, "nnc: out of memory\n");
        exit(1);
    }
    return d;
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */
/* ------------------------------------------------------------------------ */

const char *layer_kind_keras(layer_kind kind)
{
    switch (kind) {
    case LAYER_DENSE: return "Dense";
    case LAYER_CONV: return "Conv2D";
    case LAYER_MAXPOOL: return "MaxPooling2D";
    case LAYER_AVGPOOL: return "AveragePooling2D";
    case LAYER_FLATTEN: return "Flatten";
    case LAYER_DROPOUT: return "Dropout";
    case LAYER_BATCHNORM: return "BatchNormalization";
    case LAYER_ACTIVATION: return "Activation";
    }
    return "?";
}

/* Keras's automatic layer names: conv2d_1, max_pooling2d_1, ... */
static const char *layer_kind_prefix(layer_kind kind)
{
    switch (kind) {
    case LAYER_DENSE: return "dense";
    case LAYER_CONV: return "conv2d";
    case LAYER_MAXPOOL: return "max_pooling2d";
    case LAYER_AVGPOOL: return "average_pooling2d";
    case LAYER_FLATTEN: return "flatten";
    case LAYER_DROPOUT: return "dropout";
    case LAYER_BATCHNORM: return "batch_normalization";
    case LAYER_ACTIVATION: return "activation";
    }
    return "layer";
}

const char *act_name(act_kind act)
{
    switch (act) {
    case ACT_LINEAR: return "linear";
    case ACT_RELU: return "relu";
    case ACT_SIGMOID: return "sigmoid";
    case ACT_TANH: return "tanh";
    case ACT_SOFTMAX: return "softmax";
    }
    return "?";
}

static const struct {
    const char *name;
    nnc_init_kind kind;
} initializers[] = {
    {"glorot_uniform", NNC_INIT_GLOROT_UNIFORM}, {"glorot_normal", NNC_INIT_GLOROT_NORMAL},
    {"he_uniform", NNC_INIT_HE_UNIFORM},         {"he_normal", NNC_INIT_HE_NORMAL},
    {"uniform", NNC_INIT_UNIFORM},               {"zeros", NNC_INIT_ZEROS},
    {"ones", NNC_INIT_ONES},
};

const char *init_name(nnc_init_kind kind)
{
    for (size_t i = 0; i < sizeof initializers / sizeof initializers[0]; i++)
        if (initializers[i].kind == kind)
            return initializers[i].name;
    return "?";
}

const char *optimizer_name(nnc_optimizer_kind kind)
{
    switch (kind) {
    case NNC_OPT_SGD: return "sgd";
    case NNC_OPT_ADAM: return "adam";
    case NNC_OPT_RMSPROP: return "rmsprop";
    }
    return "?";
}

static int parse_activation(const char *word, act_kind *act)
{
    static const char *names[] = {"linear", "relu", "sigmoid", "tanh", "softmax"};
    for (int i = 0; i < 5; i++)
        if (strcmp(word, names[i]) == 0) {
            *act = (act_kind)i;
            return 1;
        }
    return 0;
}

/* Levenshtein distance, for "did you mean" hints. */
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

/* The closest of `candidates` (NULL-terminated) to word, or NULL if none is close. */
static const char *closest(const char *word, const char *const *candidates)
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

/* ------------------------------------------------------------------------ */
/* Reporting helpers                                                        */
/* ------------------------------------------------------------------------ */

static void note_default(checker *ck, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note_default(checker *ck, int line, const char *fmt, ...)
{
    model *m = ck->m;
    m->defaults = xrealloc(m->defaults, (size_t)(m->n_defaults + 1) * sizeof *m->defaults);
    applied_default *d = &m->defaults[m->n_defaults++];
    d->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->text, sizeof d->text, fmt, ap);
    va_end(ap);
}

static void format_shape(char *buf, size_t len, shape s)
{
    if (shape_is_flat(s))
        snprintf(buf, len, "%d", s.c);
    else
        snprintf(buf, len, "%dx%dx%d", s.h, s.w, s.c);
}

static const char *arg_kind_name(nnc_arg_kind kind)
{
    switch (kind) {
    case ARG_NUMBER: return "number";
    case ARG_DIMS: return "size";
    case ARG_WORD: return "word";
    case ARG_OPTION: return "option";
    case ARG_PAIR: return "pair";
    }
    return "argument";
}

static void unexpected_arg(checker *ck, const nnc_stmt *st, const nnc_arg *a, const char *usage)
{
    nnc_error(ck->src, a->loc, "unexpected %s '%s' in '%s'; usage: %s", arg_kind_name(a->kind), a->text, st->head,
              usage);
}

/* A number option's value, checked to lie in [lo, hi]. */
static int option_number(checker *ck, const nnc_arg *opt, double lo, double hi, double *out)
{
    const nnc_arg *v = opt->value;
    if (v->kind != ARG_NUMBER) {
        nnc_error(ck->src, v->loc, "'%s' needs a number, not '%s'", opt->text, v->text);
        return 0;
    }
    if (!(v->number >= lo && v->number <= hi)) {
        nnc_error(ck->src, v->loc, "'%s=%s' is out of range [%g, %g]", opt->text, v->text, lo, hi);
        return 0;
    }
    *out = v->number;
    return 1;
}

static int positive_integer(checker *ck, const nnc_arg *a, const char *what, int max, int *out)
{
    if (a->kind != ARG_NUMBER || !a->is_integer || a->number < 1) {
        nnc_error(ck->src, a->loc, "%s must be a positive whole number, not '%s'", what, a->text);
        return 0;
    }
    if (a->number > max) {
        nnc_error(ck->src, a->loc, "%s %s is too large (at most %d)", what, a->text, max);
        return 0;
    }
    *out = (int)a->number;
    return 1;
}

/* A square or rectangular window: `3x3`, `3` (square), `2x2`. */
static int window(checker *ck, const nnc_arg *a, const char *what, int *kh, int *kw)
{
    if (a->kind == ARG_NUMBER && a->is_integer && a->number >= 1 && a->number <= 1000) {
        *kh = *kw = (int)a->number;
        return 1;
    }
    if (a->kind == ARG_DIMS && a->ndims == 2 && a->dims[0] >= 1 && a->dims[1] >= 1) {
        *kh = a->dims[0];
        *kw = a->dims[1];
        return 1;
    }
    nnc_error(ck->src, a->loc, "%s must be written HxW, such as 3x3, not '%s'", what, a->text);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Layers                                                                   */
/* ------------------------------------------------------------------------ */

static layer *add_layer(checker *ck, layer_kind kind, const nnc_stmt *st)
{
    model *m = ck->m;
    m->layers = xrealloc(m->layers, (size_t)(m->n_layers + 1) * sizeof *m->layers);
    layer *l = &m->layers[m->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->in = ck->cur;
    l->act = ACT_LINEAR;
    l->kernel_init = NNC_INIT_GLOROT_UNIFORM;
    l->bias_init = NNC_INIT_ZEROS;
    snprintf(l->name, sizeof l->name, "%s_%d", layer_kind_prefix(kind), ++ck->counters[kind]);
    snprintf(l->ident, sizeof l->ident, "%s", l->name);
    if (st) {
        l->loc = st->loc;
        l->line = st->loc.first_line;
        int len;
        const char *text = nnc_source_line(ck->src, l->line, &len);
        while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
            len--;
        while (len > 0 && (*text == ' ' || *text == '\t')) {
            text++;
            len--;
        }
        l->source = malloc((size_t)len + 1);
        if (!l->source) {
            fprintf(stderr, "nnc: out of memory\n");
            exit(1);
        }
        memcpy(l->source, text, (size_t)len);
        l->source[len] = '\0';
    } else {
        l->implicit = 1;
        l->source = xstrdup("(implicit)");
    }
    return l;
}

static void finish_layer(checker *ck, layer *l)
{
    ck->cur = l->out;
}

/* Flattening is free in NHWC; Keras needs it spelled out, nnc inserts it. */
static void implicit_flatten(checker *ck, const nnc_stmt *before)
{
    layer *l = add_layer(ck, LAYER_FLATTEN, NULL);
    l->loc = before->loc;
    l->out = (shape){1, 1, shape_size(ck->cur)};
    note_default(ck, before->loc.first_line, "flatten inserted before '%s' (its input is %dx%dx%d)", before->head,
                 ck->cur.h, ck->cur.w, ck->cur.c);
    finish_layer(ck, l);
}

/* ------------------------------------------------------------------------ */
/* Repeats: a statement or a key said twice                                 */
/* ------------------------------------------------------------------------ */

/*
 * A statement that says one thing once (model, train, loss, ...): a repeat
 * gets a warning at the repeat and a note at the earlier one, and the later
 * one wins. `*latest` is the kind's latest statement.
 */
static void once(checker *ck, const nnc_stmt *st, const nnc_stmt **latest, const char *where)
{
    if (*latest) {
        nnc_warning(ck->src, st->loc, "'%s' given twice%s; the later one wins", st->head, where);
        nnc_note(ck->src, (*latest)->loc, "the earlier '%s' is here", st->head);
    }
    *latest = st;
}

/* Keys given on one line, to warn when a line gives one twice. */
typedef struct {
    const char *names[16];
    int n;
} key_set;

/* Note that `key` was given at `a`; warn when the line already gave it. Returns 1 the first time. */
static int note_key(checker *ck, key_set *keys, const nnc_arg *a, const char *key)
{
    for (int i = 0; i < keys->n; i++)
        if (strcmp(keys->names[i], key) == 0) {
            nnc_warning(ck->src, a->loc, "'%s' is given twice in this line; the later value is used", key);
            return 0;
        }
    if (keys->n < (int)(sizeof keys->names / sizeof keys->names[0]))
        keys->names[keys->n++] = key;
    return 1;
}

/* Options every layer with weights understands: init=, bias_init=, l1=, l2=. */
static int weight_option(checker *ck, layer *l, key_set *keys, const nnc_arg *a)
{
    if (a->kind != ARG_OPTION)
        return 0;
    if (strcmp(a->text, "init") == 0 || strcmp(a->text, "bias_init") == 0 || strcmp(a->text, "l1") == 0 ||
        strcmp(a->text, "l2") == 0)
        note_key(ck, keys, a, a->text);
    int is_init = strcmp(a->text, "init") == 0, is_bias = strcmp(a->text, "bias_init") == 0;
    if (is_init || is_bias) {
        if (a->value->kind == ARG_WORD)
            for (size_t i = 0; i < sizeof initializers / sizeof initializers[0]; i++)
                if (strcmp(a->value->text, initializers[i].name) == 0) {
                    *(is_init ? &l->kernel_init : &l->bias_init) = initializers[i].kind;
                    return 1;
                }
        nnc_error(ck->src, a->value->loc,
                  "unknown initializer '%s' (glorot_uniform, glorot_normal, he_uniform, he_normal, uniform, zeros, "
                  "ones)",
                  a->value->text);
        return 1;
    }
    if (strcmp(a->text, "l1") == 0 || strcmp(a->text, "l2") == 0) {
        double v;
        if (option_number(ck, a, 0, 10, &v))
            *(a->text[1] == '1' ? &l->l1 : &l->l2) = (float)v;
        return 1;
    }
    return 0;
}

static const char *const weight_options[] = {"init", "bias_init", "l1", "l2", NULL};

static void unknown_option(checker *ck, const nnc_arg *a, const char *layer_name, const char *const *known)
{
    const char *hint = closest(a->text, known);
    if (hint)
        nnc_error(ck->src, a->loc, "'%s' has no option '%s'; did you mean '%s'?", layer_name, a->text, hint);
    else
        nnc_error(ck->src, a->loc, "'%s' has no option '%s'", layer_name, a->text);
}

/* dense N [activation] [init=..] [bias_init=..] [l1=..] [l2=..] */
static void check_dense(checker *ck, const nnc_stmt *st)
{
    static const char *usage = "dense N [relu|sigmoid|tanh|softmax|linear] [init=..] [l1=..] [l2=..]";
    if (!shape_is_flat(ck->cur))
        implicit_flatten(ck, st);
    layer *l = add_layer(ck, LAYER_DENSE, st);
    int have_units = 0;
    key_set given = {0};
    for (const nnc_arg *a = st->args; a; a = a->next) {
        if (!have_units && a->kind == ARG_NUMBER) {
            have_units = positive_integer(ck, a, "the number of units", 1 << 20, &l->u.units) || 1;
        } else if (a->kind == ARG_WORD && parse_activation(a->text, &l->act)) {
            note_key(ck, &given, a, "activation");
        } else if (weight_option(ck, l, &given, a)) {
        } else if (a->kind == ARG_OPTION) {
            unknown_option(ck, a, "dense", weight_options);
        } else {
            unexpected_arg(ck, st, a, usage);
        }
    }
    if (!have_units) {
        nnc_error(ck->src, st->loc, "'dense' needs a number of units; usage: %s", usage);
        l->u.units = 1;
    }
    if (l->u.units < 1)
        l->u.units = 1;
    if ((double)shape_size(l->in) * l->u.units > MAX_LAYER_WEIGHTS) {
        nnc_error(ck->src, st->loc, "dense %d on %d inputs needs %.0f weights; the limit is %d", l->u.units,
                  shape_size(l->in), (double)shape_size(l->in) * l->u.units, MAX_LAYER_WEIGHTS);
        l->u.units = 1;
    }
    int in = shape_size(l->in);
    l->out = (shape){1, 1, l->u.units};
    l->n_weights = (size_t)in * (size_t)l->u.units;
    l->n_bias = (size_t)l->u.units;
    l->fan_in = in;
    l->fan_out = l->u.units;
    finish_layer(ck, l);
}

/* Output size and TensorFlow's padding for one spatial axis. */
static int conv_axis(int in, int k, int stride, int same, int *pad_before)
{
    if (same) {
        int out = (in + stride - 1) / stride;
        int total = (out - 1) * stride + k - in;
        *pad_before = total > 0 ? total / 2 : 0;
        return out;
    }
    *pad_before = 0;
    return in >= k ? (in - k) / stride + 1 : 0;
}

/* conv N KxK [stride S | stride=S] [pad valid|same | pad=..] [activation] [init=..] [l1=..] [l2=..] */
static void check_conv(checker *ck, const nnc_stmt *st)
{
    static const char *usage = "conv N KxK [stride S] [pad valid|same] [relu|sigmoid|tanh|linear] [init=..]";
    static const char *const options[] = {"stride", "pad", "init", "bias_init", "l1", "l2", NULL};
    layer *l = add_layer(ck, LAYER_CONV, st);
    conv_params *c = &l->u.conv;
    c->sh = c->sw = 1;
    int have_filters = 0, have_kernel = 0, have_stride = 0, have_pad = 0;
    const nnc_arg *kernel_arg = NULL;
    key_set given = {0};
    if (shape_is_flat(ck->cur) && ck->m->n_layers > 1) {
        char buf[32];
        format_shape(buf, sizeof buf, ck->cur);
        nnc_error(ck->src, st->loc, "'conv' needs an image input, but its input is a flat vector of %s", buf);
    }
    for (const nnc_arg *a = st->args; a; a = a->next) {
        if (!have_filters && a->kind == ARG_NUMBER) {
            have_filters = 1;
            positive_integer(ck, a, "the number of filters", 1 << 16, &c->filters);
        } else if (!have_kernel && (a->kind == ARG_DIMS || a->kind == ARG_NUMBER)) {
            have_kernel = 1;
            kernel_arg = a;
            window(ck, a, "a conv kernel", &c->kh, &c->kw);
        } else if (a->kind == ARG_WORD && strcmp(a->text, "stride") == 0 && a->next &&
                   a->next->kind == ARG_NUMBER) {
            note_key(ck, &given, a, "stride");
            a = a->next;
            have_stride = positive_integer(ck, a, "the stride", 1000, &c->sh);
            c->sw = c->sh;
        } else if (a->kind == ARG_OPTION && strcmp(a->text, "stride") == 0) {
            note_key(ck, &given, a, "stride");
            have_stride = positive_integer(ck, a->value, "the stride", 1000, &c->sh);
            c->sw = c->sh;
        } else if ((a->kind == ARG_WORD && (strcmp(a->text, "same") == 0 || strcmp(a->text, "valid") == 0)) ||
                   (a->kind == ARG_OPTION && strcmp(a->text, "pad") == 0) ||
                   (a->kind == ARG_WORD && strcmp(a->text, "pad") == 0 && a->next && a->next->kind == ARG_WORD)) {
            note_key(ck, &given, a, "pad");
            const nnc_arg *v = a->kind == ARG_OPTION ? a->value : strcmp(a->text, "pad") == 0 ? (a = a->next) : a;
            if (strcmp(v->text, "same") == 0 || strcmp(v->text, "valid") == 0) {
                c->same = strcmp(v->text, "same") == 0;
                have_pad = 1;
            } else {
                nnc_error(ck->src, v->loc, "padding must be 'valid' or 'same', not '%s'", v->text);
            }
        } else if (a->kind == ARG_WORD && parse_activation(a->text, &l->act)) {
            note_key(ck, &given, a, "activation");
            if (l->act == ACT_SOFTMAX)
                nnc_error(ck->src, a->loc, "softmax over a conv layer's channels is not supported; flatten and "
                                           "use 'dense N softmax'");
        } else if (weight_option(ck, l, &given, a)) {
        } else if (a->kind == ARG_OPTION) {
            unknown_option(ck, a, "conv", options);
        } else {
            unexpected_arg(ck, st, a, usage);
        }
    }
    if (!have_filters || !have_kernel) {
        nnc_error(ck->src, st->loc, "'conv' needs a number of filters and a kernel size; usage: %s", usage);
    }
    if (c->filters < 1)
        c->filters = 1;
    if (c->kh < 1 || c->kw < 1)
        c->kh = c->kw = 1;
    double weights = (double)c->kh * c->kw * l->in.c * c->filters;
    if (weights > MAX_LAYER_WEIGHTS) {
        nnc_error(ck->src, st->loc, "this conv needs %.0f weights; the limit is %d", weights, MAX_LAYER_WEIGHTS);
        c->filters = 1;
        c->kh = c->kw = 1;
    }
    if (!have_stride || !have_pad)
        note_default(ck, l->line, "%s:%s%s", l->name, have_stride ? "" : " stride=1", have_pad ? "" : " pad=valid");
    int pad_top, pad_left;
    int oh = conv_axis(l->in.h, c->kh, c->sh, c->same, &pad_top);
    int ow = conv_axis(l->in.w, c->kw, c->sw, c->same, &pad_left);
    if ((oh < 1 || ow < 1) && kernel_arg && !shape_is_flat(l->in)) {
        char buf[32];
        format_shape(buf, sizeof buf, l->in);
        nnc_error(ck->src, kernel_arg->loc, "conv kernel %dx%d is larger than its %s input", c->kh, c->kw, buf);
    }
    c->pad_top = pad_top;
    c->pad_left = pad_left;
    if ((double)oh * ow * c->filters > MAX_ELEMENTS) {
        nnc_error(ck->src, st->loc, "this conv's output has %.0f values a sample; the limit is %d",
                  (double)oh * ow * c->filters, MAX_ELEMENTS);
        c->filters = 1;
        oh = ow = 1;
    }
    l->out = (shape){oh < 1 ? 1 : oh, ow < 1 ? 1 : ow, c->filters};
    l->n_weights = (size_t)c->kh * (size_t)c->kw * (size_t)l->in.c * (size_t)c->filters;
    l->n_bias = (size_t)c->filters;
    l->fan_in = c->kh * c->kw * l->in.c;
    l->fan_out = c->kh * c->kw * c->filters;
    finish_layer(ck, l);
}

/* maxpool [KxK] [stride S]   avgpool [KxK] [stride S]   (Keras: 2x2, stride = window) */
static void check_pool(checker *ck, const nnc_stmt *st, layer_kind kind)
{
    static const char *usage = "maxpool|avgpool [KxK] [stride S]";
    static const char *const options[] = {"stride", NULL};
    layer *l = add_layer(ck, kind, st);
    pool_params *p = &l->u.pool;
    p->kh = p->kw = 2;
    int have_window = 0, have_stride = 0;
    const nnc_arg *window_arg = NULL;
    key_set given = {0};
    if (shape_is_flat(ck->cur) && ck->m->n_layers > 1)
        nnc_error(ck->src, st->loc, "'%s' needs an image input, but its input is a flat vector of %d", st->head,
                  ck->cur.c);
    for (const nnc_arg *a = st->args; a; a = a->next) {
        if (!have_window && (a->kind == ARG_DIMS || a->kind == ARG_NUMBER)) {
            have_window = 1;
            window_arg = a;
            window(ck, a, "a pooling window", &p->kh, &p->kw);
        } else if (a->kind == ARG_WORD && strcmp(a->text, "stride") == 0 && a->next &&
                   a->next->kind == ARG_NUMBER) {
            note_key(ck, &given, a, "stride");
            a = a->next;
            have_stride = positive_integer(ck, a, "the stride", 1000, &p->sh);
            p->sw = p->sh;
        } else if (a->kind == ARG_OPTION && strcmp(a->text, "stride") == 0) {
            note_key(ck, &given, a, "stride");
            have_stride = positive_integer(ck, a->value, "the stride", 1000, &p->sh);
            p->sw = p->sh;
        } else if (a->kind == ARG_OPTION) {
            unknown_option(ck, a, st->head, options);
        } else {
            unexpected_arg(ck, st, a, usage);
        }
    }
    if (p->kh < 1 || p->kw < 1)
        p->kh = p->kw = 2;
    if (!have_stride) {
        p->sh = p->kh;
        p->sw = p->kw;
    }
    if (!have_window || !have_stride)
        note_default(ck, l->line, "%s: window %dx%d stride %d", l->name, p->kh, p->kw, p->sh);
    int oh = l->in.h >= p->kh ? (l->in.h - p->kh) / p->sh + 1 : 0;
    int ow = l->in.w >= p->kw ? (l->in.w - p->kw) / p->sw + 1 : 0;
    if ((oh < 1 || ow < 1) && !shape_is_flat(l->in)) {
        char buf[32];
        format_shape(buf, sizeof buf, l->in);
        nnc_error(ck->src, window_arg ? window_arg->loc : st->loc, "pooling window %dx%d is larger than its %s input",
                  p->kh, p->kw, buf);
    }
    l->out = (shape){oh < 1 ? 1 : oh, ow < 1 ? 1 : ow, l->in.c};
    finish_layer(ck, l);
}

/* flatten */
static void check_flatten(checker *ck, const nnc_stmt *st)
{
    layer *l = add_layer(ck, LAYER_FLATTEN, st);
    for (const nnc_arg *a = st->args; a; a = a->next)
        unexpected_arg(ck, st, a, "flatten");
    l->out = (shape){1, 1, shape_size(l->in)};
    finish_layer(ck, l);
}

/* dropout P   (the fraction dropped, 0 <= P < 1) */
static void check_dropout(checker *ck, const nnc_stmt *st)
{
    layer *l = add_layer(ck, LAYER_DROPOUT, st);
    const nnc_arg *a = st->args;
    l->out = l->in;
    if (!a || a->kind != ARG_NUMBER) {
        nnc_error(ck->src, a ? a->loc : st->loc, "'dropout' needs the fraction to drop, such as 'dropout 0.5'");
    } else if (!(a->number >= 0 && a->number < 1)) {
        nnc_error(ck->src, a->loc, "dropout rate %s must be at least 0 and below 1", a->text);
    } else {
        l->u.rate = (float)a->number;
        if (a->number >= 0.9)
            nnc_warning(ck->src, a->loc, "dropout rate %s drops nearly everything", a->text);
    }
    for (a = a ? a->next : NULL; a; a = a->next)
        unexpected_arg(ck, st, a, "dropout P");
    ck->m->dropout_keys++;
    finish_layer(ck, l);
}

/* batchnorm [momentum=0.99] [eps=0.001]   (Keras defaults; normalizes the last axis) */
static void check_batchnorm(checker *ck, const nnc_stmt *st)
{
    static const char *const options[] = {"momentum", "eps", NULL};
    layer *l = add_layer(ck, LAYER_BATCHNORM, st);
    l->u.bn.momentum = 0.99f;
    l->u.bn.eps = 1e-3f;
    int have_momentum = 0, have_eps = 0;
    key_set given = {0};
    for (const nnc_arg *a = st->args; a; a = a->next) {
        double v;
        if (a->kind == ARG_OPTION && (strcmp(a->text, "momentum") == 0 || strcmp(a->text, "eps") == 0))
            note_key(ck, &given, a, a->text);
        if (a->kind == ARG_OPTION && strcmp(a->text, "momentum") == 0) {
            have_momentum = 1;
            if (option_number(ck, a, 0, 1, &v))
                l->u.bn.momentum = (float)v;
        } else if (a->kind == ARG_OPTION && strcmp(a->text, "eps") == 0) {
            have_eps = 1;
            if (option_number(ck, a, 1e-12, 1, &v))
                l->u.bn.eps = (float)v;
        } else if (a->kind == ARG_OPTION) {
            unknown_option(ck, a, "batchnorm", options);
        } else {
            unexpected_arg(ck, st, a, "batchnorm [momentum=M] [eps=E]");
        }
    }
    if (!have_momentum || !have_eps)
        note_default(ck, l->line, "%s: momentum=%g eps=%g", l->name, l->u.bn.momentum, l->u.bn.eps);
    l->out = l->in;
    l->n_weights = (size_t)l->in.c; /* gamma */
    l->n_bias = (size_t)l->in.c;    /* beta */
    l->kernel_init = NNC_INIT_ONES;
    l->bias_init = NNC_INIT_ZEROS;
    l->n_state = 2 * (size_t)l->in.c;
    finish_layer(ck, l);
}

/* relu | sigmoid | tanh | softmax | linear, as a layer of its own */
static void check_activation(checker *ck, const nnc_stmt *st, act_kind act)
{
    layer *l = add_layer(ck, LAYER_ACTIVATION, st);
    l->act = act;
    l->out = l->in;
    for (const nnc_arg *a = st->args; a; a = a->next)
        unexpected_arg(ck, st, a, st->head);
    if (act == ACT_SOFTMAX && !shape_is_flat(l->in))
        nnc_error(ck->src, st->loc, "softmax needs a flat input; add 'flatten' before it");
    finish_layer(ck, l);
}

/* ------------------------------------------------------------------------ */
/* Header statements: model, input, normalize, scale                        */
/* ------------------------------------------------------------------------ */

/* model NAME */
static void check_model_name(checker *ck, const nnc_stmt *st)
{
    const nnc_arg *a = st->args;
    if (!a || a->kind != ARG_WORD || a->next) {
        nnc_error(ck->src, a ? a->loc : st->loc, "usage: model NAME (a C identifier)");
        return;
    }
    if (strlen(a->text) > 32) {
        nnc_error(ck->src, a->loc, "model name '%s' is longer than 32 characters", a->text);
        return;
    }
    once(ck, st, &ck->model_stmt, "");
    free(ck->m->name);
    ck->m->name = xstrdup(a->text);
}

/* input HxWxC */
static void check_input(checker *ck, const nnc_stmt *st)
{
    const nnc_arg *a = st->args;
    if (ck->input_stmt) {
        /* Layers already sized for the first shape may follow it: no "later one wins". */
        nnc_error(ck->src, st->loc, "a second 'input' statement");
        nnc_note(ck->src, ck->input_stmt->loc, "the first is here");
        return;
    }
    if (ck->have_input) { /* assumed 28x28x1 at an earlier statement */
        nnc_error(ck->src, st->loc, "'input' must come before the first layer");
        return;
    }
    ck->input_stmt = st;
    if (ck->m->n_layers > 0) {
        nnc_error(ck->src, st->loc, "'input' must come before the first layer");
        return;
    }
    ck->have_input = 1;
    if (!a || a->kind != ARG_DIMS || a->ndims != 3 || a->next) {
        nnc_error(ck->src, a ? a->loc : st->loc, "usage: input HxWxC, such as 'input 28x28x1'");
        return;
    }
    for (int i = 0; i < 3; i++)
        if (a->dims[i] < 1 || a->dims[i] > 4096) {
            nnc_error(ck->src, a->loc, "input dimensions must be between 1 and 4096");
            return;
        }
    if ((double)a->dims[0] * a->dims[1] * a->dims[2] > MAX_ELEMENTS) {
        nnc_error(ck->src, a->loc, "an input of %s has more than %d values", a->text, MAX_ELEMENTS);
        return;
    }
    ck->cur = ck->m->input = (shape){a->dims[0], a->dims[1], a->dims[2]};
}

/* normalize   |   scale F   (F such as 1/255) */
static void check_preprocessing(checker *ck, const nnc_stmt *st, int normalize)
{
    if (ck->m->n_layers > 0) {
        nnc_error(ck->src, st->loc, "'%s' applies to the input and must come before the first layer", st->head);
        return;
    }
    if (ck->prep_stmt) {
        nnc_error(ck->src, st->loc, "the input is already preprocessed by an earlier 'normalize' or 'scale'");
        nnc_note(ck->src, ck->prep_stmt->loc, "the earlier '%s' is here", ck->prep_stmt->head);
        return;
    }
    ck->prep_stmt = st;
    const nnc_arg *a = st->args;
    if (normalize) {
        if (a)
            unexpected_arg(ck, st, a, "normalize");
        ck->m->prep = NNC_PREP_NORMALIZE;
        return;
    }
    if (!a || a->kind != ARG_NUMBER || a->next || !(a->number > 0)) {
        nnc_error(ck->src, a ? a->loc : st->loc, "usage: scale F, with F > 0, such as 'scale 1/255'");
        return;
    }
    ck->m->prep = NNC_PREP_SCALE;
    ck->m->prep_scale = (float)a->number;
}

/* ------------------------------------------------------------------------ */
/* The train block                                                          */
/* ------------------------------------------------------------------------ */

/* loss crossentropy | mse */
static void check_loss(checker *ck, const nnc_stmt *st)
{
    once(ck, st, &ck->loss_stmt, " in the train block");
    const nnc_arg *a = st->args;
    if (a && a->kind == ARG_WORD && !a->next) {
        if (strcmp(a->text, "crossentropy") == 0 || strcmp(a->text, "categorical_crossentropy") == 0) {
            ck->m->recipe.loss = NNC_LOSS_CROSSENTROPY;
            return;
        }
        if (strcmp(a->text, "mse") == 0) {
            ck->m->recipe.loss = NNC_LOSS_MSE;
            return;
        }
    }
    nnc_error(ck->src, a ? a->loc : st->loc, "usage: loss crossentropy | mse");
}

/* Note `key` as given on this optimizer line (warning when the line already
 * gave it), and list it in `given` for --summary. */
static void note_given_key(checker *ck, key_set *keys, const nnc_arg *a, const char *key, char *given, size_t size)
{
    size_t used = strlen(given);
    if (note_key(ck, keys, a, key) && used + 1 < size)
        snprintf(given + used, size - used, "%s ", key);
}

/* optimizer sgd [lr=..] [momentum=..] [nesterov] | adam [lr= beta1= beta2= eps=] | rmsprop [lr= rho= eps=] */
static void check_optimizer(checker *ck, const nnc_stmt *st)
{
    once(ck, st, &ck->optimizer_stmt, " in the train block");
    nnc_optimizer_cfg *o = &ck->m->recipe.optimizer;
    const nnc_arg *a = st->args;
    if (!a || a->kind != ARG_WORD) {
        nnc_error(ck->src, a ? a->loc : st->loc, "usage: optimizer sgd|adam|rmsprop [options]");
        return;
    }
    /* Keras 2 defaults. */
    memset(o, 0, sizeof *o);
    if (strcmp(a->text, "sgd") == 0) {
        o->kind = NNC_OPT_SGD;
        o->lr = 0.01f;
    } else if (strcmp(a->text, "adam") == 0) {
        o->kind = NNC_OPT_ADAM;
        o->lr = 0.001f;
        o->beta1 = 0.9f;
        o->beta2 = 0.999f;
        o->eps = 1e-7f;
    } else if (strcmp(a->text, "rmsprop") == 0) {
        o->kind = NNC_OPT_RMSPROP;
        o->lr = 0.001f;
        o->rho = 0.9f;
        o->eps = 1e-7f;
    } else {
        static const char *const names[] = {"sgd", "adam", "rmsprop", NULL};
        const char *hint = closest(a->text, names);
        nnc_error(ck->src, a->loc, "unknown optimizer '%s'%s%s%s", a->text, hint ? "; did you mean '" : "",
                  hint ? hint : "", hint ? "'?" : " (sgd, adam, rmsprop)");
        return;
    }
    char given[128] = "";
    key_set given_keys = {0};
    for (a = a->next; a; a = a->next) {
        double v;
        const char *k = a->text;
        if (a->kind == ARG_WORD && strcmp(k, "nesterov") == 0 && o->kind == NNC_OPT_SGD) {
            if (o->nesterov)
                nnc_warning(ck->src, a->loc, "'nesterov' is given twice in this line");
            o->nesterov = 1;
            continue;
        }
        if (a->kind != ARG_OPTION) {
            unexpected_arg(ck, st, a, "optimizer NAME key=value ...");
            continue;
        }
        float *slot = NULL;
        double lo = 0, hi = 1;
        if (strcmp(k, "lr") == 0) {
            slot = &o->lr;
            lo = 1e-12;
            hi = 100;
        } else if (strcmp(k, "momentum") == 0 && o->kind == NNC_OPT_SGD) {
            slot = &o->momentum;
        } else if ((strcmp(k, "beta1") == 0 || strcmp(k, "beta2") == 0) && o->kind == NNC_OPT_ADAM) {
            slot = k[4] == '1' ? &o->beta1 : &o->beta2;
            hi = 0.999999999;
        } else if (strcmp(k, "rho") == 0 && o->kind == NNC_OPT_RMSPROP) {
            slot = &o->rho;
        } else if (strcmp(k, "eps") == 0 && o->kind != NNC_OPT_SGD) {
            slot = &o->eps;
            lo = 1e-12;
        } else if (strcmp(k, "weight_decay") == 0) {
            if (option_number(ck, a, 0, 1, &v))
                ck->weight_decay = (float)v;
            note_given_key(ck, &given_keys, a, "weight_decay", given, sizeof given);
            continue;
        }
        if (!slot) {
            static const char *const keys[] = {"lr",  "momentum", "beta1",        "beta2",
                                               "rho", "eps",      "weight_decay", "nesterov", NULL};
            unknown_option(ck, a, optimizer_name(o->kind), keys);
            continue;
        }
        if (option_number(ck, a, lo, hi, &v))
            *slot = (float)v;
        note_given_key(ck, &given_keys, a, k, given, sizeof given);
    }
    switch (o->kind) {
    case NNC_OPT_SGD:
        note_default(ck, st->loc.first_line, "optimizer sgd lr=%g momentum=%g%s (given: %s)", o->lr, o->momentum,
                     o->nesterov ? " nesterov" : "", given[0] ? given : "none");
        break;
    case NNC_OPT_ADAM:
        note_default(ck, st->loc.first_line, "optimizer adam lr=%g beta1=%g beta2=%g eps=%g (given: %s)", o->lr,
                     o->beta1, o->beta2, o->eps, given[0] ? given : "none");
        break;
    case NNC_OPT_RMSPROP:
        note_default(ck, st->loc.first_line, "optimizer rmsprop lr=%g rho=%g eps=%g (given: %s)", o->lr, o->rho,
                     o->eps, given[0] ? given : "none");
        break;
    }
}

/* batch N   epochs N   seed N */
static void check_integer_setting(checker *ck, const nnc_stmt *st, const nnc_stmt **latest, int max, int *out)
{
    once(ck, st, latest, " in the train block");
    const nnc_arg *a = st->args;
    if (!a || a->next) {
        nnc_error(ck->src, a ? a->next->loc : st->loc, "usage: %s N", st->head);
        return;
    }
    positive_integer(ck, a, st->head, max, out);
}

/* seed N  (0 allowed) */
static void check_seed(checker *ck, const nnc_stmt *st)
{
    once(ck, st, &ck->seed_stmt, " in the train block");
    const nnc_arg *a = st->args;
    if (!a || a->next || a->kind != ARG_NUMBER || !a->is_integer || a->number < 0) {
        nnc_error(ck->src, a ? a->loc : st->loc, "usage: seed N, a whole number >= 0");
        return;
    }
    ck->m->recipe.seed = (uint64_t)a->number;
}

/*
 * schedule step every=E factor=F | cosine [min_lr=LR] | onecycle max_lr=LR
 * (the rate starts at the optimizer's lr and the epochs come from `epochs`)
 */
static void check_schedule_rule(checker *ck, const nnc_stmt *st)
{
    static const char *const keys[] = {"every", "factor", "min_lr", "max_lr", NULL};
    nnc_recipe *r = &ck->m->recipe;
    const nnc_arg *kind = st->args;
    const char *name = kind->text;
    if (strcmp(name, "step") == 0) {
        r->schedule = NNC_SCHED_STEP;
        r->step_every = 1;
        r->step_factor = 0.5f;
    } else if (strcmp(name, "cosine") == 0) {
        r->schedule = NNC_SCHED_COSINE;
        r->min_lr = 0.0f;
    } else if (strcmp(name, "onecycle") == 0) {
        r->schedule = NNC_SCHED_ONECYCLE;
        r->max_lr = 0.0f;
    } else {
        static const char *const names[] = {"step", "cosine", "onecycle", NULL};
        const char *hint = closest(name, names);
        nnc_error(ck->src, kind->loc, "unknown schedule '%s'%s%s%s", name, hint ? "; did you mean '" : "",
                  hint ? hint : " (step, cosine, onecycle, or phases such as 1:0.01 5:0.1)", hint ? "'?" : "");
        return;
    }
    key_set given = {0};
    for (const nnc_arg *a = kind->next; a; a = a->next) {
        double v;
        if (a->kind == ARG_OPTION)
            note_key(ck, &given, a, a->text);
        if (a->kind != ARG_OPTION) {
            unexpected_arg(ck, st, a, "schedule step every=E factor=F | cosine [min_lr=LR] | onecycle max_lr=LR");
        } else if (strcmp(a->text, "every") == 0 && r->schedule == NNC_SCHED_STEP) {
            int every;
            if (positive_integer(ck, a->value, "every", 100000, &every))
                r->step_every = every;
        } else if (strcmp(a->text, "factor") == 0 && r->schedule == NNC_SCHED_STEP) {
            if (option_number(ck, a, 1e-6, 1, &v))
                r->step_factor = (float)v;
        } else if (strcmp(a->text, "min_lr") == 0 && r->schedule == NNC_SCHED_COSINE) {
            if (option_number(ck, a, 0, 100, &v))
                r->min_lr = (float)v;
        } else if (strcmp(a->text, "max_lr") == 0 && r->schedule == NNC_SCHED_ONECYCLE) {
            if (option_number(ck, a, 1e-12, 100, &v))
                r->max_lr = (float)v;
        } else {
            unknown_option(ck, a, name, keys);
        }
    }
    if (r->schedule == NNC_SCHED_ONECYCLE && !(r->max_lr > 0))
        nnc_error(ck->src, st->loc, "'schedule onecycle' needs its peak rate, such as 'max_lr=0.1'");
}

/* schedule E:LR E:LR ...   (E epochs at learning rate LR, in order), or a rule (above) */
static void check_schedule(checker *ck, const nnc_stmt *st)
{
    once(ck, st, &ck->schedule_stmt, " in the train block");
    model *m = ck->m;
    free(m->phases);
    m->phases = NULL;
    m->n_phases = 0;
    m->recipe.schedule = NNC_SCHED_PIECEWISE;
    if (st->args && st->args->kind == ARG_WORD) {
        check_schedule_rule(ck, st);
        return;
    }
    if (!st->args)
        nnc_error(ck->src, st->loc, "usage: schedule EPOCHS:LR ..., such as 'schedule 1:0.01 5:0.1'");
    for (const nnc_arg *a = st->args; a; a = a->next) {
        if (a->kind != ARG_PAIR || !a->is_integer || a->first < 1 || a->first > 100000 || !(a->second > 0) ||
            a->second > 100) {
            nnc_error(ck->src, a->loc, "a schedule phase is EPOCHS:LR with EPOCHS >= 1 and LR > 0, not '%s'",
                      a->text);
            continue;
        }
        m->phases = xrealloc(m->phases, (size_t)(m->n_phases + 1) * sizeof *m->phases);
        m->phases[m->n_phases++] = (nnc_schedule_phase){(int)a->first, (float)a->second};
    }
}

/* augment rotation=DEG width_shift=F height_shift=F shear=F zoom=F */
static void check_augment(checker *ck, const nnc_stmt *st)
{
    static const char *const keys[] = {"rotation", "width_shift", "height_shift", "shift", "shear", "zoom", NULL};
    once(ck, st, &ck->augment_stmt, " in the train block");
    nnc_augment_cfg *g = &ck->m->recipe.aug;
    ck->m->recipe.augment = 1;
    if (!st->args)
        nnc_error(ck->src, st->loc, "usage: augment rotation=DEG shift=F shear=F zoom=F");
    key_set given = {0};
    for (const nnc_arg *a = st->args; a; a = a->next) {
        double v;
        if (a->kind != ARG_OPTION) {
            unexpected_arg(ck, st, a, "augment key=value ...");
            continue;
        }
        /* shift= sets both axes, so it repeats width_shift= and height_shift=. */
        if (strcmp(a->text, "shift") != 0)
            note_key(ck, &given, a, a->text);
        else if (note_key(ck, &given, a, "width_shift"))
            note_key(ck, &given, a, "height_shift");
        if (strcmp(a->text, "rotation") == 0) {
            if (option_number(ck, a, 0, 180, &v))
                g->rotation = (float)v;
        } else if (strcmp(a->text, "width_shift") == 0 || strcmp(a->text, "height_shift") == 0 ||
                   strcmp(a->text, "shift") == 0) {
            if (option_number(ck, a, 0, 1, &v)) {
                if (a->text[0] != 'h')
                    g->width_shift = (float)v;
                if (a->text[0] != 'w')
                    g->height_shift = (float)v;
            }
        } else if (strcmp(a->text, "shear") == 0) {
            if (option_number(ck, a, 0, 1.5, &v))
                g->shear = (float)v;
        } else if (strcmp(a->text, "zoom") == 0) {
            if (option_number(ck, a, 0, 0.9, &v))
                g->zoom = (float)v;
        } else {
            unknown_option(ck, a, "augment", keys);
        }
    }
}

static void check_train_statement(checker *ck, const nnc_stmt *st)
{
    const char *h = st->head;
    nnc_recipe *r = &ck->m->recipe;
    if (strcmp(h, "train") == 0) {
        nnc_warning(ck->src, st->loc, "a second 'train' line; its settings join the train block");
        nnc_note(ck->src, ck->train_stmt->loc, "the train block starts here");
        for (const nnc_arg *a = st->args; a; a = a->next)
            unexpected_arg(ck, st, a, "train (then its settings on the following lines)");
    } else if (strcmp(h, "loss") == 0)
        check_loss(ck, st);
    else if (strcmp(h, "optimizer") == 0)
        check_optimizer(ck, st);
    else if (strcmp(h, "batch") == 0)
        check_integer_setting(ck, st, &ck->batch_stmt, 65536, &r->batch);
    else if (strcmp(h, "epochs") == 0)
        check_integer_setting(ck, st, &ck->epochs_stmt, 100000, &r->epochs);
    else if (strcmp(h, "schedule") == 0)
        check_schedule(ck, st);
    else if (strcmp(h, "seed") == 0)
        check_seed(ck, st);
    else if (strcmp(h, "augment") == 0)
        check_augment(ck, st);
    else {
        static const char *const words[] = {"loss", "optimizer", "batch", "epochs", "schedule", "seed", "augment", NULL};
        const char *hint = closest(h, words);
        if (hint)
            nnc_error(ck->src, st->loc, "unknown setting '%s' in the train block; did you mean '%s'?", h, hint);
        else
            nnc_error(ck->src, st->loc,
                      "'%s' is not a train setting (loss, optimizer, batch, epochs, schedule, seed, augment); "
                      "layers go before 'train'",
                      h);
    }
}

/* ------------------------------------------------------------------------ */
/* The whole file                                                           */
/* ------------------------------------------------------------------------ */

static void check_model_statement(checker *ck, const nnc_stmt *st)
{
    const char *h = st->head;
    act_kind act;
    if (!ck->have_input && strcmp(h, "input") != 0 && strcmp(h, "model") != 0 && strcmp(h, "normalize") != 0 &&
        strcmp(h, "scale") != 0 && strcmp(h, "train") != 0) {
        ck->have_input = 1;
        note_default(ck, st->loc.first_line, "input 28x28x1 (MNIST) assumed: no 'input' statement");
    }
    if (strcmp(h, "model") == 0)
        check_model_name(ck, st);
    else if (strcmp(h, "input") == 0)
        check_input(ck, st);
    else if (strcmp(h, "normalize") == 0)
        check_preprocessing(ck, st, 1);
    else if (strcmp(h, "scale") == 0)
        check_preprocessing(ck, st, 0);
    else if (strcmp(h, "dense") == 0)
        check_dense(ck, st);
    else if (strcmp(h, "conv") == 0)
        check_conv(ck, st);
    else if (strcmp(h, "maxpool") == 0)
        check_pool(ck, st, LAYER_MAXPOOL);
    else if (strcmp(h, "avgpool") == 0)
        check_pool(ck, st, LAYER_AVGPOOL);
    else if (strcmp(h, "flatten") == 0)
        check_flatten(ck, st);
    else if (strcmp(h, "dropout") == 0)
        check_dropout(ck, st);
    else if (strcmp(h, "batchnorm") == 0)
        check_batchnorm(ck, st);
    else if (parse_activation(h, &act))
        check_activation(ck, st, act);
    else if (strcmp(h, "train") == 0) {
        ck->in_train = 1;
        ck->train_stmt = st;
        for (const nnc_arg *a = st->args; a; a = a->next)
            unexpected_arg(ck, st, a, "train (then its settings on the following lines)");
    } else {
        static const char *const words[] = {"model",   "input",   "normalize", "scale",     "dense",  "conv",
                                            "maxpool", "avgpool", "flatten",   "dropout",   "batchnorm", "relu",
                                            "sigmoid", "tanh",    "softmax",   "linear",    "train",  NULL};
        const char *hint = closest(h, words);
        if (hint)
            nnc_error(ck->src, st->loc, "unknown layer '%s'; did you mean '%s'?", h, hint);
        else
            nnc_error(ck->src, st->loc, "unknown statement '%s'", h);
    }
}

/* Whole-model rules, once every statement is read. */
static void check_whole_model(checker *ck, const nnc_stmt *stmts)
{
    model *m = ck->m;
    nnc_recipe *r = &m->recipe;
    nnc_loc end = {0, 0, 0, 0};
    if (m->n_layers == 0) {
        nnc_error(ck->src, end, "the model has no layers");
        return;
    }
    layer *last = &m->layers[m->n_layers - 1];
    if (!shape_is_flat(last->out) || last->out.c < 2)
        nnc_error(ck->src, last->loc, "the last layer must output one score per class (a flat vector of 2 or more), "
                                      "such as 'dense 10 softmax'");
    m->n_classes = last->out.c;
    if (m->n_classes > 256)
        nnc_error(ck->src, last->loc, "%d classes: labels are bytes, so at most 256", m->n_classes);

    /* Softmax anywhere but at the end is legal maths but usually a mistake. */
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        int is_last_real = i == m->n_layers - 1;
        if (l->act == ACT_SOFTMAX && !is_last_real)
            nnc_warning(ck->src, l->loc, "softmax in %s is not the last layer", l->name);
    }
    if (r->loss == NNC_LOSS_CROSSENTROPY && last->act != ACT_SOFTMAX)
        nnc_error(ck->src, last->loc, "loss crossentropy needs a softmax output; write '%s softmax' or use 'loss mse'",
                  last->kind == LAYER_DENSE ? "dense N" : "a final");

    /* Recipe defaults (Keras 2's, where a seed relies on them). */
    int line = ck->train_stmt ? ck->train_stmt->loc.first_line : 0;
    if (!ck->in_train)
        note_default(ck, 0, "no train block: every training setting is a default");
    if (!ck->loss_stmt)
        note_default(ck, line, "loss crossentropy");
    if (!ck->optimizer_stmt) {
        r->optimizer = (nnc_optimizer_cfg){.kind = NNC_OPT_SGD, .lr = 0.01f};
        note_default(ck, line, "optimizer sgd lr=0.01 momentum=0");
    }
    if (!ck->batch_stmt) {
        r->batch = 32;
        note_default(ck, line, "batch 32");
    }
    if (!ck->seed_stmt) {
        r->seed = 1;
        note_default(ck, line, "seed 1");
    }
    int schedule_epochs = 0;
    for (int i = 0; i < m->n_phases; i++)
        schedule_epochs += m->phases[i].epochs;
    int phased = r->schedule == NNC_SCHED_PIECEWISE && m->n_phases > 0;
    if (phased && ck->epochs_stmt && r->epochs != schedule_epochs) {
        /* Neither can win: the phases would stop early or run out before the last epoch. */
        nnc_error(ck->src, ck->epochs_stmt->loc, "'epochs %d' contradicts the schedule, whose phases add up to %d "
                                                 "epoch%s; drop 'epochs' or make them agree",
                  r->epochs, schedule_epochs, schedule_epochs == 1 ? "" : "s");
        nnc_note(ck->src, ck->schedule_stmt->loc, "the schedule is here");
    } else if (phased && !ck->epochs_stmt)
        r->epochs = schedule_epochs;
    else if (!ck->epochs_stmt) {
        r->epochs = 10;
        note_default(ck, line, "epochs 10");
    }
    r->n_phases = m->n_phases;
    r->phases = m->phases;

    /*
     * weight_decay=W adds W * w to every kernel's gradient, as PyTorch's
     * optimizers do: the L2 penalty (W / 2) * w^2, on top of any l2= a layer has.
     */
    if (ck->weight_decay > 0)
        for (int i = 0; i < m->n_layers; i++)
            if (m->layers[i].kind == LAYER_DENSE || m->layers[i].kind == LAYER_CONV)
                m->layers[i].l2 += ck->weight_decay / 2;

    /* Refuse what would not fit in memory: a typo such as `dense 8000000`. */
    double bytes = 0;
    for (int i = 0; i < m->n_layers; i++)
        bytes += 2.0 * 4.0 * shape_size(m->layers[i].out) * (double)r->batch;
    if (bytes > MAX_ACTIVATION_BYTES)
        nnc_error(ck->src, stmts->loc, "at batch %d the activations need %.1f GiB; the limit is %.0f GiB", r->batch,
                  bytes / (1 << 30), MAX_ACTIVATION_BYTES / (1 << 30));
    size_t params = 0;
    for (int i = 0; i < m->n_layers; i++)
        params += m->layers[i].n_weights + m->layers[i].n_bias;
    if (params > ((size_t)1 << 28))
        nnc_error(ck->src, stmts->loc, "the model has %zu parameters; the limit is %zu", params, (size_t)1 << 28);
}

/* Lay parameters and state out in layer order: weights, then bias. */
static void assign_offsets(model *m)
{
    size_t p = 0, s = 0;
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        l->param_offset = p;
        p += l->n_weights + l->n_bias;
        l->state_offset = s;
        s += l->n_state;
    }
    m->n_params = p;
    m->n_state = s;
}

/* The model name defaults to the file's base name, made a C identifier. */
static char *name_from_path(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *name = xstrdup(base);
    char *dot = strrchr(name, '.');
    if (dot && dot != name)
        *dot = '\0';
    for (char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            *c = '_';
    if (name[0] >= '0' && name[0] <= '9')
        name[0] = '_';
    if (strlen(name) > 32)
        name[32] = '\0';
    return name;
}

model *nnc_check(nnc_source *src, const nnc_stmt *stmts)
{
    model *m = calloc(1, sizeof *m);
    if (!m) {
        fprintf(stderr, "nnc: out of memory\n");
        exit(1);
    }
    m->name = name_from_path(src->path);
    m->source_path = src->path;
    m->input = (shape){28, 28, 1};
    m->recipe.loss = NNC_LOSS_CROSSENTROPY;
    checker ck = {.src = src, .m = m, .cur = m->input};
    for (const nnc_stmt *st = stmts; st; st = st->next) {
        if (ck.in_train)
            check_train_statement(&ck, st);
        else
            check_model_statement(&ck, st);
    }
    if (!stmts)
        nnc_error(src, (nnc_loc){0, 0, 0, 0}, "the file is empty: no model to compile");
    else
        check_whole_model(&ck, stmts);
    assign_offsets(m);
    if (src->errors > 0) {
        nnc_model_free(m);
        return NULL;
    }
    m->recipe.batch = m->recipe.batch > 0 ? m->recipe.batch : 32;
    return m;
}

void nnc_model_free(model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_layers; i++)
        free(m->layers[i].source);
    free(m->layers);
    free(m->phases);
    free(m->defaults);
    free(m->name);
    free(m);
}

double layer_forward_macs(const layer *l)
{
    switch (l->kind) {
    case LAYER_DENSE:
        return (double)l->n_weights;
    case LAYER_CONV:
        return (double)shape_size(l->out) * l->u.conv.kh * l->u.conv.kw * l->in.c;
    default:
        return 0;
    }
}

/* FNV-1a over the facts that decide the parameter layout. */
unsigned long long model_signature(const model *m)
{
    uint64_t h = 1469598103934665603ULL;
    int facts[16];
#define MIX(v)                                                                                                         \
    do {                                                                                                               \
        uint64_t x_ = (uint64_t)(v);                                                                                   \
        for (int b_ = 0; b_ < 8; b_++) {                                                                               \
            h ^= (x_ >> (8 * b_)) & 0xff;                                                                              \
            h *= 1099511628211ULL;                                                                                     \
        }                                                                                                              \
    } while (0)
    MIX(m->input.h);
    MIX(m->input.w);
    MIX(m->input.c);
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        int n = 0;
        facts[n++] = l->kind;
        facts[n++] = l->out.h;
        facts[n++] = l->out.w;
        facts[n++] = l->out.c;
        facts[n++] = (int)l->n_weights;
        facts[n++] = (int)l->n_bias;
        facts[n++] = (int)l->n_state;
        for (int k = 0; k < n; k++)
            MIX(facts[k]);
    }
#undef MIX
    return (unsigned long long)h;
}
