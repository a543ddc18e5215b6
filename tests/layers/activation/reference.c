/* One training step of tests/layers/activation/activation.nn against PyTorch: tests/reference/fixtures/activation.txt, `make reference`. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "activation.c"
#include "reference_check.h"

REFERENCE_TEST(activation, activation_5_out) /* the last layer's output */
