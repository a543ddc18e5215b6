/*
 * init.c - Keras 2 weight initializers.
 *
 * Keras 2 (>= 2.2.3) VarianceScaling draws the "normal" variants from a
 * normal truncated at two standard deviations, and divides the stddev by
 * 0.87962566103423978 (the stddev of a unit normal truncated at +-2) so that
 * the truncated distribution keeps the intended variance.
 */
#include <math.h>

#include "nncrt.h"

#define TRUNCATED_NORMAL_STDDEV_CORRECTION 0.87962566103423978

static void fill_constant(float *w, size_t n, float value) {
    for (size_t i = 0; i < n; i++) w[i] = value;
}

static void fill_uniform(float *w, size_t n, float limit, nnc_rng *rng) {
    for (size_t i = 0; i < n; i++) w[i] = limit * (2.0f * nnc_rng_uniform(rng) - 1.0f);
}

/* Like tf.truncated_normal: a draw beyond 2 stddev is thrown away and redrawn. */
static void fill_truncated_normal(float *w, size_t n, double stddev, nnc_rng *rng) {
    for (size_t i = 0; i < n; i++) {
        float z;
        do {
            z = nnc_rng_normal(rng);
        } while (fabsf(z) > 2.0f);
        w[i] = (float)(stddev * z);
    }
}

/* Keras's stddev for truncated-normal variance scaling with variance scale/fan. */
static double variance_scaling_stddev(double scale, double fan) {
    return sqrt(scale / fan) / TRUNCATED_NORMAL_STDDEV_CORRECTION;
}

void nnc_init_fill(float *w, size_t n, nnc_init_kind kind, int fan_in, int fan_out, nnc_rng *rng) {
    /* A zero fan would make a limit infinite; Keras guards with max(1, fan). */
    double in = fan_in > 0 ? fan_in : 1;
    double avg = (fan_in + fan_out) > 0 ? (fan_in + fan_out) / 2.0 : 1;
    switch (kind) {
    case NNC_INIT_ZEROS: fill_constant(w, n, 0.0f); break;
    case NNC_INIT_ONES: fill_constant(w, n, 1.0f); break;
    case NNC_INIT_GLOROT_UNIFORM: fill_uniform(w, n, (float)sqrt(3.0 / avg), rng); break; /* = sqrt(6/(in+out)) */
    case NNC_INIT_GLOROT_NORMAL: fill_truncated_normal(w, n, variance_scaling_stddev(1.0, avg), rng); break;
    case NNC_INIT_HE_UNIFORM: fill_uniform(w, n, (float)sqrt(6.0 / in), rng); break;
    case NNC_INIT_HE_NORMAL: fill_truncated_normal(w, n, variance_scaling_stddev(2.0, in), rng); break;
    case NNC_INIT_UNIFORM: fill_uniform(w, n, 0.05f, rng); break;
    }
}
