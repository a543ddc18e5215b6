/* summary.c - `nnc --summary`: Keras's model.summary() table, then every default applied. */
#include <string.h>

#include "layers/kind.h"
#include "model.h"

/* 1234567 -> "1,234,567", as Keras prints parameter counts. */
static const char *with_commas(size_t n, char *buf, size_t len)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%zu", n);
    size_t nd = strlen(digits), o = 0;
    for (size_t i = 0; i < nd && o + 2 < len; i++) {
        if (i > 0 && (nd - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static void output_shape(char *buf, size_t len, shape s)
{
    if (shape_is_flat(s))
        snprintf(buf, len, "(None, %d)", s.c);
    else
        snprintf(buf, len, "(None, %d, %d, %d)", s.h, s.w, s.c);
}

/* `precision bf16`: the layers with bfloat16 kernels; the C compiler's target decides whether they run. */
static void print_precision(FILE *out, const model *m)
{
    int n = 0;
    fprintf(out, "Precision: bf16 products, fp32 sums in");
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (l->kind->precision && l->kind->precision(l) == PRECISION_BF16)
            fprintf(out, "%s %s", n++ ? "," : "", l->name);
    }
    if (n)
        fprintf(out, " where the C compiler's target has AVX512_BF16 (the trainer's log says); fp32 elsewhere\n");
    else
        fprintf(out, " no layer: none has a bfloat16 kernel (valid 'conv' layers, stride 1, channels in multiples "
                     "of 16); fp32 throughout\n");
}

void nnc_print_summary(FILE *out, const model *m)
{
    const char *rule = "_________________________________________________________________";
    const char *double_rule = "=================================================================";
    char name[80], shape_text[48], count[32];
    fprintf(out, "Model: \"%s\"\n%s\n", m->name, rule);
    fprintf(out, " %-31s %-21s %s\n%s\n", "Layer (type)", "Output Shape", "Param #", double_rule);
    size_t trainable = 0, non_trainable = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        size_t params = l->n_weights + l->n_bias + l->n_state;
        trainable += l->n_weights + l->n_bias;
        non_trainable += l->n_state;
        snprintf(name, sizeof name, "%s (%s)", l->name, l->kind->keras);
        output_shape(shape_text, sizeof shape_text, l->out);
        const char *note = l->implicit                                         ? "(implicit)"
                           : l->act != ACT_LINEAR && l->kind != layer_kind_for_word("relu") ? act_name(l->act)
                                                                                 : "";
        if (note[0])
            fprintf(out, " %-31s %-21s %-10s %s\n", name, shape_text, with_commas(params, count, sizeof count), note);
        else
            fprintf(out, " %-31s %-21s %s\n", name, shape_text, with_commas(params, count, sizeof count));
    }
    fprintf(out, "%s\n", double_rule);
    fprintf(out, "Total params: %s\n", with_commas(trainable + non_trainable, count, sizeof count));
    fprintf(out, "Trainable params: %s\n", with_commas(trainable, count, sizeof count));
    fprintf(out, "Non-trainable params: %s\n%s\n", with_commas(non_trainable, count, sizeof count), rule);

    const nnc_recipe *r = &m->recipe;
    fprintf(out, "Input: %dx%dx%d, %s\n", m->input.h, m->input.w, m->input.c,
            m->prep == NNC_PREP_NORMALIZE ? "normalized by the training set's mean and std"
            : m->prep == NNC_PREP_CHANNELS ? "normalized per channel by the model's mean and std"
            : m->prep == NNC_PREP_SCALE   ? "scaled"
                                          : "raw pixel values 0..255");
    fprintf(out, "Training: loss %s, optimizer %s lr=%g, batch %d, %d epochs, seed %llu%s\n",
            r->loss == NNC_LOSS_MSE ? "mse" : "crossentropy", optimizer_name(r->optimizer.kind), r->optimizer.lr,
            r->batch, r->epochs, (unsigned long long)r->seed, r->augment ? r->aug.horizontal_flip ? ", augmented with flips" : ", augmented" : "");
    if (m->precision == PRECISION_BF16)
        print_precision(out, m);
    if (r->schedule == NNC_SCHED_STEP)
        fprintf(out, "Schedule: lr x %g every %d epoch%s\n", r->step_factor, r->step_every, r->step_every == 1 ? "" : "s");
    else if (r->schedule == NNC_SCHED_COSINE)
        fprintf(out, "Schedule: cosine from %g down to %g\n", r->optimizer.lr, r->min_lr);
    else if (r->schedule == NNC_SCHED_ONECYCLE)
        fprintf(out, "Schedule: one cycle, every step: from %g up to %g (30%% of the steps), down to %g\n",
                r->optimizer.lr, r->max_lr, r->optimizer.lr / 1e4);
    if (m->n_phases > 0) {
        fputs("Schedule:", out);
        for (int i = 0; i < m->n_phases; i++)
            fprintf(out, " %d epoch%s at %g%s", m->phases[i].epochs, m->phases[i].epochs == 1 ? "" : "s",
                    m->phases[i].lr, i + 1 < m->n_phases ? "," : "\n");
    }
    fprintf(out, "Forward pass: %.2f M multiply-adds per image\n", model_forward_macs(m) / 1e6);
    if (m->n_defaults > 0) {
        fputs("Defaults applied:\n", out);
        for (int i = 0; i < m->n_defaults; i++) {
            if (m->defaults[i].line > 0)
                fprintf(out, "  line %d: %s\n", m->defaults[i].line, m->defaults[i].text);
            else
                fprintf(out, "  %s\n", m->defaults[i].text);
        }
    }
}

/* `nnc --dot`: one box a layer, with its output shape, as Keras's plot_model(show_shapes=True). */
void nnc_emit_dot(FILE *out, const model *m)
{
    char shape_text[48];
    fprintf(out, "digraph \"%s\" {\n  rankdir=TB;\n  node [shape=record, fontname=\"Helvetica\"];\n", m->name);
    output_shape(shape_text, sizeof shape_text, m->input);
    fprintf(out, "  input [label=\"input: InputLayer|%s\"];\n", shape_text);
    const char *prev = "input";
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        output_shape(shape_text, sizeof shape_text, l->out);
        fprintf(out, "  %s [label=\"%s: %s%s%s|%s\"];\n", l->name, l->name, l->kind->keras,
                l->act != ACT_LINEAR ? " " : "", l->act != ACT_LINEAR ? act_name(l->act) : "", shape_text);
        fprintf(out, "  %s -> %s;\n", prev, l->name);
        prev = l->name;
    }
    fputs("}\n", out);
}
