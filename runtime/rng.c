/*
 * rng.c - PCG32 plus a counter-based hash for dropout masks.
 *
 * PCG32 follows the minimal C reference (pcg-random.org, pcg_basic.c) bit
 * for bit so that a seed means the same stream everywhere.
 */
#include <math.h>

#include "nncrt.h"

#define PCG32_MULTIPLIER 6364136223846793005ULL
#define NNC_TWO_PI 6.283185307179586476925 /* M_PI is not C11 */

void nnc_rng_seed(nnc_rng *rng, uint64_t seed, uint64_t stream) {
    /* pcg32_srandom_r: the two steps mix the seed into the state. */
    rng->state = 0U;
    rng->inc = (stream << 1u) | 1u;
    nnc_rng_u32(rng);
    rng->state += seed;
    nnc_rng_u32(rng);
}

uint32_t nnc_rng_u32(nnc_rng *rng) {
    uint64_t old = rng->state;
    rng->state = old * PCG32_MULTIPLIER + rng->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

float nnc_rng_uniform(nnc_rng *rng) {
    /* 24 bits is exactly what a float mantissa holds: every value is exact
     * and the result can never round up to 1.0f. */
    return (float)(nnc_rng_u32(rng) >> 8) * (1.0f / 16777216.0f);
}

uint32_t nnc_rng_below(nnc_rng *rng, uint32_t bound) {
    if (bound <= 1) return 0;
    /* pcg32_boundedrand_r: reject the low values that would bias the modulo. */
    uint32_t threshold = (-bound) % bound;
    for (;;) {
        uint32_t r = nnc_rng_u32(rng);
        if (r >= threshold) return r % bound;
    }
}

float nnc_rng_normal(nnc_rng *rng) {
    /* Box-Muller with a fresh pair per call: no hidden cached value, so the
     * stream position depends only on how many normals were drawn. */
    double u1 = 1.0 - (double)nnc_rng_uniform(rng); /* (0, 1]: log is finite */
    double u2 = (double)nnc_rng_uniform(rng);
    return (float)(sqrt(-2.0 * log(u1)) * cos(NNC_TWO_PI * u2));
}
