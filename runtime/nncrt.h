/*
 * nncrt.h - the runtime that nnc-generated trainers link against.
 *
 * A generated file describes one fixed-shape model as an `nnc_model`: its
 * constants, its recipe (the DSL's `train` block) and four functions that do
 * the maths (init, train_batch, infer_batch). Everything that is the same for
 * every model lives here instead: reading the data (MNIST's IDX, CIFAR-10,
 * image folders), the RNG, the optimizers, the training loop, checkpoints and
 * the command line. The generated main() is one line:
 * `return nnc_main(&nnc_model_def, argc, argv);`.
 *
 * Conventions
 *  - Tensors are float32, row-major, NHWC (batch, height, width, channels),
 *    the layout Keras uses with the TensorFlow backend.
 *  - All trainable parameters live in one flat buffer; gradients and the
 *    optimizer's state use the same layout, so an update is one flat loop.
 *  - Non-trainable state (batchnorm running statistics) lives in a second
 *    flat buffer that the optimizer never touches.
 *  - Nothing here reads the clock to seed anything: same seed, same run.
 */
#ifndef NNCRT_H
#define NNCRT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NNC_VERSION "0.1.0"

/* ------------------------------------------------------------------------ */
/* Random numbers: PCG32 (O'Neill, pcg-random.org, pcg32_random_r).        */
/* ------------------------------------------------------------------------ */

typedef struct {
    uint64_t state;
    uint64_t inc; /* stream selector, always odd */
} nnc_rng;

/* pcg32_srandom_r: seed and stream as in the reference implementation. */
void nnc_rng_seed(nnc_rng *rng, uint64_t seed, uint64_t stream);
uint32_t nnc_rng_u32(nnc_rng *rng);
/* Uniform in [0, 1) with 24 random bits. */
float nnc_rng_uniform(nnc_rng *rng);
/* Uniform integer in [0, bound), unbiased (rejection). */
uint32_t nnc_rng_below(nnc_rng *rng, uint32_t bound);
/* Standard normal (Box-Muller, both values used in turn are not cached). */
float nnc_rng_normal(nnc_rng *rng);

/*
 * Counter-based uniform in [0, 1): a pure function of (key, index).
 * Dropout masks use it so that a mask does not depend on which thread
 * computed which sample: the result is the same with 1 or 2 threads.
 */
static inline uint64_t nnc_splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
/* Inline: dropout calls it once per element. */
static inline float nnc_hash_uniform(uint64_t key, uint64_t index)
{
    uint64_t h = nnc_splitmix64(key ^ nnc_splitmix64(index));
    return (float)(h >> 40) * (1.0f / 16777216.0f);
}

/* Format a message into err[errlen] (nothing if err is NULL): how every runtime function reports a failure. */
void nnc_set_error(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* CRC-32 (zlib's) of p[0..len) continued from crc (0 to start), for any length. */
uint32_t nnc_crc32(uint32_t crc, const uint8_t *p, size_t len);

/* 1 if every x[0..n) is finite (no NaN, no infinity). */
int nnc_all_finite(const float *x, size_t n);

/* The index of the largest p[0..n), the first of equal maxima as numpy's argmax. */
int nnc_argmax(const float *p, int n);

/* ------------------------------------------------------------------------ */
/* Matrix products (runtime/blas.c, the one file that calls BLAS).          */
/* ------------------------------------------------------------------------ */

typedef enum { NNC_NO_TRANS, NNC_TRANS } nnc_transpose;

/* Row-major c[m][n] = op(a)[m][k] . op(b)[k][n], c overwritten; op transposes
 * a or b when asked. The generated trainers call BLAS only through this, so
 * they compile without a BLAS header, for any target. */
void nnc_sgemm(nnc_transpose trans_a, nnc_transpose trans_b, int m, int n, int k, const float *a, int lda,
               const float *b, int ldb, float *c, int ldc);

/* Keep BLAS to the calling thread: the trainers parallelize with OpenMP themselves. */
void nnc_blas_single_threaded(void);

/* ------------------------------------------------------------------------ */
/* Initializers (Keras 2 definitions).                                      */
/* ------------------------------------------------------------------------ */

typedef enum {
    NNC_INIT_ZEROS,
    NNC_INIT_ONES,
    NNC_INIT_GLOROT_UNIFORM, /* U(-l, l), l = sqrt(6 / (fan_in + fan_out)) */
    NNC_INIT_GLOROT_NORMAL,  /* truncated N(0, sqrt(2 / (fan_in + fan_out))) */
    NNC_INIT_HE_UNIFORM,     /* U(-l, l), l = sqrt(6 / fan_in) */
    NNC_INIT_HE_NORMAL,      /* truncated N(0, sqrt(2 / fan_in)) */
    NNC_INIT_UNIFORM,        /* Keras 1 'uniform': U(-0.05, 0.05) */
} nnc_init_kind;

/* Fill w[0..n) by `kind`; fan_in/fan_out as Keras computes them. */
void nnc_init_fill(float *w, size_t n, nnc_init_kind kind, int fan_in, int fan_out, nnc_rng *rng);

/* ------------------------------------------------------------------------ */
/* The recipe: what the DSL's `train` block says.                           */
/* ------------------------------------------------------------------------ */

typedef enum { NNC_LOSS_CROSSENTROPY, NNC_LOSS_MSE } nnc_loss_kind;

/* One sample's loss from its output p[0..n_classes) and its label, in double precision:
 * crossentropy -log p[label] with p clipped to [1e-7, 1 - 1e-7] as Keras does, or the mean
 * over classes of (p - onehot)^2. Training (the generated code) and evaluation both use it. */
double nnc_sample_loss(nnc_loss_kind kind, const float *p, int n_classes, int label);
typedef enum { NNC_OPT_SGD, NNC_OPT_ADAM, NNC_OPT_RMSPROP } nnc_optimizer_kind;
typedef enum {
    NNC_PREP_NONE,
    NNC_PREP_SCALE,
    NNC_PREP_NORMALIZE, /* (x - mean) / std, one mean and std of every training pixel */
    NNC_PREP_CHANNELS,  /* (x / 255 - mean[c]) / std[c], the model's constants: torchvision's Normalize */
} nnc_prep_kind;

/* Channels a per-channel `normalize mean=.. std=..` can name (RGBA at most). */
#define NNC_MAX_PREP_CHANNELS 4

typedef struct {
    nnc_optimizer_kind kind;
    float lr;
    float momentum; /* sgd */
    int nesterov;   /* sgd */
    float beta1, beta2; /* adam */
    float rho;      /* rmsprop */
    float eps;      /* adam, rmsprop */
} nnc_optimizer_cfg;

/* One piece of a piecewise-constant schedule: `epochs` epochs at `lr`. */
typedef struct {
    int epochs;
    float lr;
} nnc_schedule_phase;

/* How the learning rate moves from epoch to epoch. */
typedef enum {
    NNC_SCHED_CONSTANT,  /* optimizer.lr throughout */
    NNC_SCHED_PIECEWISE, /* the phases: (epochs, lr) in order, the last lr kept after them */
    NNC_SCHED_STEP,      /* lr * factor^(epoch / every) */
    NNC_SCHED_COSINE,    /* from lr down to min_lr over the epochs, half a cosine */
    NNC_SCHED_ONECYCLE,  /* up from lr to max_lr over the first 30% of the steps, then down to lr / 1e4 (cosine) */
} nnc_schedule_kind;

typedef struct {
    float rotation;     /* degrees, uniform in [-r, r] */
    float width_shift;  /* fraction of the width */
    float height_shift; /* fraction of the height */
    float shear;        /* radians: Keras 1's and Keras < 2.2's shear_range (keras-preprocessing's is degrees) */
    float zoom;         /* scale in [1 - z, 1 + z] */
    int horizontal_flip; /* 1: mirror left-right with probability 1/2 (Keras's horizontal_flip) */
} nnc_augment_cfg;

typedef struct {
    nnc_loss_kind loss;
    nnc_optimizer_cfg optimizer;
    int batch;
    int epochs; /* total; the sum of the schedule's phases when there is one */
    nnc_schedule_kind schedule;
    int n_phases;
    const nnc_schedule_phase *phases; /* NNC_SCHED_PIECEWISE */
    int step_every;   /* NNC_SCHED_STEP: epochs between decays */
    float step_factor; /* NNC_SCHED_STEP: multiplier at each decay */
    float min_lr;     /* NNC_SCHED_COSINE: the last epoch's rate */
    float max_lr;     /* NNC_SCHED_ONECYCLE: the peak rate */
    uint64_t seed;
    int augment; /* 0: no augmentation */
    nnc_augment_cfg aug;
} nnc_recipe;

/* ------------------------------------------------------------------------ */
/* The model a generated file describes.                                    */
/* ------------------------------------------------------------------------ */

/* What one training step reports back. */
typedef struct {
    double loss_sum; /* sum over the batch of each sample's loss (penalties excluded) */
    int correct;     /* samples whose argmax matched the label */
} nnc_batch_stats;

/* The processes that train one model together (MPI; dist.c). */
typedef struct nnc_dist nnc_dist;

/* What a process exchanged: bytes sent (a copy to each process that needs them) and received, and
 * how many exchanges (an nnc_dist_share is one, an nnc_dist_sum_slices two). */
typedef struct {
    double sent, received, exchanges;
} nnc_traffic;

typedef struct {
    int threads;          /* 1 or more; results do not depend on it */
    uint64_t dropout_key; /* fresh for every step; masks are hash(key, index) */
    void *workspace;      /* the model's buffers: nnc_workspace_new(m), one per concurrent user */
    const nnc_dist *dist; /* training: the processes sharing the step's slices; NULL: this one alone */
} nnc_step_ctx;

/* One named tensor: a slice [offset, offset + count) of the flat parameter (or state) buffer,
 * with its shape and how its axes are laid out (Keras's layouts, the last axis fastest). */
typedef struct {
    const char *name; /* "conv2d_1.kernel", "batch_normalization_1.moving_mean" */
    size_t offset, count;
    int rank;         /* how many of dims are used */
    int dims[4];      /* [3][3][1][32] */
    const char *layout; /* "HWIO" (conv kernels), "IO" (dense kernels), "O" / "C" (vectors) */
    int from_image[3];  /* a dense kernel whose input is an image flattened (NHWC rows): its h, w, c; else 0s */
} nnc_tensor_info;

/*
 * The inference graph (for --export FILE.onnx, runtime/onnx.c): one node a
 * layer that computes at inference, in order (dropout, off at inference, has
 * none). The compiler writes the table; each layer kind says which op it is.
 */
typedef enum {
    NNC_NODE_DENSE,         /* Gemm */
    NNC_NODE_CONV,          /* Conv */
    NNC_NODE_MAXPOOL,       /* MaxPool */
    NNC_NODE_AVGPOOL,       /* AveragePool */
    NNC_NODE_GLOBALAVGPOOL, /* GlobalAveragePool */
    NNC_NODE_FLATTEN,       /* Flatten (behind a Transpose when the consumer reads NHWC order) */
    NNC_NODE_BATCHNORM,     /* BatchNormalization */
    NNC_NODE_ACTIVATION,    /* only its activation */
} nnc_node_op;
typedef enum { NNC_ACT_LINEAR, NNC_ACT_RELU, NNC_ACT_SIGMOID, NNC_ACT_TANH, NNC_ACT_SOFTMAX } nnc_act;
typedef struct {
    nnc_node_op op;
    const char *name;         /* the layer's: "conv2d_1" */
    int in[3], out[3];        /* one sample's h, w, c (a flat vector: 1, 1, n) */
    int kernel[2], stride[2]; /* conv and pools: h, w */
    int pads[4];              /* conv: top, left, bottom, right (ONNX's order) */
    float eps;                /* batchnorm */
    nnc_act act;              /* applied after the op (NNC_NODE_ACTIVATION: all it does) */
    int tensor;               /* its first parameter tensor in tensors[] (the second follows); -1: none */
    int state_tensor;         /* its first state tensor in state_tensors[] (likewise); -1: none */
    int flatten_nhwc;         /* flatten: what follows reads nnc's NHWC order, not the NCHW order
                                 of the dense kernels' from_image (nnc_torch_index) */
} nnc_graph_node;

typedef struct nnc_model {
    const char *name;
    const char *source; /* the .nn file it was compiled from */
    int in_h, in_w, in_c;
    int in_resize; /* 1: `input HxWxC resize=bilinear`, image files of another size are resized */
    int n_classes;
    size_t n_params; /* trainable floats */
    size_t n_state;  /* non-trainable floats (batchnorm running statistics) */
    uint64_t signature; /* hash of every layer's kind and shape: guards checkpoints */
    int max_batch;      /* the batch the buffers were sized for (recipe.batch) */
    int slices;         /* CHUNKS: the fixed slices of a batch, the most processes a step can be split over */
    size_t workspace_bytes; /* a step's buffers (activations, gradients, scratch): see nnc_workspace_new */
    int default_threads; /* what --threads defaults to: 1 where a step is too small to share */
    const char *precision; /* `precision bf16`: which layers multiply in bfloat16 in this build; NULL: fp32 */
    nnc_prep_kind prep;
    float prep_scale; /* NNC_PREP_SCALE: x * prep_scale */
    float prep_mean[NNC_MAX_PREP_CHANNELS], prep_std[NNC_MAX_PREP_CHANNELS]; /* NNC_PREP_CHANNELS, per channel */
    nnc_recipe recipe;

    int n_tensors;
    const nnc_tensor_info *tensors;       /* the parameters, in the flat buffer's order */
    int n_state_tensors;
    const nnc_tensor_info *state_tensors; /* the non-trainable state (batchnorm's moving mean and variance) */
    int n_graph_nodes;
    const nnc_graph_node *graph; /* the inference graph, for ONNX export */

    /* Draw the initial parameters and reset the state buffer. */
    void (*init)(float *params, float *state, nnc_rng *rng);
    /*
     * Forward in training mode, loss, backward. x: [n][in_h][in_w][in_c]
     * preprocessed floats; labels: [n]. Writes grads (overwritten, not
     * accumulated) as the gradient of the batch-mean loss plus penalties,
     * and updates the running statistics in state. 1 <= n <= max_batch.
     */
    nnc_batch_stats (*train_batch)(const nnc_step_ctx *ctx, const float *x, const uint8_t *labels, int n,
                                   const float *params, float *grads, float *state);
    /* Forward in inference mode; probs: [n][n_classes]. 1 <= n <= max_batch. */
    void (*infer_batch)(const nnc_step_ctx *ctx, const float *x, int n, const float *params,
                        const float *state, float *probs);
    /*
     * After a step of n samples: a description of the first layer whose output
     * holds a NaN or an infinity ("conv2d_2 (line 11, `conv 32 3x3 relu`)"),
     * or NULL when every activation is finite. For diagnosing a NaN loss and
     * for --check-numerics; it reads the step's workspace.
     */
    const char *(*first_nonfinite)(const void *workspace, int n);
    /* Human-readable summary table (the same as `nnc --summary`). */
    const char *summary;
} nnc_model;

/* A zeroed, 64-byte aligned workspace for m's steps, or NULL when memory is short. */
void *nnc_workspace_new(const nnc_model *m);
void nnc_workspace_free(void *workspace);

/* ------------------------------------------------------------------------ */
/* Data: MNIST's IDX layout, raw or gzip-compressed; CIFAR-10's binary one.  */
/* ------------------------------------------------------------------------ */

typedef struct {
    int n, h, w, c; /* images are n x h x w x c bytes (NHWC); c is 1 (grey) or 3 (RGB) */
    uint8_t *images;
    uint8_t *labels;
    int n_class_names;  /* 0: the classes are known by their numbers only */
    char **class_names; /* [n_class_names], owned; from batches.meta.txt or the folder names */
} nnc_dataset;

/*
 * Read `<dir>/<prefix>-images-idx3-ubyte[.gz]` and the matching labels
 * (prefix "train" or "t10k"). On failure returns -1 and writes a message
 * naming the file and the problem into err.
 */
int nnc_dataset_load(nnc_dataset *ds, const char *dir, const char *prefix, char *err, size_t errlen);
void nnc_dataset_free(nnc_dataset *ds);
/* Read one IDX file whole (gzip or raw). Exposed for tests and fuzzing.
 * dims gets the sizes (unused ones 1), *data a malloc'ed copy of the bytes,
 * *count the number of bytes (the product of the sizes). */
int nnc_idx_read(const char *path, int expect_dims, int dims[3], uint8_t **data, size_t *count, char *err,
                 size_t errlen);
/* The same for a file's bytes already in memory; `name` is for messages. */
int nnc_idx_decode(const char *name, const uint8_t *bytes, size_t len, int expect_dims, int dims[3], uint8_t **data,
                   size_t *count, char *err, size_t errlen);
/* (added) Does the dataset fit the model: h x w x c == in_h x in_w x in_c,
 * no more class names than n_classes and every label < n_classes? `what`
 * names the data in the message. */
int nnc_dataset_check(const nnc_dataset *ds, const nnc_model *m, const char *what, char *err, size_t errlen);

/*
 * CIFAR-10's binary layout (cifar.c): records of 1 label byte and 3072 pixel
 * bytes, the red, green and blue 32x32 planes in turn, 10000 records a file.
 * nnc_cifar_load reads `<dir>/data_batch_1.bin` .. `data_batch_5.bin` (split
 * "train") or `<dir>/test_batch.bin` ("test"), and the class names from
 * `<dir>/batches.meta.txt` when it is there; the images come out NHWC.
 */
#define NNC_CIFAR_SIDE 32
#define NNC_CIFAR_RECORD (1 + 3 * NNC_CIFAR_SIDE * NNC_CIFAR_SIDE)
#define NNC_CIFAR_TRAIN_FILES 5
int nnc_cifar_load(nnc_dataset *ds, const char *dir, const char *split, char *err, size_t errlen);
/* One file's bytes, appended to ds (which may hold earlier files' images); `name` is for messages. */
int nnc_cifar_decode(const char *name, const uint8_t *bytes, size_t len, nnc_dataset *ds, char *err, size_t errlen);
/* Class names, one a line (blank lines ignored), as batches.meta.txt holds them; into ds. */
int nnc_class_names_read(const char *path, nnc_dataset *ds, char *err, size_t errlen);
/* The same from bytes in memory; `name` is for messages. */
int nnc_class_names_decode(const char *name, const uint8_t *text, size_t size, nnc_dataset *ds, char *err,
                           size_t errlen);

/* (added) One decoded image (image.c): h x w x c bytes, c 1 (grey) or 3 (RGB). */
typedef struct {
    int h, w, c;
    uint8_t *px; /* malloc'ed */
} nnc_image;
/* A PNG or JPEG file's bytes (told apart by their signature) as `channels`
 * channels: alpha dropped, grey as PIL's convert('L'). Returns 0, or -1 with a
 * message naming path (corrupt, truncated, neither format, too large). */
int nnc_image_decode(const char *path, const uint8_t *data, size_t size, int channels, nnc_image *out, char *err,
                     size_t errlen);
/* A PNG's pixels as RGBA8 (c = 4), any colour type and bit depth; -1 with a message naming path. */
int nnc_png_decode_rgba(const char *path, const uint8_t *data, size_t size, nnc_image *out, char *err,
                        size_t errlen);
/* 0 when a w x h image is worth decoding (not empty, at most 64 M pixels), else -1 with a message. */
int nnc_image_size_ok(const char *path, long w, long h, char *err, size_t errlen);
/* Bilinear, half-pixel centres (tf.image.resize's), rounded to 8 bits: out is oh x ow x in->c. */
void nnc_image_resize_bilinear(const nnc_image *in, int oh, int ow, uint8_t *out);

/*
 * (added) An image-folder layout, as Keras's image_dataset_from_directory
 * reads it (folders.c): `split_dir/<class>/<file>.png|.jpg|.jpeg`. Classes are
 * the sub-folders in sorted (byte) order, label = position; images come class
 * by class, each class's files in sorted (byte) order. Every image is decoded
 * once, on `threads` threads, into h x w x c bytes: resized bilinearly when
 * `resize` is 1, otherwise a file of another size is an error naming the
 * first one (in that order). With `classes` (the training split) the folders
 * must be among its classes and take their labels from it; its names are
 * copied. Progress goes to `progress` (NULL: quiet). Returns 0, or -1 with a
 * message naming the file or folder.
 */
int nnc_folder_load(nnc_dataset *ds, const char *split_dir, const nnc_dataset *classes, int h, int w, int c,
                    int resize, int threads, FILE *progress, char *err, size_t errlen);
/* Only the class names of split_dir (its sub-folders, sorted), no images: for labelling another split. */
int nnc_folder_classes(nnc_dataset *ds, const char *split_dir, char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* Optimizers: flat loops over parameter, gradient and state buffers.       */
/* ------------------------------------------------------------------------ */

typedef struct {
    nnc_optimizer_cfg cfg;
    size_t n;
    float *slot1; /* sgd: velocity; adam: m; rmsprop: mean square */
    float *slot2; /* adam: v */
    long step;    /* updates done, for adam's bias correction */
} nnc_optimizer;

int nnc_optimizer_init(nnc_optimizer *opt, const nnc_optimizer_cfg *cfg, size_t n);
void nnc_optimizer_free(nnc_optimizer *opt);
void nnc_optimizer_update(nnc_optimizer *opt, float *params, const float *grads, float lr);

/* The learning rate for a 0-based epoch under the recipe's schedule (at its first step). */
float nnc_schedule_lr(const nnc_recipe *recipe, int epoch);
/* The learning rate at a step of an epoch of steps_per_epoch steps: one cycle moves
 * every step; every other schedule holds for the whole epoch. */
float nnc_schedule_lr_at(const nnc_recipe *recipe, int epoch, int step, int steps_per_epoch);

/* ------------------------------------------------------------------------ */
/* Checkpoints.                                                             */
/* ------------------------------------------------------------------------ */

/* Written to a temporary file, flushed, fsync'ed and renamed into place. */
int nnc_checkpoint_save(const char *path, const nnc_model *m, const float *params, const float *state,
                        const float prep[2], char *err, size_t errlen);
int nnc_checkpoint_load(const char *path, const nnc_model *m, float *params, float *state, float prep[2],
                        char *err, size_t errlen);

/* (added) The training loop's resumable state, defined with nnc_train below. */
typedef struct nnc_train_state nnc_train_state;

/* (added) What a run was asked to do; a resumed run must ask the same. */
typedef struct {
    int epochs;
    uint64_t seed;
    int validation;     /* images held out (--validation), 0: none */
    int early_stop;     /* patience, 0: none */
    float lr;           /* --lr, 0: the recipe's schedule */
    int n_train;        /* training images after the hold-out */
    uint32_t data_crc;  /* CRC-32 of the training images and labels */
} nnc_run_key;

/* (added) Format version 2: the weights plus a training section (the run key
 * and the nnc_train_state) from which --resume continues. A v2 file also loads
 * with nnc_checkpoint_load, as weights. */
int nnc_checkpoint_save_train(const char *path, const nnc_model *m, const float *params, const float *state,
                              const float prep[2], const nnc_run_key *key, const nnc_train_state *ts, char *err,
                              size_t errlen);
/* ts must come from nnc_train_state_init for the same model; a file without a
 * training section (a weights file) is an error. */
int nnc_checkpoint_load_train(const char *path, const nnc_model *m, float *params, float *state, float prep[2],
                              nnc_run_key *key, nnc_train_state *ts, char *err, size_t errlen);

/* Files (files.c). Write size bytes to a temporary file next to path, fsync,
 * rename: path is either the old file or the whole new one, never a part
 * (keeping an existing file's permissions). A path that exists and is not a
 * regular file (/dev/null, a pipe) is written in place. */
int nnc_write_file_atomically(const char *path, const void *buf, size_t size, char *err, size_t errlen);
/* Read a whole regular file or pipe into a malloc'ed *data; directories and
 * devices are refused, and so is a file of more than max_bytes, naming `what`
 * it should have been ("a checkpoint"), without reading past max_bytes + 1. */
int nnc_read_file(const char *path, const char *what, size_t max_bytes, uint8_t **data, size_t *size, char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* The trainer: the whole command line of a generated program.              */
/* ------------------------------------------------------------------------ */

/*
 * --predict: classify the user's own images (PNG or PGM), each resized to the
 * model's input the way MNIST digits were made, and print the class and the
 * probabilities. Returns 0, or 1 after a clear message on a bad file.
 */
int nnc_predict_files(const nnc_model *m, const float *params, const float *state, const float prep[2],
                      int n_files, char **files, int threads, FILE *out);
/* (added) The same, naming each class after its number when classes has names (NULL: numbers only). */
int nnc_predict_files_named(const nnc_model *m, const float *params, const float *state, const float prep[2],
                            const nnc_dataset *classes, int n_files, char **files, int threads, FILE *out);
/* (added) Class k's name in ds, or NULL when ds has none or the name is only the number k (folders 0..9). */
const char *nnc_class_name(const nnc_dataset *ds, int k);
/* (added) The image part of it: read a PNG or PGM file and make it an MNIST-like
 * h x w grey digit, white on black, before the model's own preprocessing (see
 * predict.c for the steps). Returns 0, or -1 with a message naming the file. */
int nnc_image_load_mnist(const char *path, int h, int w, uint8_t *out, char *err, size_t errlen);

int nnc_main(const nnc_model *m, int argc, char **argv);

/*
 * Called first by a generated main(): libgomp reads its spin settings once,
 * before main, and by default spins for about a millisecond at every barrier,
 * which on a shared machine holds a core that the thread being waited for
 * needs. Unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT, set a short
 * spin and start the program again with it. Returns only if it did nothing.
 */
void nnc_prefer_short_spin(char **argv);

/* (added) The pieces nnc_main is made of, usable on in-memory datasets. */

/* One epoch of the training history: a row of `<stem>.history.csv`. */
typedef struct {
    int epoch;                       /* 1-based */
    double lr, loss, accuracy;       /* training; accuracy in [0, 1] */
    double val_loss, val_accuracy;   /* NAN when there is no validation data */
    double seconds;                  /* the epoch's wall time, evaluation included */
    double images_per_second;        /* training images / training time */
} nnc_history_row;

/*
 * (added) Everything the loop needs to continue exactly where it stopped: a
 * run resumed from it gives bit-identical weights. Saved in checkpoints (see
 * nnc_checkpoint_save_train). Set up with nnc_train_state_init.
 */
struct nnc_train_state {
    int started;           /* 0: nnc_train seeds the RNG (and initializes); 1: it continues */
    int epoch;             /* 0-based epoch in progress */
    int step;              /* steps of it done; 0: the epoch has not started */
    nnc_rng rng_epoch;     /* the RNG before this epoch's shuffle: redraws its order */
    nnc_rng rng;           /* the RNG now */
    double loss_sum;       /* this epoch's running sums over the steps done */
    long correct, seen;
    double seconds;        /* this epoch's training time so far */
    nnc_optimizer opt;     /* slots and step count */
    int best_epoch;        /* 1-based epoch with the best validation accuracy; 0: none yet */
    double best_accuracy;
    int since_best;        /* epochs since then, for early stopping */
    int n_history, cap_history;
    nnc_history_row *history; /* [n_history], one per finished epoch */
    int n_classes;            /* the model's outputs */
    float *class_accuracy;    /* [cap_history][n_classes]: each epoch's validation accuracy per class (recall,
                                 in [0, 1]); NAN without validation data or without an image of the class */
};

int nnc_train_state_init(nnc_train_state *ts, const nnc_model *m, int epochs);
void nnc_train_state_free(nnc_train_state *ts);

/* Called by nnc_train at a checkpoint; returns 0, or -1 with a message in err
 * to stop training. params/state are finite when it is called. */
typedef int (*nnc_train_hook)(void *ctx, const nnc_train_state *ts, const float *params, const float *state,
                              char *err, size_t errlen);

typedef struct {
    int epochs;       /* how many epochs to run */
    uint64_t seed;    /* seeds the one RNG used for init, shuffling, dropout keys, augmentation */
    int threads;      /* passed to the model in nnc_step_ctx */
    int init_params;  /* 1: draw params with m->init; 0: params/state already hold weights */
    FILE *log;        /* one line per epoch goes here; NULL: quiet */
    /* (added) Everything below may stay zero. */
    int progress;          /* 1: a Keras-like line updated in place (\r) during each epoch (log is a terminal) */
    const char *val_name;  /* the evaluation set's name in the log: "test" (NULL) or "val" */
    int early_stop;        /* > 0: stop after this many epochs without a better validation accuracy */
    int check_numerics;    /* 1: m->first_nonfinite after every step, not only when the loss is not finite */
    nnc_train_state *state; /* NULL: a fresh run with a state of its own; else used (and resumed if started) */
    nnc_train_hook on_epoch;      /* after each epoch's evaluation and history row */
    nnc_train_hook on_checkpoint; /* mid-epoch, every checkpoint_steps steps or checkpoint_seconds seconds */
    long checkpoint_steps;        /* 0: no step-count checkpoints */
    double checkpoint_seconds;    /* 0: no time-based checkpoints */
    void *hook_ctx;
    /* The processes training together (MPI): each computes its share of every step's slices and
     * of every evaluation's batches. The hooks run on every process: they write only on rank 0. */
    const nnc_dist *dist;
} nnc_train_opts;

typedef struct {
    int epochs_done;
    double train_loss, train_acc; /* last epoch; acc in [0, 1] */
    double test_loss, test_acc;   /* last epoch, on the evaluation set; 0 when there is none */
    double train_seconds;         /* (added) last epoch's wall time without evaluation: the log's img/s */
    int best_epoch;               /* (added) 1-based epoch of the best evaluation accuracy; 0: no evaluation */
    double best_acc;
    int stopped_early;            /* (added) 1: early_stop ended the run before opts->epochs */
    /* Several processes: what one training step exchanged, per process (evaluation excluded). */
    nnc_traffic step_traffic;
} nnc_train_result;

/* Preprocessing constants for m->prep: NORMALIZE {mean, std} of all training
 * pixels; SCALE {prep_scale, 0}; NONE {0, 0}. Stored in checkpoints. */
void nnc_prep_compute(const nnc_model *m, const nnc_dataset *train, float prep[2]);
/* uint8 pixel value of channel `channel` -> model input, for all 256 values. */
void nnc_prep_table(const nnc_model *m, const float prep[2], int channel, float table[256]);

/* Test-set loss (the recipe's loss, crossentropy clipped at 1e-7 as Keras) and
 * accuracy in [0, 1], in inference mode. */
int nnc_evaluate(const nnc_model *m, const nnc_dataset *ds, const float *params, const float *state,
                 const float prep[2], int threads, double *loss, double *acc, char *err, size_t errlen);
/* (added) The same, also counting confusion[true * n_classes + predicted]
 * (n_classes * n_classes longs, overwritten) when confusion is not NULL. */
int nnc_evaluate_confusion(const nnc_model *m, const nnc_dataset *ds, const float *params, const float *state,
                           const float prep[2], int threads, double *loss, double *acc, long *confusion, char *err,
                           size_t errlen);
/* (added) The matrix, one row per true class with its accuracy (recall) last;
 * rows carry the class names when ds has them. */
void nnc_print_confusion(FILE *out, const long *confusion, int n_classes, const nnc_dataset *ds, const char *what);

/* The training loop. test (the validation data, evaluated after every epoch)
 * may be NULL. Returns 0, or -1 with a message (e.g. a non-finite loss or
 * gradient, naming the epoch, the step and the first non-finite layer). */
int nnc_train(const nnc_model *m, const nnc_dataset *train, const nnc_dataset *test, const nnc_train_opts *opts,
              float *params, float *state, const float prep[2], nnc_train_result *result, char *err, size_t errlen);

/* (added) One random Keras-style affine distortion of an h x w x c image. */
void nnc_augment_image(const nnc_augment_cfg *cfg, int h, int w, int c, const float *src, float *dst, nnc_rng *rng);
/* (added) Its two halves: one draw, in Keras's terms, and the deterministic
 * transform it stands for (for tests: a known image, a known angle). */
typedef struct {
    double theta;  /* rotation, degrees; > 0 turns the content clockwise as displayed */
    double tx, ty; /* shift in pixels along rows (tx) and columns (ty) */
    double shear;  /* radians */
    double zx, zy; /* zoom along rows and columns; > 1 shrinks the content */
    int flip;      /* 1: mirrored left-right after the affine part, as Keras flips after it */
} nnc_augment_params;
void nnc_augment_draw(const nnc_augment_cfg *cfg, int h, int w, nnc_rng *rng, nnc_augment_params *p);
void nnc_augment_apply(const nnc_augment_params *p, int h, int w, int c, const float *src, float *dst);

/* ------------------------------------------------------------------------ */
/* (added) Training history: CSV and SVG plots (history.c).                 */
/* ------------------------------------------------------------------------ */

/* epoch,lr,loss,accuracy,val_loss,val_accuracy,seconds,images_per_second, then, when class_accuracy is
 * not NULL, one column a class, val_accuracy_NAME (each epoch's validation accuracy of that class;
 * NAME from classes' names, or the class's number when classes is NULL or has none); empty validation
 * fields when there was no validation data. Atomic. */
int nnc_history_write_csv(const char *path, const nnc_history_row *rows, int n, const float *class_accuracy,
                          int n_classes, const nnc_dataset *classes, char *err, size_t errlen);

typedef enum { NNC_PLOT_ACCURACY, NNC_PLOT_LOSS } nnc_plot_kind;

/* A line chart of training and validation accuracy (in %) or loss per epoch:
 * axes with ticks and labels, a legend naming val_name, a title. Atomic. */
int nnc_history_write_svg(const char *path, nnc_plot_kind kind, const char *title, const char *val_name,
                          const nnc_history_row *rows, int n, char *err, size_t errlen);

/* Each class's validation accuracy (in %) per epoch, one line a class, the legend naming the classes
 * (classes' names, else their numbers; up to 10 classes, more are named in the CSV only). Atomic. */
int nnc_history_write_class_svg(const char *path, const char *title, const nnc_history_row *rows, int n,
                                const float *class_accuracy, int n_classes, const nnc_dataset *classes, char *err,
                                size_t errlen);

/* ------------------------------------------------------------------------ */
/* (added) Benchmark: `trainer --bench`, throughput on synthetic data.      */
/* ------------------------------------------------------------------------ */

typedef struct {
    double seconds; /* rough wall-time budget for the whole benchmark, > 0 */
    uint64_t seed;  /* seeds the synthetic images and labels, the weights and dropout keys */
    int threads;    /* passed to the model in nnc_step_ctx */
} nnc_bench_opts;

/* Images per second over `windows` timed windows of `steps` steps each. */
typedef struct {
    double median, min, max;
    int windows;
    long steps; /* per window; for the epoch rate, 1 (one epoch is one window) */
} nnc_bench_rate;

typedef struct {
    /* Steady state, inputs already converted, at the recipe's batch:
     * train = m->train_batch + nnc_optimizer_update (the recipe's optimizer
     * at learning rate 0, so the weights stay as initialized: see train.c),
     * infer = m->infer_batch. */
    nnc_bench_rate train, infer;
    /* nnc_train's own epoch loop (shuffle, uint8 -> float conversion,
     * augmentation, steps, updates) over the first epoch_images images of a
     * synthetic MNIST-sized training set, timed as its log's img/s. */
    nnc_bench_rate epoch;
    int epoch_images;
    int batch;
    float lr; /* the epochs' learning rate: the schedule's first */
} nnc_bench_result;

/* Warm up, then time windows of steps; see nnc_bench_result. Holds a
 * 60000-image synthetic training set (like MNIST's) so that the peak memory
 * resembles a real run's. Returns 0, or -1 with a message (out of memory, a
 * non-finite loss). Deterministic work for a seed; only the timings vary. */
int nnc_bench(const nnc_model *m, const nnc_bench_opts *opts, nnc_bench_result *res, char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* (added) Weights for other tools (interop.c): safetensors and npz.        */
/* ------------------------------------------------------------------------ */

/* 1 if path names a format nnc_export_weights writes: `.safetensors`, `.npz` or `.onnx`. */
int nnc_export_format_ok(const char *path);
/* Write the model's tensors (params then state, the tables' names and Keras
 * layouts) as safetensors (with the model, source, version, layouts, prep
 * constants and, when `classes` (may be NULL) has them, the class names as
 * a JSON array in __metadata__'s "classes") or as an npz of NPY 1.0 files, by
 * the extension. Atomic (nnc_write_file_atomically). Returns 0, or -1 with a
 * message. */
int nnc_export_weights(const char *path, const nnc_model *m, const float *params, const float *state,
                       const float prep[2], const nnc_dataset *classes, char *err, size_t errlen);
/* The encoders behind it: a malloc'ed *out of *size bytes; -1 when memory is short. */
int nnc_safetensors_encode(const nnc_model *m, const float *params, const float *state, const float prep[2],
                           const nnc_dataset *classes, uint8_t **out, size_t *size);
int nnc_npz_encode(const nnc_model *m, const float *params, const float *state, uint8_t **out, size_t *size);
/* Where element i (nnc's layout, row-major) of tensor t stands in PyTorch's
 * layout: conv kernels HWIO -> OIHW, dense kernels [in][out] -> [out][in] with
 * the rows of a flattened image (from_image) in NCHW order; vectors as they
 * are. Import reads through it, and ONNX export writes through it. */
size_t nnc_torch_index(const nnc_tensor_info *t, size_t i);
/* Tensor t's shape in PyTorch's layout (OIHW, [out][in], vectors as they are); returns the rank. */
int nnc_torch_shape(const nnc_tensor_info *t, uint64_t shape[4]);
/* The model's inference graph as an ONNX model (opset 13; onnx.c): uint8
 * pixels [N][h][w][c] in, nnc's preprocessing with prep's constants, the
 * layers in NCHW with PyTorch's weight layouts, [N][classes] out. -1 when
 * memory is short, -2 when the graph has a layer ONNX cannot take as it is
 * (none that nnc compiles: a guard against a table out of step). */
int nnc_onnx_encode(const nnc_model *m, const float *params, const float *state, const float prep[2], uint8_t **out,
                    size_t *size);
/* Read a safetensors file written by nnc (its names and layouts) or by PyTorch
 * (L.weight, L.bias, L.running_mean, L.running_var; OIHW conv and [out][in]
 * linear weights, NCHW-flattened inputs; one common prefix such as `mods.`):
 * every tensor of the model, F32, nothing extra. *prep_known is 1 when the
 * file carried nnc's preprocessing constants (then in prep), else 0 (a
 * PyTorch file: the caller computes them, nnc_prep_compute). Returns 0, or -1
 * with a message naming the file; params/state may be partly written then. */
int nnc_safetensors_load(const char *path, const nnc_model *m, float *params, float *state, float prep[2],
                         int *prep_known, char *err, size_t errlen);
/* The same on bytes in memory; `file` names them in messages. */
int nnc_safetensors_decode(const char *file, const uint8_t *bytes, size_t size, const nnc_model *m, float *params,
                           float *state, float prep[2], int *prep_known, char *err, size_t errlen);
/* The class names that --export wrote into a .safetensors file's metadata ("classes"), into names
 * (none when it has none: a PyTorch file, a model trained on MNIST). 0, or -1 with a message. */
int nnc_safetensors_classes(const char *path, nnc_dataset *names, char *err, size_t errlen);
/* --load: `.safetensors` by nnc_safetensors_load, anything else as a checkpoint (prep always known). */
int nnc_weights_load(const char *path, const nnc_model *m, float *params, float *state, float prep[2],
                     int *prep_known, char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* Several processes (dist.c, the only file that calls MPI)                  */
/* ------------------------------------------------------------------------ */

/*
 * Data-parallel training with MPI. Every process runs the same trainer on the
 * same data, and a step's fixed slices are shared out between them:
 * process r of N computes slices [CHUNKS*r/N, CHUNKS*(r+1)/N). Wherever the
 * single process reads every slice's partial results (batchnorm's sums, the
 * weight gradients, the losses), the processes first exchange theirs
 * (nnc_dist_share, an allgather), then each adds them in slice order, as one
 * process would: the weights stay bit-identical to one process's.
 *
 * libnncrt.a is built without MPI: there nnc_dist_start refuses to run as
 * one of several processes started by mpirun, and everything else is the
 * one-process case. libnncrt_mpi.a (dist.c compiled with mpicc -DNNC_MPI)
 * does the real thing. The same generated file links against either.
 */
/* Join the processes mpirun started, checking that `slices` (the model's CHUNKS) can be shared out
 * evenly: 1, 2 or 4 processes for 4 slices, say. *out = NULL when this is the only process. -1 with
 * a message: started by mpirun without MPI (or by another MPI's launcher), or MPI failed to start;
 * -1 with an empty message: a rank count that does not divide the slices, which rank 0 has printed
 * already as `prog: error: ...` (before any process could leave and end the job). */
int nnc_dist_start(const char *prog, int slices, nnc_dist **out, char *err, size_t errlen);
int nnc_dist_rank(const nnc_dist *d); /* 0 for NULL */
int nnc_dist_size(const nnc_dist *d); /* 1 for NULL */
/* The blocks [*lo, *hi) of n this process computes: n*rank/size .. n*(rank+1)/size. */
void nnc_dist_blocks(const nnc_dist *d, int n, int *lo, int *hi);
/* Block k of n is `bytes` at base + k*stride. Each process filled its own blocks (nnc_dist_blocks);
 * afterwards every process holds every block (an allgather). A no-op for NULL. */
void nnc_dist_share(const nnc_dist *d, void *base, size_t bytes, size_t stride, int n);
/* The batch's gradient: sum[i] = slices[0][i] + slices[1][i] + ... in slice order, as one process
 * adds them, for the n_slices x count floats at `slices` of which this process filled its own.
 * Each process adds up a 1/size part of the parameters from every slice's (an all-to-all exchange),
 * then the parts are swapped (an allgather). With one slice a process that is 2 (size - 1) / size
 * of the gradient each way per process, as a bandwidth-optimal allreduce, where gathering every
 * slice whole would take size - 1 times the gradient; with k slices a process, the all-to-all
 * carries k times its share. */
void nnc_dist_sum_slices(const nnc_dist *d, const float *slices, size_t count, int n_slices, float *sum);
/* Do all processes hold the same bytes (the run's options and data, a resumed checkpoint)? 0, or -1
 * on every process, rank 0 having printed `prog: error: WHAT differs between processes ...`. Every
 * process must call it. */
int nnc_dist_same(const nnc_dist *d, const char *prog, const void *p, size_t bytes, const char *what);
/* What this process has exchanged so far; zeros for NULL. */
nnc_traffic nnc_dist_traffic(const nnc_dist *d);
/* The end of the run: status 0 waits for every process (MPI_Finalize); any other stops them all
 * (MPI_Abort) so that none waits forever for a process that gave up. Returns status. */
int nnc_dist_finish(nnc_dist *d, int status);
/* The end for a status every process reaches at the same point (a refusal they all made, rank 0
 * having said why): MPI_Finalize, no abort. Returns status. */
int nnc_dist_finish_together(nnc_dist *d, int status);

#endif /* NNCRT_H */
