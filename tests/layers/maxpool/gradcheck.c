/* Numerical gradient check of tests/layers/maxpool/maxpool.nn, in double precision (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "maxpool.c"
#include "gradcheck.h"

GRADCHECK_TESTS(maxpool, NULL)
