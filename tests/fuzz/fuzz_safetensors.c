/*
 * fuzz_safetensors.c - libFuzzer harness for the safetensors reader
 * (runtime/interop.c): arbitrary bytes decoded as the weights of a small model
 * with a conv kernel, a dense kernel over a flattened image and batchnorm
 * state must be refused cleanly or read, never read out of bounds. The
 * decoder works on bytes in memory, so no file is involved.
 */
#include <stdint.h>
#include <stdio.h>

#include "nncrt.h"

/* conv2d_1 (3x3x1 -> 2), batch_normalization_1 (2), dense_1 (2x2x2 image -> 3) */
static const nnc_tensor_info tensors[] = {
    {"conv2d_1.kernel", 0, 18, 4, {3, 3, 1, 2}, "HWIO", {0}},
    {"conv2d_1.bias", 18, 2, 1, {2}, "O", {0}},
    {"batch_normalization_1.gamma", 20, 2, 1, {2}, "C", {0}},
    {"batch_normalization_1.beta", 22, 2, 1, {2}, "C", {0}},
    {"dense_1.kernel", 24, 24, 2, {8, 3}, "IO", {2, 2, 2}},
    {"dense_1.bias", 48, 3, 1, {3}, "O", {0}},
};
static const nnc_tensor_info state_tensors[] = {
    {"batch_normalization_1.moving_mean", 0, 2, 1, {2}, "C", {0}},
    {"batch_normalization_1.moving_variance", 2, 2, 1, {2}, "C", {0}},
};
static const nnc_model tiny = {
    .name = "tiny", .in_h = 4, .in_w = 4, .in_c = 1, .n_classes = 3, .n_params = 51, .n_state = 4,
    .signature = 0x1234567890abcdefULL, .max_batch = 1, .prep = NNC_PREP_NORMALIZE,
    .n_tensors = 6, .tensors = tensors, .n_state_tensors = 2, .state_tensors = state_tensors,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    float params[51], state[4], prep[2];
    int prep_known;
    char err[512];
    nnc_safetensors_decode("fuzz.safetensors", data, size, &tiny, params, state, prep, &prep_known, err, sizeof err);
    return 0;
}
