/* One training step of models/linear.nn against PyTorch (tests/reference/fixtures/linear.txt, `make reference`). */
#define NNC_NO_MAIN
#if defined(__GNUC__) && !defined(__clang__)
/* The tests build without -march=native: the generated v16 helpers are static, so GCC's ABI note does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#include "../generated/linear.c"
#include "reference_check.h"

Test(reference, linear, .timeout = 120)
{
    ref_check_model("linear", dense_1_out); /* dense_1_out: the last layer's output, the probabilities */
}
