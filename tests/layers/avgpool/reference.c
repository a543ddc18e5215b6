/* One training step of tests/layers/avgpool/avgpool.nn against PyTorch: tests/reference/fixtures/avgpool.txt, `make reference`. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "avgpool.c"
#include "reference_check.h"

REFERENCE_TEST(avgpool, dense_1_out) /* the last layer's output */
