/*
 * plan.c - building the step plan (plan.h) from a checked model: buffers,
 * operations in order, and the sync points between them.
 */
#include <stdlib.h>
#include <string.h>

#include "plan.h"

static int add_buffer(plan *p, const char *name, buffer_role role, int floats, shape s, int layer)
{
    p->bufs = nnc_xrealloc(p->bufs, (size_t)(p->n_bufs + 1) * sizeof *p->bufs);
    plan_buffer *b = &p->bufs[p->n_bufs];
    snprintf(b->name, sizeof b->name, "%s", name);
    b->role = role;
    b->floats = floats;
    b->shape = s;
    b->layer = layer;
    return p->n_bufs++;
}

static plan_op *add_op(plan *p, op_kind kind, op_phase phase, int layer, step_scope scope)
{
    p->ops = nnc_xrealloc(p->ops, (size_t)(p->n_ops + 1) * sizeof *p->ops);
    plan_op *op = &p->ops[p->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->phase = phase;
    op->layer = layer;
    op->scope = scope;
    op->in = op->out = -1;
    op->din.buf = op->dout.buf = -1;
    return op;
}

static int is_view(const layer *l)
{
    return (l->kind->flags & KIND_VIEW) != 0;
}

/*
 * Which layers need an input gradient, which end in the fused softmax-crossentropy, and which
 * relu's derivative the max pooling above it applies. That fold is exact because the relu maps
 * every input, NaN too, to a value >= 0 (act_expr: v > 0 ? v : 0): the pooled maximum of relu
 * outputs is positive exactly where the relu's derivative at the routed input is 1.
 */
static void assign_roles(plan *p)
{
    const model *m = p->m;
    int reads_x = 1; /* every layer so far was a view of the input */
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        p->roles[i].needs_din = !reads_x;
        p->roles[i].fused_softmax =
            i == m->n_layers - 1 && m->recipe.loss == NNC_LOSS_CROSSENTROPY && l->act == ACT_SOFTMAX;
        if (i > 0 && (l->kind->flags & KIND_RELU_GRAD_BELOW) && p->roles[i].needs_din &&
            !is_view(&m->layers[i - 1]) && m->layers[i - 1].act == ACT_RELU) {
            p->roles[i].relu_grad_below = 1;
            p->roles[i - 1].act_grad_above = 1;
        }
        if (!is_view(l))
            reads_x = 0;
    }
}

/*
 * Activations: one buffer a computing layer, kept for backward; a view shares
 * its input's. Their gradients: a layer's backward reads its output's gradient
 * from one buffer and writes its input's into the other, so two buffers taking
 * turns down the network suffice.
 */
static void assign_buffers(plan *p)
{
    const model *m = p->m;
    int x = add_buffer(p, "x", BUF_INPUT, shape_size(m->input), m->input, -1);
    int computing = 0;
    p->largest = 0;
    for (int i = 0; i < m->n_layers; i++)
        if (!is_view(&m->layers[i])) {
            computing++;
            if (shape_size(m->layers[i].out) > p->largest)
                p->largest = shape_size(m->layers[i].out);
        }
    int grad[2] = {-1, -1};
    if (p->pass == PASS_TRAIN) {
        grad[0] = add_buffer(p, "grad_a", BUF_GRADIENT, p->largest, (shape){1, 1, p->largest}, -1);
        if (computing > 1)
            grad[1] = add_buffer(p, "grad_b", BUF_GRADIENT, p->largest, (shape){1, 1, p->largest}, -1);
    }
    int k = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (is_view(l)) {
            p->out_buf[i] = i == 0 ? x : p->out_buf[i - 1];
            p->dout[i] = i == 0 ? (grad_ref){-1, 0} : p->dout[i - 1];
            continue;
        }
        char name[48];
        snprintf(name, sizeof name, "%s_out", l->name);
        p->out_buf[i] = add_buffer(p, name, BUF_ACTIVATION, shape_size(l->out), l->out, i);
        p->dout[i] = (grad_ref){grad[k++ % 2], shape_size(l->out)};
    }
}

static void add_layer_steps(plan *p, int i, op_phase phase, step_list steps)
{
    for (int s = 0; s < steps.n; s++) {
        if (steps.step[s].print_share && p->pass == PASS_TRAIN)
            add_op(p, OP_SHARE, phase, i, STEP_ONE_THREAD)->step = steps.step[s];
        plan_op *op = add_op(p, OP_LAYER, phase, i, steps.step[s].scope);
        op->step = steps.step[s];
        op->in = i == 0 ? 0 : p->out_buf[i - 1];
        op->out = p->out_buf[i];
        if (phase == PHASE_BACKWARD) {
            op->dout = p->dout[i];
            op->din = i > 0 && p->roles[i].needs_din ? p->dout[i - 1] : (grad_ref){-1, 0};
        }
    }
}

static void add_ops(plan *p)
{
    const model *m = p->m;
    for (int i = 0; i < m->n_layers; i++)
        if (layer_prepares(&m->layers[i]))
            add_op(p, OP_PREPARE, PHASE_PREPARE, i, STEP_ONE_THREAD);
    for (int i = 0; i < m->n_layers; i++)
        if (!is_view(&m->layers[i]))
            add_layer_steps(p, i, PHASE_FORWARD, layer_forward_steps(&m->layers[i], p->pass));
    if (p->pass == PASS_INFER)
        return;
    int last = m->n_layers - 1;
    plan_op *loss = add_op(p, OP_LOSS, PHASE_LOSS, last, STEP_SLICE);
    loss->in = p->out_buf[last];
    loss->dout = p->dout[last];
    for (int i = last; i >= 0; i--)
        if (!is_view(&m->layers[i]))
            add_layer_steps(p, i, PHASE_BACKWARD, layer_backward_steps(&m->layers[i], &p->roles[i]));
    add_op(p, OP_GRAD_SUM, PHASE_GRADIENT, -1, STEP_ALL_THREADS);
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].l1 != 0 || m->layers[i].l2 != 0)
            add_op(p, OP_PENALTY, PHASE_GRADIENT, i, STEP_ALL_THREADS);
}

/*
 * Where the threads wait. Slice operations follow each other without waiting:
 * slice c runs on the same thread in every slice loop (OpenMP's static
 * schedule over the same count) and reads only its own slice's data. A
 * one-thread operation needs every slice done, and the others wait for it in
 * turn; so do the operations over all parameters.
 */
static void place_sync_points(plan *p)
{
    p->n_sync = 0;
    for (int k = 1; k < p->n_ops; k++) {
        const plan_op *prev = &p->ops[k - 1], *op = &p->ops[k];
        int one = op->scope == STEP_ONE_THREAD, prev_one = prev->scope == STEP_ONE_THREAD;
        int all = op->kind == OP_GRAD_SUM || op->kind == OP_PENALTY;
        p->ops[k].wait_before = (one && !prev_one) || (!one && prev_one) || all;
        p->n_sync += p->ops[k].wait_before;
    }
}

plan *plan_build(const model *m, pass_kind pass)
{
    plan *p = nnc_xmalloc(sizeof *p);
    memset(p, 0, sizeof *p);
    p->pass = pass;
    p->m = m;
    p->roles = nnc_xmalloc(sizeof *p->roles * (size_t)m->n_layers);
    memset(p->roles, 0, sizeof *p->roles * (size_t)m->n_layers);
    p->out_buf = nnc_xmalloc(sizeof *p->out_buf * (size_t)m->n_layers);
    p->dout = nnc_xmalloc(sizeof *p->dout * (size_t)m->n_layers);
    assign_roles(p);
    assign_buffers(p);
    add_ops(p);
    place_sync_points(p);
    return p;
}

void plan_free(plan *p)
{
    if (!p)
        return;
    free(p->bufs);
    free(p->ops);
    free(p->roles);
    free(p->out_buf);
    free(p->dout);
    free(p);
}

size_t plan_activation_bytes(const plan *p)
{
    size_t floats = 0;
    for (int b = 0; b < p->n_bufs; b++)
        if (p->bufs[b].role != BUF_INPUT)
            floats += (size_t)p->bufs[b].floats;
    return floats * (size_t)p->m->recipe.batch * sizeof(float);
}

int plan_check_aliasing(const plan *p, char *err, size_t len)
{
    for (int k = 0; k < p->n_ops; k++) {
        const plan_op *op = &p->ops[k];
        const char *who = op->layer >= 0 ? p->m->layers[op->layer].name : "the step";
        if (op->kind == OP_LAYER && op->phase == PHASE_FORWARD && op->in == op->out) {
            snprintf(err, len, "%s reads and writes %s", who, p->bufs[op->in].name);
            return -1;
        }
        if (op->din.buf >= 0 && op->din.buf == op->dout.buf) {
            snprintf(err, len, "%s's backward reads and writes gradients in %s", who, p->bufs[op->din.buf].name);
            return -1;
        }
    }
    return 0;
}

static const char *const phase_names[N_PHASES] = {"prepare", "forward", "loss", "backward", "gradient"};

void plan_print(FILE *out, const plan *p)
{
    for (int k = 0; k < p->n_ops; k++) {
        const plan_op *op = &p->ops[k];
        if (op->wait_before)
            fprintf(out, "-- sync --\n");
        const char *scope = op->scope == STEP_SLICE ? "slices" : op->scope == STEP_ONE_THREAD ? "one thread" : "all";
        char who[64];
        if (op->kind == OP_SHARE)
            snprintf(who, sizeof who, "%s%s(share slices)", op->layer >= 0 ? p->m->layers[op->layer].name : "",
                     op->layer >= 0 ? " " : "");
        else
            snprintf(who, sizeof who, "%s",
                     op->layer >= 0 ? p->m->layers[op->layer].name : op->kind == OP_GRAD_SUM ? "(gradient sum)" : "");
        fprintf(out, "%-9s %-10s %-28s", phase_names[op->phase], scope, who);
        if (op->in >= 0)
            fprintf(out, " in %s", p->bufs[op->in].name);
        if (op->out >= 0 && op->kind == OP_LAYER)
            fprintf(out, " out %s", p->bufs[op->out].name);
        if (op->dout.buf >= 0)
            fprintf(out, " dout %s[%d]", p->bufs[op->dout.buf].name, op->dout.size);
        if (op->din.buf >= 0)
            fprintf(out, " din %s[%d]", p->bufs[op->din.buf].name, op->din.size);
        fputc('\n', out);
    }
}
