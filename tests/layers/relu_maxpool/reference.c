/* One training step of tests/layers/relu_maxpool/relu_maxpool.nn against PyTorch: tests/reference/fixtures/relu_maxpool.txt, `make reference`. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "relu_maxpool.c"
#include "reference_check.h"

REFERENCE_TEST(relu_maxpool, dense_1_out) /* the last layer's output */
