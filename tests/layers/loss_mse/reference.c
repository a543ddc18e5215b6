/* One training step of tests/layers/loss_mse/loss_mse.nn against PyTorch: tests/reference/fixtures/loss_mse.txt, `make reference`. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "loss_mse.c"
#include "reference_check.h"

REFERENCE_TEST(loss_mse, activation_1_out) /* the last layer's output */
