/* Numerical gradient check: tests/models/grad_penalty.nn (same padding, sigmoid + mse, L1 and L2 penalties). */
#include "gradcheck_prelude.h"
#include "grad_penalty.c"
#include "gradcheck.h"

/* The penalties the model file declares, added to the loss the checker differentiates. */
static double declared_penalties(const double *params)
{
    double sum = 0.0;
    for (size_t i = 0; i < 3 * 3 * 1 * 2; i++)
        sum += 0.01 * params[CONV2D_1_W + i] * params[CONV2D_1_W + i];
    for (size_t i = 0; i < 50 * 4; i++)
        sum += 0.001 * fabs(params[DENSE_1_W + i]) + 0.002 * params[DENSE_1_W + i] * params[DENSE_1_W + i];
    return sum;
}

Test(gradcheck, same_padding_sigmoid_mse_penalties)
{
    gradcheck_model("grad_penalty", 4, declared_penalties);
}
