/* One training step of tests/layers/conv/conv.nn against PyTorch: tests/reference/fixtures/conv.txt, `make reference`. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "conv.c"
#include "reference_check.h"

REFERENCE_TEST(conv, dense_1_out) /* the last layer's output */
