/* A whole training step of tests/layers/conv_padded_bf16/conv_padded_bf16.nn, its bfloat16 kernels against its fp32 ones (tests/bf16_step.h). */
#define NNC_BARE
#define NNC_NO_MAIN
#include "conv_padded_bf16.c"

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "bf16_step.h"

BF16_STEP_TESTS(conv_padded_bf16, conv_padded_bf16_step_fp32)
