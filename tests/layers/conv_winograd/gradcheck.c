/* Numerical gradient check of tests/layers/conv_winograd/conv_winograd.nn, in double (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "conv_winograd.c"
#include "gradcheck.h"

GRADCHECK_TESTS(conv_winograd, NULL)
