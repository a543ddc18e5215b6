/* Numerical gradient check of tests/layers/conv/conv.nn, in double precision (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "conv.c"
#include "gradcheck.h"

GRADCHECK_TESTS(conv, NULL)
