/* Numerical gradient check of tests/layers/dropout/dropout.nn, in double precision (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "dropout.c"
#include "gradcheck.h"

GRADCHECK_TESTS(dropout, NULL)
