/* One training step of models/cnn_larger.nn against PyTorch (tests/reference/fixtures/cnn_larger.txt, `make reference`). */
#define NNC_NO_MAIN
#include "../generated/cnn_larger.c"
#include "reference_check.h"

Test(reference, cnn_larger, .timeout = 120)
{
    ref_check_model("cnn_larger", ref_workspace.dense_3_out); /* the last layer's output, the probabilities */
}
