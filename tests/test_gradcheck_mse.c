/* Numerical gradient check: tests/models/grad_mse.nn (sigmoid, avgpool, activations as layers, flat batchnorm, softmax layer, mse). */
#include "gradcheck_prelude.h"
#include "grad_mse.c"
#include "gradcheck.h"

Test(gradcheck, avgpool_activations_softmax_layer_mse)
{
    gradcheck_model("grad_mse", 5, NULL);
}

Test(gradcheck, mse_partial_batch)
{
    gradcheck_model("grad_mse", 3, NULL); /* fewer samples than the batch, an odd split over the slices */
}
