/* One training step of tests/layers/loss_crossentropy/loss_crossentropy.nn against PyTorch: tests/reference/fixtures/loss_crossentropy.txt, `make reference`. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "loss_crossentropy.c"
#include "reference_check.h"

REFERENCE_TEST(loss_crossentropy, dense_2_out) /* the last layer's output */
