/*
 * main.c - the nnc command line.
 *
 *   nnc MODEL.nn -o OUT.c      compile a model to its C trainer
 *   nnc --summary MODEL.nn     print the Keras-style summary and the defaults applied
 *   nnc --dot MODEL.nn         print a Graphviz diagram of the model
 *   nnc --check MODEL.nn       check only
 *   nnc --emit=inference --weights W.nncw MODEL.nn -o NAME.c
 *                              dependency-free inference C for one image: NAME.c and NAME.h
 *
 * Output is built in memory and only then written, to a temporary file that
 * is renamed into place: an error never leaves a half-written file behind.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "model.h"

typedef enum { MODE_COMPILE, MODE_SUMMARY, MODE_DOT, MODE_CHECK, MODE_INFERENCE } mode;

static void usage(FILE *out)
{
    fputs("usage: nnc MODEL.nn [-o OUT.c]     compile MODEL.nn to a C trainer (stdout without -o)\n"
          "       nnc --summary MODEL.nn      layer table, parameter counts, defaults applied\n"
          "       nnc --dot MODEL.nn [-o F]   Graphviz diagram of the model\n"
          "       nnc --check MODEL.nn        check the model, write nothing\n"
          "       nnc --emit=inference --weights W.nncw MODEL.nn -o NAME.c\n"
          "                                   inference C for one image, weights baked in: NAME.c and NAME.h\n"
          "                                   (C99 and <math.h> only, for any target)\n"
          "       nnc --slices N MODEL.nn -o OUT.c\n"
          "                                   cut each batch into N fixed slices (default 2): under mpirun, any\n"
          "                                   number of processes that divides N shares a step; the weights\n"
          "                                   depend on N, never on the process or thread count\n"
          "       nnc --precision fp32|bf16 MODEL.nn -o OUT.c\n"
          "                                   the train block's `precision`, overridden: bf16 multiplies\n"
          "                                   bfloat16 pairs in the convolution and dense layers that have\n"
          "                                   such a kernel, where the C compiler's target has AVX512_BF16\n"
          "       nnc --help | --version\n",
          out);
}

/* NAME from -o path/NAME.c: the API's prefix, a C identifier. */
static int inference_prefix(const char *output, char *prefix, size_t len)
{
    const char *base = strrchr(output, '/');
    base = base ? base + 1 : output;
    size_t n = strlen(base);
    if (n < 3 || strcmp(base + n - 2, ".c") != 0 || n - 2 >= len) {
        fprintf(stderr, "nnc: the inference output must be NAME.c (NAME.h is written beside it), not '%s'\n", output);
        return -1;
    }
    memcpy(prefix, base, n - 2);
    prefix[n - 2] = '\0';
    for (char *c = prefix; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_'))
            *c = '_';
    if (prefix[0] >= '0' && prefix[0] <= '9')
        prefix[0] = '_';
    return 0;
}

/* Load the weights the model was trained to, as a trainer of it would: another model's weights are refused. */
static int load_weights(const model *m, const char *path, float **params, float **state, float prep[2])
{
    nnc_model desc = {.name = m->name, .n_params = m->n_params, .n_state = m->n_state,
                      .signature = model_signature(m)};
    char err[512];
    *params = nnc_xmalloc(sizeof(float) * (m->n_params + 1));
    *state = nnc_xmalloc(sizeof(float) * (m->n_state + 1));
    if (nnc_checkpoint_load(path, &desc, *params, *state, prep, err, sizeof err) != 0) {
        fprintf(stderr, "nnc: %s\n", err);
        return -1;
    }
    return 0;
}

/* NAME.c and NAME.h, both built in memory, then each written whole; no half pair is left behind. */
static int emit_inference(const model *m, const char *weights, const char *output)
{
    char prefix[128], header[4096], err[512];
    float *params = NULL, *state = NULL, prep[2];
    if (inference_prefix(output, prefix, sizeof prefix) != 0)
        return 1;
    snprintf(header, sizeof header, "%.*s.h", (int)strlen(output) - 2, output);
    if (load_weights(m, weights, &params, &state, prep) != 0) {
        free(params), free(state);
        return 1;
    }
    char *c_text = NULL, *h_text = NULL;
    size_t c_len = 0, h_len = 0;
    FILE *c_mem = open_memstream(&c_text, &c_len), *h_mem = open_memstream(&h_text, &h_len);
    if (!c_mem || !h_mem)
        nnc_out_of_memory();
    int status = nnc_emit_inference(c_mem, h_mem, m, prefix, params, state, prep, weights);
    status |= fclose(c_mem) | fclose(h_mem);
    free(params), free(state);
    if (status == 0 && nnc_write_file_atomically(header, h_text, h_len, err, sizeof err) != 0) {
        fprintf(stderr, "nnc: %s\n", err);
        status = 1;
    } else if (status == 0 && nnc_write_file_atomically(output, c_text, c_len, err, sizeof err) != 0) {
        fprintf(stderr, "nnc: %s\n", err);
        remove(header); /* not one file of the pair without the other */
        status = 1;
    }
    free(c_text), free(h_text);
    return status ? 1 : 0;
}

int main(int argc, char **argv)
{
    mode md = MODE_COMPILE;
    const char *input = NULL, *output = NULL, *weights = NULL;
    int slices = DEFAULT_SLICES;
    const char *precision = NULL; /* --precision: NULL keeps the model's */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("nnc %s\n", NNC_VERSION);
            return 0;
        } else if (strcmp(a, "--summary") == 0) {
            md = MODE_SUMMARY;
        } else if (strcmp(a, "--dot") == 0) {
            md = MODE_DOT;
        } else if (strcmp(a, "--check") == 0) {
            md = MODE_CHECK;
        } else if (strcmp(a, "--emit=inference") == 0) {
            md = MODE_INFERENCE;
        } else if (strcmp(a, "--emit=trainer") == 0) {
            md = MODE_COMPILE;
        } else if (strcmp(a, "--weights") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "nnc: --weights needs a weights file (a trainer's .nncw)\n");
                return 2;
            }
            weights = argv[++i];
        } else if (strcmp(a, "--slices") == 0) {
            char *end = NULL;
            long n = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (!end || *end || n < 1 || n > MAX_SLICES) {
                fprintf(stderr, "nnc: --slices needs a whole number from 1 to %d\n", MAX_SLICES);
                return 2;
            }
            slices = (int)n;
            i++;
        } else if (strcmp(a, "--precision") == 0) {
            if (i + 1 >= argc || (strcmp(argv[i + 1], "fp32") != 0 && strcmp(argv[i + 1], "bf16") != 0)) {
                fprintf(stderr, "nnc: --precision needs fp32 or bf16\n");
                return 2;
            }
            precision = argv[++i];
        } else if (strcmp(a, "-o") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "nnc: -o needs a file name\n");
                usage(stderr);
                return 2;
            }
            output = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "nnc: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (input) {
            fprintf(stderr, "nnc: one model file at a time ('%s' and '%s')\n", input, a);
            return 2;
        } else {
            input = a;
        }
    }
    if (!input) {
        fprintf(stderr, "nnc: no model file given\n");
        usage(stderr);
        return 2;
    }
    if (md == MODE_INFERENCE && (!weights || !output)) {
        fprintf(stderr, "nnc: --emit=inference needs --weights FILE (the trained weights) and -o NAME.c\n");
        return 2;
    }
    if (weights && md != MODE_INFERENCE) {
        fprintf(stderr, "nnc: --weights goes with --emit=inference\n");
        return 2;
    }

    nnc_source src;
    char err[512];
    if (nnc_source_read(&src, input, err, sizeof err) != 0) {
        fprintf(stderr, "nnc: %s\n", err);
        return 1;
    }
    nnc_stmt *stmts = nnc_parse(&src);
    model *m = src.errors == 0 ? nnc_check(&src, stmts) : NULL;
    nnc_stmt_free(stmts);
    if (!m) {
        fprintf(stderr, "%d error%s generated.\n", src.errors, src.errors == 1 ? "" : "s");
        nnc_source_free(&src);
        return 1;
    }

    if (slices > m->recipe.batch) {
        fprintf(stderr, "nnc: --slices %d is more than the batch of %d\n", slices, m->recipe.batch);
        nnc_model_free(m);
        nnc_source_free(&src);
        return 2;
    }
    m->slices = slices;
    if (precision)
        model_set_precision(m, strcmp(precision, "bf16") == 0 ? PRECISION_BF16 : PRECISION_FP32);
    int status = 0;
    if (md == MODE_INFERENCE) {
        status = emit_inference(m, weights, output);
    } else if (md == MODE_SUMMARY) {
        nnc_print_summary(stdout, m);
    } else if (md != MODE_CHECK) {
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        if (!mem)
            nnc_out_of_memory();
        if (md == MODE_DOT)
            nnc_emit_dot(mem, m);
        else if (nnc_emit(mem, m) != 0)
            status = 1;
        if (fclose(mem) != 0)
            status = 1;
        if (status == 0) {
            if (output && strcmp(output, "-") != 0) {
                /* never a half-written file: see runtime/files.c */
                if (nnc_write_file_atomically(output, text, len, err, sizeof err) != 0) {
                    fprintf(stderr, "nnc: %s\n", err);
                    status = 1;
                }
            } else {
                status = fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 1;
            }
        }
        free(text);
    }
    nnc_model_free(m);
    nnc_source_free(&src);
    return status;
}
