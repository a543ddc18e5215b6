/* One training step of tests/layers/penalty/penalty.nn against PyTorch: tests/reference/fixtures/penalty.txt, `make reference`. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "penalty.c"
#include "reference_check.h"

REFERENCE_TEST(penalty, dense_2_out) /* the last layer's output */
