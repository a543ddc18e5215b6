/*
 * embed.c - a trained nnc model inside another program: no training code, no
 * MNIST, just the forward pass of one generated model.
 *
 *   embed WEIGHTS.nncw IMAGE.pgm|IMAGE.png
 *
 * prints the digit (and, on stderr, its probability). The model is whichever
 * generated file MODEL_C names, cnn_baseline by default; the weights must come
 * from the same model (the checkpoint's signature is checked).
 *
 * The generated file is included with NNC_NO_MAIN so that its trainer main()
 * stays out; what is left is the model description `nnc_model_<name>`, whose
 * infer_batch runs the forward pass on preprocessed floats.
 */
#define NNC_NO_MAIN
#ifndef MODEL_C
#define MODEL_C "cnn_baseline.c"
#define MODEL nnc_model_cnn_baseline
#endif
#include MODEL_C

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s WEIGHTS.nncw IMAGE.pgm|IMAGE.png\n", argv[0]);
        return 2;
    }
    const nnc_model *m = &MODEL;
    float *params = malloc(m->n_params * sizeof(float));
    float *state = malloc((m->n_state ? m->n_state : 1) * sizeof(float));
    float *x = malloc((size_t)m->in_h * m->in_w * sizeof(float));
    float *probs = malloc((size_t)m->n_classes * sizeof(float));
    uint8_t *image = malloc((size_t)m->in_h * m->in_w);
    if (!params || !state || !x || !probs || !image) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    /* The weights, and prep: the constants of the model's input preprocessing
     * (for `normalize`, the training set's mean and std), as trained. */
    char err[1024];
    float prep[2];
    if (nnc_checkpoint_load(argv[1], m, params, state, prep, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    /* The file made into an MNIST-like 28x28 digit (white on black, 20 px,
     * centred by mass), then converted exactly as training converts pixels. */
    if (nnc_image_load_mnist(argv[2], m->in_h, m->in_w, image, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    float table[256];
    nnc_prep_table(m, prep, table);
    for (int p = 0; p < m->in_h * m->in_w; p++) x[p] = table[image[p]];

    void *workspace = nnc_workspace_new(m);
    if (!workspace) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    nnc_step_ctx ctx = {.threads = 1, .dropout_key = 0, .workspace = workspace}; /* one image: one thread */
    m->infer_batch(&ctx, x, 1, params, state, probs);
    nnc_workspace_free(workspace);
    int best = 0;
    for (int k = 1; k < m->n_classes; k++)
        if (probs[k] > probs[best]) best = k;
    printf("%d\n", best);
    fprintf(stderr, "%s: %d with probability %.3f (model %s)\n", argv[2], best, (double)probs[best], m->name);
    free(params), free(state), free(x), free(probs), free(image);
    return 0;
}
