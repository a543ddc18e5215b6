/*
 * test_plan.c - the step plan (compiler/plan.c) as data: which operations a
 * step runs, in which order, where the threads wait, which buffers share
 * memory, and how much activation memory a model needs.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

#ifndef NNC_ROOT
#define NNC_ROOT "."
#endif

/* Parse and check a source already read; `what` names it if it does not compile. */
static model *check_source(nnc_source *src, const char *what)
{
    src->out = stderr;
    nnc_stmt *stmts = nnc_parse(src);
    model *m = nnc_check(src, stmts);
    nnc_stmt_free(stmts);
    cr_assert_not_null(m, "%s does not compile", what);
    return m;
}

static model *load_model(const char *file, nnc_source *src)
{
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s", NNC_ROOT, file);
    cr_assert_eq(nnc_source_read(src, path, err, sizeof err), 0, "%s", err);
    return check_source(src, file);
}

/* The same for a model given as text, as if it were the file x.nn. */
static model *model_from_text(const char *text, nnc_source *src)
{
    nnc_source_from_string(src, "x.nn", text, strlen(text));
    return check_source(src, text);
}

static int count_ops(const plan *p, op_kind kind, op_phase phase)
{
    int n = 0;
    for (int k = 0; k < p->n_ops; k++)
        n += p->ops[k].kind == kind && p->ops[k].phase == phase;
    return n;
}

Test(plan, vgg_bn_training_step)
{
    nnc_source src;
    model *m = load_model("models/vgg_bn.nn", &src);
    plan *p = plan_build(m, PASS_TRAIN);
    char err[256] = "";
    cr_expect_eq(plan_check_aliasing(p, err, sizeof err), 0, "%s", err);
    /*
     * Sync points: after the weight layouts are prepared (1); around each of
     * the 5 batchnorms' statistics (2 x 5) and each of their parameter-gradient
     * sums (2 x 5); before the gradient sum (1). Everything else runs on.
     */
    cr_expect_eq(p->n_sync, 22, "%d sync points", p->n_sync);
    /* 4 convs, 5 batchnorms x 3 steps, 2 maxpools, 2 dense, 1 dropout: flatten is a view, no op. */
    cr_expect_eq(count_ops(p, OP_LAYER, PHASE_FORWARD), 4 + 15 + 2 + 2 + 1);
    cr_expect_eq(count_ops(p, OP_LOSS, PHASE_LOSS), 1);
    cr_expect_eq(count_ops(p, OP_GRAD_SUM, PHASE_GRADIENT), 1);
    cr_expect_eq(count_ops(p, OP_PREPARE, PHASE_PREPARE), 4); /* each conv's weight layouts */
    /* The first conv reads the network's input: it needs no input gradient. */
    cr_expect_eq(p->roles[0].needs_din, 0);
    cr_expect_eq(p->roles[1].needs_din, 1);
    cr_expect(p->roles[m->n_layers - 1].fused_softmax);
    /*
     * Activation memory at batch 64: every computing layer's output, kept for
     * backward, and two gradient buffers of the largest activation (26x26x32).
     */
    size_t floats = 0;
    for (int i = 0; i < m->n_layers; i++)
        if (!(m->layers[i].kind->flags & KIND_VIEW))
            floats += (size_t)shape_size(m->layers[i].out);
    floats += 2 * (size_t)(26 * 26 * 32);
    cr_expect_eq(plan_activation_bytes(p), floats * 64 * sizeof(float));
    cr_expect_eq(p->largest, 26 * 26 * 32);
    plan_free(p);
    nnc_model_free(m);
    nnc_source_free(&src);
}

/*
 * A max pooling right after a relu applies the relu's derivative, and only then: after a conv's
 * inline relu or a relu layer, not after another pooling, a batchnorm (vgg_bn's order), a tanh,
 * a dropout or the input, and an average pooling never does. The string lists the layers' roles in
 * order: R for relu_grad_below, A for act_grad_above, - for neither.
 */
static void expect_relu_roles_of(const model *m, const char *what, const char *expected)
{
    plan *p = plan_build(m, PASS_TRAIN);
    char got[64] = "";
    cr_assert_lt(m->n_layers, (int)sizeof got);
    for (int i = 0; i < m->n_layers; i++) {
        cr_expect(!(p->roles[i].relu_grad_below && p->roles[i].act_grad_above));
        got[i] = p->roles[i].relu_grad_below ? 'R' : p->roles[i].act_grad_above ? 'A' : '-';
    }
    cr_expect_str_eq(got, expected, "%s: roles %s, expected %s", what, got, expected);
    plan_free(p);
}

static void expect_relu_roles(const char *file, const char *expected)
{
    nnc_source src;
    model *m = load_model(file, &src);
    expect_relu_roles_of(m, file, expected);
    nnc_model_free(m);
    nnc_source_free(&src);
}

static void expect_relu_roles_in(const char *text, const char *expected)
{
    nnc_source src;
    model *m = model_from_text(text, &src);
    expect_relu_roles_of(m, text, expected);
    nnc_model_free(m);
    nnc_source_free(&src);
}

Test(plan, max_pooling_applies_the_relu_below_it)
{
    /* conv relu, maxpool, conv relu (same padding), maxpool, relu, maxpool, dense */
    expect_relu_roles("tests/layers/relu_maxpool/relu_maxpool.nn", "ARARAR-");
    /* maxpool (input), conv relu, maxpool, maxpool, batchnorm, maxpool, dense */
    expect_relu_roles("tests/layers/maxpool/maxpool.nn", "-AR----");
    /* conv relu, batchnorm, conv relu, batchnorm, maxpool, ...: a batchnorm between, no pair */
    expect_relu_roles("models/vgg_bn.nn", "---------------");
    /* a relu first, on the input: its pooling pairs (the relu layer needs no input gradient itself);
       then the flatten inserted before the dense layer */
    expect_relu_roles_in("input 8x8x1\nrelu\nmaxpool\ndense 2 softmax\ntrain\n  loss crossentropy\n", "AR--");
    /* tanh, then an average pooling after a relu, then a dropout between a relu and a pooling */
    expect_relu_roles_in("input 8x8x1\nconv 2 1x1 tanh\nmaxpool\nconv 2 1x1 relu\navgpool\nconv 2 1x1 relu\n"
                         "dropout 0.5\nmaxpool\ndense 2 softmax\ntrain\n  loss crossentropy\n",
                         "--------");
}

/*
 * Several processes (MPI) each compute some of the slices: every layer step
 * that reads all the slices' partial results (batchnorm's combine and its
 * parameter-gradient sum) must come right after a share operation that
 * fetches them, in the same one-thread block; nothing else may be preceded by
 * one. (The gradient sum makes its own exchange.) At inference nothing is
 * shared.
 */
Test(plan, every_read_of_all_slices_follows_a_share)
{
    nnc_source src;
    model *m = load_model("models/vgg_bn.nn", &src);
    plan *p = plan_build(m, PASS_TRAIN);
    int shares = 0;
    for (int k = 0; k < p->n_ops; k++) {
        const plan_op *op = &p->ops[k];
        int reads_all = op->kind == OP_LAYER && op->scope == STEP_ONE_THREAD;
        int shared = k > 0 && p->ops[k - 1].kind == OP_SHARE;
        cr_expect_eq(reads_all, shared, "operation %d (%s): reads every slice %d, shared first %d", k,
                     op->layer >= 0 ? m->layers[op->layer].name : "step", reads_all, shared);
        if (op->kind == OP_SHARE) {
            shares++;
            cr_expect_eq(op->scope, STEP_ONE_THREAD);
            cr_expect(op->wait_before, "a share waits for every slice of this process");
            cr_expect_eq(op->layer, k + 1 < p->n_ops ? p->ops[k + 1].layer : -2);
        }
    }
    cr_expect_eq(shares, 5 + 5, "%d shares", shares); /* each batchnorm's sums and its dgamma, dbeta */
    plan *inference = plan_build(m, PASS_INFER);
    for (int k = 0; k < inference->n_ops; k++)
        cr_expect_neq(inference->ops[k].kind, OP_SHARE);
    plan_free(inference);
    plan_free(p);
    nnc_model_free(m);
    nnc_source_free(&src);
}

/* Backward reads a layer's output gradient from one buffer and writes its input's into the other. */
Test(plan, gradient_buffers_take_turns)
{
    nnc_source src;
    model *m = load_model("models/cnn_larger.nn", &src);
    plan *p = plan_build(m, PASS_TRAIN);
    int backward = 0;
    for (int k = 0; k < p->n_ops; k++) {
        const plan_op *op = &p->ops[k];
        if (op->phase != PHASE_BACKWARD || op->din.buf < 0)
            continue;
        backward++;
        cr_expect_neq(op->din.buf, op->dout.buf, "%s reads and writes one gradient buffer",
                      m->layers[op->layer].name);
        cr_expect_eq(op->din.size, shape_size(m->layers[op->layer].in));
    }
    cr_expect_gt(backward, 3);
    /* No batchnorm: the whole step runs without waiting, but for the gradient sum and the penalties. */
    cr_expect_eq(p->n_sync, 1 + 1, "%d sync points", p->n_sync); /* after the weight layouts, before the sum */
    plan_free(p);
    nnc_model_free(m);
    nnc_source_free(&src);
}

/* Inference: batchnorm's running statistics, no loss, no backward, no waiting but after the layouts. */
Test(plan, inference_step)
{
    nnc_source src;
    model *m = load_model("models/vgg_bn.nn", &src);
    plan *p = plan_build(m, PASS_INFER);
    cr_expect_eq(count_ops(p, OP_LOSS, PHASE_LOSS), 0);
    for (int k = 0; k < p->n_ops; k++)
        cr_expect(p->ops[k].phase == PHASE_FORWARD || p->ops[k].phase == PHASE_PREPARE);
    cr_expect_eq(count_ops(p, OP_LAYER, PHASE_FORWARD), 4 + 5 + 2 + 2 + 1);
    cr_expect_eq(p->n_sync, 1);
    plan_free(p);
    nnc_model_free(m);
    nnc_source_free(&src);
}
