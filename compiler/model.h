/*
 * model.h - a checked model: every layer with its shapes, parameters and
 * defaults resolved. The checker (check.c) builds it from the syntax tree;
 * the summary (summary.c) and the emitter (emit*.c) only read it.
 */
#ifndef NNC_MODEL_H
#define NNC_MODEL_H

#include <stddef.h>

#include "ast.h"
#include "../runtime/nncrt.h"

typedef enum {
    LAYER_DENSE,
    LAYER_CONV,
    LAYER_MAXPOOL,
    LAYER_AVGPOOL,
    LAYER_FLATTEN,
    LAYER_DROPOUT,
    LAYER_BATCHNORM,
    LAYER_ACTIVATION,
} layer_kind;

typedef enum { ACT_LINEAR, ACT_RELU, ACT_SIGMOID, ACT_TANH, ACT_SOFTMAX } act_kind;

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
    int same;             /* pad=same (else valid) */
    int pad_top, pad_left; /* from `same`: TensorFlow's split, extra on bottom/right */
} conv_params;

typedef struct {
    int kh, kw, sh, sw;
} pool_params;

typedef struct {
    float momentum, eps;
} batchnorm_params;

typedef struct layer {
    layer_kind kind;
    nnc_loc loc;
    int line;         /* DSL line it came from; 0 for an implicit layer */
    char *source;     /* the DSL line's text, for comments in generated code */
    char name[40];    /* Keras-style: conv2d_1, dense_2, ... */
    char ident[40];   /* C identifier prefix: l3_conv2d_2 */
    int implicit;     /* inserted by the checker (flatten before a dense) */
    shape in, out;
    act_kind act; /* applied after the layer's own maths (ACTIVATION: the whole layer) */

    union {
        int units;      /* DENSE */
        conv_params conv;
        pool_params pool;
        float rate;     /* DROPOUT */
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
    nnc_prep_kind prep;
    float prep_scale;
    int n_layers;
    layer *layers;
    size_t n_params, n_state;
    int n_classes;

    /* The train block. */
    nnc_recipe recipe;
    int n_phases;
    nnc_schedule_phase *phases;
    int dropout_keys; /* how many dropout layers: each gets its own mask key */

    int n_defaults;
    applied_default *defaults;
} model;

/* Check a parsed file; returns NULL after reporting errors through src. */
model *nnc_check(nnc_source *src, const nnc_stmt *stmts);
void nnc_model_free(model *m);

const char *layer_kind_keras(layer_kind kind); /* "Conv2D", ... */
const char *act_name(act_kind act);
const char *init_name(nnc_init_kind kind);
const char *optimizer_name(nnc_optimizer_kind kind);

/* Multiply-adds of one sample's forward pass: for FLOP figures. */
double layer_forward_macs(const layer *l);

/* A hash of every layer's kind, shape and parameter layout. */
unsigned long long model_signature(const model *m);

/* Print the Keras-style summary table, then the defaults applied. */
void nnc_print_summary(FILE *out, const model *m);

/* Emit the C trainer for m. Returns 0 on success. */
int nnc_emit(FILE *out, const model *m);

/* Graphviz diagram of the model, as Keras's plot_model. */
void nnc_emit_dot(FILE *out, const model *m);

#endif
