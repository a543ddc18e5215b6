/* Numerical gradient check of tests/layers/dense/dense.nn, in double precision (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "dense.c"
#include "gradcheck.h"

GRADCHECK_TESTS(dense, NULL)
