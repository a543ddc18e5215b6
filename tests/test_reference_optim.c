/*
 * runtime/optim.c against torch.optim: three steps of SGD (plain, momentum,
 * Nesterov), Adam and RMSprop on a 16-element vector
 * (tests/reference/fixtures/optim.txt, `make reference`).
 *
 * Every step compares the parameters (|diff| <= 1e-4 * max(1, max |ref|)) and,
 * for the optimizers the fixture marks strict, the displacement p_t - p_0
 * (|diff| <= 1e-4 * max |ref displacement|), which checks the update itself to
 * 1e-4 rather than to 1e-4 of the parameters.
 */
#define REF_NO_MODEL
#include "reference_check.h"

#define OPT_MAX_N 64
#define OPT_MAX_STEPS 8

static void read_vector(FILE *f, const char *tag, double *v, int n)
{
    ref_expect_word(f, tag);
    for (int i = 0; i < n; i++)
        v[i] = ref_number(f, tag);
}

Test(reference_optim, torch_optim_three_steps)
{
    FILE *f = ref_open("optim");
    ref_expect_word(f, "n");
    int n = (int)ref_integer(f, "n");
    ref_expect_word(f, "steps");
    int steps = (int)ref_integer(f, "steps");
    cr_assert(n >= 1 && n <= OPT_MAX_N && steps >= 1 && steps <= OPT_MAX_STEPS);

    double p0[OPT_MAX_N], g[OPT_MAX_STEPS][OPT_MAX_N];
    read_vector(f, "p0", p0, n);
    for (int s = 0; s < steps; s++) {
        char tag[16];
        snprintf(tag, sizeof tag, "grad%d", s + 1);
        read_vector(f, tag, g[s], n);
    }

    int n_opts = 0, failed = 0;
    char word[256];
    while (ref_word(f, word, sizeof word) && strcmp(word, "end") != 0) {
        cr_assert(strcmp(word, "optimizer") == 0, "fixture: expected 'optimizer', found '%s'", word);
        char name[128];
        cr_assert(ref_word(f, name, sizeof name));
        nnc_optimizer_cfg cfg = {0};
        long long kind = ref_integer(f, "kind");
        cfg.kind = kind == 0 ? NNC_OPT_SGD : kind == 1 ? NNC_OPT_ADAM : NNC_OPT_RMSPROP;
        cfg.lr = (float)ref_number(f, "lr");
        cfg.momentum = (float)ref_number(f, "momentum");
        cfg.nesterov = (int)ref_integer(f, "nesterov");
        cfg.beta1 = (float)ref_number(f, "beta1");
        cfg.beta2 = (float)ref_number(f, "beta2");
        cfg.rho = (float)ref_number(f, "rho");
        cfg.eps = (float)ref_number(f, "eps");
        int strict = (int)ref_integer(f, "strict");

        nnc_optimizer opt;
        cr_assert_eq(nnc_optimizer_init(&opt, &cfg, (size_t)n), 0);
        float p[OPT_MAX_N], grads[OPT_MAX_N];
        for (int i = 0; i < n; i++)
            p[i] = (float)p0[i];
        fprintf(stderr, "reference optimizer %s:\n", name);
        for (int s = 0; s < steps; s++) {
            double ref[OPT_MAX_N], ref_disp[OPT_MAX_N], max_p = 0.0, max_d = 0.0;
            char tag[32], label[200];
            snprintf(tag, sizeof tag, "after%d", s + 1);
            read_vector(f, tag, ref, n);
            for (int i = 0; i < n; i++)
                grads[i] = (float)g[s][i];
            nnc_optimizer_update(&opt, p, grads, cfg.lr);
            for (int i = 0; i < n; i++) {
                ref_disp[i] = ref[i] - p0[i];
                max_p = fmax(max_p, fabs(ref[i]));
                max_d = fmax(max_d, fabs(ref_disp[i]));
            }
            snprintf(label, sizeof label, "step %d parameters", s + 1);
            failed += !ref_check_tensor(label, p, NULL, ref, (size_t)n, max_p, 1, NULL);
            if (strict) {
                /* relative to the displacement itself, not to max(1, .) */
                double scaled[OPT_MAX_N];
                float got[OPT_MAX_N];
                for (int i = 0; i < n; i++) {
                    scaled[i] = ref_disp[i] / max_d;
                    got[i] = (float)(((double)p[i] - p0[i]) / max_d);
                }
                snprintf(label, sizeof label, "step %d displacement / %.3g", s + 1, max_d);
                failed += !ref_check_tensor(label, got, NULL, scaled, (size_t)n, 1.0, 1, NULL);
            }
        }
        nnc_optimizer_free(&opt);
        n_opts++;
    }
    fclose(f);
    cr_assert(n_opts >= 5, "fixture holds %d optimizers", n_opts);
    cr_expect_eq(failed, 0, "%d optimizer check(s) against torch.optim failed (see the log)", failed);
}
