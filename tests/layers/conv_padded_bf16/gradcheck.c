/* Numerical gradient check of tests/layers/conv_padded_bf16/conv_padded_bf16.nn: its fp32 kernels, in double (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "conv_padded_bf16.c"
#include "gradcheck.h"

GRADCHECK_TESTS(conv_padded_bf16, NULL)
