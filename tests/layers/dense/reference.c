/* One training step of tests/layers/dense/dense.nn against PyTorch: tests/reference/fixtures/dense.txt, `make reference`. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "dense.c"
#include "reference_check.h"

REFERENCE_TEST(dense, dense_5_out) /* the last layer's output */
