/*
 * gradcheck.h - include after a generated model compiled through
 * gradcheck_prelude.h: checks its analytic gradients against central
 * differences, tensor by tensor, in double precision.
 *
 * A kind's tests/layers/KIND/gradcheck.c is the prelude, its model and this
 * header, then GRADCHECK_TESTS(KIND, penalty) (or its own tests).
 */
#undef float
#undef nnc_sgemm
#undef nnc_sample_loss
#undef nnc_argmax
#undef nnc_init_fill
#undef expf
#undef tanhf
#undef sqrtf

#define GRADCHECK_H_STEP 1e-6     /* central-difference step */
#define GRADCHECK_TOLERANCE 1e-3  /* relative error allowed per element */
#define GRADCHECK_SAMPLES 64      /* elements checked per tensor, spread over it */

typedef double (*gradcheck_penalty)(const double *params);

static double gradcheck_params[N_PARAMS], gradcheck_grads[N_PARAMS], gradcheck_scratch[N_PARAMS];
static workspace gradcheck_workspace; /* the model's buffers, in double precision */
static double gradcheck_state[N_STATE + 1];

/* The batch-mean loss, penalties included, in training mode with a fixed dropout mask. */
static double gradcheck_loss(const double *x, const uint8_t *labels, int n, double *grads, int threads,
                             gradcheck_penalty penalty)
{
    nnc_step_ctx ctx = {.threads = threads, .dropout_key = 0xC0FFEEULL, .workspace = &gradcheck_workspace};
    nnc_batch_stats stats = train_batch(&ctx, x, labels, n, gradcheck_params, grads, gradcheck_state);
    return stats.loss_sum / n + (penalty ? penalty(gradcheck_params) : 0.0);
}

/*
 * The spacing of the elements checked: about count / GRADCHECK_SAMPLES, and coprime to the count,
 * so that they fall in every column of a kernel ([in][out], [..][cout]: the columns divide the count).
 */
static size_t gradcheck_spacing(size_t count)
{
    size_t s = count > GRADCHECK_SAMPLES ? count / GRADCHECK_SAMPLES : 1;
    for (;; s++) {
        size_t a = count, b = s;
        while (b) {
            size_t r = a % b;
            a = b;
            b = r;
        }
        if (a == 1)
            return s;
    }
}

/*
 * Check every parameter tensor of the included model on a batch of n random samples. Tensors that
 * start below offset `unreached` must get exactly no gradient (the loss does not reach them), every
 * other tensor a nonzero one.
 */
static void gradcheck_model_reaching(const char *name, int n, gradcheck_penalty penalty, size_t unreached)
{
    cr_assert(n >= 1 && n <= B, "batch %d does not fit the model's %d", n, B);
    size_t in_size = (size_t)n * IN_H * IN_W * IN_C;
    double *x = malloc(sizeof(double) * in_size);
    uint8_t labels[B];
    cr_assert_not_null(x);
    nnc_rng rng;
    nnc_rng_seed(&rng, 42, 7);
    init(gradcheck_params, gradcheck_state, &rng);
    for (size_t i = 0; i < in_size; i++)
        x[i] = 2.0 * nnc_rng_uniform(&rng) - 1.0;
    for (int b = 0; b < n; b++)
        labels[b] = (uint8_t)((b * 7 + 1) % N_CLASSES);

    gradcheck_loss(x, labels, n, gradcheck_grads, 1, penalty);

    /* The thread count must not change a single bit. */
    gradcheck_loss(x, labels, n, gradcheck_scratch, 2, penalty);
    cr_expect(memcmp(gradcheck_grads, gradcheck_scratch, sizeof gradcheck_grads) == 0,
              "%s: gradients with 2 threads differ from 1 thread", name);

    double worst_of_all = 0.0;
    for (int t = 0; t < N_TENSORS; t++) {
        const nnc_tensor_info *info = &param_tensors[t];
        size_t samples = info->count < GRADCHECK_SAMPLES ? info->count : GRADCHECK_SAMPLES;
        size_t spacing = gradcheck_spacing(info->count);
        double worst = 0.0, largest = 0.0, largest_analytic = 0.0;
        for (size_t k = 0; k < samples; k++) {
            size_t i = info->offset + k * spacing % info->count;
            double saved = gradcheck_params[i];
            gradcheck_params[i] = saved + GRADCHECK_H_STEP;
            double up = gradcheck_loss(x, labels, n, gradcheck_scratch, 1, penalty);
            gradcheck_params[i] = saved - GRADCHECK_H_STEP;
            double down = gradcheck_loss(x, labels, n, gradcheck_scratch, 1, penalty);
            gradcheck_params[i] = saved;
            double numeric = (up - down) / (2.0 * GRADCHECK_H_STEP);
            double analytic = gradcheck_grads[i];
            /* Below 1e-6 the relative error measures the central difference's own rounding (~1e-16 of
               the loss over a 1e-6 step, ~1e-10: conv.nn's single sample has a 1.4e-7 gradient that
               came out 1e-3 apart): such elements are compared to 1e-9 absolute instead. */
            double scale = fmax(fmax(fabs(numeric), fabs(analytic)), 1e-6);
            worst = fmax(worst, fabs(numeric - analytic) / scale);
            largest = fmax(largest, fabs(numeric));
            largest_analytic = fmax(largest_analytic, fabs(analytic));
        }
        worst_of_all = fmax(worst_of_all, worst);
        int reached = info->offset >= unreached;
        int ok = worst < GRADCHECK_TOLERANCE && (reached ? largest > 1e-9 : largest == 0.0 && largest_analytic == 0.0);
        cr_log_info("%s, batch %d: %-28s max relative error %.2e (max |grad| %.2e)%s %s", name, n, info->name, worst,
                    largest, reached ? "" : " unreached", ok ? "OK" : "FAIL");
        cr_expect(worst < GRADCHECK_TOLERANCE, "%s %s: relative error %.3e exceeds %.0e", name, info->name, worst,
                  GRADCHECK_TOLERANCE);
        if (reached)
            cr_expect(largest > 1e-9, "%s %s: the loss does not depend on this tensor", name, info->name);
        else
            cr_expect(largest == 0.0 && largest_analytic == 0.0, "%s %s: gradient %.3e (numeric %.3e) where none reaches",
                      name, info->name, largest_analytic, largest);
    }
    cr_log_info("%s, batch %d: worst relative error %.2e over %d tensors", name, n, worst_of_all, N_TENSORS);

    /* Inference gives each sample a distribution over the classes (or sigmoid scores in (0, 1)). */
    double *probs = malloc(sizeof(double) * (size_t)n * N_CLASSES);
    cr_assert_not_null(probs);
    nnc_step_ctx ctx = {.threads = 1, .dropout_key = 0, .workspace = &gradcheck_workspace};
    infer_batch(&ctx, x, n, gradcheck_params, gradcheck_state, probs);
    for (int b = 0; b < n; b++)
        for (int j = 0; j < N_CLASSES; j++)
            cr_expect(probs[b * N_CLASSES + j] >= 0.0 && probs[b * N_CLASSES + j] <= 1.0 + 1e-12,
                      "%s: inference output %d,%d = %g is not a probability", name, b, j, probs[b * N_CLASSES + j]);
    free(probs);
    free(x);
}

static void gradcheck_model(const char *name, int n, gradcheck_penalty penalty)
{
    gradcheck_model_reaching(name, n, penalty, 0);
}

/*
 * A kind's usual checks, as Criterion tests in the suite named after it: `gradcheck` (the model's
 * whole batch B), `gradcheck_partial_batch` (3 samples: an odd split over the slices) and
 * `gradcheck_single_sample` (one slice is empty). penalty: the l1/l2 terms the model declares, or NULL.
 */
#define GRADCHECK_TESTS(suite, penalty)                                                                                \
    Test(suite, gradcheck)                                                                                             \
    {                                                                                                                  \
        gradcheck_model(#suite, B, penalty);                                                                           \
    }                                                                                                                  \
    Test(suite, gradcheck_partial_batch)                                                                               \
    {                                                                                                                  \
        gradcheck_model(#suite, 3, penalty);                                                                           \
    }                                                                                                                  \
    Test(suite, gradcheck_single_sample)                                                                               \
    {                                                                                                                  \
        gradcheck_model(#suite, 1, penalty);                                                                           \
    }
