/*
 * main.c - nnc_main: the command line every generated trainer has.
 *
 *   find the data -> load and check it -> init or load weights
 *   -> train (or only evaluate) -> report -> save
 *
 * or, with --bench, no data at all: time training and inference on synthetic
 * images (nnc_bench in train.c) and print `bench KEY VALUE` lines.
 *
 * Exit status: 0 success, 1 a runtime problem (data, checkpoint, divergence),
 * 2 a bad command line.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nncrt.h"

/* OpenBLAS's own threads would fight the generated code's OpenMP threads, which
 * split each batch into a fixed partition; declared here to avoid needing
 * cblas.h just for this one call. */
void openblas_set_num_threads(int);

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#define MNIST_URL "https://ossci-datasets.s3.amazonaws.com/mnist/"
#define DOWNLOAD_DIR "data/mnist"
#define DEFAULT_THREADS 2
#define DEFAULT_BENCH_SECONDS 3.0
#define ERR_LEN 1024

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
    const char *save_path; /* NULL: <model name>.nncw */
    const char *load_path; /* NULL: fresh weights */
    int eval_only;
    int bench;            /* --bench: synthetic-data throughput instead of training */
    double bench_seconds; /* its time budget */
    int bench_seconds_given;
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
            "Train model '%s' (compiled from %s by nnc %s) on MNIST, then save its weights.\n"
            "\n"
            "  --data DIR     MNIST directory (default: $NNC_DATA, ./data/mnist, ../shared/data/mnist,\n"
            "                 else download into ./" DOWNLOAD_DIR " with curl)\n"
            "  --epochs N     epochs to train (default %d, from the recipe)\n"
            "  --seed N       random seed (default %llu, from the recipe)\n"
            "  --threads N    threads per step (default %d; results do not depend on it)\n"
            "  --save FILE    where to write the weights (default %s.nncw)\n"
            "  --load FILE    start from these weights instead of a fresh initialization\n"
            "  --eval         only evaluate the --load weights on the test set\n"
            "  --bench        measure speed on synthetic data (no MNIST needed, nothing saved):\n"
            "                 training steps (forward, backward, update at learning rate 0)\n"
            "                 and inference at batch %d after a warm-up, as the median\n"
            "                 images/s of timed windows; the whole epoch loop (shuffle,\n"
            "                 conversion, steps, updates); and the peak memory. Prints\n"
            "                 `bench KEY VALUE` lines. Takes --seed and --threads.\n"
            "  --bench-seconds S\n"
            "                 the benchmark's rough time budget (default %g)\n"
            "  --help         this text\n"
            "\n"
            "Batches hold %d images; the last batch of an epoch holds the remainder, so\n"
            "every training image is used once per epoch.\n",
            prog, m->name, m->source ? m->source : "?", NNC_VERSION, recipe_epochs(&m->recipe),
            (unsigned long long)m->recipe.seed, DEFAULT_THREADS, m->name, m->recipe.batch, DEFAULT_BENCH_SECONDS,
            m->recipe.batch);
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
        if (strcmp(flag, "--eval") == 0) {
            a->eval_only = 1;
            continue;
        }
        if (strcmp(flag, "--bench") == 0) {
            a->bench = 1;
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
        int known = !strcmp(name, "--data") || !strcmp(name, "--epochs") || !strcmp(name, "--seed") ||
                    !strcmp(name, "--threads") || !strcmp(name, "--save") || !strcmp(name, "--load") ||
                    !strcmp(name, "--bench-seconds");
        if (!known) return usage_error(m, prog, "unknown option '%s'", flag);
        if (!value || !*value) return usage_error(m, prog, "%s needs a value", name);
        unsigned long long v;
        if (!strcmp(name, "--data")) a->data_dir = value;
        else if (!strcmp(name, "--save")) a->save_path = value;
        else if (!strcmp(name, "--load")) a->load_path = value;
        else if (!strcmp(name, "--epochs")) {
            if (parse_number(value, 1, 1000000, &v) != 0)
                return usage_error(m, prog, "--epochs needs a whole number of at least 1, not '%s'", value);
            a->epochs = (int)v;
        } else if (!strcmp(name, "--threads")) {
            if (parse_number(value, 1, 1024, &v) != 0)
                return usage_error(m, prog, "--threads needs a whole number from 1 to 1024, not '%s'", value);
            a->threads = (int)v;
        } else if (!strcmp(name, "--seed")) {
            if (parse_number(value, 0, UINT64_MAX, &v) != 0)
                return usage_error(m, prog, "--seed needs a non-negative whole number, not '%s'", value);
            a->seed = v;
            a->seed_given = 1;
        } else if (!strcmp(name, "--bench-seconds")) {
            char *end;
            errno = 0;
            double s = strtod(value, &end);
            if (errno != 0 || *end != '\0' || !(s >= 0.01 && s <= 3600.0))
                return usage_error(m, prog, "--bench-seconds needs a number of seconds from 0.01 to 3600, not '%s'",
                                   value);
            a->bench_seconds = s;
            a->bench_seconds_given = 1;
        }
    }
    if (a->bench && (a->eval_only || a->data_dir || a->epochs || a->save_path || a->load_path))
        return usage_error(m, prog, "--bench uses synthetic data and saves nothing: it takes only --seed, --threads "
                                    "and --bench-seconds");
    if (a->bench_seconds_given && !a->bench) return usage_error(m, prog, "--bench-seconds needs --bench");
    if (a->eval_only && !a->load_path) return usage_error(m, prog, "--eval needs --load FILE (the weights to evaluate)");
    return -1;
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

/* Load `<dir>/<prefix>-*` and check it fits the model; prints the problem. */
static int load_split(nnc_dataset *ds, const nnc_model *m, const char *dir, const char *prefix) {
    char err[ERR_LEN];
    if (nnc_dataset_load(ds, dir, prefix, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return -1;
    }
    char what[4200];
    snprintf(what, sizeof what, "%s/%s", dir, prefix);
    if (nnc_dataset_check(ds, m, what, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        nnc_dataset_free(ds);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The program                                                              */
/* ------------------------------------------------------------------------ */

static void print_final_accuracy(double acc) {
    printf("test accuracy %.2f%% (error %.2f%%)\n", 100.0 * acc, 100.0 * (1.0 - acc));
    fflush(stdout);
}

static int evaluate_only(const nnc_model *m, const nnc_dataset *test, const float *params, const float *state,
                         const float prep[2], int threads) {
    char err[ERR_LEN];
    double loss, acc;
    if (nnc_evaluate(m, test, params, state, prep, threads, &loss, &acc, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    printf("test_loss %.4f\n", loss);
    print_final_accuracy(acc);
    return 0;
}

/* Everything after argument parsing; owns no allocation of its own. */
static int run(const nnc_model *m, const cli_args *a, float *params, float *state) {
    char err[ERR_LEN];
    const char *dir = find_data_dir(a, a->eval_only ? "t10k" : "train");
    if (!dir) return 1;
    nnc_dataset train = {0}, test = {0};
    if (!a->eval_only && load_split(&train, m, dir, "train") != 0) return 1;
    if (load_split(&test, m, dir, "t10k") != 0) {
        nnc_dataset_free(&train);
        return 1;
    }

    int status = 0;
    float prep[2];
    if (a->load_path) {
        if (nnc_checkpoint_load(a->load_path, m, params, state, prep, err, sizeof err) != 0) {
            fprintf(stderr, "error: %s\n", err);
            status = 1;
            goto done;
        }
        printf("loaded weights from %s\n", a->load_path);
    } else {
        nnc_prep_compute(m, &train, prep);
    }
    if (a->eval_only) {
        status = evaluate_only(m, &test, params, state, prep, a->threads);
        goto done;
    }

    nnc_train_opts opts = {
        .epochs = a->epochs > 0 ? a->epochs : recipe_epochs(&m->recipe),
        .seed = a->seed_given ? a->seed : m->recipe.seed,
        .threads = a->threads,
        .init_params = a->load_path == NULL,
        .log = stdout,
    };
    printf("model %s: %zu parameters; %d training and %d test images from %s; %d epochs, batch %d, seed %llu, "
           "%d threads\n",
           m->name, m->n_params, train.n, test.n, dir, opts.epochs, m->recipe.batch, (unsigned long long)opts.seed,
           opts.threads);
    fflush(stdout);
    nnc_train_result result;
    if (nnc_train(m, &train, &test, &opts, params, state, prep, &result, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\nweights not saved\n", err);
        status = 1;
        goto done;
    }
    print_final_accuracy(result.test_acc);

    char default_path[512];
    snprintf(default_path, sizeof default_path, "%s.nncw", m->name);
    const char *save_path = a->save_path ? a->save_path : default_path;
    if (nnc_checkpoint_save(save_path, m, params, state, prep, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        status = 1;
        goto done;
    }
    printf("saved weights to %s\n", save_path);

done:
    nnc_dataset_free(&train);
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

int nnc_main(const nnc_model *m, int argc, char **argv) {
    cli_args args;
    int status = parse_args(&args, m, argc, argv);
    if (status >= 0) return status;
    openblas_set_num_threads(1);
    flush_denormals();
    if (args.bench) return bench(m, &args);

    float *params = calloc(m->n_params ? m->n_params : 1, sizeof(float));
    float *state = calloc(m->n_state ? m->n_state : 1, sizeof(float));
    if (!params || !state) {
        fprintf(stderr, "error: out of memory for %zu parameters\n", m->n_params);
        free(params), free(state);
        return 1;
    }
    status = run(m, &args, params, state);
    free(params), free(state);
    return status;
}
