/* One training step of models/mlp800.nn against PyTorch (tests/reference/fixtures/mlp800.txt, `make reference`). */
#define NNC_NO_MAIN
#include "../generated/mlp800.c"
#include "reference_check.h"

Test(reference, mlp800, .timeout = 120)
{
    ref_check_model("mlp800", ref_workspace.dense_2_out); /* the last layer's output, the probabilities */
}
