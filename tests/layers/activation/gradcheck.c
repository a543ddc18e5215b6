/* Numerical gradient check of tests/layers/activation/activation.nn, in double precision (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "activation.c"
#include "gradcheck.h"

GRADCHECK_TESTS(activation, NULL)
