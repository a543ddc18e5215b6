/* Numerical gradient check of tests/layers/avgpool/avgpool.nn, in double precision (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "avgpool.c"
#include "gradcheck.h"

GRADCHECK_TESTS(avgpool, NULL)
