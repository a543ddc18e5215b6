/* One training step of tests/layers/flatten/flatten.nn against PyTorch: tests/reference/fixtures/flatten.txt, `make reference`. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "flatten.c"
#include "reference_check.h"

REFERENCE_TEST(flatten, dense_2_out) /* the last layer's output */
