/* One training step of models/mlp64x5.nn against PyTorch (tests/reference/fixtures/mlp64x5.txt, `make reference`). */
#define NNC_NO_MAIN
#include "../generated/mlp64x5.c"
#include "reference_check.h"

Test(reference, mlp64x5, .timeout = 120)
{
    ref_check_model("mlp64x5", ref_workspace.activation_6_out); /* the last layer's output, the probabilities */
}
