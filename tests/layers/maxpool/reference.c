/* One training step of tests/layers/maxpool/maxpool.nn against PyTorch: tests/reference/fixtures/maxpool.txt, `make reference`. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "maxpool.c"
#include "reference_check.h"

REFERENCE_TEST(maxpool, dense_1_out) /* the last layer's output */
