/*
 * check.c - meaning: from statements to a checked model.
 *
 * The header statements (model, input, normalize, scale) and the train block
 * are checked here, one function a statement kind, each with its grammar as a
 * comment. A layer statement is read against its kind's option schema
 * (schema.c) and handed to its kind's check (layers/), which infers its shape.
 * Every shape is known here, at compile time; anything that cannot work is an
 * error that points at the argument at fault, and checking goes on so that one
 * run reports every error it can.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layers/kind.h"
#include "model.h"
#include "schema.h"

/* Activation buffers above this many bytes are refused: a typo, not a model. */
#define MAX_ACTIVATION_BYTES (4.0 * 1024 * 1024 * 1024)
/* Per-sample tensors stay far below INT_MAX, so shape arithmetic cannot overflow. */
#define MAX_ELEMENTS (1 << 26)

typedef struct {
    nnc_source *src;
    model *m;
    shape cur;        /* the shape flowing out of the last layer */
    int have_input;   /* given, or assumed once a layer came first */
    int in_train;     /* after the `train` statement */
    int *counters;    /* per layer kind (n_layer_kinds): the Keras-style names' numbers */
    /* Statements that say one thing once: the latest of each, for repeats and contradictions. */
    const nnc_stmt *model_stmt, *input_stmt, *prep_stmt, *train_stmt;
    const nnc_stmt *loss_stmt, *optimizer_stmt, *batch_stmt, *epochs_stmt, *schedule_stmt, *seed_stmt, *augment_stmt,
        *precision_stmt;
    float weight_decay; /* optimizer weight_decay=: an L2 penalty on every kernel */
} checker;

static void unexpected_arg(checker *ck, const nnc_stmt *st, const nnc_arg *a, const char *usage)
{
    unexpected_argument(ck->src, st, a, usage);
}

static int option_number(checker *ck, const nnc_arg *opt, double lo, double hi, double *out)
{
    return number_option(ck->src, opt, lo, hi, out);
}

static int positive_integer(checker *ck, const nnc_arg *a, const char *what, int max, int *out)
{
    double v;
    if (!whole_number(ck->src, a, what, max, &v))
        return 0;
    *out = (int)v;
    return 1;
}

static void unknown_option(checker *ck, const nnc_arg *a, const char *name, const char *const *known)
{
    const char *hint = closest_word(a->text, known);
    if (hint)
        nnc_error(ck->src, a->loc, "'%s' has no option '%s'; did you mean '%s'?", name, a->text, hint);
    else
        nnc_error(ck->src, a->loc, "'%s' has no option '%s'", name, a->text);
}

/* ------------------------------------------------------------------------ */
/* Layers                                                                   */
/* ------------------------------------------------------------------------ */

/* The DSL line's text, trimmed, for comments in generated code. */
static char *source_text(checker *ck, int line)
{
    int len;
    const char *text = nnc_source_line(ck->src, line, &len);
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
        len--;
    while (len > 0 && (*text == ' ' || *text == '\t')) {
        text++;
        len--;
    }
    char *s = nnc_xmalloc((size_t)len + 1);
    memcpy(s, text, (size_t)len);
    s[len] = '\0';
    return s;
}

static int kind_index(const layer_kind *k)
{
    for (int i = 0; i < n_layer_kinds; i++)
        if (layer_kinds[i] == k)
            return i;
    return 0;
}

/* A new layer of kind k after the current one; st is NULL for a layer the checker inserts. */
static layer *add_layer(checker *ck, const layer_kind *k, const nnc_stmt *st)
{
    model *m = ck->m;
    m->layers = nnc_xrealloc(m->layers, (size_t)(m->n_layers + 1) * sizeof *m->layers);
    layer *l = &m->layers[m->n_layers];
    memset(l, 0, sizeof *l);
    l->index = m->n_layers++;
    l->kind = k;
    l->in = ck->cur;
    l->act = ACT_LINEAR;
    l->kernel_init = NNC_INIT_GLOROT_UNIFORM;
    l->bias_init = NNC_INIT_ZEROS;
    snprintf(l->name, sizeof l->name, "%s_%d", k->prefix, ++ck->counters[kind_index(k)]);
    if (st) {
        l->loc = st->loc;
        l->line = st->loc.first_line;
        l->source = source_text(ck, l->line);
    } else {
        l->implicit = 1;
        l->source = nnc_xstrdup("(implicit)");
    }
    return l;
}

/* Flattening is free in NHWC; Keras needs it spelled out, nnc inserts it. */
static void implicit_flatten(checker *ck, const nnc_stmt *before)
{
    layer *l = add_layer(ck, layer_kind_for_word("flatten"), NULL);
    l->loc = before->loc;
    l->out = (shape){1, 1, shape_size(ck->cur)};
    model_note_default(ck->m, before->loc.first_line, "flatten inserted before '%s' (its input is %dx%dx%d)",
                       before->head, ck->cur.h, ck->cur.w, ck->cur.c);
    ck->cur = l->out;
}

/* A layer statement: its options read against the kind's schema, then the kind's own check. */
static void check_layer(checker *ck, const nnc_stmt *st, const layer_kind *k)
{
    if ((k->flags & KIND_FLAT_INPUT) && !shape_is_flat(ck->cur))
        implicit_flatten(ck, st);
    layer *l = add_layer(ck, k, st);
    if ((k->flags & KIND_IMAGE_INPUT) && shape_is_flat(ck->cur) && ck->m->n_layers > 1) {
        char buf[32];
        nnc_error(ck->src, st->loc, "'%s' needs an image input, but its input is a flat vector of %s", st->head,
                  shape_text(buf, sizeof buf, ck->cur));
    }
    option_value values[MAX_OPTIONS];
    if (k->n_options > MAX_OPTIONS) { /* a kind described wrongly: tests/test_compiler.c checks every kind */
        fprintf(stderr, "nnc: internal error: '%s' has %d options, more than %d\n", st->head, k->n_options, MAX_OPTIONS);
        exit(3);
    }
    read_options(ck->src, st, k->options, k->n_options, k->usage, values);
    layer_check lc = {ck->src, ck->m, st, ck->m->n_layers == 1};
    k->check(&lc, l, values);
    if ((double)l->out.h * l->out.w * l->out.c > MAX_ELEMENTS) {
        nnc_error(ck->src, st->loc, "this layer's output has %.0f values a sample; the limit is %d",
                  (double)l->out.h * l->out.w * l->out.c, MAX_ELEMENTS);
        l->out = (shape){1, 1, 1};
    }
    ck->cur = l->out;
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
    ck->m->name = nnc_xstrdup(a->text);
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
    if (!a || a->kind != ARG_DIMS || a->ndims != 3) {
        nnc_error(ck->src, a ? a->loc : st->loc, "usage: input HxWxC [resize=bilinear], such as 'input 28x28x1'");
        return;
    }
    for (const nnc_arg *o = a->next; o; o = o->next) {
        /* resize=bilinear: images of another size in an image folder are resized to HxW, not refused */
        if (o->kind == ARG_OPTION && strcmp(o->text, "resize") == 0 && o->value->kind == ARG_WORD &&
            strcmp(o->value->text, "bilinear") == 0)
            ck->m->resize = 1;
        else if (o->kind == ARG_OPTION && strcmp(o->text, "resize") == 0)
            nnc_error(ck->src, o->value->loc, "'resize' takes 'bilinear', not '%s'", o->value->text);
        else
            unexpected_arg(ck, st, o, "input HxWxC [resize=bilinear]");
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

/* One number a channel of the input: `key=0.49,0.48,0.45`, or one number for one channel. */
static int channel_list(checker *ck, const nnc_arg *opt, double lo, double hi, float *out)
{
    const nnc_arg *v = opt->value;
    int channels = ck->m->input.c, n = v->kind == ARG_LIST ? v->nlist : 1;
    if (v->kind != ARG_LIST && v->kind != ARG_NUMBER) {
        nnc_error(ck->src, v->loc, "'%s' needs one number a channel, such as %s=0.5,0.5,0.5, not '%s'", opt->text,
                  opt->text, v->text);
        return 0;
    }
    if (n != channels) {
        nnc_error(ck->src, v->loc, "'%s' has %d number%s but the input has %d channel%s", opt->text, n,
                  n == 1 ? "" : "s", channels, channels == 1 ? "" : "s");
        return 0;
    }
    for (int i = 0; i < n; i++) {
        double x = v->kind == ARG_LIST ? v->list[i] : v->number;
        if (!(x >= lo && x <= hi)) {
            nnc_error(ck->src, v->loc, "'%s=%s': %g is out of range [%g, %g]", opt->text, v->text, x, lo, hi);
            return 0;
        }
        out[i] = (float)x;
    }
    return 1;
}

/* normalize mean=M,.. std=S,..: fixed constants per channel on pixels scaled
 * to [0, 1], as torchvision's Normalize after ToTensor. */
static void check_channel_constants(checker *ck, const nnc_stmt *st)
{
    static const char *const keys[] = {"mean", "std", NULL};
    const char *usage = "usage: normalize   or   normalize mean=M1,M2,M3 std=S1,S2,S3 (one number a channel)";
    if (ck->m->input.c > NNC_MAX_PREP_CHANNELS) {
        nnc_error(ck->src, st->loc, "per-channel 'normalize' takes up to %d channels; the input has %d",
                  NNC_MAX_PREP_CHANNELS, ck->m->input.c);
        return;
    }
    key_set given = {0};
    int has_mean = 0, has_std = 0, good = 1; /* given; every value usable */
    for (const nnc_arg *a = st->args; a; a = a->next) {
        if (a->kind != ARG_OPTION) {
            unexpected_arg(ck, st, a, usage + strlen("usage: "));
            good = 0;
            continue;
        }
        note_key(ck->src, &given, a, a->text);
        if (strcmp(a->text, "mean") == 0)
            has_mean = 1, good &= channel_list(ck, a, -1e3, 1e3, ck->m->prep_mean);
        else if (strcmp(a->text, "std") == 0)
            has_std = 1, good &= channel_list(ck, a, 1e-6, 1e3, ck->m->prep_std);
        else
            unknown_option(ck, a, "normalize", keys), good = 0;
    }
    if (has_mean != has_std)
        nnc_error(ck->src, st->loc, "per-channel 'normalize' needs both mean= and std=; %s", usage);
    else if (has_mean && good)
        ck->m->prep = NNC_PREP_CHANNELS;
}

/* normalize   |   normalize mean=.. std=..   |   scale F   (F such as 1/255) */
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
        ck->m->prep = NNC_PREP_NORMALIZE;
        if (a)
            check_channel_constants(ck, st);
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
    if (note_key(ck->src, keys, a, key) && used + 1 < size)
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
        const char *hint = closest_word(a->text, names);
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
        model_note_default(ck->m, st->loc.first_line, "optimizer sgd lr=%g momentum=%g%s (given: %s)", o->lr, o->momentum,
                     o->nesterov ? " nesterov" : "", given[0] ? given : "none");
        break;
    case NNC_OPT_ADAM:
        model_note_default(ck->m, st->loc.first_line, "optimizer adam lr=%g beta1=%g beta2=%g eps=%g (given: %s)", o->lr,
                     o->beta1, o->beta2, o->eps, given[0] ? given : "none");
        break;
    case NNC_OPT_RMSPROP:
        model_note_default(ck->m, st->loc.first_line, "optimizer rmsprop lr=%g rho=%g eps=%g (given: %s)", o->lr, o->rho,
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

/* precision fp32|bf16 */
static void check_precision(checker *ck, const nnc_stmt *st)
{
    static const char *const words[] = {"fp32", "bf16", NULL};
    once(ck, st, &ck->precision_stmt, " in the train block");
    const nnc_arg *a = st->args;
    if (!a || a->next || a->kind != ARG_WORD) {
        nnc_error(ck->src, a ? (a->kind == ARG_WORD ? a->next->loc : a->loc) : st->loc,
                  "usage: precision fp32|bf16 (bf16: bfloat16 products, fp32 sums, in the convolution and dense "
                  "layers)");
        return;
    }
    if (strcmp(a->text, "fp32") == 0)
        ck->m->precision = PRECISION_FP32;
    else if (strcmp(a->text, "bf16") == 0)
        ck->m->precision = PRECISION_BF16;
    else {
        const char *hint = closest_word(a->text, words);
        if (hint)
            nnc_error(ck->src, a->loc, "unknown precision '%s'; did you mean '%s'?", a->text, hint);
        else
            nnc_error(ck->src, a->loc, "unknown precision '%s'; it is fp32 (the default) or bf16", a->text);
    }
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
        const char *hint = closest_word(name, names);
        nnc_error(ck->src, kind->loc, "unknown schedule '%s'%s%s%s", name, hint ? "; did you mean '" : "",
                  hint ? hint : " (step, cosine, onecycle, or phases such as 1:0.01 5:0.1)", hint ? "'?" : "");
        return;
    }
    key_set given = {0};
    for (const nnc_arg *a = kind->next; a; a = a->next) {
        double v;
        if (a->kind == ARG_OPTION)
            note_key(ck->src, &given, a, a->text);
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
        m->phases = nnc_xrealloc(m->phases, (size_t)(m->n_phases + 1) * sizeof *m->phases);
        m->phases[m->n_phases++] = (nnc_schedule_phase){(int)a->first, (float)a->second};
    }
}

/* augment rotation=DEG width_shift=F height_shift=F shear=F zoom=F horizontal_flip */
static void check_augment(checker *ck, const nnc_stmt *st)
{
    static const char *const keys[] = {"rotation", "width_shift", "height_shift", "shift", "shear", "zoom",
                                       "horizontal_flip", NULL};
    once(ck, st, &ck->augment_stmt, " in the train block");
    nnc_augment_cfg *g = &ck->m->recipe.aug;
    ck->m->recipe.augment = 1;
    if (!st->args)
        nnc_error(ck->src, st->loc, "usage: augment rotation=DEG shift=F shear=F zoom=F horizontal_flip");
    key_set given = {0};
    for (const nnc_arg *a = st->args; a; a = a->next) {
        double v;
        if (a->kind == ARG_WORD && strcmp(a->text, "horizontal_flip") == 0) {
            /* a switch, as Keras's horizontal_flip=True: off unless named */
            note_key(ck->src, &given, a, a->text);
            g->horizontal_flip = 1;
            continue;
        }
        if (a->kind != ARG_OPTION) {
            unexpected_arg(ck, st, a, "augment key=value ... [horizontal_flip]");
            continue;
        }
        /* shift= sets both axes, so it repeats width_shift= and height_shift=. */
        if (strcmp(a->text, "shift") != 0)
            note_key(ck->src, &given, a, a->text);
        else if (note_key(ck->src, &given, a, "width_shift"))
            note_key(ck->src, &given, a, "height_shift");
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
    else if (strcmp(h, "precision") == 0)
        check_precision(ck, st);
    else {
        static const char *const words[] = {"loss",    "optimizer", "batch",     "epochs", "schedule",
                                            "seed",    "augment",   "precision", NULL};
        const char *hint = closest_word(h, words);
        if (hint)
            nnc_error(ck->src, st->loc, "unknown setting '%s' in the train block; did you mean '%s'?", h, hint);
        else
            nnc_error(ck->src, st->loc,
                      "'%s' is not a train setting (loss, optimizer, batch, epochs, schedule, seed, augment, "
                      "precision); "
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
    if (!ck->have_input && strcmp(h, "input") != 0 && strcmp(h, "model") != 0 && strcmp(h, "normalize") != 0 &&
        strcmp(h, "scale") != 0 && strcmp(h, "train") != 0) {
        ck->have_input = 1;
        model_note_default(ck->m, st->loc.first_line, "input 28x28x1 (MNIST) assumed: no 'input' statement");
    }
    const layer_kind *k = layer_kind_for_word(h);
    if (strcmp(h, "model") == 0)
        check_model_name(ck, st);
    else if (strcmp(h, "input") == 0)
        check_input(ck, st);
    else if (strcmp(h, "normalize") == 0)
        check_preprocessing(ck, st, 1);
    else if (strcmp(h, "scale") == 0)
        check_preprocessing(ck, st, 0);
    else if (k)
        check_layer(ck, st, k);
    else if (strcmp(h, "train") == 0) {
        ck->in_train = 1;
        ck->train_stmt = st;
        for (const nnc_arg *a = st->args; a; a = a->next)
            unexpected_arg(ck, st, a, "train (then its settings on the following lines)");
    } else {
        const char *words[80] = {"model", "input", "normalize", "scale", "train"};
        int n = 5;
        for (const char *const *w = layer_words(); *w && n + 1 < 80; w++)
            words[n++] = *w;
        words[n] = NULL;
        const char *hint = closest_word(h, words);
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
                  strcmp(last->kind->words[0], "dense") == 0 ? "dense N" : "a final");

    /* Recipe defaults (Keras 2's, where a seed relies on them). */
    int line = ck->train_stmt ? ck->train_stmt->loc.first_line : 0;
    if (!ck->in_train)
        model_note_default(ck->m, 0, "no train block: every training setting is a default");
    if (!ck->loss_stmt)
        model_note_default(ck->m, line, "loss crossentropy");
    if (!ck->optimizer_stmt) {
        r->optimizer = (nnc_optimizer_cfg){.kind = NNC_OPT_SGD, .lr = 0.01f};
        model_note_default(ck->m, line, "optimizer sgd lr=0.01 momentum=0");
    }
    if (!ck->batch_stmt) {
        r->batch = 32;
        model_note_default(ck->m, line, "batch 32");
    }
    if (!ck->seed_stmt) {
        r->seed = 1;
        model_note_default(ck->m, line, "seed 1");
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
        model_note_default(ck->m, line, "epochs 10");
    }
    r->n_phases = m->n_phases;
    r->phases = m->phases;
    model_set_precision(m, m->precision);

    /*
     * weight_decay=W adds W * w to every kernel's gradient, as PyTorch's
     * optimizers do: the L2 penalty (W / 2) * w^2, on top of any l2= a layer has.
     */
    if (ck->weight_decay > 0)
        for (int i = 0; i < m->n_layers; i++)
            if (m->layers[i].n_weights > 0 && strcmp(m->layers[i].kind->tensor[0], "kernel") == 0)
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
    char *name = nnc_xstrdup(base);
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
    model *m = nnc_xmalloc(sizeof *m);
    memset(m, 0, sizeof *m);
    m->name = name_from_path(src->path);
    m->source_path = src->path;
    m->input = (shape){28, 28, 1};
    m->recipe.loss = NNC_LOSS_CROSSENTROPY;
    m->slices = DEFAULT_SLICES;
    checker ck = {.src = src, .m = m, .cur = m->input};
    ck.counters = nnc_xmalloc(sizeof *ck.counters * (size_t)n_layer_kinds);
    memset(ck.counters, 0, sizeof *ck.counters * (size_t)n_layer_kinds);
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
    free(ck.counters);
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
