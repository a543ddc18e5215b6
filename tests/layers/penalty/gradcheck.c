/* Numerical gradient check of tests/layers/penalty/penalty.nn, in double precision (gradcheck.h). */
#include "gradcheck_prelude.h"
#include "penalty.c"
#include "gradcheck.h"

/* The penalties the model file declares, added to the loss the checker differentiates:
   l1 * |w| + l2 * w^2 on each kernel, weight_decay=0.004 adding 0.002 to every l2. */
static const struct {
    size_t offset, count;
    double l1, l2;
} declared[] = {
    {CONV2D_1_W, 3 * 3 * 1 * 2, 0.0, 0.01 + 0.002},
    {DENSE_1_W, 50 * 4, 0.001, 0.002 + 0.002},
    {DENSE_2_W, 4 * 3, 0.0, 0.002},
};

static double declared_penalties(const double *params)
{
    double sum = 0.0;
    for (size_t t = 0; t < sizeof declared / sizeof declared[0]; t++)
        for (size_t i = declared[t].offset; i < declared[t].offset + declared[t].count; i++)
            sum += declared[t].l1 * fabs(params[i]) + declared[t].l2 * params[i] * params[i];
    return sum;
}

GRADCHECK_TESTS(penalty, declared_penalties)
