/* Numerical gradient check: tests/models/grad_conv.nn (convs, batchnorm, maxpool, dropout, crossentropy). */
#include "gradcheck_prelude.h"
#include "grad_conv.c"
#include "gradcheck.h"

Test(gradcheck, conv_batchnorm_maxpool_dropout_crossentropy)
{
    gradcheck_model("grad_conv", 6, NULL);
}

Test(gradcheck, conv_partial_batch)
{
    gradcheck_model("grad_conv", 3, NULL); /* fewer samples than the batch, an odd split over the slices */
}

Test(gradcheck, conv_single_sample)
{
    gradcheck_model("grad_conv", 1, NULL); /* one slice is empty; batchnorm still has 9 pixels a channel */
}
