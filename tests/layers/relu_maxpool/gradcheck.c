/* Numerical gradient check of tests/layers/relu_maxpool/relu_maxpool.nn, in double precision (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "relu_maxpool.c"
#include "gradcheck.h"

GRADCHECK_TESTS(relu_maxpool, NULL)
