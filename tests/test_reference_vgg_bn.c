/* One training step of models/vgg_bn.nn against PyTorch (tests/reference/fixtures/vgg_bn.txt, `make reference`). */
#define NNC_NO_MAIN
#include "../generated/vgg_bn.c"
#include "reference_check.h"

Test(reference, vgg_bn, .timeout = 120)
{
    ref_check_model("vgg_bn", ref_workspace.dense_2_out); /* the last layer's output, the probabilities */
}
