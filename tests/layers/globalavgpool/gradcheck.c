/* Numerical gradient check of tests/layers/globalavgpool/globalavgpool.nn, in double precision (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "globalavgpool.c"
#include "gradcheck.h"

GRADCHECK_TESTS(globalavgpool, NULL)
