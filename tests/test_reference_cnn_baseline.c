/* One training step of models/cnn_baseline.nn against PyTorch (tests/reference/fixtures/cnn_baseline.txt, `make reference`). */
#define NNC_NO_MAIN
#include "../generated/cnn_baseline.c"
#include "reference_check.h"

Test(reference, cnn_baseline, .timeout = 120)
{
    ref_check_model("cnn_baseline", ref_workspace.dense_2_out); /* the last layer's output, the probabilities */
}
