/* One training step of models/vgg_dropout.nn against PyTorch (tests/reference/fixtures/vgg_dropout.txt, `make reference`). */
#define NNC_NO_MAIN
#include "../generated/vgg_dropout.c"
#include "reference_check.h"

Test(reference, vgg_dropout, .timeout = 120)
{
    ref_check_model("vgg_dropout", ref_workspace.dense_2_out); /* the last layer's output, the probabilities */
}
