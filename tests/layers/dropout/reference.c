/* One training step of tests/layers/dropout/dropout.nn against PyTorch: tests/reference/fixtures/dropout.txt, `make reference`. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "dropout.c"
#include "reference_check.h"

REFERENCE_TEST(dropout, dense_2_out) /* the last layer's output */
