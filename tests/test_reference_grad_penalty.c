/* One training step of tests/models/grad_penalty.nn against PyTorch (tests/reference/fixtures/grad_penalty.txt, `make reference`).
 * Included bare (NNC_BARE: no model struct), as test_gradcheck_*.c includes the same generated file. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "grad_penalty.c"
#include "reference_check.h"

Test(reference, grad_penalty, .timeout = 120)
{
    (void)init; /* bare: nothing else refers to it */
    ref_check_model("grad_penalty", ref_workspace.dense_2_out); /* the last layer's output */
}
