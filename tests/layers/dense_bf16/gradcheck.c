/* Numerical gradient check of tests/layers/dense_bf16/dense_bf16.nn: its fp32 kernels, in double (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "dense_bf16.c"
#include "gradcheck.h"

GRADCHECK_TESTS(dense_bf16, NULL)
