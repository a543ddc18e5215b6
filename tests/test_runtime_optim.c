/* Tests for runtime/optim.c: two steps of each optimizer against values
 * computed by hand (in double, Python) from the Keras 2 formulas. */
#include <criterion/criterion.h>
#include <math.h>

#include "nncrt.h"

static const float grads_step1[2] = {0.5f, -1.0f};
static const float grads_step2[2] = {0.25f, 2.0f};

static void run_two_steps(nnc_optimizer_cfg cfg, float after1[2], float after2[2]) {
    nnc_optimizer opt;
    cr_assert_eq(nnc_optimizer_init(&opt, &cfg, 2), 0);
    float p[2] = {1.0f, -2.0f};
    nnc_optimizer_update(&opt, p, grads_step1, cfg.lr);
    after1[0] = p[0], after1[1] = p[1];
    nnc_optimizer_update(&opt, p, grads_step2, cfg.lr);
    after2[0] = p[0], after2[1] = p[1];
    cr_expect_eq(opt.step, 2);
    nnc_optimizer_free(&opt);
}

static void expect_close(const float got[2], double e0, double e1, const char *what) {
    cr_expect(fabs(got[0] - e0) < 1e-6, "%s: p[0] = %.9g, expected %.9g", what, got[0], e0);
    cr_expect(fabs(got[1] - e1) < 1e-6, "%s: p[1] = %.9g, expected %.9g", what, got[1], e1);
}

Test(runtime_optim, sgd_plain) {
    float a[2], b[2];
    run_two_steps((nnc_optimizer_cfg){.kind = NNC_OPT_SGD, .lr = 0.1f}, a, b);
    expect_close(a, 0.95, -1.9, "step 1");
    expect_close(b, 0.925, -2.1, "step 2");
}

Test(runtime_optim, sgd_momentum) {
    float a[2], b[2];
    run_two_steps((nnc_optimizer_cfg){.kind = NNC_OPT_SGD, .lr = 0.1f, .momentum = 0.9f}, a, b);
    expect_close(a, 0.95, -1.9, "step 1");
    expect_close(b, 0.88, -2.01, "step 2");
}

Test(runtime_optim, sgd_nesterov) {
    float a[2], b[2];
    run_two_steps((nnc_optimizer_cfg){.kind = NNC_OPT_SGD, .lr = 0.1f, .momentum = 0.9f, .nesterov = 1}, a, b);
    expect_close(a, 0.905, -1.81, "step 1");
    expect_close(b, 0.817, -2.109, "step 2");
}

Test(runtime_optim, adam_with_bias_correction) {
    float a[2], b[2];
    nnc_optimizer_cfg cfg = {.kind = NNC_OPT_ADAM, .lr = 0.001f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f};
    run_two_steps(cfg, a, b);
    expect_close(a, 0.999000006, -1.999, "step 1");
    expect_close(b, 0.998067832, -1.99936611, "step 2");
}

Test(runtime_optim, rmsprop) {
    float a[2], b[2];
    run_two_steps((nnc_optimizer_cfg){.kind = NNC_OPT_RMSPROP, .lr = 0.001f, .rho = 0.9f, .eps = 1e-7f}, a, b);
    expect_close(a, 0.996837724, -1.99683772, "step 1");
    expect_close(b, 0.995363306, -1.99969487, "step 2");
}

Test(runtime_optim, schedule_phases_then_last_lr) {
    static const nnc_schedule_phase phases[3] = {{2, 0.1f}, {3, 0.01f}, {1, 0.001f}};
    nnc_recipe r = {.optimizer = {.lr = 0.5f}, .epochs = 6, .n_phases = 3, .phases = phases};
    const float expected[8] = {0.1f, 0.1f, 0.01f, 0.01f, 0.01f, 0.001f, 0.001f, 0.001f};
    for (int e = 0; e < 8; e++) cr_expect_eq(nnc_schedule_lr(&r, e), expected[e], "epoch %d", e);
    cr_expect_eq(nnc_schedule_lr(&r, 1000), 0.001f);
}

Test(runtime_optim, schedule_without_phases_is_constant) {
    nnc_recipe r = {.optimizer = {.lr = 0.25f}, .epochs = 3};
    for (int e = 0; e < 5; e++) cr_expect_eq(nnc_schedule_lr(&r, e), 0.25f);
}
