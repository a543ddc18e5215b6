/* Numerical gradient check of tests/layers/loss_crossentropy/loss_crossentropy.nn, in double precision (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "loss_crossentropy.c"
#include "gradcheck.h"

GRADCHECK_TESTS(loss_crossentropy, NULL)
