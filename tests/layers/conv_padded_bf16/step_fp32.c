/* tests/layers/conv_padded_bf16/conv_padded_bf16.nn built with its fp32 kernels only, for step.c to compare its bfloat16 step with. */
#define NNC_BARE
#define NNC_NO_MAIN
#define NNC_FP32_ONLY
#include "conv_padded_bf16.c"

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "bf16_step.h"

BF16_STEP_FUNCTION(conv_padded_bf16_step_fp32)
