/*
 * onnx_random_run.c - ONNX export for models that MNIST cannot train (any
 * input shape: the layer-kind models of tests/layers/), for
 * tests/test_interop.c. Linked like trainer_run.c with a trainer compiled with
 * -DNNC_NO_MAIN and -DNNC_MODEL=nnc_model_<name>.
 *
 *   onnx_random_run DIR N
 *
 * Draws the model's initial weights and moves every parameter and
 * batchnorm statistic off its initial value (gamma 1, beta 0, mean 0,
 * variance 1 would hide a wrong order), writes DIR/w.onnx (nnc_export_weights,
 * with normalize constants when the model normalizes) and N random images as
 * DIR/images.idx (IDX, uint8, [N][h][w][c]), and prints the trainer's own
 * inference on them as trainer_run does: the argmax, then the outputs, a line
 * an image.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nncrt.h"
#include "output_lines.h"

extern const nnc_model NNC_MODEL;

static void put_be32(FILE *f, uint32_t v)
{
    for (int i = 3; i >= 0; i--)
        fputc((int)(v >> (8 * i)) & 0xff, f);
}

int main(int argc, char **argv)
{
    const nnc_model *m = &NNC_MODEL;
    if (argc != 3 || atoi(argv[2]) < 1) {
        fprintf(stderr, "usage: onnx_random_run DIR N\n");
        return 2;
    }
    const char *dir = argv[1];
    int n = atoi(argv[2]);
    char path[4096], err[1024];
    nnc_rng rng;
    nnc_rng_seed(&rng, 11, 1);
    float *params = malloc(sizeof(float) * (m->n_params + 1)), *state = malloc(sizeof(float) * (m->n_state + 1));
    m->init(params, state, &rng);
    for (size_t i = 0; i < m->n_params; i++)
        params[i] += 0.2f * (nnc_rng_uniform(&rng) - 0.5f);
    for (int t = 0; t < m->n_state_tensors; t++) {
        const nnc_tensor_info *s = &m->state_tensors[t];
        int variance = strstr(s->name, "variance") != NULL;
        for (size_t i = 0; i < s->count; i++)
            state[s->offset + i] = variance ? 0.5f + 1.5f * nnc_rng_uniform(&rng) : nnc_rng_uniform(&rng) - 0.5f;
    }
    float prep[2] = {m->prep == NNC_PREP_SCALE ? m->prep_scale : 33.0f, m->prep == NNC_PREP_NORMALIZE ? 78.0f : 0.0f};
    snprintf(path, sizeof path, "%s/w.onnx", dir);
    if (nnc_export_weights(path, m, params, state, prep, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "onnx_random_run: %s\n", err);
        return 1;
    }

    size_t in_floats = (size_t)m->in_h * m->in_w * m->in_c;
    uint8_t *images = malloc(in_floats * (size_t)n);
    for (size_t i = 0; i < in_floats * (size_t)n; i++)
        images[i] = (uint8_t)nnc_rng_below(&rng, 256);
    snprintf(path, sizeof path, "%s/images.idx", dir);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return 1;
    }
    put_be32(f, 0x0804), put_be32(f, (uint32_t)n), put_be32(f, (uint32_t)m->in_h), put_be32(f, (uint32_t)m->in_w);
    put_be32(f, (uint32_t)m->in_c);
    fwrite(images, 1, in_floats * (size_t)n, f);
    if (fclose(f) != 0) {
        perror(path);
        return 1;
    }

    float table[NNC_MAX_PREP_CHANNELS][256]; /* a table per channel: per-channel normalize */
    for (int c = 0; c < NNC_MAX_PREP_CHANNELS; c++)
        nnc_prep_table(m, prep, c, table[c]);
    float *x = malloc(sizeof(float) * in_floats * (size_t)m->max_batch);
    float *probs = malloc(sizeof(float) * (size_t)m->n_classes * (size_t)m->max_batch);
    nnc_step_ctx ctx = {.threads = 1, .workspace = nnc_workspace_new(m)};
    for (int start = 0; start < n; start += m->max_batch) {
        int batch = n - start < m->max_batch ? n - start : m->max_batch;
        for (size_t i = 0; i < (size_t)batch * in_floats; i++)
            x[i] = table[i % (size_t)m->in_c % NNC_MAX_PREP_CHANNELS][images[(size_t)start * in_floats + i]];
        m->infer_batch(&ctx, x, batch, params, state, probs);
        print_output_lines(probs, batch, m->n_classes);
    }
    nnc_workspace_free(ctx.workspace);
    free(params), free(state), free(images), free(x), free(probs);
    return 0;
}
