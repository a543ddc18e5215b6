/* One training step of tests/layers/batchnorm/batchnorm.nn against PyTorch: tests/reference/fixtures/batchnorm.txt, `make reference`. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "batchnorm.c"
#include "reference_check.h"

REFERENCE_TEST(batchnorm, dense_2_out) /* the last layer's output */
