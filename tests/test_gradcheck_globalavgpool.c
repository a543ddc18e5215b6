/* Numerical gradient check of globalavgpool: tests/models/grad_gap.nn (same-padded convs, then the global mean). */
#include "gradcheck_prelude.h"
#include "grad_gap.c"
#include "gradcheck.h"

Test(gradcheck, globalavgpool)
{
    gradcheck_model("grad_gap", 5, NULL);
}

Test(gradcheck, globalavgpool_partial_batch)
{
    gradcheck_model("grad_gap", 3, NULL); /* fewer samples than the batch, an odd split over the slices */
}
