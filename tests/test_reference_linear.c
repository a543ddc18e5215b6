/* One training step of models/linear.nn against PyTorch (tests/reference/fixtures/linear.txt, `make reference`). */
#define NNC_NO_MAIN
#include "../generated/linear.c"
#include "reference_check.h"

Test(reference, linear, .timeout = 120)
{
    ref_check_model("linear", ref_workspace.dense_1_out); /* the last layer's output, the probabilities */
}
