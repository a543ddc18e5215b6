/*
 * trainer_run.c - the same lines as infer_run.c (the argmax, then the
 * probabilities, one line an image) from a generated trainer's own inference
 * (infer_batch at its batch, one thread), for comparing the two. Linked with a
 * trainer compiled with -DNNC_NO_MAIN, libnncrt, and -DNNC_MODEL=nnc_model_<name>.
 *
 *   trainer_run WEIGHTS.nncw IMAGES-idx3-ubyte [LIMIT [BATCH]]
 *
 * The seconds infer_batch took (the calls alone) go to stderr.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nncrt.h"
#include "output_lines.h"

extern const nnc_model NNC_MODEL;

int main(int argc, char **argv)
{
    const nnc_model *m = &NNC_MODEL;
    char err[1024];
    if (argc < 3) {
        fprintf(stderr, "usage: trainer_run WEIGHTS.nncw IMAGES-idx3-ubyte [LIMIT [BATCH]]\n");
        return 2;
    }
    float *params = malloc(sizeof(float) * (m->n_params + 1)), *state = malloc(sizeof(float) * (m->n_state + 1));
    float prep[2], table[3][256];
    if (nnc_checkpoint_load(argv[1], m, params, state, prep, err, sizeof err) != 0) {
        fprintf(stderr, "trainer_run: %s\n", err);
        return 1;
    }
    int dims[3];
    uint8_t *images;
    size_t bytes;
    if (nnc_idx_read(argv[2], 3, dims, &images, &bytes, err, sizeof err) != 0) {
        fprintf(stderr, "trainer_run: %s\n", err);
        return 1;
    }
    size_t n = (size_t)dims[0]; /* images: dims[1] x dims[2] pixels each */
    if (argc > 3 && (size_t)atol(argv[3]) < n)
        n = (size_t)atol(argv[3]);
    int max_batch = argc > 4 && atoi(argv[4]) >= 1 && atoi(argv[4]) <= m->max_batch ? atoi(argv[4]) : m->max_batch;
    size_t in_floats = (size_t)m->in_h * m->in_w * m->in_c;
    if (m->in_c > 3) {
        fprintf(stderr, "trainer_run: model %s has %d channels; grey or RGB only\n", m->name, m->in_c);
        return 1;
    }
    /* Pixel i is channel i % C (NHWC): an RGB set is an IDX file of H x (W * 3) "pixels". */
    for (int c = 0; c < m->in_c && c < 3; c++)
        nnc_prep_table(m, prep, c, table[c]);
    float *x = malloc(sizeof(float) * in_floats * (size_t)m->max_batch);
    float *probs = malloc(sizeof(float) * (size_t)m->n_classes * (size_t)m->max_batch);
    nnc_step_ctx ctx = {.threads = 1, .workspace = nnc_workspace_new(m)};
    double seconds = 0;
    for (size_t start = 0; start < n; start += (size_t)max_batch) {
        int batch = n - start < (size_t)max_batch ? (int)(n - start) : max_batch;
        for (size_t i = 0; i < (size_t)batch * in_floats; i++)
            x[i] = table[i % (size_t)m->in_c][images[start * in_floats + i]];
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        m->infer_batch(&ctx, x, batch, params, state, probs);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        seconds += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        print_output_lines(probs, batch, m->n_classes);
    }
    fprintf(stderr, "seconds %.6f\n", seconds);
    nnc_workspace_free(ctx.workspace);
    free(params), free(state), free(x), free(probs), free(images);
    return 0;
}
