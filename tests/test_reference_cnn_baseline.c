/* One training step of models/cnn_baseline.nn against PyTorch (tests/reference/fixtures/cnn_baseline.txt, `make reference`). */
#define NNC_NO_MAIN
#if defined(__GNUC__) && !defined(__clang__)
/* The tests build without -march=native: the generated v16 helpers are static, so GCC's ABI note does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#include "../generated/cnn_baseline.c"
#include "reference_check.h"

Test(reference, cnn_baseline, .timeout = 120)
{
    ref_check_model("cnn_baseline", dense_2_out); /* dense_2_out: the last layer's output, the probabilities */
}
