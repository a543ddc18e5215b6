/* Numerical gradient check of tests/layers/flatten/flatten.nn, in double precision (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "flatten.c"
#include "gradcheck.h"

GRADCHECK_TESTS(flatten, NULL)
