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

/* Expected rates computed in double (Python) from the formulas in nncrt.h; the
 * runtime rounds to float once, so compare relatively. */
static void expect_rates(const nnc_recipe *r, const double *expected, int n, const char *what) {
    for (int e = 0; e < n; e++) {
        double got = nnc_schedule_lr(r, e);
        cr_expect(fabs(got - expected[e]) <= 1e-6 * expected[e] + 1e-12, "%s, epoch %d: lr %.9g, expected %.9g",
                  what, e, got, expected[e]);
    }
}

Test(runtime_optim, schedule_step_decays_every_n_epochs) {
    nnc_recipe r = {.optimizer = {.lr = 0.1f}, .epochs = 7, .schedule = NNC_SCHED_STEP, .step_every = 2,
                    .step_factor = 0.5f};
    const double expected[7] = {0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125};
    expect_rates(&r, expected, 7, "step");
}

Test(runtime_optim, schedule_cosine_from_lr_to_min_lr) {
    nnc_recipe r = {.optimizer = {.lr = 0.1f}, .epochs = 5, .schedule = NNC_SCHED_COSINE, .min_lr = 0.001f};
    const double expected[5] = {0.1, 0.0855017856687341, 0.0505, 0.0154982143312659, 0.001};
    expect_rates(&r, expected, 5, "cosine");
    cr_expect_eq(nnc_schedule_lr(&r, 9), 0.001f, "after the last epoch the rate stays at min_lr");
    r.epochs = 1; /* one epoch: no division by zero, the rate is lr */
    cr_expect_eq(nnc_schedule_lr(&r, 0), 0.1f);
}

Test(runtime_optim, schedule_onecycle_up_to_max_then_down) {
    nnc_recipe r = {.optimizer = {.lr = 0.01f}, .epochs = 11, .schedule = NNC_SCHED_ONECYCLE, .max_lr = 0.1f};
    /* At each epoch's first step, u = epoch / 11: up to 0.1 at u = 0.3, down to 0.01 / 1e4 at u = 1. */
    const double expected[12] = {0.01, 0.028897439069296094, 0.06971805834928399, 0.09817718381265239,
                                 0.09797466893423808, 0.08844764179170543, 0.07260886927818065,
                                 0.05305855246026172, 0.033006204865519945, 0.015743756822465246,
                                 0.004105129695604662, 1e-06};
    expect_rates(&r, expected, 12, "onecycle");
}

Test(runtime_optim, schedule_onecycle_moves_every_step) {
    /* One epoch of 10 steps is a whole cycle: step 3 (u = 0.3) is the peak. */
    nnc_recipe r = {.optimizer = {.lr = 0.01f}, .epochs = 1, .schedule = NNC_SCHED_ONECYCLE, .max_lr = 0.1f};
    const double expected[10] = {0.01, 0.0325, 0.0775, 0.1, 0.09504849291068701, 0.08117467834803574,
                                 0.06112643543734874, 0.038874564562651266, 0.018826321651964257,
                                 0.0049525070893129885};
    for (int step = 0; step < 10; step++)
        cr_expect_float_eq(nnc_schedule_lr_at(&r, 0, step, 10), (float)expected[step], 1e-6f * expected[step],
                           "step %d: %g, expected %g", step, (double)nnc_schedule_lr_at(&r, 0, step, 10),
                           expected[step]);
    /* Every other schedule holds for the whole epoch. */
    r.schedule = NNC_SCHED_COSINE, r.min_lr = 0.0f, r.epochs = 2;
    cr_expect_eq(nnc_schedule_lr_at(&r, 0, 7, 10), nnc_schedule_lr(&r, 0));
}

Test(runtime_optim, schedule_kinds_ignore_what_they_do_not_use) {
    static const nnc_schedule_phase phases[1] = {{1, 0.7f}};
    nnc_recipe r = {.optimizer = {.lr = 0.25f}, .epochs = 3, .schedule = NNC_SCHED_CONSTANT};
    cr_expect_eq(nnc_schedule_lr(&r, 2), 0.25f);
    r.schedule = NNC_SCHED_PIECEWISE, r.n_phases = 1, r.phases = phases;
    cr_expect_eq(nnc_schedule_lr(&r, 2), 0.7f);
    r.schedule = NNC_SCHED_STEP, r.step_every = 0, r.step_factor = 0.5f; /* every 0 acts as 1 */
    cr_expect_eq(nnc_schedule_lr(&r, 2), 0.0625f);
}
