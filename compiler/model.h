/*
 * model.h - a checked model: every layer with its shapes, parameters and
 * defaults resolved. The checker (check.c) builds it from the syntax tree,
 * with the help of each layer kind's description (layers/); the planner
 * (plan.c), the summary (summary.c) and the C printer (emit.c) only read it.
 *
 * Also the small helpers every part shares: names, shapes, memory.
 */
#ifndef NNC_MODEL_H
#define NNC_MODEL_H

#include <stddef.h>
#include <stdio.h>

#include "ast.h"
#include "../runtime/nncrt.h"

struct layer_kind; /* layers/kind.h: everything nnc knows about one kind of layer */

typedef enum { ACT_LINEAR, ACT_RELU, ACT_SIGMOID, ACT_TANH, ACT_SOFTMAX, N_ACTS } act_kind;

/*
 * What a layer's kernels multiply (`precision` in the train block). BF16:
 * products of bfloat16 values summed in fp32, where the C compiler's target has
 * AVX512_BF16 and the layer has a kernel for it; fp32 everywhere else. Master
 * weights, optimizer state and every other operation stay fp32 either way.
 */
typedef enum { PRECISION_FP32, PRECISION_BF16 } precision_kind;

/* A tensor's shape per sample, NHWC; a flat vector of N is 1x1xN. */
typedef struct {
    int h, w, c;
} shape;

static inline int shape_size(shape s) { return s.h * s.w * s.c; }
static inline int shape_is_flat(shape s) { return s.h == 1 && s.w == 1; }

typedef struct {
    int filters;
    int kh, kw;
    int sh, sw;
    int same;              /* pad=same (else valid) */
    int pad_top, pad_left; /* from `same`: TensorFlow's split, extra on bottom/right */
} conv_params;

typedef struct {
    int kh, kw, sh, sw;
} pool_params;

typedef struct {
    float momentum, eps;
} batchnorm_params;

typedef struct layer {
    const struct layer_kind *kind;
    nnc_loc loc;
    int line;         /* DSL line it came from; 0 for an implicit layer */
    char *source;     /* the DSL line's text, for comments in generated code */
    char name[40];    /* Keras-style: conv2d_1, dense_2, ... (also the C prefix of its functions) */
    int index;        /* position in the model */
    int implicit;     /* inserted by the checker (flatten before a dense) */
    shape in, out;
    act_kind act; /* applied after the layer's own maths (activation layers: the whole layer) */
    precision_kind precision; /* the train block's, for every layer; a kind may have no kernel for BF16 */

    union {
        int units; /* dense */
        conv_params conv;
        pool_params pool;
        float rate; /* dropout */
        batchnorm_params bn;
    } u;

    /* Parameters: weights then bias (batchnorm: gamma then beta). */
    nnc_init_kind kernel_init, bias_init;
    float l1, l2;
    size_t param_offset, n_weights, n_bias;
    /* Non-trainable state (batchnorm: running mean then running variance). */
    size_t state_offset, n_state;
    int fan_in, fan_out;
} layer;

/* Which default the checker filled in, for --summary to list. */
typedef struct {
    int line;
    char text[160];
} applied_default;

typedef struct {
    char *name;
    const char *source_path;
    shape input;
    int resize; /* input resize=bilinear: image files of another size are resized */
    nnc_prep_kind prep;
    float prep_scale;
    float prep_mean[NNC_MAX_PREP_CHANNELS], prep_std[NNC_MAX_PREP_CHANNELS]; /* NNC_PREP_CHANNELS */
    int n_layers;
    layer *layers;
    size_t n_params, n_state;
    int n_classes;

    /* The train block. */
    nnc_recipe recipe;
    precision_kind precision; /* `precision bf16|fp32`; fp32 when not given */
    int n_phases;
    nnc_schedule_phase *phases;

    int n_defaults;
    applied_default *defaults;

    /* The fixed slices a batch is cut into (CHUNKS in the C): the arithmetic depends on them, never
     * on the thread or process count, and a step can be shared by at most this many processes (MPI). */
    int slices;
} model;

#define DEFAULT_SLICES 2 /* nnc --slices N says otherwise */
#define MAX_SLICES 16

/* Check a parsed file; returns NULL after reporting errors through src. */
model *nnc_check(nnc_source *src, const nnc_stmt *stmts);
void nnc_model_free(model *m);

/* Print the Keras-style summary table, then the defaults applied. */
void nnc_print_summary(FILE *out, const model *m);
/* Graphviz diagram of the model, as Keras's plot_model. */
void nnc_emit_dot(FILE *out, const model *m);
/* Emit the C trainer for m. Returns 0 on success. */
int nnc_emit(FILE *out, const model *m);

/* ---- shared helpers (model.c) ---- */

/* Activation names, in act_kind order; parse returns 0 for a word that is none. */
const char *act_name(act_kind act);
int act_parse(const char *word, act_kind *act);
/* Initializer names (Keras's), both ways. */
const char *init_name(nnc_init_kind kind);
int init_parse(const char *word, nnc_init_kind *kind);
const char *optimizer_name(nnc_optimizer_kind kind);

/* "28x28x1", or "10" for a flat vector. */
const char *shape_text(char *buf, size_t len, shape s);

/* The precision of the model and of each of its layers: the train block's `precision`, or nnc --precision. */
void model_set_precision(model *m, precision_kind precision);

/* Record a default the checker applied, for --summary. */
void model_note_default(model *m, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Multiply-adds of one sample's forward pass, the whole model: for FLOP figures. */
double model_forward_macs(const model *m);

/* A hash of every layer's kind, shape and parameter layout: guards checkpoints. */
unsigned long long model_signature(const model *m);

#endif
