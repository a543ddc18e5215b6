/*
 * main.c - the nnc command line.
 *
 *   nnc MODEL.nn -o OUT.c      compile a model to its C trainer
 *   nnc --summary MODEL.nn     print the Keras-style summary and the defaults applied
 *   nnc --dot MODEL.nn         print a Graphviz diagram of the model
 *   nnc --check MODEL.nn       check only
 *
 * Output is built in memory and only then written, to a temporary file that
 * is renamed into place: an error never leaves a half-written file behind.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "model.h"

typedef enum { MODE_COMPILE, MODE_SUMMARY, MODE_DOT, MODE_CHECK } mode;

static void usage(FILE *out)
{
    fputs("usage: nnc MODEL.nn [-o OUT.c]     compile MODEL.nn to a C trainer (stdout without -o)\n"
          "       nnc --summary MODEL.nn      layer table, parameter counts, defaults applied\n"
          "       nnc --dot MODEL.nn [-o F]   Graphviz diagram of the model\n"
          "       nnc --check MODEL.nn        check the model, write nothing\n"
          "       nnc --help | --version\n",
          out);
}

int main(int argc, char **argv)
{
    mode md = MODE_COMPILE;
    const char *input = NULL, *output = NULL;
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

    int status = 0;
    if (md == MODE_SUMMARY) {
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
