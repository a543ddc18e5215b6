/*
 * main.c - nnc_main: the command line every generated trainer has.
 *
 *   find the data -> load and check it -> hold out validation images
 *   -> init, load or resume -> train (or only evaluate) -> save -> report
 *
 * While training, after every epoch: `<stem>.ckpt` (weights and the whole
 * training state, for --resume), the best epoch's weights `<stem>.best.nncw`,
 * and the history `<stem>.history.csv`, `<stem>.accuracy.svg`,
 * `<stem>.loss.svg`, `<stem>.classes.svg`; stem is the --save path without `.nncw`.
 *
 * Or, with --bench, no data at all: time training and inference on synthetic
 * images (nnc_bench in train.c) and print `bench KEY VALUE` lines; with
 * --predict, classify image files with --load weights (predict.c).
 *
 * Exit status: 0 success, 1 a runtime problem (data, checkpoint, divergence),
 * 2 a bad command line.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nncrt.h"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#define MNIST_URL "https://ossci-datasets.s3.amazonaws.com/mnist/"
#define DOWNLOAD_DIR "data/mnist"
#define DEFAULT_THREADS 2
#define DEFAULT_BENCH_SECONDS 3.0
#define ERR_LEN 1024
#define PATH_LEN 4096
/* Mid-epoch checkpoints on a timer: a long epoch loses at most this much work. */
#define CHECKPOINT_SECONDS 60.0

static const char *const mnist_files[4] = {
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
};

typedef struct {
    const char *data_dir; /* NULL: search */
    int epochs;           /* 0: the recipe's */
    uint64_t seed;
    int seed_given;
    int threads;
    int threads_given;    /* --threads was given: decoding image folders uses it too */
    const char *save_path; /* NULL: <model name>.nncw */
    const char *load_path; /* NULL: fresh weights */
    const char *export_path; /* --export FILE (.safetensors, .npz or .onnx); NULL: none */
    int eval_only;
    int bench;            /* --bench: synthetic-data throughput instead of training */
    double bench_seconds; /* its time budget */
    int bench_seconds_given;
    int validation;        /* --validation N: hold out the last N training images; 0: the test set validates */
    int early_stop;        /* --early-stop P; 0: off */
    float lr;              /* --lr X; 0: the recipe's schedule */
    int check_numerics;    /* --check-numerics */
    int resume;            /* --resume */
    long checkpoint_steps; /* --checkpoint-steps K; 0: at epoch ends (and every CHECKPOINT_SECONDS) */
    const char *history_stem; /* --history STEM; NULL: the save stem */
    int no_history;        /* --no-history */
    int n_predict;         /* --predict FILE...: how many files */
    char **predict;
} cli_args;

/* ------------------------------------------------------------------------ */
/* Command line                                                             */
/* ------------------------------------------------------------------------ */

static int recipe_epochs(const nnc_recipe *r) {
    if (r->epochs > 0) return r->epochs;
    int sum = 0;
    for (int i = 0; i < r->n_phases && r->phases; i++) sum += r->phases[i].epochs;
    return sum > 0 ? sum : 1;
}

static void print_usage(FILE *out, const nnc_model *m, const char *prog) {
    fprintf(out,
            "usage: %s [options]\n"
            "Train model '%s' (compiled from %s by nnc %s), then save its weights.\n"
            "\n"
            "Data and run\n"
            "  --data DIR     the data, in one of three layouts (the one found is named):\n"
            "                 MNIST's IDX files (train-images-idx3-ubyte[.gz] ...); CIFAR-10's binary\n"
            "                 batches (data_batch_1..5.bin, test_batch.bin, batches.meta.txt); or\n"
            "                 image folders DIR/train/<class>/*.png|*.jpg and DIR/test/<class>/...\n"
            "                 (classes: the sorted folder names; DIR/val/<class>/..., when it\n"
            "                 exists, is the validation data). Default: MNIST from $NNC_DATA,\n"
            "                 ./data/mnist, ../shared/data/mnist, else downloaded into\n"
            "                 ./" DOWNLOAD_DIR " with curl\n"
            "  --epochs N     epochs to train (default %d, from the recipe); cosine and one-cycle\n"
            "                 schedules span the N epochs\n"
            "  --seed N       random seed (default %llu, from the recipe)\n"
            "  --threads N    threads per step (default %d; results do not depend on it)\n"
            "  --lr X         train at the constant learning rate X instead of the recipe's\n"
            "                 schedule (default: the recipe's, first epoch %g)\n"
            "\n"
            "Validation and model selection\n"
            "  --validation N hold out the last N training images as validation data (not\n"
            "                 trained on); the best epoch by validation accuracy is saved to\n"
            "                 STEM.best.nncw and is the one evaluated on the test set at the end.\n"
            "                 Without it the test set is the validation data, as in the seeds,\n"
            "                 unless --data DIR has image folders with a DIR/val/ of its own.\n"
            "  --early-stop P stop when the validation accuracy has not improved for P epochs\n"
            "\n"
            "Files (STEM is the --save path without .nncw)\n"
            "  --save FILE    where to write the final weights (default %s.nncw)\n"
            "  --load FILE    start from these weights instead of a fresh initialization; a\n"
            "                 .safetensors file written by nnc --export or by PyTorch (state_dict\n"
            "                 names and layouts, see README.md) also loads\n"
            "  --export FILE  also write the final (or --load) weights as FILE.safetensors\n"
            "                 (Hugging Face), FILE.npz (NumPy) or FILE.onnx (the inference graph,\n"
            "                 uint8 pixels in, probabilities out), by the extension; with --load\n"
            "                 and no training option it only converts\n"
            "  --history STEM write the history to STEM.history.csv, STEM.accuracy.svg,\n"
            "                 STEM.loss.svg and STEM.classes.svg (default: the save stem),\n"
            "                 rewritten after every epoch\n"
            "  --no-history   write no history files\n"
            "  --resume       continue the interrupted run from STEM.ckpt (written after every\n"
            "                 epoch, every --checkpoint-steps steps and every %.0f s; removed when\n"
            "                 the run ends); give the same options as that run. The final\n"
            "                 weights are bit-identical to an uninterrupted run's.\n"
            "  --checkpoint-steps K\n"
            "                 also write STEM.ckpt every K training steps\n"
            "\n"
            "Other modes\n"
            "  --eval         only evaluate the --load weights on the test set (with the\n"
            "                 confusion matrix)\n"
            "  --predict FILE...\n"
            "                 classify images with the --load weights (grey models: PNG or PGM\n"
            "                 digits; RGB models: PNG or JPEG); no data needed. Each class is also\n"
            "                 named when --data DIR's layout names them (folders, CIFAR-10) or the\n"
            "                 --load file is a .safetensors that --export wrote\n"
            "  --bench        measure speed on synthetic data (no MNIST needed, nothing saved):\n"
            "                 training steps (forward, backward, update at learning rate 0)\n"
            "                 and inference at batch %d after a warm-up, as the median\n"
            "                 images/s of timed windows; the whole epoch loop (shuffle,\n"
            "                 conversion, steps, updates); and the peak memory. Prints\n"
            "                 `bench KEY VALUE` lines. Takes --seed and --threads.\n"
            "  --bench-seconds S\n"
            "                 the benchmark's rough time budget (default %g)\n"
            "\n"
            "Checks\n"
            "  --check-numerics\n"
            "                 look for NaN and infinity in every layer's output after every step\n"
            "                 (without it: the loss and the gradients, every step)\n"
            "  --help         this text\n"
            "\n"
            "Batches hold %d images; the last batch of an epoch holds the remainder, so\n"
            "every training image is used once per epoch. On a terminal each epoch shows a\n"
            "progress line; otherwise one line per epoch.\n",
            prog, m->name, m->source ? m->source : "?", NNC_VERSION, recipe_epochs(&m->recipe),
            (unsigned long long)m->recipe.seed, m->default_threads > 0 ? m->default_threads : DEFAULT_THREADS,
            (double)nnc_schedule_lr(&m->recipe, 0), m->name,
            CHECKPOINT_SECONDS, m->recipe.batch, DEFAULT_BENCH_SECONDS, m->recipe.batch);
}

static int usage_error(const nnc_model *m, const char *prog, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n\n");
    va_end(ap);
    print_usage(stderr, m, prog);
    return 2;
}

/* A whole decimal number in [lo, hi]; no sign, no trailing characters. */
static int parse_number(const char *s, unsigned long long lo, unsigned long long hi, unsigned long long *out) {
    if (!s || *s < '0' || *s > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* A finite decimal number in [lo, hi] (strtod's syntax, no trailing characters). */
static int parse_real(const char *s, double lo, double hi, double *out) {
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static const char *const value_flags[] = {"--data",       "--epochs",     "--seed",    "--threads",
                                          "--save",       "--load",       "--bench-seconds", "--validation",
                                          "--early-stop", "--lr",         "--history", "--checkpoint-steps",
                                          "--export",     NULL};

static int is_value_flag(const char *name) {
    for (int i = 0; value_flags[i]; i++)
        if (strcmp(name, value_flags[i]) == 0) return 1;
    return 0;
}

/* The flags that take no value; returns 0 when `flag` is not one of them. */
static int parse_switch(cli_args *a, const char *flag) {
    if (strcmp(flag, "--eval") == 0) a->eval_only = 1;
    else if (strcmp(flag, "--bench") == 0) a->bench = 1;
    else if (strcmp(flag, "--resume") == 0) a->resume = 1;
    else if (strcmp(flag, "--no-history") == 0) a->no_history = 1;
    else if (strcmp(flag, "--check-numerics") == 0) a->check_numerics = 1;
    else return 0;
    return 1;
}

/* One `--flag VALUE`; returns 0, or the exit status of a usage error. */
static int parse_value(cli_args *a, const nnc_model *m, const char *prog, const char *name, const char *value) {
    unsigned long long v;
    double d;
    if (!strcmp(name, "--data")) a->data_dir = value;
    else if (!strcmp(name, "--save")) a->save_path = value;
    else if (!strcmp(name, "--load")) a->load_path = value;
    else if (!strcmp(name, "--history")) a->history_stem = value;
    else if (!strcmp(name, "--export")) {
        if (!nnc_export_format_ok(value))
            return usage_error(m, prog, "--export needs a file name ending in .safetensors, .npz or .onnx, not '%s'",
                               value);
        a->export_path = value;
    }
    else if (!strcmp(name, "--epochs")) {
        if (parse_number(value, 1, 1000000, &v) != 0)
            return usage_error(m, prog, "--epochs needs a whole number of at least 1, not '%s'", value);
        a->epochs = (int)v;
    } else if (!strcmp(name, "--threads")) {
        if (parse_number(value, 1, 1024, &v) != 0)
            return usage_error(m, prog, "--threads needs a whole number from 1 to 1024, not '%s'", value);
        a->threads = (int)v;
        a->threads_given = 1;
    } else if (!strcmp(name, "--seed")) {
        if (parse_number(value, 0, UINT64_MAX, &v) != 0)
            return usage_error(m, prog, "--seed needs a non-negative whole number, not '%s'", value);
        a->seed = v;
        a->seed_given = 1;
    } else if (!strcmp(name, "--validation")) {
        if (parse_number(value, 1, 100000000, &v) != 0)
            return usage_error(m, prog, "--validation needs a number of images of at least 1, not '%s'", value);
        a->validation = (int)v;
    } else if (!strcmp(name, "--early-stop")) {
        if (parse_number(value, 1, 1000000, &v) != 0)
            return usage_error(m, prog, "--early-stop needs a number of epochs of at least 1, not '%s'", value);
        a->early_stop = (int)v;
    } else if (!strcmp(name, "--checkpoint-steps")) {
        if (parse_number(value, 1, 1000000000, &v) != 0)
            return usage_error(m, prog, "--checkpoint-steps needs a number of steps of at least 1, not '%s'", value);
        a->checkpoint_steps = (long)v;
    } else if (!strcmp(name, "--lr")) {
        if (parse_real(value, 1e-30, 1e30, &d) != 0)
            return usage_error(m, prog, "--lr needs a positive learning rate such as 0.01, not '%s'", value);
        a->lr = (float)d;
    } else if (!strcmp(name, "--bench-seconds")) {
        if (parse_real(value, 0.01, 3600.0, &d) != 0)
            return usage_error(m, prog, "--bench-seconds needs a number of seconds from 0.01 to 3600, not '%s'",
                               value);
        a->bench_seconds = d;
        a->bench_seconds_given = 1;
    }
    return 0;
}

/* Flags that only make sense when training (--seed aside: --bench takes it too). */
static int has_training_flags(const cli_args *a) {
    return a->epochs || a->validation || a->early_stop || a->lr != 0.0f || a->check_numerics || a->resume ||
           a->checkpoint_steps || a->history_stem || a->no_history || a->save_path;
}

/* Combinations that cannot mean anything; returns -1 or a usage error's status. */
static int check_combinations(const cli_args *a, const nnc_model *m, const char *prog) {
    if (a->bench && (a->eval_only || a->data_dir || a->load_path || a->export_path || a->n_predict ||
                     has_training_flags(a)))
        return usage_error(m, prog, "--bench uses synthetic data and saves nothing: it takes only --seed, --threads "
                                    "and --bench-seconds");
    if (a->bench_seconds_given && !a->bench) return usage_error(m, prog, "--bench-seconds needs --bench");
    if (a->eval_only && !a->load_path) return usage_error(m, prog, "--eval needs --load FILE (the weights to evaluate)");
    if (a->n_predict && !a->load_path)
        return usage_error(m, prog, "--predict needs --load FILE (the weights to classify with)");
    if ((a->eval_only || a->n_predict) && (has_training_flags(a) || a->seed_given))
        return usage_error(m, prog, "%s does not train: it takes only --load, --data, --threads%s",
                           a->eval_only ? "--eval" : "--predict", a->n_predict ? "" : " and --predict");
    if (a->export_path && a->n_predict)
        return usage_error(m, prog, "--predict writes no weights: use --load FILE --export OUT to convert them");
    if (a->eval_only && a->n_predict) return usage_error(m, prog, "--eval and --predict are separate modes: pick one");
    if (a->resume && a->load_path)
        return usage_error(m, prog, "--resume continues from STEM.ckpt, which holds its own weights: drop --load");
    if (a->history_stem && a->no_history) return usage_error(m, prog, "--history and --no-history contradict");
    return -1;
}

/* Returns -1 to go on, or the exit status (0 after --help, 2 on an error). */
static int parse_args(cli_args *a, const nnc_model *m, int argc, char **argv) {
    const char *prog = argc > 0 && argv[0] ? argv[0] : "nnc-model";
    memset(a, 0, sizeof *a);
    a->threads = m->default_threads > 0 ? m->default_threads : DEFAULT_THREADS;
    a->bench_seconds = DEFAULT_BENCH_SECONDS;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            print_usage(stdout, m, prog);
            return 0;
        }
        if (parse_switch(a, flag)) continue;
        if (strcmp(flag, "--predict") == 0) {
            /* The files are every following argument up to the next option. */
            a->predict = argv + i + 1;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) i++, a->n_predict++;
            if (a->n_predict == 0) return usage_error(m, prog, "--predict needs one or more image files");
            continue;
        }
        /* Every other flag takes a value: `--flag VALUE` or `--flag=VALUE`. */
        char name[32];
        const char *value;
        const char *eq = strchr(flag, '=');
        if (eq && (size_t)(eq - flag) < sizeof name) {
            memcpy(name, flag, (size_t)(eq - flag));
            name[eq - flag] = '\0';
            value = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", flag);
            value = i + 1 < argc ? argv[++i] : NULL;
        }
        if (!is_value_flag(name)) return usage_error(m, prog, "unknown option '%s'", flag);
        if (!value || !*value) return usage_error(m, prog, "%s needs a value", name);
        int status = parse_value(a, m, prog, name, value);
        if (status != 0) return status;
    }
    return check_combinations(a, m, prog);
}

/* ------------------------------------------------------------------------ */
/* Finding the data                                                         */
/* ------------------------------------------------------------------------ */

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Does dir hold `<prefix>-images-idx3-ubyte` (gzipped or not)? */
static int dir_has_mnist(const char *dir, const char *prefix) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    if (file_exists(path)) return 1;
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, prefix);
    return file_exists(path);
}

/* Fetch the four files with curl; each lands under a temporary name first so a
 * failed download never leaves a partial file that looks complete. */
static int download_mnist(void) {
    fprintf(stderr, "MNIST not found locally; downloading it into ./%s from %s\n", DOWNLOAD_DIR, MNIST_URL);
    mkdir("data", 0755);
    mkdir(DOWNLOAD_DIR, 0755);
    for (int i = 0; i < 4; i++) {
        char final_path[256], tmp_path[256], cmd[1024];
        snprintf(final_path, sizeof final_path, "%s/%s", DOWNLOAD_DIR, mnist_files[i]);
        if (file_exists(final_path)) continue;
        snprintf(tmp_path, sizeof tmp_path, "%s/%s.part", DOWNLOAD_DIR, mnist_files[i]);
        snprintf(cmd, sizeof cmd, "curl -fsSL -o '%s' '%s%s'", tmp_path, MNIST_URL, mnist_files[i]);
        if (system(cmd) != 0 || rename(tmp_path, final_path) != 0) {
            remove(tmp_path);
            /* rmdir only removes empty directories: files from earlier runs stay. */
            rmdir(DOWNLOAD_DIR);
            rmdir("data");
            return -1;
        }
    }
    return 0;
}

/* The first directory that has the files we need, in the documented order. */
static const char *find_data_dir(const cli_args *a, const char *prefix) {
    if (a->data_dir) return a->data_dir; /* explicit: use it or fail, no guessing */
    const char *env = getenv("NNC_DATA");
    if (env && *env && dir_has_mnist(env, prefix)) return env;
    if (dir_has_mnist("data/mnist", prefix)) return "data/mnist";
    if (dir_has_mnist("../shared/data/mnist", prefix)) return "../shared/data/mnist";
    if (download_mnist() == 0 && dir_has_mnist(DOWNLOAD_DIR, prefix)) return DOWNLOAD_DIR;
    const char *shown_env = env && *env ? env : "(not set)";
    fprintf(stderr,
            "error: MNIST data not found. Looked in $NNC_DATA = %s, ./data/mnist and ../shared/data/mnist;\n"
            "downloading from %s failed.\n"
            "Put %s, %s, %s and %s in a directory and pass --data DIR.\n",
            shown_env, MNIST_URL, mnist_files[0], mnist_files[1], mnist_files[2], mnist_files[3]);
    return NULL;
}

/* The layouts --data DIR can hold; each split is read by its own reader. */
typedef enum { LAYOUT_IDX, LAYOUT_CIFAR, LAYOUT_FOLDERS } data_layout;

static int dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static data_layout detect_layout(const char *dir) {
    char path[PATH_LEN + 32];
    snprintf(path, sizeof path, "%s/data_batch_1.bin", dir);
    if (file_exists(path)) return LAYOUT_CIFAR;
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    if (file_exists(path)) return LAYOUT_CIFAR;
    snprintf(path, sizeof path, "%s/train", dir);
    return dir_exists(path) ? LAYOUT_FOLDERS : LAYOUT_IDX;
}

/* Image folders with a DIR/val/ of their own: the validation data while training. */
static int has_folder_val(const char *dir) {
    char path[PATH_LEN + 32];
    snprintf(path, sizeof path, "%s/val", dir);
    return detect_layout(dir) == LAYOUT_FOLDERS && dir_exists(path);
}

/* Say once which layout was found, and where. */
static void print_layout(const char *dir) {
    switch (detect_layout(dir)) {
    case LAYOUT_CIFAR:
        printf("data: CIFAR-10 binary layout in %s (data_batch_1..%d.bin, test_batch.bin, batches.meta.txt)\n", dir,
               NNC_CIFAR_TRAIN_FILES);
        break;
    case LAYOUT_FOLDERS:
        printf("data: image-folder layout in %s (train/<class>/, %stest/<class>/: PNG or JPEG; classes in sorted "
               "order, each class's files in sorted order)\n",
               dir, has_folder_val(dir) ? "val/<class>/ (the validation data), " : "");
        break;
    case LAYOUT_IDX: printf("data: IDX layout (MNIST) in %s\n", dir); break;
    }
    fflush(stdout);
}

/* An image-folder split: DIR/train, or DIR/test or DIR/val labelled by DIR/train's class folders. */
static int load_folder_split(nnc_dataset *ds, const nnc_model *m, const char *dir, const char *split, int threads,
                             char *what, size_t what_len, char *err, size_t errlen) {
    char train_dir[PATH_LEN + 16];
    snprintf(train_dir, sizeof train_dir, "%s/train", dir);
    snprintf(what, what_len, "%s/%s", dir, split);
    if (strcmp(split, "train") == 0)
        return nnc_folder_load(ds, train_dir, NULL, m->in_h, m->in_w, m->in_c, m->in_resize, threads, stdout, err,
                               errlen);
    nnc_dataset classes;
    if (nnc_folder_classes(&classes, train_dir, err, errlen) != 0) return -1;
    int rc = nnc_folder_load(ds, what, &classes, m->in_h, m->in_w, m->in_c, m->in_resize, threads, stdout, err,
                             errlen);
    nnc_dataset_free(&classes);
    return rc;
}

/* Threads for decoding image folders: --threads when given, else DEFAULT_THREADS whatever the model's
 * default (a model whose steps are too small to share still decodes on both cores). */
static int decode_threads(const cli_args *a) { return a->threads_given ? a->threads : DEFAULT_THREADS; }

/* Load the split (prefix "train" or "t10k", as MNIST's files are named; "val" for image folders'
 * DIR/val) of dir's layout and check it fits the model; prints the problem. */
static int load_split(nnc_dataset *ds, const nnc_model *m, const char *dir, const char *prefix, int threads) {
    char err[ERR_LEN], what[PATH_LEN + 64];
    int test = strcmp(prefix, "train") != 0, rc;
    switch (detect_layout(dir)) {
    case LAYOUT_CIFAR:
        rc = nnc_cifar_load(ds, dir, test ? "test" : "train", err, sizeof err);
        snprintf(what, sizeof what, "%s/%s", dir, test ? "test_batch.bin" : "data_batch_*.bin");
        break;
    case LAYOUT_FOLDERS:
        rc = load_folder_split(ds, m, dir, !test ? "train" : strcmp(prefix, "val") == 0 ? "val" : "test", threads, what,
                               sizeof what, err, sizeof err);
        break;
    default:
        rc = nnc_dataset_load(ds, dir, prefix, err, sizeof err);
        snprintf(what, sizeof what, "%s/%s", dir, prefix);
    }
    if (rc != 0) {
        fprintf(stderr, "error: %s\n", err);
        return -1;
    }
    if (nnc_dataset_check(ds, m, what, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        nnc_dataset_free(ds);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Evaluation reports                                                       */
/* ------------------------------------------------------------------------ */

static void print_final_accuracy(double acc) {
    printf("test accuracy %.2f%% (error %.2f%%)\n", 100.0 * acc, 100.0 * (1.0 - acc));
    fflush(stdout);
}

/* Loss, accuracy and the confusion matrix of these weights on the test set. */
static int report_test(const nnc_model *m, const nnc_dataset *test, const float *params, const float *state,
                       const float prep[2], int threads) {
    char err[ERR_LEN];
    double loss, acc;
    long *confusion = calloc((size_t)m->n_classes * m->n_classes, sizeof *confusion);
    if (!confusion) {
        fprintf(stderr, "error: out of memory for the confusion matrix\n");
        return 1;
    }
    if (nnc_evaluate_confusion(m, test, params, state, prep, threads, &loss, &acc, confusion, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        free(confusion);
        return 1;
    }
    printf("test_loss %.4f\n", loss);
    print_final_accuracy(acc);
    nnc_print_confusion(stdout, confusion, m->n_classes, test, "the test set");
    fflush(stdout);
    free(confusion);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The files of a training run                                              */
/* ------------------------------------------------------------------------ */

typedef struct {
    char save[PATH_LEN];    /* the final weights */
    char best[PATH_LEN];    /* STEM.best.nncw: the best epoch's weights */
    char ckpt[PATH_LEN];    /* STEM.ckpt: weights and training state, for --resume */
    char history[PATH_LEN]; /* the history files' stem; "" with --no-history */
} run_paths;

/* STEM is the --save path without `.nncw` (the model's name by default). */
static int make_paths(run_paths *p, const nnc_model *m, const cli_args *a) {
    int n = a->save_path ? snprintf(p->save, sizeof p->save, "%s", a->save_path)
                         : snprintf(p->save, sizeof p->save, "%s.nncw", m->name);
    char stem[PATH_LEN];
    size_t len = strlen(p->save);
    if (len > 5 && strcmp(p->save + len - 5, ".nncw") == 0) len -= 5;
    snprintf(stem, sizeof stem, "%.*s", (int)len, p->save);
    int too_long = n < 0 || (size_t)n >= sizeof p->save;
    too_long |= snprintf(p->best, sizeof p->best, "%s.best.nncw", stem) >= (int)sizeof p->best;
    too_long |= snprintf(p->ckpt, sizeof p->ckpt, "%s.ckpt", stem) >= (int)sizeof p->ckpt;
    too_long |= snprintf(p->history, sizeof p->history, "%s", a->no_history ? ""
                                                                : a->history_stem ? a->history_stem : stem) >=
                (int)sizeof p->history - 32;
    if (too_long) {
        fprintf(stderr, "error: --save or --history path is too long (the limit is %d bytes)\n", PATH_LEN - 32);
        return -1;
    }
    return 0;
}

/*
 * A run killed while writing leaves `<file>.tmp.XXXXXX` behind (the file itself
 * is intact: see nnc_write_file_atomically). Remove such leftovers of this
 * stem's files before a run writes them again.
 */
static void remove_stale_temps(const char *stem) {
    const char *slash = strrchr(stem, '/');
    char dir[PATH_LEN];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - stem) + 1 : 1, slash ? stem : ".");
    const char *base = slash ? slash + 1 : stem;
    size_t base_len = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, base, base_len) != 0 || e->d_name[base_len] != '.') continue;
        const char *tmp = strstr(e->d_name + base_len, ".tmp.");
        if (!tmp || strlen(tmp) != strlen(".tmp.XXXXXX")) continue;
        char path[2 * PATH_LEN];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        remove(path);
    }
    closedir(d);
}

/* What the checkpoint hooks need. */
typedef struct {
    const nnc_model *m;
    const run_paths *paths;
    const nnc_run_key *key;
    const float *prep;
    const char *val_legend; /* the validation curve's name in the plots */
    int writes;             /* 0 on every process but rank 0: one writer of the run's files */
    const nnc_dataset *classes; /* the class names of the history's per-class columns (may have none) */
} hook_ctx;

static int write_history(const hook_ctx *h, const nnc_train_state *ts, char *err, size_t errlen) {
    char path[PATH_LEN + 32], title[256]; /* make_paths left room for the suffixes */
    const char *stem = h->paths->history;
    snprintf(path, sizeof path, "%s.history.csv", stem);
    if (nnc_history_write_csv(path, ts->history, ts->n_history, ts->class_accuracy, ts->n_classes, h->classes, err,
                              errlen) != 0)
        return -1;
    snprintf(path, sizeof path, "%s.accuracy.svg", stem);
    snprintf(title, sizeof title, "%s: accuracy per epoch", h->m->name);
    if (nnc_history_write_svg(path, NNC_PLOT_ACCURACY, title, h->val_legend, ts->history, ts->n_history, err,
                              errlen) != 0)
        return -1;
    snprintf(path, sizeof path, "%s.loss.svg", stem);
    snprintf(title, sizeof title, "%s: loss per epoch", h->m->name);
    if (nnc_history_write_svg(path, NNC_PLOT_LOSS, title, h->val_legend, ts->history, ts->n_history, err, errlen) != 0)
        return -1;
    snprintf(path, sizeof path, "%s.classes.svg", stem);
    snprintf(title, sizeof title, "%s: each class's accuracy on the %s", h->m->name,
             strncmp(h->val_legend, "test", 4) == 0 ? "test set" : "validation data");
    return nnc_history_write_class_svg(path, title, ts->history, ts->n_history, ts->class_accuracy, ts->n_classes,
                                       h->classes, err, errlen);
}

/* Mid-epoch: the checkpoint alone. */
static int on_checkpoint(void *ctx, const nnc_train_state *ts, const float *params, const float *state, char *err,
                         size_t errlen) {
    const hook_ctx *h = ctx;
    if (!h->writes) return 0;
    return nnc_checkpoint_save_train(h->paths->ckpt, h->m, params, state, h->prep, h->key, ts, err, errlen);
}

/* After an epoch: the best weights if this epoch is the best, the history,
 * and last the checkpoint, which commits the epoch: a run killed before it
 * redoes the epoch and rewrites the same files. */
static int on_epoch(void *ctx, const nnc_train_state *ts, const float *params, const float *state, char *err,
                    size_t errlen) {
    const hook_ctx *h = ctx;
    const nnc_history_row *last = &ts->history[ts->n_history - 1];
    if (!h->writes) return 0;
    if (ts->best_epoch == last->epoch &&
        nnc_checkpoint_save(h->paths->best, h->m, params, state, h->prep, err, errlen) != 0)
        return -1;
    if (h->paths->history[0] && write_history(h, ts, err, errlen) != 0) return -1;
    return on_checkpoint(ctx, ts, params, state, err, errlen);
}

/* ------------------------------------------------------------------------ */
/* Training                                                                 */
/* ------------------------------------------------------------------------ */

/* Identifies the training data, so that --resume refuses to continue on other data. */
static uint32_t dataset_crc_from(uint32_t crc, const nnc_dataset *ds) {
    crc = nnc_crc32(crc, ds->images, (size_t)ds->n * (size_t)ds->h * (size_t)ds->w * (size_t)ds->c);
    return nnc_crc32(crc, ds->labels, (size_t)ds->n);
}

static uint32_t dataset_crc(const nnc_dataset *ds) { return dataset_crc_from(0, ds); }

/* A resumed run must be the run that was interrupted; say which option differs. */
static int check_resume_key(const char *path, const nnc_run_key *want, const nnc_run_key *got) {
    char what[256] = "";
    if (got->epochs != want->epochs)
        snprintf(what, sizeof what, "--epochs %d (this run: %d)", got->epochs, want->epochs);
    else if (got->seed != want->seed)
        snprintf(what, sizeof what, "--seed %llu (this run: %llu)", (unsigned long long)got->seed,
                 (unsigned long long)want->seed);
    else if (got->validation != want->validation)
        snprintf(what, sizeof what, "--validation %d (this run: %d)", got->validation, want->validation);
    else if (got->early_stop != want->early_stop)
        snprintf(what, sizeof what, "--early-stop %d (this run: %d)", got->early_stop, want->early_stop);
    else if (got->lr != want->lr)
        snprintf(what, sizeof what, "--lr %g (this run: %g; 0 is the recipe's schedule)", (double)got->lr,
                 (double)want->lr);
    else if (got->n_train != want->n_train || got->data_crc != want->data_crc)
        snprintf(what, sizeof what, "other training data (%d images, CRC %08x; this run: %d images, CRC %08x)",
                 got->n_train, (unsigned)got->data_crc, want->n_train, (unsigned)want->data_crc);
    if (!what[0]) return 0;
    fprintf(stderr, "error: --resume: %s was written by a run with %s; give the interrupted run's options\n", path,
            what);
    return -1;
}

/* The recipe as this run uses it: --epochs spans the cosine and one-cycle
 * schedules, --lr replaces the schedule by a constant rate. */
static nnc_model run_model(const nnc_model *m, const cli_args *a, int epochs) {
    nnc_model r = *m;
    r.recipe.epochs = epochs;
    if (a->lr > 0.0f) {
        r.recipe.schedule = NNC_SCHED_CONSTANT;
        r.recipe.n_phases = 0;
        r.recipe.phases = NULL;
        r.recipe.optimizer.lr = a->lr;
    }
    return r;
}

/* --load's weights (an nnc checkpoint or a .safetensors file) and their
 * preprocessing constants. A file from PyTorch has none: then, for
 * `normalize`, the mean and std come from the training data as when training
 * from scratch (`train`, or the training split found and loaded here). */
static int load_weights(const nnc_model *m, const cli_args *a, const nnc_dataset *train, float *params, float *state,
                        float prep[2]) {
    char err[ERR_LEN];
    int known;
    if (nnc_weights_load(a->load_path, m, params, state, prep, &known, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return -1;
    }
    if (known) return 0;
    nnc_dataset own = {0};
    const char *dir = "the training data";
    if (m->prep == NNC_PREP_NORMALIZE && !train) {
        if (!(dir = find_data_dir(a, "train")) || load_split(&own, m, dir, "train", decode_threads(a)) != 0) return -1;
        train = &own;
    }
    nnc_prep_compute(m, train ? train : &own, prep);
    if (m->prep == NNC_PREP_NORMALIZE)
        fprintf(stderr,
                "note: %s carries no preprocessing constants (not written by nnc): normalize's mean %g and std %g "
                "are computed from %s%s as usual\n",
                a->load_path, (double)prep[0], (double)prep[1], dir, train == &own ? "/train" : "");
    nnc_dataset_free(&own);
    return 0;
}

/* --export, when asked for; classes (may be NULL) names the classes in the metadata. */
static int export_weights(const nnc_model *m, const cli_args *a, const nnc_dataset *classes, const float *params,
                          const float *state, const float prep[2]) {
    char err[ERR_LEN];
    if (!a->export_path) return 0;
    if (nnc_export_weights(a->export_path, m, params, state, prep, classes, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return -1;
    }
    printf("exported weights to %s\n", a->export_path);
    fflush(stdout);
    return 0;
}

/* Weights to start from: the checkpoint (--resume), a weights file (--load)
 * or none (nnc_train draws them); prep comes along. */
static int starting_point(const nnc_model *m, const cli_args *a, const run_paths *paths, const nnc_dataset *train,
                          const nnc_run_key *key, nnc_train_state *ts, float *params, float *state, float prep[2]) {
    char err[ERR_LEN];
    if (a->resume) {
        nnc_run_key got;
        if (!file_exists(paths->ckpt)) {
            fprintf(stderr,
                    "error: --resume: no checkpoint %s to resume from (a run writes it after its first epoch or "
                    "--checkpoint-steps steps, and removes it when it completes)\n",
                    paths->ckpt);
            return -1;
        }
        if (nnc_checkpoint_load_train(paths->ckpt, m, params, state, prep, &got, ts, err, sizeof err) != 0) {
            fprintf(stderr, "error: --resume: %s\n", err);
            return -1;
        }
        if (check_resume_key(paths->ckpt, key, &got) != 0) return -1;
        printf("resuming from %s: epoch %d, step %d\n", paths->ckpt, ts->epoch + 1, ts->step);
    } else if (a->load_path) {
        if (load_weights(m, a, train, params, state, prep) != 0) return -1;
        printf("loaded weights from %s\n", a->load_path);
    } else {
        nnc_prep_compute(m, train, prep);
    }
    return 0;
}

/* After training: say which weights the test set sees and what picked them, then report. */
static int final_report(const nnc_model *m, const cli_args *a, const char *val_what, const run_paths *paths,
                        const nnc_train_result *res, const nnc_dataset *test, const float *params,
                        const float *state, const float prep[2]) {
    if (!val_what || res->best_epoch == 0) {
        printf("test set: the final weights (epoch %d, %s)", res->epochs_done, paths->save);
        if (res->best_epoch > 0)
            printf("; the best epoch on the test set was %d (%.2f%%, kept in %s), picked by the test set itself, so "
                   "that figure is optimistic: use --validation N for an honest choice",
                   res->best_epoch, 100.0 * res->best_acc, paths->best);
        printf("\n");
        return report_test(m, test, params, state, prep, a->threads);
    }
    printf("test set: the weights of epoch %d (%s), picked by the best validation accuracy %.2f%% on %s\n",
           res->best_epoch, paths->best, 100.0 * res->best_acc, val_what);
    float *best_params = calloc(m->n_params ? m->n_params : 1, sizeof(float));
    float *best_state = calloc(m->n_state ? m->n_state : 1, sizeof(float));
    float best_prep[2];
    char err[ERR_LEN];
    int status = 1;
    if (!best_params || !best_state)
        fprintf(stderr, "error: out of memory for the best weights\n");
    else if (nnc_checkpoint_load(paths->best, m, best_params, best_state, best_prep, err, sizeof err) != 0)
        fprintf(stderr, "error: %s\n", err);
    else
        status = report_test(m, test, best_params, best_state, best_prep, a->threads);
    free(best_params), free(best_state);
    return status;
}

/* CRC-32 of a whole file; 0 when it cannot be read (then the reader reports it). */
static uint32_t file_crc(const char *path) {
    uint8_t *data = NULL;
    size_t size = 0;
    char err[ERR_LEN];
    if (!path || nnc_read_file(path, "file", SIZE_MAX, &data, &size, err, sizeof err) != 0) return 0;
    uint32_t crc = nnc_crc32(0, data, size);
    free(data);
    return crc;
}

/*
 * Several processes must run the same run: the same model and slices, options, training and test
 * data, and the same file to resume from or load. Processes started with other flags (mpirun's
 * MPMD form) or reading other files would otherwise compute different things, or wait for each
 * other forever. Rank 0 says what differs. 1: the same everywhere (or one process).
 */
static int same_run_everywhere(const nnc_dist *dist, const nnc_model *m, const nnc_run_key *key,
                               const nnc_dataset *test, const cli_args *a, const char *start_file) {
    if (!dist) return 1;
    uint32_t lr_bits;
    memcpy(&lr_bits, &key->lr, sizeof lr_bits);
    const uint64_t run[] = {m->signature, (uint64_t)m->slices, m->n_params, (uint64_t)key->epochs, key->seed,
                            (uint64_t)key->validation, (uint64_t)key->early_stop, lr_bits, (uint64_t)a->resume};
    const uint64_t data[] = {(uint64_t)key->n_train, key->data_crc, dataset_crc(test)};
    const uint32_t start = start_file ? file_crc(start_file) : 0;
    const char *prog = m->name;
    if (nnc_dist_same(dist, prog, run, sizeof run, "the run (model, slices or options)") != 0) return 0;
    if (nnc_dist_same(dist, prog, data, sizeof data, "the training data") != 0) return 0;
    return nnc_dist_same(dist, prog, &start, sizeof start, "the checkpoint or weights file to start from") == 0;
}

/* folder_val: the images of DIR/val/ (image folders), or NULL. */
static int train_and_report(const nnc_model *m0, const cli_args *a, const nnc_dist *dist, const char *dir,
                            const nnc_dataset *all_train, const nnc_dataset *folder_val, const nnc_dataset *test,
                            float *params, float *state) {
    const int writer = nnc_dist_rank(dist) == 0;
    const int epochs = a->epochs > 0 ? a->epochs : recipe_epochs(&m0->recipe);
    const nnc_model model = run_model(m0, a, epochs), *m = &model;
    /* --validation: the last N training images, never trained on (views, no copies). */
    nnc_dataset train = *all_train, val = {0};
    if (a->validation >= all_train->n) {
        fprintf(stderr, "error: --validation %d holds out every training image (%s/train has %d)\n", a->validation,
                dir, all_train->n);
        return 2;
    }
    if (a->validation && folder_val) {
        fprintf(stderr, "error: --validation %d would hold out training images, but %s/val/ is the validation data "
                        "already: drop --validation, or move %s/val away\n", a->validation, dir, dir);
        return 2;
    }
    if (a->validation) {
        train.n -= a->validation;
        val = (nnc_dataset){.n = a->validation, .h = train.h, .w = train.w, .c = train.c,
                            .images = train.images + (size_t)train.n * train.h * train.w * train.c,
                            .labels = train.labels + train.n, .n_class_names = train.n_class_names,
                            .class_names = train.class_names};
    }
    const nnc_dataset *validation = a->validation ? &val : folder_val; /* NULL: the test set validates */
    char val_what[PATH_LEN + 64] = "";
    if (a->validation)
        snprintf(val_what, sizeof val_what, "the last %d training images", a->validation);
    else if (folder_val)
        snprintf(val_what, sizeof val_what, "%s/val (%d images)", dir, folder_val->n);
    run_paths paths;
    if (make_paths(&paths, m, a) != 0) return 1;
    char stem[PATH_LEN];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(paths.ckpt) - strlen(".ckpt")), paths.ckpt);
    if (writer) remove_stale_temps(stem);
    if (writer && paths.history[0] && strcmp(paths.history, stem) != 0) remove_stale_temps(paths.history);
    uint32_t data_crc = dataset_crc(all_train);
    if (folder_val) data_crc = dataset_crc_from(data_crc, folder_val); /* a resumed run validates on the same */
    const nnc_run_key key = {.epochs = epochs, .seed = a->seed_given ? a->seed : m->recipe.seed,
                             .validation = a->validation, .early_stop = a->early_stop, .lr = a->lr,
                             .n_train = train.n, .data_crc = data_crc};
    nnc_train_state ts;
    if (nnc_train_state_init(&ts, m, epochs) != 0) {
        fprintf(stderr, "error: out of memory for the training state (%zu parameters)\n", m->n_params);
        return 1;
    }
    float prep[2];
    int status = 1;
    char err[ERR_LEN];
    if (!same_run_everywhere(dist, m, &key, test, a, a->resume ? paths.ckpt : a->load_path)) goto done;
    if (starting_point(m, a, &paths, &train, &key, &ts, params, state, prep) != 0) goto done;

    printf("model %s: %zu parameters; %d training and %d test images from %s; %d epochs, batch %d, seed %llu, "
           "%d thread%s",
           m->name, m->n_params, train.n, test->n, dir, epochs, m->recipe.batch, (unsigned long long)key.seed,
           a->threads, a->threads == 1 ? "" : "s");
    if (dist)
        printf(" in each of %d processes (MPI; %d of the %d slices of a batch each)", nnc_dist_size(dist),
               m->slices / nnc_dist_size(dist), m->slices);
    printf("\n");
    if (m->precision)
        printf("precision: %s\n", m->precision);
    if (a->validation)
        printf("validation data: the last %d training images (held out, not trained on)\n", a->validation);
    else if (folder_val)
        printf("validation data: %s (not trained on; the test set is kept for the end)\n", val_what);
    else
        printf("validation data: the test set, as in the seeds (--validation N holds out training images "
               "instead)\n");
    fflush(stdout);

    char legend[64];
    if (folder_val)
        snprintf(legend, sizeof legend, "validation (val/, %d images)", folder_val->n);
    else
        snprintf(legend, sizeof legend, a->validation ? "validation (%d held-out images)" : "test set (as validation)",
                 a->validation);
    hook_ctx hc = {.m = m, .paths = &paths, .key = &key, .prep = prep, .val_legend = legend, .writes = writer,
                   .classes = all_train};
    nnc_train_opts opts = {
        .epochs = epochs,
        .seed = key.seed,
        .threads = a->threads,
        .init_params = !a->load_path && !a->resume,
        .log = stdout,
        .progress = isatty(fileno(stdout)) && !dist, /* mpirun gives rank 0 a terminal even when piped */
        .val_name = validation ? "val" : "test",
        .early_stop = a->early_stop,
        .check_numerics = a->check_numerics,
        .state = &ts,
        .on_epoch = on_epoch,
        .on_checkpoint = on_checkpoint,
        .checkpoint_steps = a->checkpoint_steps,
        .checkpoint_seconds = CHECKPOINT_SECONDS,
        .hook_ctx = &hc,
        .dist = dist,
    };
    nnc_train_result result;
    if (nnc_train(m, &train, validation ? validation : test, &opts, params, state, prep, &result, err, sizeof err) !=
        0) {
        fprintf(stderr, "error: %s\nweights not saved", err);
        if (file_exists(paths.ckpt))
            fprintf(stderr, "; the last good checkpoint %s is kept (--resume continues from it)", paths.ckpt);
        fprintf(stderr, "\n");
        goto done;
    }
    if (dist)
        printf("MPI: a training step exchanged %.0f bytes out and %.0f in per process, in %.0f exchanges\n",
               result.step_traffic.sent, result.step_traffic.received, result.step_traffic.exchanges);
    if (!writer) { /* rank 0 saves and reports */
        status = 0;
        goto done;
    }
    if (nnc_checkpoint_save(paths.save, m, params, state, prep, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        goto done;
    }
    printf("saved weights to %s\n", paths.save);
    if (export_weights(m, a, all_train, params, state, prep) != 0) goto done;
    remove(paths.ckpt); /* the run is complete: nothing to resume */
    status = final_report(m, a, validation ? val_what : NULL, &paths, &result, test, params, state, prep);
done:
    nnc_train_state_free(&ts);
    return status;
}

/* The class names of --data's layout without loading its images: the training folders' names, or
 * CIFAR-10's batches.meta.txt when there is one; none for IDX files. */
static int read_class_names(nnc_dataset *names, const nnc_model *m, const char *dir) {
    char err[PATH_LEN + ERR_LEN], path[PATH_LEN + 32];
    int rc = 0;
    memset(names, 0, sizeof *names);
    switch (detect_layout(dir)) {
    case LAYOUT_FOLDERS:
        snprintf(path, sizeof path, "%s/train", dir);
        rc = nnc_folder_classes(names, path, err, sizeof err);
        break;
    case LAYOUT_CIFAR:
        snprintf(path, sizeof path, "%s/batches.meta.txt", dir);
        if (file_exists(path)) rc = nnc_class_names_read(path, names, err, sizeof err);
        break;
    case LAYOUT_IDX: break;
    }
    if (rc == 0 && names->n_class_names > m->n_classes) {
        snprintf(err, sizeof err, "%s: has %d classes (%s .. %s) but model %s has %d outputs", path,
                 names->n_class_names, names->class_names[0], names->class_names[names->n_class_names - 1], m->name,
                 m->n_classes);
        nnc_dataset_free(names);
        rc = -1;
    }
    if (rc != 0) fprintf(stderr, "error: %s\n", err);
    return rc;
}

/* --predict: no data set, only the weights and the images; the class names from --data when given,
 * else from a .safetensors file's metadata (nnc's --export writes them there). */
static int predict(const nnc_model *m, const cli_args *a, float *params, float *state) {
    float prep[2];
    nnc_dataset names = {0};
    char err[ERR_LEN];
    size_t len = strlen(a->load_path);
    if (a->data_dir) {
        if (read_class_names(&names, m, a->data_dir) != 0) return 1;
    } else if (len > 12 && strcmp(a->load_path + len - 12, ".safetensors") == 0 &&
               nnc_safetensors_classes(a->load_path, &names, err, sizeof err) != 0) {
        /* not fatal: a damaged file fails below, loading its weights; and exports written before the list
         * of names got its closing bracket still classify, by number */
        fprintf(stderr, "note: no class names: %s\n", err);
    }
    int status = 1;
    if (load_weights(m, a, NULL, params, state, prep) == 0)
        status = nnc_predict_files_named(m, params, state, prep, &names, a->n_predict, a->predict, a->threads, stdout);
    nnc_dataset_free(&names);
    return status;
}

/* Everything after argument parsing; owns no allocation of its own. */
/* --load W --export F alone: a conversion, no training. */
static int is_conversion(const cli_args *a) {
    return a->load_path && a->export_path && !a->eval_only && !has_training_flags(a) && !a->seed_given;
}

static int run(const nnc_model *m, const cli_args *a, const nnc_dist *dist, float *params, float *state) {
    if (a->n_predict) return predict(m, a, params, state);
    if (is_conversion(a)) {
        /* --load W --export F: a conversion, no data needed (except a PyTorch file's normalize constants) */
        float prep[2];
        if (load_weights(m, a, NULL, params, state, prep) != 0) return 1;
        printf("loaded weights from %s\n", a->load_path);
        return export_weights(m, a, NULL, params, state, prep) != 0;
    }
    const char *dir = find_data_dir(a, a->eval_only ? "t10k" : "train");
    if (!dir) return 1;
    print_layout(dir);
    nnc_dataset train = {0}, val = {0}, test = {0};
    const int has_val = !a->eval_only && has_folder_val(dir);
    if (!a->eval_only && load_split(&train, m, dir, "train", decode_threads(a)) != 0) return 1;
    if ((has_val && load_split(&val, m, dir, "val", decode_threads(a)) != 0) ||
        load_split(&test, m, dir, "t10k", decode_threads(a)) != 0) {
        nnc_dataset_free(&train), nnc_dataset_free(&val);
        return 1;
    }
    int status;
    if (a->eval_only) {
        float prep[2];
        status = 1;
        if (load_weights(m, a, NULL, params, state, prep) == 0) {
            printf("loaded weights from %s\n", a->load_path);
            status = report_test(m, &test, params, state, prep, a->threads);
            if (status == 0 && export_weights(m, a, &test, params, state, prep) != 0) status = 1;
        }
    } else {
        status = train_and_report(m, a, dist, dir, &train, has_val ? &val : NULL, &test, params, state);
    }
    nnc_dataset_free(&train);
    nnc_dataset_free(&val);
    nnc_dataset_free(&test);
    return status;
}

/* ------------------------------------------------------------------------ */
/* --bench                                                                  */
/* ------------------------------------------------------------------------ */

static void print_rate(const char *what, const nnc_bench_rate *r) {
    printf("bench %s_img_s %.1f\n", what, r->median);
    printf("bench %s_img_s_min %.1f\n", what, r->min);
    printf("bench %s_img_s_max %.1f\n", what, r->max);
    printf("bench %s_windows %d\n", what, r->windows);
    printf("bench %s_steps_per_window %ld\n", what, r->steps);
}

/* The recipe's optimizer in the DSL's words, so a comparison can use the same one. */
static void print_optimizer(const nnc_optimizer_cfg *o, float lr) {
    switch (o->kind) {
    case NNC_OPT_SGD:
        printf("bench optimizer sgd lr=%g momentum=%g nesterov=%d\n", (double)lr, (double)o->momentum, o->nesterov);
        break;
    case NNC_OPT_ADAM:
        printf("bench optimizer adam lr=%g beta1=%g beta2=%g eps=%g\n", (double)lr, (double)o->beta1,
               (double)o->beta2, (double)o->eps);
        break;
    case NNC_OPT_RMSPROP:
        printf("bench optimizer rmsprop lr=%g rho=%g eps=%g\n", (double)lr, (double)o->rho, (double)o->eps);
        break;
    }
}

/* One `bench KEY VALUE` line per figure; rates are images per second. */
static int bench(const nnc_model *m, const cli_args *a) {
    nnc_bench_opts opts = {
        .seconds = a->bench_seconds, .seed = a->seed_given ? a->seed : m->recipe.seed, .threads = a->threads};
    nnc_bench_result res;
    char err[ERR_LEN];
    if (nnc_bench(m, &opts, &res, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    struct rusage ru;
    long max_rss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1; /* Linux: kilobytes */
    printf("bench model %s\n", m->name);
    printf("bench input %dx%dx%d\n", m->in_h, m->in_w, m->in_c);
    printf("bench classes %d\n", m->n_classes);
    printf("bench params %zu\n", m->n_params);
    printf("bench batch %d\n", res.batch);
    printf("bench threads %d\n", opts.threads);
    printf("bench precision %s\n", m->precision ? m->precision : "fp32");
    printf("bench loss %s\n", m->recipe.loss == NNC_LOSS_MSE ? "mse" : "crossentropy");
    print_optimizer(&m->recipe.optimizer, res.lr);
    printf("bench train_lr 0\n"); /* the steady-state steps' learning rate: see nnc_bench */
    print_rate("train", &res.train);
    print_rate("infer", &res.infer);
    if (res.epoch_images > 0) {
        print_rate("epoch", &res.epoch);
        printf("bench epoch_images %d\n", res.epoch_images);
    }
    printf("bench max_rss_kb %ld\n", max_rss_kb);
    fflush(stdout);
    return 0;
}

/*
 * Denormal floats (the tails of Adam's moments, vanishing gradients) cost a
 * hundred cycles each on x86; flush them to zero, in this thread and in the
 * OpenMP threads it starts later, which inherit the setting.
 */
static void flush_denormals(void) {
#if defined(__SSE__)
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ | DAZ */
#endif
}

void nnc_prefer_short_spin(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return; /* the user chose */
    setenv("GOMP_SPINCOUNT", "20000", 1);
    execv("/proc/self/exe", argv);
    /* No /proc: carry on with libgomp's defaults. */
}

/* Why these flags run as one process only, or NULL: under mpirun a trainer trains. */
static const char *one_process_only(const cli_args *a) {
    if (a->bench) return "--bench measures one process; under mpirun, time a training run";
    if (a->n_predict || a->eval_only || is_conversion(a))
        return "--predict, --eval and --export conversions run as one process, without mpirun";
    if (a->check_numerics)
        return "--check-numerics runs in one process: under mpirun each process holds only its own slices' outputs";
    return NULL;
}

int nnc_main(const nnc_model *m, int argc, char **argv) {
    cli_args args;
    int status = parse_args(&args, m, argc, argv);
    if (status >= 0) return status;
    nnc_blas_single_threaded();
    flush_denormals();
    nnc_dist *dist;
    char err[ERR_LEN];
    if (nnc_dist_start(argv[0], m->slices, &dist, err, sizeof err) != 0) {
        if (err[0]) fprintf(stderr, "%s: error: %s\n", argv[0], err);
        return 2;
    }
    const char *alone = one_process_only(&args);
    if (dist && alone) { /* every process refuses; rank 0 says why */
        if (nnc_dist_rank(dist) == 0) fprintf(stderr, "%s: error: %s\n", argv[0], alone);
        return nnc_dist_finish_together(dist, 2);
    }
    if (args.bench) return bench(m, &args);
    if (nnc_dist_rank(dist) != 0 && !freopen("/dev/null", "w", stdout)) /* one writer of the log, too */
        return nnc_dist_finish(dist, 1);

    float *params = calloc(m->n_params ? m->n_params : 1, sizeof(float));
    float *state = calloc(m->n_state ? m->n_state : 1, sizeof(float));
    if (!params || !state) {
        fprintf(stderr, "error: out of memory for %zu parameters\n", m->n_params);
        free(params), free(state);
        return nnc_dist_finish(dist, 1);
    }
    status = run(m, &args, dist, params, state);
    free(params), free(state);
    return nnc_dist_finish(dist, status);
}
