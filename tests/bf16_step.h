/*
 * bf16_step.h - a `precision bf16` test model's whole training step: its
 * bfloat16 kernels against its own fp32 ones.
 *
 * The kernel tests (tests/layers/{conv,dense}_bf16/kernels.c) call each
 * bfloat16 kernel with scratch offsets they compute themselves, and the
 * gradient checks run the fp32 fallback in double: neither runs the step the
 * compiler printed, whose calls hand each kernel its buffers (the packed
 * weights, the bfloat16 copies, the slice). Here the same generated file is
 * built twice, step_fp32.c with NNC_FP32_ONLY (the fp32 kernels) and step.c as
 * its target allows (bfloat16 where it has AVX512_BF16), and both run
 * train_batch, then infer_batch in a workspace of its own (so that it finds
 * none of training's packed weights or outputs), from the same parameters on
 * the same batch, on two threads. Every gradient tensor, the loss and the
 * probabilities must agree to bfloat16's precision: a swapped buffer, a pack
 * that did not run or a slice left out is off by about the tensor's own size.
 * Where the target has no AVX512_BF16, both builds are the fp32 kernels and
 * must agree to the bit.
 *
 * Include after the generated model, compiled with NNC_BARE and NNC_NO_MAIN.
 */
#ifndef BF16_STEP_H
#define BF16_STEP_H

#include <math.h>
#include <string.h>

/* What one step gives: its gradients, batch-mean loss and inference probabilities. */
typedef struct {
    float grads[N_PARAMS];
    float probs[B * N_CLASSES];
    double loss;
} bf16_step_result;

/* One training step, then inference, of the model from seed 42 on a batch of B random inputs. */
static void bf16_step_run(bf16_step_result *r)
{
    static float params[N_PARAMS], state[N_STATE + 1], x[(size_t)B * IN_H * IN_W * IN_C];
    static workspace ws, infer_ws; /* inference in a workspace of its own: none of training's packs or outputs */
    uint8_t labels[B];
    nnc_rng rng;
    nnc_rng_seed(&rng, 42, 7);
    init(params, state, &rng);
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = 2.0f * (float)nnc_rng_uniform(&rng) - 1.0f;
    for (int b = 0; b < B; b++)
        labels[b] = (uint8_t)((b * 7 + 1) % N_CLASSES);
    nnc_step_ctx ctx = {.threads = 2, .dropout_key = 0xC0FFEEULL, .workspace = &ws};
    r->loss = train_batch(&ctx, x, labels, B, params, r->grads, state).loss_sum / B;
    nnc_step_ctx infer_ctx = {.threads = 2, .dropout_key = 0, .workspace = &infer_ws};
    infer_batch(&infer_ctx, x, B, params, state, r->probs);
}

/* An exported function running bf16_step_run in this build of the model. */
#define BF16_STEP_FUNCTION(name)                                                                                       \
    void name(bf16_step_result *r);                                                                                    \
    void name(bf16_step_result *r) { bf16_step_run(r); }

#ifndef NNC_FP32_ONLY /* the comparison, in the build that may run the bfloat16 kernels */

/*
 * How far apart the two builds may be: the norm of the difference over the
 * norm of the fp32 result. Rounding moves each layer's operands by up to 2^-9,
 * and a gradient several bfloat16 layers down also sees relu masks that
 * near-zero outputs flip: measured 0.2% to 7.6% (conv_padded_bf16's first
 * bias, whose sum over 315 pixels cancels to a ninth of its kernel's norm).
 * Wiring faults tried by editing the generated step (another layer's packed
 * weights, a training or an inference pack left out, a scratch region
 * overlapping another or the padded input, a forward pass over one image of
 * each slice) put a tensor 30% to 40x away.
 */
#define BF16_STEP_TOLERANCE 0.1

/* ||a - b|| / ||b|| over n floats; *b_norm gets ||b||. */
static double bf16_step_distance(const float *a, const float *b, size_t n, double *b_norm)
{
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < n; i++) {
        diff += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        norm += (double)b[i] * b[i];
    }
    *b_norm = sqrt(norm);
    return norm > 0.0 ? sqrt(diff / norm) : sqrt(diff);
}

/* One result against the other: bit for bit when the bfloat16 kernels do not run, else within the tolerance. */
static void bf16_step_compare(const char *name, const bf16_step_result *got, const bf16_step_result *fp32)
{
    if (!NNC_BF16) {
        cr_log_info("%s: no AVX512_BF16 in this build, so both steps are the fp32 kernels", name);
        cr_expect(memcmp(got->grads, fp32->grads, sizeof got->grads) == 0, "%s: the fp32 builds' gradients differ",
                  name);
        cr_expect(memcmp(got->probs, fp32->probs, sizeof got->probs) == 0, "%s: the fp32 builds' outputs differ",
                  name);
        return;
    }
    for (int t = 0; t < N_TENSORS; t++) {
        const nnc_tensor_info *info = &param_tensors[t];
        double norm, d = bf16_step_distance(got->grads + info->offset, fp32->grads + info->offset, info->count, &norm);
        cr_log_info("%s: %-24s gradient %.2e of the fp32 one's norm %.2e apart", name, info->name, d, norm);
        cr_expect(norm > 0.0 && isfinite(norm), "%s %s: the fp32 step's gradient is %g", name, info->name, norm);
        cr_expect(d < BF16_STEP_TOLERANCE, "%s %s: the bf16 step's gradient is %.3e of its norm from the fp32 one's",
                  name, info->name, d);
    }
    /* The probabilities as their distance from a uniform guess, which is all an untrained model's differ by. */
    float got_p[B * N_CLASSES], fp32_p[B * N_CLASSES];
    for (int i = 0; i < B * N_CLASSES; i++) {
        got_p[i] = got->probs[i] - 1.0f / N_CLASSES;
        fp32_p[i] = fp32->probs[i] - 1.0f / N_CLASSES;
    }
    double norm, d = bf16_step_distance(got_p, fp32_p, (size_t)B * N_CLASSES, &norm);
    cr_log_info("%s: probabilities %.2e apart, loss %.6f against %.6f", name, d, got->loss, fp32->loss);
    cr_expect(d < BF16_STEP_TOLERANCE, "%s: inference outputs %.3e of their norm apart", name, d);
    cr_expect(fabs(got->loss - fp32->loss) < BF16_STEP_TOLERANCE * fabs(fp32->loss), "%s: loss %.6f against %.6f",
              name, got->loss, fp32->loss);
}

/* The test: this build's step against the fp32 build's `fp32_step` (BF16_STEP_FUNCTION in step_fp32.c). */
#define BF16_STEP_TESTS(suite, fp32_step)                                                                              \
    void fp32_step(bf16_step_result *r);                                                                               \
    Test(suite, whole_step_matches_fp32)                                                                               \
    {                                                                                                                  \
        static bf16_step_result got, fp32;                                                                             \
        bf16_step_run(&got);                                                                                           \
        fp32_step(&fp32);                                                                                              \
        bf16_step_compare(#suite, &got, &fp32);                                                                        \
    }

#endif /* NNC_FP32_ONLY */
#endif
