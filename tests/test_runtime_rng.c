/* Tests for runtime/rng.c and runtime/init.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "nncrt.h"

Test(runtime_rng, pcg32_matches_reference_outputs) {
    /* pcg32-demo: pcg32_srandom_r(&rng, 42u, 54u). */
    const uint32_t expected[6] = {0xa15c02b7u, 0x7b47f409u, 0xba1d3330u, 0x83d2f293u, 0xbfa4784bu, 0xcbed606eu};
    nnc_rng rng;
    nnc_rng_seed(&rng, 42u, 54u);
    for (int i = 0; i < 6; i++) cr_expect_eq(nnc_rng_u32(&rng), expected[i], "output %d", i);
}

Test(runtime_rng, uniform_is_in_unit_interval_with_mean_one_half) {
    nnc_rng rng;
    nnc_rng_seed(&rng, 1, 2);
    double sum = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        float u = nnc_rng_uniform(&rng);
        cr_assert(u >= 0.0f && u < 1.0f, "uniform out of range: %g", u);
        sum += u;
    }
    cr_expect(fabs(sum / n - 0.5) < 0.01, "mean %g", sum / n);
}

Test(runtime_rng, below_stays_below_bound_and_hits_every_value) {
    nnc_rng rng;
    nnc_rng_seed(&rng, 7, 3);
    int hits[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint32_t r = nnc_rng_below(&rng, 7);
        cr_assert_lt(r, 7u);
        hits[r]++;
    }
    for (int k = 0; k < 7; k++) cr_expect(hits[k] > 800 && hits[k] < 1200, "value %d drawn %d times", k, hits[k]);
    cr_expect_eq(nnc_rng_below(&rng, 1), 0u);
}

Test(runtime_rng, normal_has_zero_mean_unit_variance) {
    nnc_rng rng;
    nnc_rng_seed(&rng, 3, 5);
    const int n = 200000;
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) {
        double z = nnc_rng_normal(&rng);
        cr_assert(isfinite(z));
        sum += z;
        sq += z * z;
    }
    double mean = sum / n, var = sq / n - mean * mean;
    cr_expect(fabs(mean) < 0.01, "mean %g", mean);
    cr_expect(fabs(var - 1.0) < 0.02, "variance %g", var);
}

Test(runtime_rng, same_seed_same_stream_different_seed_different_stream) {
    nnc_rng a, b, c;
    nnc_rng_seed(&a, 99, 1);
    nnc_rng_seed(&b, 99, 1);
    nnc_rng_seed(&c, 100, 1);
    int differs = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t x = nnc_rng_u32(&a);
        cr_assert_eq(x, nnc_rng_u32(&b));
        differs += x != nnc_rng_u32(&c);
    }
    cr_expect_gt(differs, 90);
}

Test(runtime_rng, hash_uniform_is_deterministic_and_in_range) {
    double sum = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        float u = nnc_hash_uniform(0x1234, (uint64_t)i);
        cr_assert(u >= 0.0f && u < 1.0f, "out of range: %g", u);
        cr_assert_eq(u, nnc_hash_uniform(0x1234, (uint64_t)i), "not a pure function at %d", i);
        sum += u;
    }
    cr_expect(fabs(sum / n - 0.5) < 0.01, "mean %g", sum / n);
    int same = 0;
    for (int i = 0; i < 1000; i++) same += nnc_hash_uniform(1, (uint64_t)i) == nnc_hash_uniform(2, (uint64_t)i);
    cr_expect_lt(same, 5, "keys 1 and 2 agree on %d of 1000 indices", same);
}

/* ------------------------------------------------------------------------ */

static void stats(const float *w, size_t n, double *mean, double *std, double *maxabs) {
    double s = 0, sq = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        s += w[i];
        sq += (double)w[i] * w[i];
        if (fabs(w[i]) > m) m = fabs(w[i]);
    }
    *mean = s / n;
    *std = sqrt(sq / n - *mean * *mean);
    *maxabs = m;
}

#define INIT_N 100000

Test(runtime_init, zeros_and_ones) {
    float w[8];
    nnc_rng rng;
    nnc_rng_seed(&rng, 1, 1);
    nnc_init_fill(w, 8, NNC_INIT_ZEROS, 4, 4, &rng);
    for (int i = 0; i < 8; i++) cr_expect_eq(w[i], 0.0f);
    nnc_init_fill(w, 8, NNC_INIT_ONES, 4, 4, &rng);
    for (int i = 0; i < 8; i++) cr_expect_eq(w[i], 1.0f);
}

Test(runtime_init, glorot_uniform_limit_and_variance) {
    float *w = malloc(INIT_N * sizeof *w);
    nnc_rng rng;
    nnc_rng_seed(&rng, 1, 1);
    nnc_init_fill(w, INIT_N, NNC_INIT_GLOROT_UNIFORM, 100, 50, &rng);
    double limit = sqrt(6.0 / 150.0), mean, std, maxabs;
    stats(w, INIT_N, &mean, &std, &maxabs);
    cr_expect_leq(maxabs, limit + 1e-6);
    cr_expect_gt(maxabs, 0.99 * limit, "never gets near the limit: %g", maxabs);
    cr_expect(fabs(mean) < 0.01 * limit);
    cr_expect(fabs(std - limit / sqrt(3.0)) < 0.01 * limit, "std %g", std);
    free(w);
}

Test(runtime_init, he_uniform_and_keras1_uniform_limits) {
    float *w = malloc(INIT_N * sizeof *w);
    nnc_rng rng;
    nnc_rng_seed(&rng, 2, 1);
    double mean, std, maxabs;
    nnc_init_fill(w, INIT_N, NNC_INIT_HE_UNIFORM, 24, 1000, &rng);
    stats(w, INIT_N, &mean, &std, &maxabs);
    cr_expect_leq(maxabs, 0.5 + 1e-6); /* sqrt(6/24) */
    cr_expect_gt(maxabs, 0.49);
    nnc_init_fill(w, INIT_N, NNC_INIT_UNIFORM, 24, 1000, &rng);
    stats(w, INIT_N, &mean, &std, &maxabs);
    cr_expect_leq(maxabs, 0.05 + 1e-7);
    cr_expect_gt(maxabs, 0.049);
    free(w);
}

/* Keras's correction makes the truncated samples' std the nominal one. */
Test(runtime_init, truncated_normals_have_keras_stddev_and_cutoff) {
    float *w = malloc(INIT_N * sizeof *w);
    nnc_rng rng;
    nnc_rng_seed(&rng, 3, 1);
    double mean, std, maxabs;

    nnc_init_fill(w, INIT_N, NNC_INIT_HE_NORMAL, 50, 7, &rng);
    stats(w, INIT_N, &mean, &std, &maxabs);
    double nominal = sqrt(2.0 / 50), raw = nominal / 0.87962566103423978;
    cr_expect_leq(maxabs, 2 * raw + 1e-6, "beyond 2 stddev: %g", maxabs);
    cr_expect_gt(maxabs, 1.95 * raw);
    cr_expect(fabs(std - nominal) < 0.02 * nominal, "std %g, want %g", std, nominal);

    nnc_init_fill(w, INIT_N, NNC_INIT_GLOROT_NORMAL, 30, 70, &rng);
    stats(w, INIT_N, &mean, &std, &maxabs);
    nominal = sqrt(2.0 / 100);
    raw = nominal / 0.87962566103423978;
    cr_expect_leq(maxabs, 2 * raw + 1e-6);
    cr_expect(fabs(std - nominal) < 0.02 * nominal, "std %g, want %g", std, nominal);
    cr_expect(fabs(mean) < 0.02 * nominal);
    free(w);
}

Test(runtime_init, same_seed_same_weights) {
    float a[64], b[64];
    nnc_rng r1, r2;
    nnc_rng_seed(&r1, 5, 1);
    nnc_rng_seed(&r2, 5, 1);
    nnc_init_fill(a, 64, NNC_INIT_HE_NORMAL, 9, 9, &r1);
    nnc_init_fill(b, 64, NNC_INIT_HE_NORMAL, 9, 9, &r2);
    cr_expect_arr_eq(a, b, sizeof a);
}
