/*
 * plan.h - the step plan: what one training (or inference) step does, in
 * order, as data, between the checked model and the C text.
 *
 * A step is a list of operations: weight layouts prepared once, each layer's
 * forward steps, the loss, each layer's backward steps, the gradient sum and
 * the penalties. Every operation names the buffers it reads and writes, and
 * the plan decides where the threads must wait for each other (sync points)
 * and which buffers share memory (the two activation-gradient buffers that
 * take turns down the network). The C printer (emit.c) walks the plan; so can
 * any other back end.
 *
 * The batch is cut into CHUNKS fixed slices. Slice operations run on every
 * slice in parallel, each slice through several operations without waiting;
 * one-thread operations (batchnorm's statistics, its parameter-gradient sums)
 * and the gradient sum need every slice done first.
 *
 * Several processes (MPI) split the slices between them: each runs the slice
 * operations on its own slices only, and a share operation before each
 * operation that reads every slice's results fetches the other processes'
 * (runtime/dist.c). Every process then combines the same numbers in the same
 * slice order, so the arithmetic is one process's, bit for bit.
 */
#ifndef NNC_PLAN_H
#define NNC_PLAN_H

#include "layers/kind.h"


typedef enum {
    BUF_INPUT,      /* x: the preprocessed batch */
    BUF_ACTIVATION, /* a layer's output, kept for backward */
    BUF_GRADIENT,   /* one of the two buffers activation gradients take turns in */
} buffer_role;

typedef struct {
    char name[48];    /* its C name: "x", "conv2d_1_out", "grad_a" */
    buffer_role role;
    int floats;       /* per sample: an activation's size, or LARGEST for a gradient buffer */
    shape shape;      /* activations: the layer's output shape */
    int layer;        /* activations: the layer whose output it is; else -1 */
} plan_buffer;

typedef enum {
    OP_PREPARE,  /* one thread: a layer's weights in the layouts its kernels read */
    OP_LAYER,    /* one of a layer's forward or backward steps (scope: the kind's) */
    OP_LOSS,     /* slices: the loss and dL/d(last output) */
    OP_SHARE,    /* one thread: the slices other processes computed, fetched (a no-op in one process) */
    OP_GRAD_SUM, /* all threads over the parameters: the slices' weight gradients in slice order
                  * (several processes: each sums a part and they exchange the parts, nnc_dist_sum_slices) */
    OP_PENALTY,  /* all threads over one layer's kernel: L1/L2 terms */
} op_kind;

typedef enum { PHASE_PREPARE, PHASE_FORWARD, PHASE_LOSS, PHASE_BACKWARD, PHASE_GRADIENT, N_PHASES } op_phase;

/* A gradient in a gradient buffer: the buffer, and the floats per sample of the tensor (its region). */
typedef struct {
    int buf;  /* -1: none */
    int size;
} grad_ref;

typedef struct {
    op_kind kind;
    op_phase phase;
    int layer;          /* OP_PREPARE, OP_LAYER, OP_PENALTY; OP_SHARE: the layer whose step reads */
    layer_step step;    /* OP_LAYER; OP_SHARE: the step it fetches for */
    step_scope scope;   /* STEP_ONE_THREAD for OP_PREPARE; STEP_SLICE for slices; GRAD_SUM, PENALTY: all threads */
    int in, out;        /* activation buffers, -1 none */
    grad_ref din, dout; /* gradient regions */
    int wait_before;    /* a sync point: every thread finishes what came before */
} plan_op;

typedef struct {
    pass_kind pass;
    const model *m;
    int n_bufs, n_ops;
    plan_buffer *bufs;
    plan_op *ops;
    layer_role *roles; /* per layer */
    int *out_buf;      /* per layer: the buffer holding its output (a view: its input's) */
    grad_ref *dout;    /* per layer: where dL/d(its output) lives (training) */
    int largest;       /* floats per sample in the largest activation */
    int n_sync;        /* sync points */
} plan;

/* The plan of one step of m: PASS_TRAIN (forward, loss, backward, gradient) or PASS_INFER. */
plan *plan_build(const model *m, pass_kind pass);
void plan_free(plan *p);

/* Bytes of the activation and activation-gradient buffers at the model's batch. */
size_t plan_activation_bytes(const plan *p);
/* 0 when no operation reads and writes the same memory through two names; else reports the first. */
int plan_check_aliasing(const plan *p, char *err, size_t len);
/* The plan as text, one operation a line, for tests and `nnc --plan`. */
void plan_print(FILE *out, const plan *p);

#endif
