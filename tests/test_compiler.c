/*
 * test_compiler.c - the front end: lexer, parser, checker and their messages,
 * parameter counts against Keras, and the emitter's determinism.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgen.h"
#include "layers/kind.h"
#include "model.h"

typedef struct {
    model *m;
    char *diagnostics; /* everything the compiler printed */
    int errors, warnings;
} compiled;

/* Parse and check `text` as if it were the file x.nn. */
static compiled compile_text(const char *text)
{
    compiled c = {0};
    size_t len = 0;
    FILE *out = open_memstream(&c.diagnostics, &len);
    cr_assert_not_null(out);
    nnc_source src;
    nnc_source_from_string(&src, "x.nn", text, strlen(text));
    src.out = out;
    nnc_stmt *stmts = nnc_parse(&src);
    if (src.errors == 0)
        c.m = nnc_check(&src, stmts);
    nnc_stmt_free(stmts);
    fclose(out);
    c.errors = src.errors;
    c.warnings = src.warnings;
    nnc_source_free(&src);
    return c;
}

static void release(compiled *c)
{
    nnc_model_free(c->m);
    free(c->diagnostics);
}

/* The file must fail with exactly this diagnostic text. */
static void expect_diagnostics(const char *text, const char *expected)
{
    compiled c = compile_text(text);
    cr_expect_null(c.m, "a model came out of an erroneous file");
    cr_expect_str_eq(c.diagnostics, expected);
    release(&c);
}

#define MNIST_HEAD "model x\ninput 28x28x1\n"
#define TAIL "flatten\ndense 10 softmax\n"

/* ---- errors: exact text, location, caret ---- */

Test(checker, kernel_larger_than_input)
{
    expect_diagnostics(MNIST_HEAD "conv 8 29x29\n" TAIL,
                       "x.nn:3:8: error: conv kernel 29x29 is larger than its 28x28x1 input\n"
                       "    3 | conv 8 29x29\n"
                       "      |        ^~~~~\n");
}

Test(checker, unknown_layer_suggests_the_nearest)
{
    expect_diagnostics(MNIST_HEAD "convv 8 3x3\n" TAIL,
                       "x.nn:3:1: error: unknown layer 'convv'; did you mean 'conv'?\n"
                       "    3 | convv 8 3x3\n"
                       "      | ^~~~~\n");
}

Test(parser, syntax_error_names_what_was_expected)
{
    compiled c = compile_text(MNIST_HEAD "dense = 10\n" TAIL);
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "x.nn:3:7: error: unexpected '='") != NULL, "got: %s", c.diagnostics);
    cr_expect(strstr(c.diagnostics, "    3 | dense = 10\n      |       ^\n") != NULL, "got: %s", c.diagnostics);
    release(&c);
}

Test(lexer, stray_character)
{
    expect_diagnostics(MNIST_HEAD "dense 10 softmax $\n",
                       "x.nn:3:18: error: stray '$' in a model file\n"
                       "    3 | dense 10 softmax $\n"
                       "      |                  ^\n");
}

Test(checker, dropout_rate_out_of_range)
{
    expect_diagnostics(MNIST_HEAD "dropout 1.5\n" TAIL,
                       "x.nn:3:9: error: dropout rate 1.5 must be at least 0 and below 1\n"
                       "    3 | dropout 1.5\n"
                       "      |         ^~~\n");
}

Test(checker, crossentropy_needs_softmax)
{
    compiled c = compile_text(MNIST_HEAD "flatten\ndense 10\n");
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "x.nn:4:1: error: loss crossentropy needs a softmax output") != NULL, "got: %s",
              c.diagnostics);
    release(&c);
}

Test(checker, unknown_option_suggests_the_nearest)
{
    compiled c = compile_text(MNIST_HEAD "conv 8 3x3 strid=2\n" TAIL);
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "x.nn:3:12: error: 'conv' has no option 'strid'; did you mean 'stride'?") != NULL,
              "got: %s", c.diagnostics);
    release(&c);
}

Test(checker, several_errors_in_one_run)
{
    compiled c = compile_text(MNIST_HEAD "convv 8 3x3\ndropout 2\nmaxpool 99x99\n" TAIL);
    cr_expect_null(c.m);
    cr_expect_eq(c.errors, 3, "expected 3 errors, got %d:\n%s", c.errors, c.diagnostics);
    release(&c);
}

Test(parser, recovers_after_a_syntax_error)
{
    compiled c = compile_text(MNIST_HEAD "conv 8 = 3\ndense : 2\n" TAIL);
    cr_expect_eq(c.errors, 2, "one error per bad line expected, got %d:\n%s", c.errors, c.diagnostics);
    release(&c);
}

Test(checker, layer_inside_the_train_block)
{
    compiled c = compile_text(MNIST_HEAD TAIL "train\n  batch 32\n  dense 10\n");
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "x.nn:7:3: error: 'dense' is not a train setting") != NULL, "got: %s",
              c.diagnostics);
    release(&c);
}

Test(checker, empty_file)
{
    expect_diagnostics("# nothing here\n", "x.nn: error: the file is empty: no model to compile\n");
}

Test(checker, conv_after_flatten)
{
    compiled c = compile_text(MNIST_HEAD "flatten\nconv 8 3x3\n" TAIL);
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "error: 'conv' needs an image input, but its input is a flat vector of 784") != NULL,
              "got: %s", c.diagnostics);
    release(&c);
}

Test(checker, bad_schedule_phase)
{
    compiled c = compile_text(MNIST_HEAD TAIL "train\n  schedule 1:0.1 0:0.5\n");
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "x.nn:6:18: error: a schedule phase is EPOCHS:LR with EPOCHS >= 1") != NULL,
              "got: %s", c.diagnostics);
    release(&c);
}

Test(checker, huge_layer_is_refused)
{
    compiled c = compile_text(MNIST_HEAD "conv 60000 3x3\n" TAIL "train\n  batch 512\n");
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "the activations need") != NULL, "got: %s", c.diagnostics);
    release(&c);
}

/* ---- warnings ---- */

Test(checker, softmax_not_last_is_a_warning)
{
    compiled c = compile_text(MNIST_HEAD "flatten\ndense 32 softmax\ndense 10 softmax\n");
    cr_expect_not_null(c.m);
    cr_expect_eq(c.warnings, 1);
    cr_expect(strstr(c.diagnostics, "x.nn:4:1: warning: softmax in dense_1 is not the last layer") != NULL, "got: %s",
              c.diagnostics);
    release(&c);
}

/* ---- meaning: shapes, defaults, lexing of numbers ---- */

Test(checker, shapes_padding_and_strides)
{
    compiled c = compile_text(MNIST_HEAD "conv 8 3x3 stride=2 pad=same\nconv 4 5x5 stride 2\nmaxpool\n" TAIL);
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    layer *l = c.m->layers;
    cr_expect(l[0].out.h == 14 && l[0].out.w == 14 && l[0].out.c == 8);
    cr_expect_eq(l[0].u.conv.pad_top, 0); /* TF: total padding 1, the extra row goes to the bottom */
    cr_expect(l[1].out.h == 5 && l[1].out.w == 5 && l[1].out.c == 4);
    cr_expect(l[2].out.h == 2 && l[2].out.w == 2 && l[2].u.pool.sh == 2);
    release(&c);
}

Test(checker, implicit_flatten_before_dense)
{
    compiled c = compile_text(MNIST_HEAD "dense 10 softmax\n");
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    cr_expect_eq(c.m->n_layers, 2);
    cr_expect_eq(c.m->layers[0].kind, layer_kind_for_word("flatten"));
    cr_expect(c.m->layers[0].implicit);
    release(&c);
}

Test(lexer, fractions_pairs_and_dimensions)
{
    compiled c = compile_text("input 28x28x1\nscale 1/255\n" TAIL "train\n  schedule 2:0.5 3:1e-3\n");
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    cr_expect_float_eq(c.m->prep_scale, 1.0f / 255.0f, 1e-9);
    cr_expect_eq(c.m->n_phases, 2);
    cr_expect_eq(c.m->phases[1].epochs, 3);
    cr_expect_float_eq(c.m->phases[1].lr, 1e-3f, 1e-9);
    cr_expect_eq(c.m->recipe.epochs, 5);
    release(&c);
}

Test(checker, keras_defaults)
{
    compiled c = compile_text(MNIST_HEAD "batchnorm\n" TAIL "train\n  optimizer adam\n");
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    cr_expect_float_eq(c.m->layers[0].u.bn.momentum, 0.99f, 1e-9);
    cr_expect_float_eq(c.m->layers[0].u.bn.eps, 1e-3f, 1e-9);
    const nnc_optimizer_cfg *o = &c.m->recipe.optimizer;
    cr_expect(o->kind == NNC_OPT_ADAM && o->lr == 0.001f && o->beta1 == 0.9f && o->beta2 == 0.999f);
    cr_expect_eq(c.m->recipe.batch, 32);
    release(&c);
}

Test(checker, last_line_without_newline)
{
    compiled c = compile_text(MNIST_HEAD "flatten\ndense 10 softmax");
    cr_expect_not_null(c.m, "%s", c.diagnostics);
    release(&c);
}

/* ---- parameter counts: the same totals as Keras's model.summary() ---- */

static void expect_counts(const char *file, size_t trainable, size_t non_trainable)
{
    char path[512];
    snprintf(path, sizeof path, "%s/models/%s", NNC_ROOT, file);
    nnc_source src;
    char err[512];
    cr_assert_eq(nnc_source_read(&src, path, err, sizeof err), 0, "%s", err);
    nnc_stmt *stmts = nnc_parse(&src);
    model *m = nnc_check(&src, stmts);
    cr_assert_not_null(m, "%s does not compile", file);
    cr_expect_eq(m->n_params, trainable, "%s: %zu trainable, Keras has %zu", file, m->n_params, trainable);
    cr_expect_eq(m->n_state, non_trainable, "%s: %zu non-trainable, Keras has %zu", file, m->n_state, non_trainable);
    nnc_model_free(m);
    nnc_stmt_free(stmts);
    nnc_source_free(&src);
}

Test(summary, parameter_totals_match_keras)
{
    expect_counts("linear.nn", 7850, 0);
    expect_counts("mlp800.nn", 636010, 0);
    expect_counts("mlp64x5.nn", 67530, 0);
    expect_counts("cnn_baseline.nn", 592074, 0);
    expect_counts("cnn_larger.nn", 59933, 0);
    expect_counts("vgg.nn", 594922, 0);
    expect_counts("vgg_dropout.nn", 594922, 0);
    expect_counts("vgg_bn.nn", 596330, 1408);
}

Test(summary, table_lists_layers_and_defaults)
{
    compiled c = compile_text(MNIST_HEAD "conv 8 3x3 relu\nbatchnorm\n" TAIL);
    cr_assert_not_null(c.m);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    nnc_print_summary(out, c.m);
    fclose(out);
    cr_expect(strstr(text, " conv2d_1 (Conv2D)               (None, 26, 26, 8)     80         relu\n") != NULL, "%s",
              text);
    cr_expect(strstr(text, "Non-trainable params: 16\n") != NULL, "%s", text);
    cr_expect(strstr(text, "line 4: batch_normalization_1: momentum=0.99 eps=0.001") != NULL, "%s", text);
    free(text);
    release(&c);
}

/* The summary of a model with `precision bf16`: text for the summary of c.m. */
static char *summary_text(const compiled *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cr_assert_not_null(out);
    nnc_print_summary(out, c->m);
    fclose(out);
    return text;
}

#define BF16_CONVS                                                                                                     \
    MNIST_HEAD "conv 16 3x3 relu\nconv 32 3x3 relu\nconv 32 3x3 pad=same\nconv 32 3x3 stride 2 pad=same\nconv 8 3x3\n" TAIL

Test(summary, precision_names_the_bfloat16_layers)
{
    compiled c = compile_text(BF16_CONVS "train\n  precision bf16\n");
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    char *text = summary_text(&c);
    /* conv2d_1 reads 1 channel, conv2d_4 strides, conv2d_5 makes 8; conv2d_3 pads, and runs conv2d_2's kernels */
    cr_expect(strstr(text, "Precision: bf16 products, fp32 sums in conv2d_2, conv2d_3 where the C compiler's target "
                           "has AVX512_BF16") != NULL,
              "%s", text);
    free(text);
    release(&c);
}

Test(summary, precision_bf16_without_a_fitting_layer_says_so)
{
    compiled c = compile_text(MNIST_HEAD "conv 8 3x3 relu\n" TAIL "train\n  precision bf16\n");
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    char *text = summary_text(&c);
    cr_expect(strstr(text, "Precision: bf16 products, fp32 sums in no layer: none has a bfloat16 kernel") != NULL, "%s",
              text);
    free(text);
    release(&c);
}

Test(summary, fp32_models_print_no_precision_line)
{
    compiled c = compile_text(BF16_CONVS "train\n  precision fp32\n");
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    char *text = summary_text(&c);
    cr_expect(strstr(text, "Precision") == NULL, "%s", text);
    free(text);
    release(&c);
}

Test(checker, unknown_precision_suggests_the_nearest)
{
    expect_diagnostics(MNIST_HEAD TAIL "train\n  precision bf61\n",
                       "x.nn:6:13: error: unknown precision 'bf61'; did you mean 'bf16'?\n"
                       "    6 |   precision bf61\n"
                       "      |             ^~~~\n");
}

Test(checker, precision_needs_one_word)
{
    expect_diagnostics(MNIST_HEAD TAIL "train\n  precision bf16 fp32\n",
                       "x.nn:6:18: error: usage: precision fp32|bf16 (bf16: bfloat16 products, fp32 sums, in the "
                       "convolution and dense layers)\n"
                       "    6 |   precision bf16 fp32\n"
                       "      |                  ^~~~\n");
}

/* ---- the emitter ---- */

static char *emit_text(const model *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cr_assert_eq(nnc_emit(out, m), 0);
    fclose(out);
    return text;
}

Test(emitter, same_input_same_bytes)
{
    compiled a = compile_text(MNIST_HEAD "conv 8 3x3 relu\nbatchnorm\nmaxpool\ndropout 0.5\n" TAIL);
    compiled b = compile_text(MNIST_HEAD "conv 8 3x3 relu\nbatchnorm\nmaxpool\ndropout 0.5\n" TAIL);
    cr_assert(a.m && b.m);
    char *ta = emit_text(a.m), *tb = emit_text(b.m);
    cr_expect_str_eq(ta, tb);
    cr_expect(strstr(ta, "/* ---- conv2d_1: `conv 8 3x3 relu` (x.nn:3) ----") != NULL, "no provenance comment");
    free(ta);
    free(tb);
    release(&a);
    release(&b);
}

/*
 * An operator right after an opening bracket in the generated C is the mark of an expression a
 * kind printed empty: `din[ + c]` is valid C and a wrong gradient (the average pooling's backward
 * printed it once, from an uninitialized buffer). Every kind, in the forms its windows, padding and
 * activations choose between, must print none.
 */
Test(emitter, no_empty_expressions)
{
    compiled c = compile_text("model x\ninput 12x12x2\n"
                              "conv 2 1x1\n"               /* 12x12x2 */
                              "avgpool 2x2 stride 1\n"     /* 11x11x2 */
                              "conv 4 3x3 relu\n"          /* 9x9x4 */
                              "maxpool\n"                  /* 4x4x4, a row and a column left over */
                              "conv 4 3x3 pad=same relu\n" /* 4x4x4, the padded copy */
                              "maxpool 2x2 stride 1\n"     /* 3x3x4, overlapping windows */
                              "relu\nglobalavgpool\nbatchnorm\ndropout 0.5\n"
                              "dense 8 tanh\nsigmoid\ndense 3 softmax\n");
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    char *text = emit_text(c.m);
    static const char *const marks[] = {"[ +", "[ -", "[ *", "( +", "( *", "= ;", "[]\n"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        const char *at = strstr(text, marks[i]);
        const char *from = at && at - text >= 20 ? at - 20 : at ? at : "";
        cr_expect_null(at, "generated C has \"%s\": ...%.60s", marks[i], from);
    }
    free(text);
    release(&c);
}

/* Fold `line` to `width` columns; a fold that cannot shorten a line must stop, not loop. */
static char *fold_text(const char *line, int width)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cr_assert_not_null(out);
    cr_assert_eq(cgen_fold(out, line, strlen(line), width), 0);
    fclose(out);
    return text;
}

/* Broken at " + ", the rest starts with "+ ": its only break would be in the continuation's indent,
 * which once folded the same line forever (writing gigabytes). Now it stays whole past the width. */
Test(emitter, fold_stops_when_a_break_would_not_shorten, .timeout = 10)
{
    char *text = fold_text("    x = (aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa + bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb);", 60);
    cr_expect_str_eq(text, "    x = (aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
                           "         + bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb);\n");
    free(text);
}

/* A directive would need a backslash at each fold: it is left whole. */
Test(emitter, fold_leaves_directives_whole, .timeout = 10)
{
    const char *line = "#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VL__) && !defined(X)";
    char *text = fold_text(line, 60);
    cr_expect_eq(strlen(text), strlen(line) + 1);
    cr_expect_eq(strncmp(text, line, strlen(line)), 0);
    free(text);
}

/* `precision bf16` prints the bfloat16 kernels for the layers that fit, each beside its fp32 call; an fp32
 * model's file has neither NNC_BF16 nor the helpers. */
Test(emitter, precision_bf16_only_where_a_kernel_fits)
{
    compiled bf = compile_text(BF16_CONVS "train\n  precision bf16\n"), fp = compile_text(BF16_CONVS);
    cr_assert(bf.m && fp.m);
    char *tb = emit_text(bf.m), *tf = emit_text(fp.m);
    cr_expect(strstr(tb, "conv2d_2_forward_bf16(") != NULL);
    cr_expect(strstr(tb, "conv2d_1_forward_bf16(") == NULL, "one input channel has no pair");
    cr_expect(strstr(tb, "conv2d_3_pad_input(") != NULL && strstr(tb, "conv2d_3_forward_bf16(") != NULL,
              "'same' padding runs the bfloat16 kernels on its padded copy");
    cr_expect(strstr(tb, "conv2d_4_forward_bf16(") == NULL, "a stride of 2 has no bfloat16 kernel");
    cr_expect(strstr(tb, "conv2d_5_forward_bf16(") == NULL, "8 output channels have no bfloat16 kernel");
    cr_expect(strstr(tb, "#if NNC_BF16\n        conv2d_2_forward_bf16(") != NULL);
    cr_expect(strstr(tf, "NNC_BF16") == NULL && strstr(tf, "bf16") == NULL, "an fp32 model mentions bf16");
    free(tb);
    free(tf);
    release(&bf);
    release(&fp);
}

/* Occurrences of `needle` in `text`. */
static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Winograd's forward pass runs at inference only, for 3x3 stride-1 fp32 convolutions with channels in multiples
 * of 16 and an even output; training calls the direct kernels. */
Test(emitter, winograd_at_inference_where_it_fits)
{
    compiled fp = compile_text(BF16_CONVS), bf = compile_text(BF16_CONVS "train\n  precision bf16\n");
    compiled odd = compile_text("model m\ninput 27x27x1\nconv 16 3x3 relu\nconv 32 3x3 relu\n" TAIL);
    cr_assert(fp.m && bf.m && odd.m);
    char *tf = emit_text(fp.m), *tb = emit_text(bf.m), *to = emit_text(odd.m);
    cr_expect_eq(count_of(tf, "conv2d_2_winograd_forward(ws->"), 1, "one call, in the inference pass");
    cr_expect_eq(count_of(tf, "conv2d_2_forward(ws->"), 1, "one call, in the training pass");
    cr_expect_eq(count_of(tf, "conv2d_2_winograd_weights(ws->"), 1, "U made once, in the inference pass");
    cr_expect(strstr(tf, "conv2d_3_winograd_forward(") != NULL, "'same' padding runs Winograd on its padded copy");
    cr_expect(strstr(tf, "conv2d_1_winograd") == NULL, "one input channel is not a multiple of 16");
    cr_expect(strstr(tf, "conv2d_4_winograd") == NULL, "a stride of 2 has no Winograd kernel");
    cr_expect(strstr(tf, "conv2d_5_winograd") == NULL, "8 output channels have no Winograd kernel");
    cr_expect(strstr(tb, "conv2d_2_winograd") == NULL, "under precision bf16 the bfloat16 kernels run instead");
    cr_expect(strstr(to, "winograd") == NULL, "an odd output (23x23) has no whole tiles");
    free(tf);
    free(tb);
    free(to);
    release(&fp);
    release(&bf);
    release(&odd);
}

/* F(4x4, 3x3) where the output is whole 4x4 tiles of at most 64 channels, F(2x2, 3x3) elsewhere. */
Test(emitter, winograd_tile_by_shape)
{
    compiled c = compile_text("model m\ninput 12x12x32\nconv 32 3x3\nconv 64 3x3\nconv 128 3x3 pad=same\n" TAIL);
    cr_assert(c.m);
    char *t = emit_text(c.m);
    cr_expect(strstr(t, "U = G g G^T for F(2x2, 3x3), [16][32][32]") != NULL, "a 10x10 output: F(2x2)");
    cr_expect(strstr(t, "U = G g G^T for F(4x4, 3x3), [36][32][64]") != NULL, "an 8x8x64 output: F(4x4)");
    cr_expect(strstr(t, "U = G g G^T for F(2x2, 3x3), [16][64][128]") != NULL, "128 channels: F(2x2)");
    cr_expect_eq(count_of(t, "by F(4x4, 3x3), in rows of 2 tiles"), 2, "conv2d_2, 16 and 8 lanes");
    compiled narrow = compile_text("model m\ninput 10x12x32\nconv 32 3x3\n" TAIL);
    compiled wide = compile_text("model m\ninput 8x8x896\nconv 64 3x3 pad=same\n" TAIL);
    cr_assert(narrow.m && wide.m);
    char *tn = emit_text(narrow.m), *tw = emit_text(wide.m);
    cr_expect(strstr(tn, "U = G g G^T for F(2x2, 3x3), [16][32][32]") != NULL, "an 8x10 output: F(2x2)");
    cr_expect(strstr(tw, "U = G g G^T for F(2x2, 3x3), [16][896][64]") != NULL,
              "896 + 64 channels: one F(4x4) tile's V and M would not fit the 128 KB block");
    free(tn);
    free(tw);
    release(&narrow);
    release(&wide);
    free(t);
    release(&c);
}

Test(checker, schedule_rules)
{
    compiled c = compile_text(MNIST_HEAD TAIL "train\n  epochs 12\n  schedule step every=4 factor=0.1\n");
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    cr_expect_eq(c.m->recipe.schedule, NNC_SCHED_STEP);
    cr_expect_eq(c.m->recipe.step_every, 4);
    cr_expect_float_eq(c.m->recipe.step_factor, 0.1f, 1e-9);
    cr_expect_eq(c.m->recipe.epochs, 12);
    release(&c);
    c = compile_text(MNIST_HEAD TAIL "train\n  schedule onecycle\n");
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "needs its peak rate") != NULL, "%s", c.diagnostics);
    release(&c);
    c = compile_text(MNIST_HEAD TAIL "train\n  schedule cosinus\n");
    cr_expect(strstr(c.diagnostics, "unknown schedule 'cosinus'; did you mean 'cosine'?") != NULL, "%s", c.diagnostics);
    release(&c);
}

/* As clang: past the error limit errors are counted, not shown, and the
 * report says that it stopped. */
Test(checker, errors_past_the_limit_are_counted_not_shown)
{
    char text[4096] = MNIST_HEAD;
    for (int i = 0; i < NNC_ERROR_LIMIT + 10; i++)
        strcat(text, "frobnicate 3\n");
    strcat(text, TAIL);
    compiled c = compile_text(text);
    cr_expect_null(c.m);
    cr_expect_eq(c.errors, NNC_ERROR_LIMIT + 10);
    int shown = 0;
    for (const char *p = c.diagnostics; (p = strstr(p, ": error: ")); p++)
        shown++;
    cr_expect_eq(shown, NNC_ERROR_LIMIT, "%s", c.diagnostics);
    cr_expect(strstr(c.diagnostics, "x.nn: fatal error: too many errors (more than 20); the rest are not shown\n") != NULL,
              "%s", c.diagnostics);
    release(&c);
}

/* Found by fuzzing: an optimizer line repeating keys until it filled the list
 * of given settings (kept for --summary) wrote past it. Now a repeated key is
 * warned about once per repeat and listed once. */
Test(checker, optimizer_line_repeating_its_keys_is_safe_and_warned)
{
    char text[1024] = MNIST_HEAD TAIL "train\n  optimizer sgd";
    for (int i = 0; i < 13; i++)
        strcat(text, " momentum=0.9");
    strcat(text, " weight_decay=0.1 lr=0.1 momentum=0.5\n");
    compiled c = compile_text(text);
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    cr_expect_float_eq(c.m->recipe.optimizer.lr, 0.1f, 1e-9);
    cr_expect_float_eq(c.m->recipe.optimizer.momentum, 0.5f, 1e-9);
    cr_expect_eq(c.warnings, 13, "%s", c.diagnostics);
    cr_expect(strstr(c.diagnostics, "x.nn:6:30: warning: 'momentum' is given twice in this line; the later value is used\n") != NULL,
              "%s", c.diagnostics);
    release(&c);
    c = compile_text(MNIST_HEAD TAIL "train\n  optimizer sgd nesterov momentum=0.9 nesterov\n");
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    cr_expect(strstr(c.diagnostics, "x.nn:6:39: warning: 'nesterov' is given twice in this line\n") != NULL, "%s",
              c.diagnostics);
    release(&c);
}

/* Found by fuzzing: huge layers must be refused before their sizes overflow. */
Test(checker, sizes_that_would_overflow_are_refused)
{
    compiled c = compile_text("conv 32364 323 2x2 relu\n" TAIL);
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "weights; the limit is") != NULL, "%s", c.diagnostics);
    release(&c);
    c = compile_text("input 4096x4096x4096\n" TAIL);
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "has more than") != NULL, "%s", c.diagnostics);
    release(&c);
    c = compile_text("input 2048x2048x1\nconv 60000 1x1\n" TAIL);
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "output has") != NULL, "%s", c.diagnostics);
    release(&c);
    c = compile_text(MNIST_HEAD "dense 1000000\n" TAIL);
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "needs 784000000 weights") != NULL, "%s", c.diagnostics);
    release(&c);
}

Test(checker, weight_decay_is_an_l2_penalty_on_every_kernel)
{
    compiled c = compile_text(MNIST_HEAD "conv 4 3x3 l2=0.01\nbatchnorm\n" TAIL "train\n  optimizer sgd weight_decay=0.0004\n");
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    cr_expect_float_eq(c.m->layers[0].l2, 0.01f + 0.0002f, 1e-9);
    cr_expect_float_eq(c.m->layers[1].l2, 0.0f, 1e-9); /* batchnorm: no kernel */
    cr_expect_float_eq(c.m->layers[3].l2, 0.0002f, 1e-9);
    release(&c);
}

Test(lexer, control_bytes_are_named_by_value)
{
    compiled c = compile_text(MNIST_HEAD "dense 10 softmax\n\x01\n");
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "x.nn:4:1: error: stray byte 0x01 in a model file") != NULL, "%s", c.diagnostics);
    release(&c);
}

/* ---- repeats: every statement said twice gets a located diagnostic ---- */

/* Each of these files repeats one thing; the later one wins, with a warning at
 * the repeat (and, for a whole statement, a note at the earlier one). */
Test(checker, every_repeat_is_a_located_warning)
{
    static const struct {
        const char *text, *warning, *note;
    } cases[] = {
        {"model a\nmodel b\n" TAIL, "x.nn:2:1: warning: 'model' given twice; the later one wins\n",
         "x.nn:1:1: note: the earlier 'model' is here\n"},
        {"conv 8 3x3 stride 1 stride=2\n" TAIL, "x.nn:1:21: warning: 'stride' is given twice in this line", NULL},
        {"conv 8 3x3 same pad=valid\n" TAIL, "x.nn:1:17: warning: 'pad' is given twice in this line", NULL},
        {"conv 8 3x3 relu tanh\n" TAIL, "x.nn:1:17: warning: 'activation' is given twice in this line", NULL},
        {"conv 8 3x3 l2=0.1 l2=0.2\n" TAIL, "x.nn:1:19: warning: 'l2' is given twice in this line", NULL},
        {"maxpool stride 2 stride=1\n" TAIL, "x.nn:1:18: warning: 'stride' is given twice in this line", NULL},
        {"batchnorm eps=0.1 eps=0.2\n" TAIL, "x.nn:1:19: warning: 'eps' is given twice in this line", NULL},
        {"flatten\ndense 10 softmax init=zeros init=ones\n", "x.nn:2:29: warning: 'init' is given twice in this line",
         NULL},
        {TAIL "train\n  schedule cosine min_lr=0.1 min_lr=0.2\n",
         "x.nn:4:30: warning: 'min_lr' is given twice in this line", NULL},
        {TAIL "train\n  augment shift=0.1 height_shift=0.2\n",
         "x.nn:4:21: warning: 'height_shift' is given twice in this line", NULL},
        {TAIL "train\n  batch 32\ntrain\n  batch 64\n",
         "x.nn:5:1: warning: a second 'train' line; its settings join the train block\n",
         "x.nn:3:1: note: the train block starts here\n"},
        {TAIL "train\n  seed 1\n  seed 2\n", "x.nn:5:3: warning: 'seed' given twice in the train block; the later one wins\n",
         "x.nn:4:3: note: the earlier 'seed' is here\n"},
        {TAIL "train\n  epochs 2\n  epochs 3\n", "x.nn:5:3: warning: 'epochs' given twice in the train block",
         "x.nn:4:3: note: the earlier 'epochs' is here\n"},
        {TAIL "train\n  schedule 1:0.1\n  schedule 2:0.1\n", "x.nn:5:3: warning: 'schedule' given twice",
         "x.nn:4:3: note: the earlier 'schedule' is here\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        compiled c = compile_text(cases[i].text);
        cr_expect_not_null(c.m, "case %zu failed:\n%s", i, c.diagnostics);
        cr_expect(c.warnings >= 1 && strstr(c.diagnostics, cases[i].warning) != NULL, "case %zu: want %s, got\n%s", i,
                  cases[i].warning, c.diagnostics);
        if (cases[i].note)
            cr_expect(strstr(c.diagnostics, cases[i].note) != NULL, "case %zu: want %s, got\n%s", i, cases[i].note,
                      c.diagnostics);
        release(&c);
    }
    /* The later one is what the model gets. */
    compiled c = compile_text("model a\nmodel b\nconv 8 3x3 stride 1 stride=2\n" TAIL "train\n  batch 32\n  batch 64\n");
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    cr_expect_str_eq(c.m->name, "b");
    cr_expect_eq(c.m->layers[0].u.conv.sh, 2);
    cr_expect_eq(c.m->recipe.batch, 64);
    release(&c);
}

/* Repeats that "the later one wins" cannot settle are errors. */
Test(checker, contradicting_repeats_are_errors)
{
    expect_diagnostics(TAIL "train\n  epochs 5\n  schedule 1:0.1 2:0.01\n",
                       "x.nn:4:3: error: 'epochs 5' contradicts the schedule, whose phases add up to 3 epochs; drop "
                       "'epochs' or make them agree\n"
                       "    4 |   epochs 5\n      |   ^~~~~~\n"
                       "x.nn:5:3: note: the schedule is here\n"
                       "    5 |   schedule 1:0.1 2:0.01\n      |   ^~~~~~~~\n");
    /* Agreeing figures are fine. */
    compiled c = compile_text(TAIL "train\n  epochs 3\n  schedule 1:0.1 2:0.01\n");
    cr_expect_not_null(c.m, "%s", c.diagnostics);
    cr_expect_eq(c.warnings, 0, "%s", c.diagnostics);
    release(&c);
    /* An input shape, once layers are sized by it, cannot be replaced. */
    c = compile_text("input 28x28x1\ninput 32x32x1\n" TAIL);
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "x.nn:2:1: error: a second 'input' statement\n") != NULL, "%s", c.diagnostics);
    cr_expect(strstr(c.diagnostics, "x.nn:1:1: note: the first is here\n") != NULL, "%s", c.diagnostics);
    release(&c);
    c = compile_text("normalize\nscale 1/255\n" TAIL);
    cr_expect_null(c.m);
    cr_expect(strstr(c.diagnostics, "x.nn:2:1: error: the input is already preprocessed by an earlier 'normalize' or "
                                    "'scale'\n") != NULL,
              "%s", c.diagnostics);
    cr_expect(strstr(c.diagnostics, "x.nn:1:1: note: the earlier 'normalize' is here\n") != NULL, "%s", c.diagnostics);
    release(&c);
}

/* Every layer kind's schema fits the checker's table of values (an overflow once, found by ASan). */
Test(checker, every_kind_fits_the_option_table)
{
    for (int k = 0; k < n_layer_kinds; k++) {
        cr_expect_leq(layer_kinds[k]->n_options, MAX_OPTIONS, "%s has %d options", layer_kinds[k]->words[0],
                      layer_kinds[k]->n_options);
        cr_expect_not_null(layer_kinds[k]->check, "%s has no check", layer_kinds[k]->words[0]);
        cr_expect(layer_kinds[k]->flags & KIND_VIEW || layer_kinds[k]->emit, "%s has no code", layer_kinds[k]->words[0]);
        cr_expect(layer_kinds[k]->flags & (KIND_VIEW | KIND_TRAIN_ONLY) || layer_kinds[k]->emit_single,
                  "%s has no inference code", layer_kinds[k]->words[0]);
    }
}

/* ---- per-channel normalize and horizontal_flip ---- */

#define RGB_HEAD "model x\ninput 32x32x3\n"

Test(checker, per_channel_normalize_and_flips)
{
    compiled c = compile_text(RGB_HEAD "normalize mean=0.4914,0.4822,0.4465 std=0.2470,0.2435,0.2616\n" TAIL
                                       "train\n  augment shift=0.1 horizontal_flip\n");
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    cr_expect_eq(c.m->prep, NNC_PREP_CHANNELS);
    cr_expect_float_eq(c.m->prep_mean[1], 0.4822f, 1e-9);
    cr_expect_float_eq(c.m->prep_std[2], 0.2616f, 1e-9);
    cr_expect_eq(c.m->recipe.aug.horizontal_flip, 1);
    cr_expect_float_eq(c.m->recipe.aug.width_shift, 0.1f, 1e-9);
    release(&c);
    /* plain normalize stays the one mean and std of every training pixel; no flips unless named */
    c = compile_text(RGB_HEAD "normalize\n" TAIL "train\n  augment shift=0.1\n");
    cr_assert_not_null(c.m, "%s", c.diagnostics);
    cr_expect_eq(c.m->prep, NNC_PREP_NORMALIZE);
    cr_expect_eq(c.m->recipe.aug.horizontal_flip, 0);
    release(&c);
}

Test(checker, per_channel_normalize_errors)
{
    expect_diagnostics(RGB_HEAD "normalize mean=0.5,0.5 std=0.2,0.2,0.2\n" TAIL,
                       "x.nn:3:16: error: 'mean' has 2 numbers but the input has 3 channels\n"
                       "    3 | normalize mean=0.5,0.5 std=0.2,0.2,0.2\n"
                       "      |                ^~~~~~~\n");
    expect_diagnostics(RGB_HEAD "normalize mean=0.5,0.5,0.5 std=0.2,0,0.2\n" TAIL,
                       "x.nn:3:32: error: 'std=0.2,0,0.2': 0 is out of range [1e-06, 1000]\n"
                       "    3 | normalize mean=0.5,0.5,0.5 std=0.2,0,0.2\n"
                       "      |                                ^~~~~~~~~\n");
    expect_diagnostics(RGB_HEAD "normalize mean=0.5,0.5,0.5\n" TAIL,
                       "x.nn:3:1: error: per-channel 'normalize' needs both mean= and std=; usage: normalize   or   "
                       "normalize mean=M1,M2,M3 std=S1,S2,S3 (one number a channel)\n"
                       "    3 | normalize mean=0.5,0.5,0.5\n"
                       "      | ^~~~~~~~~\n");
    expect_diagnostics(RGB_HEAD "normalize mean=1,2,3,4,5 std=1,1,1\n" TAIL,
                       "x.nn:3:24: error: a list holds at most 4 numbers (one a channel)\n"
                       "    3 | normalize mean=1,2,3,4,5 std=1,1,1\n"
                       "      |                        ^\n");
}
