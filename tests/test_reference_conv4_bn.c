/* One training step of models/conv4_bn.nn against PyTorch (tests/reference/fixtures/conv4_bn.txt, `make reference`). */
#define NNC_NO_MAIN
#include "../generated/conv4_bn.c"
#include "reference_check.h"

Test(reference, conv4_bn, .timeout = 120)
{
    ref_check_model("conv4_bn", ref_workspace.dense_3_out); /* the last layer's output, the probabilities */
}
