/* One training step of tests/layers/globalavgpool/globalavgpool.nn against PyTorch: tests/reference/fixtures/globalavgpool.txt, `make reference`. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "globalavgpool.c"
#include "reference_check.h"

REFERENCE_TEST(globalavgpool, dense_1_out) /* the last layer's output */
