/* One training step of tests/models/grad_gap.nn (globalavgpool) against PyTorch (tests/reference/fixtures/grad_gap.txt,
 * `make reference`). Included bare (NNC_BARE: no model struct), as test_gradcheck_*.c includes the same generated file. */
#define NNC_NO_MAIN
#define NNC_BARE
#include "grad_gap.c"
#include "reference_check.h"

Test(reference, globalavgpool, .timeout = 120)
{
    (void)init; /* bare: nothing else refers to it */
    ref_check_model("grad_gap", ref_workspace.dense_1_out); /* the last layer's output */
}
