/* Numerical gradient check of tests/layers/batchnorm/batchnorm.nn, in double precision (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "batchnorm.c"
#include "gradcheck.h"

Test(batchnorm, gradcheck)
{
    gradcheck_model("batchnorm", B, NULL);
}

Test(batchnorm, gradcheck_partial_batch)
{
    gradcheck_model("batchnorm", 3, NULL); /* an odd split over the slices */
}

/*
 * One slice is empty, and the flat batchnorm normalizes a single value a channel to 0: its output is
 * beta (as Keras's), so its gamma and every tensor before it get exactly no gradient.
 */
Test(batchnorm, gradcheck_single_sample)
{
    gradcheck_model_reaching("batchnorm", 1, NULL, BATCH_NORMALIZATION_4_BETA);
}
