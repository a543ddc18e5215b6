/* Numerical gradient check of tests/layers/loss_mse/loss_mse.nn, in double precision (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "loss_mse.c"
#include "gradcheck.h"

GRADCHECK_TESTS(loss_mse, NULL)
