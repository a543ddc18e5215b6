/*
 * kind.h - one kind of layer, described once.
 *
 * Each kind lives in its own file (layers/conv.c, layers/dense.c, ...) and
 * fills in a layer_kind: its statement's options (a schema the checker walks),
 * its shape rule and checks, its parameters and how they are initialized, its
 * cost, and the C it generates for the forward and backward passes, as steps
 * the planner (plan.c) orders and the printer (emit.c) writes out. The table of
 * kinds is layers/kinds.def; the checker, the planner and the printer iterate
 * over it and know no kind by name.
 *
 * Dependencies run one way: the layer files use model.h, schema.h and cgen.h
 * (names, shapes, printing) and nothing else of the compiler.
 */
#ifndef NNC_LAYER_KIND_H
#define NNC_LAYER_KIND_H

#include "../cgen.h"
#include "../model.h"
#include "../schema.h"

/* What a kind's check may use: where to report, the model so far. */
typedef struct {
    nnc_source *src;
    model *m;
    const nnc_stmt *st; /* the layer's statement */
    int first;          /* the first layer of the model */
} layer_check;

typedef enum { PASS_TRAIN, PASS_INFER } pass_kind;

/* The C expressions one step of one layer works on; `lo`, `hi` and `c` (the slice) are in scope. */
typedef struct {
    const char *in, *out;    /* the layer's input and output activations */
    const char *din, *dout;  /* their gradients (din: NULL when the input needs none) */
    const char *grads;       /* this slice's weight gradients: "ws->slice_grads[c]" */
    int fused_softmax;       /* the last layer's softmax is fused with crossentropy: dout is dL/dz */
    pass_kind pass;          /* training's forward pass or inference's (conv_winograd differs) */
} step_args;

/*
 * A step is a call on one slice (STEP_SLICE: every slice, in parallel), or a
 * call one thread makes for the whole batch while the others wait
 * (STEP_ONE_THREAD: batchnorm combining its slices' statistics).
 */
typedef enum {
    STEP_SLICE,
    STEP_ONE_THREAD,
    STEP_ALL_THREADS, /* the planner's own operations over all parameters (the gradient sum) */
} step_scope;
typedef struct {
    step_scope scope;
    void (*print)(cgen *g, const layer *l, const step_args *a);
    /*
     * A one-thread step that reads every slice's partial results (batchnorm's
     * sums) says which: this prints the nnc_dist_share() call that, when
     * several processes split the slices (MPI), fetches the slices computed
     * elsewhere first. NULL: the step reads no other slice's data.
     */
    void (*print_share)(cgen *g, const layer *l);
} layer_step;

#define MAX_LAYER_STEPS 3
typedef struct {
    int n;
    layer_step step[MAX_LAYER_STEPS];
} step_list;

/* What a layer keeps in the step's workspace struct, besides its output. */
typedef struct {
    char decl[96];     /* "float conv2d_2_wt[3 * 3 * 32 * 32]"; empty: a comment line only */
    char comment[112];
} ws_member;
typedef struct {
    int n, cap;
    ws_member *members;
    int scratch; /* floats a sample of the shared scratch arena: the most any layer's call needs */
} ws_list;
void ws_add(ws_list *ws, const char *comment, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ws_comment(ws_list *ws, const char *comment); /* a comment line among the members */

/*
 * Scratch: buffers a layer's kernels fill and read within one call, never
 * after it (conv_bf16's bfloat16 copies of an activation). Every layer's
 * scratch lives in one arena, ws->scratch: on a slice the calls run one at a
 * time, so the arena needs only the largest layer's share, not the sum. A
 * kind lists its buffers in a table. Buffers of one phase are alive together
 * and lie one after another; the phases of a layer reuse the same memory.
 * Sizes count floats, as the arena does, so that a test build that makes
 * every float a double (tests/gradcheck_prelude.h) scales them all alike; a
 * buffer of another type takes the floats its bytes fill (in an fp32 build),
 * and its kernels reach it only through memcpy or the intrinsics' vector
 * types, which may alias anything: the arena is declared float.
 * Each slice's share keeps VEC floats spare past its buffers, for the vector
 * loads that read past a row's last channel.
 */
typedef struct {
    const char *name; /* "inh", as the workspace comment lists it */
    int phase;        /* 0, 1, ...: buffers of the same phase are alive at once */
    int floats;       /* a sample */
} scratch_buf;
/* Reserve the arena for a layer's buffers and list them in the workspace's comments. */
void ws_scratch(ws_list *ws, const scratch_buf *bufs, int n);
/* The C expression for buffer k in a call on the slice [lo, hi): "(uint16_t *)scratch_region(...)". */
const char *scratch_arg(char *buf, size_t len, const char *ctype, const scratch_buf *bufs, int k);

/* The helpers a kind's generated code calls, which the file then defines once. */
enum {
    HELPER_V16 = 1,       /* the 16-float vector type, load16, store16 */
    HELPER_LOAD_TAIL = 2, /* a shorter last vector */
    HELPER_STORE_TAIL = 4,
    HELPER_SUM_SLICES = 8,  /* sum_slices(): some weight gradients summed over the slices mid-step */
    HELPER_DROPOUT_KEY = 16, /* dropout_key(): each dropout layer's own mask key from the step's */
    HELPER_BF16 = 32,        /* NNC_BF16, to_bf16(), pair_bf16(): kernels for `precision bf16` */
    HELPER_BF16_ROWS = 64,   /* pair_rows_bf16(): rows of a matrix as bfloat16 pairs (dense_bf16) */
};

/* What the printer tells a kind about a layer's place in the model. */
typedef struct {
    int needs_din;     /* its input is not the network's input: backward must give dL/d(in) */
    int fused_softmax; /* its softmax is fused with the crossentropy loss */
    /*
     * A relu and the max pooling right after it (KIND_RELU_GRAD_BELOW): the pooling's backward
     * applies the relu's derivative as it routes each gradient to its window's maximum (zero where
     * that maximum, a relu output, is not positive), and the layer below skips its own pass over
     * the larger tensor. Both flags describe the one pair.
     */
    int relu_grad_below; /* this layer's backward applies the relu derivative of the layer below */
    int act_grad_above;  /* the layer above applied this layer's: dout is already dL/d(pre-activation) */
} layer_role;

/* The activation whose derivative a layer's own backward applies (none if the layer above did). */
static inline act_kind backward_act(const layer *l, const layer_role *r)
{
    return r->act_grad_above ? ACT_LINEAR : l->act;
}

/*
 * The inference back end (infer.c): one sample's forward pass in plain C99,
 * the trained weights baked in as constants. A kind prints its constants and
 * `static void <prefix>_<name>(const float *restrict in, float *restrict out)`.
 */
typedef struct {
    const char *prefix;    /* the API's prefix: "digits" for digits_predict() */
    const float *weights;  /* the layer's first tensor (params + param_offset), batchnorm folded in if asked */
    const float *bias;     /* and its second */
    const float *state;    /* its non-trainable state (state + state_offset) */
} single_ctx;

enum {
    KIND_VIEW = 1,        /* no code: the output is the input, seen another way (flatten) */
    KIND_IMAGE_INPUT = 2, /* needs an HxWxC input */
    KIND_FLAT_INPUT = 4,  /* an image input is flattened first, implicitly (dense) */
    KIND_TRAIN_ONLY = 8,  /* the identity at inference (dropout) */
    KIND_OUTPUT_LAST = 16, /* its kernel's last axis is the output channel: a batchnorm after it can fold in */
    KIND_RELU_GRAD_BELOW = 32, /* its backward can apply the derivative of a relu below it (layer_role) */
};

/*
 * A kernel strategy: one way of computing a layer, for the kinds that have
 * several (conv.h, dense.h). It owns its weight layouts, its scratch, its
 * helpers and the calls its steps print. Such a kind's `strategy` picks one
 * per layer, from the layer's shapes and precision alone, and its code hooks
 * below are the strategy_* functions (kinds.c), which call the chosen one's.
 * Adding a strategy is a file that defines one, and a line in the chooser.
 */
typedef struct {
    const char *description;  /* for the layer's banner */
    precision_kind precision; /* what its products multiply in, where the target allows */
    unsigned (*helpers)(const layer *l, const layer_role *r); /* NULL: none */
    void (*workspace)(const layer *l, const layer_role *r, ws_list *ws); /* NULL: nothing kept */
    void (*emit)(cgen *g, const layer *l, const layer_role *r);
    void (*prepare)(cgen *g, const layer *l, const layer_role *r, pass_kind pass); /* NULL: no step */
    void (*print_forward)(cgen *g, const layer *l, const step_args *a);
    void (*print_backward)(cgen *g, const layer *l, const step_args *a);
} kernel_strategy;

typedef struct layer_kind {
    const char *const *words; /* the statement words: {"conv", NULL}; activation has five */
    const char *keras;        /* Keras's class, for --summary: "Conv2D" */
    const char *prefix;       /* Keras's automatic names: "conv2d" -> conv2d_1, conv2d_2 */
    int signature_id;         /* this kind in weights files' model signature: never reuse a number */
    unsigned flags;
    const char *usage;
    int n_options;
    const option_spec *options;

    /* Meaning: the options' values into l (kind parameters, out shape, sizes). */
    void (*check)(layer_check *lc, layer *l, const option_value *v);
    double (*forward_macs)(const layer *l); /* NULL: no multiply-adds worth counting */

    /* Parameters: the two tensors' names ("kernel", "bias") and offset-macro suffixes; NULL: none. */
    const char *tensor[2];
    const char *macro[2];
    int (*tensor_shape)(const layer *l, int t, int dims[4]); /* tensor t's dims; returns the rank */
    const char *layout[2];    /* their axes: "HWIO", "IO", "O", "C" (Keras's layouts, the last axis fastest) */
    const char *state_macro; /* its non-trainable state's offset-macro suffix ("RUNNING") */
    const char *state_doc;   /* and what the state holds, for the comment */
    const char *state_tensor[2]; /* the state's two halves, by name ("moving_mean", "moving_variance") */
    void (*init_state)(cgen *g, const layer *l); /* the state at initialization */

    /* Code. A kind with several ways to compute chooses one a layer here (NULL: it has one way). */
    const kernel_strategy *(*strategy)(const layer *l);
    const char *(*kernel)(const layer *l); /* how it computes, for its banner */
    unsigned (*helpers)(const layer *l, const layer_role *r);
    void (*workspace)(const layer *l, const layer_role *r, ws_list *ws);
    void (*emit)(cgen *g, const layer *l, const layer_role *r); /* its functions */
    /* Once a step, one thread, before any slice starts: weights in the layouts the kernels read. */
    void (*prepare)(cgen *g, const layer *l, const layer_role *r, pass_kind pass);
    /*
     * The steps. Most kinds compute in one slice step each way: they set
     * print_forward and print_backward, and the planner makes the steps (a
     * backward step only where there are weights or an input gradient to
     * compute). Kinds with more steps, or other steps at inference, set
     * forward and backward instead.
     */
    void (*print_forward)(cgen *g, const layer *l, const step_args *a);
    void (*print_backward)(cgen *g, const layer *l, const step_args *a);
    step_list (*forward)(const layer *l, pass_kind pass);
    step_list (*backward)(const layer *l, const layer_role *r); /* n = 0: nothing to do */

    /* What the layer's kernels multiply in, where the target allows (NULL: fp32 always). */
    precision_kind (*precision)(const layer *l);

    /* The inference back end: the layer as a plain C99 function of one sample (see single_ctx). */
    void (*emit_single)(cgen *g, const layer *l, const single_ctx *sc);

    /* Export: the layer's node in the inference graph the runtime writes as ONNX (runtime/onnx.c):
     * its op and what only the kind knows (window, strides, pads, eps). The printer fills in the
     * rest (name, shapes, activation, tensors). NULL: no node, the identity at inference (dropout). */
    void (*graph_node)(const layer *l, nnc_graph_node *n);
} layer_kind;

/* The code hooks of a kind with strategies: each calls the layer's strategy's. */
const char *strategy_kernel(const layer *l);
unsigned strategy_helpers(const layer *l, const layer_role *r);
void strategy_workspace(const layer *l, const layer_role *r, ws_list *ws);
void strategy_emit(cgen *g, const layer *l, const layer_role *r);
void strategy_prepare(cgen *g, const layer *l, const layer_role *r, pass_kind pass);
void strategy_print_forward(cgen *g, const layer *l, const step_args *a);
void strategy_print_backward(cgen *g, const layer *l, const step_args *a);
precision_kind strategy_precision(const layer *l);
#define STRATEGY_HOOKS(choose)                                                                                         \
    .strategy = choose, .kernel = strategy_kernel, .helpers = strategy_helpers, .workspace = strategy_workspace,     \
    .emit = strategy_emit, .prepare = strategy_prepare, .print_forward = strategy_print_forward,                     \
    .print_backward = strategy_print_backward, .precision = strategy_precision

/* Whether the layer has a prepare step (its kind's, or its strategy's). */
int layer_prepares(const layer *l);

/* The steps of a layer, from its kind (the planner's view of the fields above). */
step_list layer_forward_steps(const layer *l, pass_kind pass);
step_list layer_backward_steps(const layer *l, const layer_role *r);

/* The options of every layer with weights: init=, bias_init=, l1=, l2=, as four schema rows... */
#define WEIGHT_OPTIONS                                                                                                 \
    {"init", OPT_INIT, 0, 0, NULL}, {"bias_init", OPT_INIT, 0, 0, NULL}, {"l1", OPT_NUMBER, 0, 10, NULL},            \
        {"l2", OPT_NUMBER, 0, 10, NULL}
/* ...and their values (v: the first of the four) into l. */
void apply_weight_options(layer *l, const option_value *v);
/* For emit_single: the layer's kernel and bias as constants <prefix>_<name>_w and _b, their last axis
 * (`outputs` wide) padded with zeros to `padded`. */
void print_single_weights(cgen *g, const layer *l, const single_ctx *sc, int outputs, int padded);
/* The derivative of l's activation applied to `dout` from the stored `out` (where the layer above
 * applies it instead, a comment that says so). */
void print_act_backward(cgen *g, const layer *l, const layer_role *r, int width);
/* A step call `NAME_forward(out, in, lo, hi)`, or `NAME_backward(din, dout, lo, hi)`: kinds without weights. */
void print_forward_in_out(cgen *g, const layer *l, const step_args *a);
void print_backward_din_dout(cgen *g, const layer *l, const step_args *a);

/* Batchnorm at inference as out = in * scale + shift per channel, from gamma, beta and the running
 * statistics (mean, then variance): for its own code and for folding into the layer before it. */
void batchnorm_fold(const layer *l, const float *gamma, const float *beta, const float *running, float *scale,
                    float *shift);

/* The table (layers/kinds.def, layers/kinds.c). */
extern const layer_kind *const layer_kinds[];
extern const int n_layer_kinds;
const layer_kind *layer_kind_for_word(const char *word);
/* Every statement word of every kind, NULL-terminated, for "did you mean". */
const char *const *layer_words(void);

/* Shared by the kinds' printers. */
static inline step_list one_step(step_scope scope, void (*print)(cgen *, const layer *, const step_args *))
{
    step_list s = {1, {{.scope = scope, .print = print}}};
    return s;
}
static inline step_list no_steps(void)
{
    step_list s = {0, {{.scope = STEP_SLICE}}};
    return s;
}

#endif
