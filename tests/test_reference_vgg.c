/* One training step of models/vgg.nn against PyTorch (tests/reference/fixtures/vgg.txt, `make reference`). */
#define NNC_NO_MAIN
#include "../generated/vgg.c"
#include "reference_check.h"

Test(reference, vgg, .timeout = 120)
{
    ref_check_model("vgg", ref_workspace.dense_2_out); /* the last layer's output, the probabilities */
}
