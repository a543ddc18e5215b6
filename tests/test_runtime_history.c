/* Tests for runtime/history.c: the history CSV and the SVG plots. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nncrt.h"

static char dir[64];

static void setup(void) {
    strcpy(dir, "/tmp/nnc_history_test.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(runtime_history, .init = setup, .fini = teardown);

/* n epochs of plausible numbers; validation only when with_val. */
static nnc_history_row *make_rows(int n, int with_val) {
    nnc_history_row *rows = calloc((size_t)n, sizeof *rows);
    for (int i = 0; i < n; i++)
        rows[i] = (nnc_history_row){.epoch = i + 1, .lr = i < 2 ? 0.1 : 0.01, .loss = 1.0 / (i + 1),
                                    .accuracy = 0.8 + 0.015 * i, .val_loss = with_val ? 1.2 / (i + 1) : NAN,
                                    .val_accuracy = with_val ? 0.82 + 0.01 * i - (i == 3 ? 0.05 : 0) : NAN,
                                    .seconds = 2.5, .images_per_second = 24000};
    return rows;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/*
 * A small well-formedness check: every element closes in order, attribute
 * values are quoted, text holds no raw '<' or '&' that is not an entity.
 * Returns NULL or what is wrong.
 */
static const char *xml_problem(const char *s) {
    static char why[128];
    char stack[64][32];
    int depth = 0, elements = 0;
    for (const char *p = s; *p;) {
        if (*p == '&') {
            if (strncmp(p, "&amp;", 5) && strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4) && strncmp(p, "&quot;", 6))
                return "a raw '&' in text";
            p++;
            continue;
        }
        if (*p != '<') {
            p++;
            continue;
        }
        const char *end = p + 1;
        int quotes = 0;
        for (; *end && (*end != '>' || quotes % 2); end++) quotes += *end == '"';
        if (!*end) return "an unterminated tag";
        if (quotes % 2) return "an unbalanced quote";
        if (p[1] == '?') { /* the declaration */
            p = end + 1;
            continue;
        }
        char name[32];
        int closing = p[1] == '/';
        size_t len = strcspn(p + 1 + closing, " \t\n/>");
        if (len == 0 || len >= sizeof name) return "a tag without a name";
        memcpy(name, p + 1 + closing, len);
        name[len] = '\0';
        if (closing) {
            if (depth == 0 || strcmp(stack[depth - 1], name) != 0) {
                snprintf(why, sizeof why, "</%s> closes %s", name, depth ? stack[depth - 1] : "nothing");
                return why;
            }
            depth--;
        } else if (end[-1] != '/') {
            if (depth == 64) return "too deep";
            strcpy(stack[depth++], name);
        }
        elements += !closing;
        p = end + 1;
    }
    if (depth) return "unclosed elements at the end";
    return elements ? NULL : "no elements";
}

static void expect_xmllint_ok(const char *path) {
    if (system("command -v xmllint >/dev/null 2>&1") != 0) return; /* optional second opinion */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
    cr_expect_eq(system(cmd), 0, "xmllint rejects %s", path);
}

Test(runtime_history, csv_has_the_header_and_one_row_per_epoch) {
    nnc_history_row *rows = make_rows(7, 1);
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/h.history.csv", dir);
    cr_assert_eq(nnc_history_write_csv(path, rows, 7, NULL, 0, NULL, err, sizeof err), 0, "%s", err);
    char *csv = read_file(path);
    cr_expect_eq(strncmp(csv, "epoch,lr,loss,accuracy,val_loss,val_accuracy,seconds,images_per_second\n", 71), 0,
                 "%s", csv);
    cr_expect_eq(count(csv, "\n"), 8, "%s", csv);
    int line = 0;
    for (char *l = strtok(csv, "\n"); l; l = strtok(NULL, "\n"), line++) {
        cr_expect_eq(count(l, ","), 7, "line %d: %s", line, l);
        if (line > 0) cr_expect_eq(atoi(l), line, "line %d: %s", line, l);
    }
    cr_expect_eq(line, 8);
    free(csv);
    /* Without validation data the validation fields are empty, not "nan". */
    nnc_history_row *no_val = make_rows(2, 0);
    cr_assert_eq(nnc_history_write_csv(path, no_val, 2, NULL, 0, NULL, err, sizeof err), 0, "%s", err);
    csv = read_file(path);
    cr_expect_not_null(strstr(csv, "\n1,0.1,1.000000,0.800000,,,2.500,24000.0\n"), "%s", csv);
    cr_expect_null(strstr(csv, "nan"), "%s", csv);
    free(csv), free(rows), free(no_val);
}

/* Per-class columns, named after the classes (CSV-quoted where a name needs it), or numbered without names. */
Test(runtime_history, csv_has_a_column_per_class_named_after_it) {
    nnc_history_row *rows = make_rows(2, 1);
    const float acc[2][3] = {{0.5f, 0.25f, NAN}, {1.0f, 0.75f, 0.125f}};
    char *names[3] = {"airplane", "cat, grey", "say \"hi\""};
    nnc_dataset classes = {.n_class_names = 3, .class_names = names};
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/c.history.csv", dir);
    cr_assert_eq(nnc_history_write_csv(path, rows, 2, &acc[0][0], 3, &classes, err, sizeof err), 0, "%s", err);
    char *csv = read_file(path);
    cr_expect_eq(strncmp(csv, "epoch,lr,loss,accuracy,val_loss,val_accuracy,seconds,images_per_second,"
                              "val_accuracy_airplane,\"val_accuracy_cat, grey\",\"val_accuracy_say \"\"hi\"\"\"\n",
                         strlen("epoch,lr,loss,accuracy,val_loss,val_accuracy,seconds,images_per_second,"
                                "val_accuracy_airplane,\"val_accuracy_cat, grey\",\"val_accuracy_say \"\"hi\"\"\"\n")),
                 0, "%s", csv);
    cr_expect_not_null(strstr(csv, ",24000.0,0.500000,0.250000,\n2,"), "a class without images is empty:\n%s", csv);
    cr_expect_not_null(strstr(csv, ",24000.0,1.000000,0.750000,0.125000\n"), "%s", csv);
    free(csv);
    /* no names (MNIST): the digits */
    cr_assert_eq(nnc_history_write_csv(path, rows, 2, &acc[0][0], 3, NULL, err, sizeof err), 0, "%s", err);
    csv = read_file(path);
    cr_expect_not_null(strstr(csv, "images_per_second,val_accuracy_0,val_accuracy_1,val_accuracy_2\n"), "%s", csv);
    free(csv), free(rows);
}

/* A line per class, the legend naming each (escaped), or numbering them without names. */
Test(runtime_history, class_svg_has_a_line_per_class_named_in_the_legend) {
    nnc_history_row *rows = make_rows(3, 1);
    const float acc[3][3] = {{0.5f, 0.25f, NAN}, {0.75f, 0.5f, 0.125f}, {1.0f, 0.75f, 0.25f}};
    char *names[3] = {"airplane", "cat & dog", "<bird>"};
    nnc_dataset classes = {.n_class_names = 3, .class_names = names};
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/h.classes.svg", dir);
    cr_assert_eq(nnc_history_write_class_svg(path, "m: per class", rows, 3, &acc[0][0], 3, &classes, err, sizeof err),
                 0, "%s", err);
    char *svg = read_file(path);
    const char *problem = xml_problem(svg);
    cr_expect_null(problem, "%s", problem);
    expect_xmllint_ok(path);
    cr_expect_eq(count(svg, "<polyline"), 3, "%s", svg);
    cr_expect_not_null(strstr(svg, ">airplane</text>"), "%s", svg);
    cr_expect_not_null(strstr(svg, ">cat &amp; dog</text>"), "%s", svg);
    cr_expect_not_null(strstr(svg, ">&lt;bird&gt;</text>"), "%s", svg);
    cr_expect_not_null(strstr(svg, ">accuracy per class (%)</text>"), "%s", svg);
    cr_expect_null(strstr(svg, "nan"), "%s", svg);
    free(svg);
    cr_assert_eq(nnc_history_write_class_svg(path, "m", rows, 3, &acc[0][0], 3, NULL, err, sizeof err), 0, "%s", err);
    svg = read_file(path);
    cr_expect_not_null(strstr(svg, "<text x=\"110.0\" y=\"46.0\">0</text>"), "%s", svg);
    cr_expect_not_null(strstr(svg, "<text x=\"350.0\" y=\"46.0\">2</text>"), "%s", svg);
    free(svg), free(rows);
}

Test(runtime_history, svg_is_well_formed_with_one_polyline_per_curve) {
    nnc_history_row *rows = make_rows(12, 1);
    char path[128], err[512] = "";
    const nnc_plot_kind kinds[2] = {NNC_PLOT_ACCURACY, NNC_PLOT_LOSS};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/h.%d.svg", dir, k);
        cr_assert_eq(nnc_history_write_svg(path, kinds[k], "m<1> & \"co\"", "validation", rows, 12, err, sizeof err),
                     0, "%s", err);
        char *svg = read_file(path);
        const char *problem = xml_problem(svg);
        cr_expect_null(problem, "%s: %s", path, problem);
        expect_xmllint_ok(path);
        cr_expect_eq(count(svg, "<polyline"), 2, "%s", svg);
        cr_expect_eq(count(svg, "<circle"), 24, "a dot per epoch per curve");
        cr_expect_not_null(strstr(svg, "m&lt;1&gt; &amp; &quot;co&quot;"), "the title is not escaped");
        cr_expect_not_null(strstr(svg, ">epoch</text>"), "no x axis label");
        cr_expect_not_null(strstr(svg, k == 0 ? ">accuracy (%)</text>" : ">loss</text>"), "no y axis label");
        cr_expect_not_null(strstr(svg, ">training</text>"), "no legend");
        cr_expect_not_null(strstr(svg, ">validation</text>"), "no legend");
        cr_expect_not_null(strstr(svg, ">12</text>"), "no tick at the last epoch");
        if (k == 0) cr_expect_not_null(strstr(svg, "best: epoch 12"), "no best-epoch marker");
        free(svg);
    }
    /* Training only: one curve; one epoch: still a valid chart. */
    snprintf(path, sizeof path, "%s/one.svg", dir);
    nnc_history_row *one = make_rows(1, 0);
    cr_assert_eq(nnc_history_write_svg(path, NNC_PLOT_LOSS, "t", "v", one, 1, err, sizeof err), 0, "%s", err);
    char *svg = read_file(path);
    cr_expect_null(xml_problem(svg), "%s", xml_problem(svg));
    cr_expect_eq(count(svg, "<polyline"), 1);
    cr_expect_null(strstr(svg, "nan"), "%s", svg);
    cr_expect_null(strstr(svg, "inf"), "%s", svg);
    free(svg), free(rows), free(one);
}

Test(runtime_history, unwritable_place_is_an_error_naming_the_file) {
    nnc_history_row *rows = make_rows(2, 1);
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/missing/h.history.csv", dir);
    cr_expect_eq(nnc_history_write_csv(path, rows, 2, NULL, 0, NULL, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, path), "%s", err);
    snprintf(path, sizeof path, "%s/missing/h.loss.svg", dir);
    cr_expect_eq(nnc_history_write_svg(path, NNC_PLOT_LOSS, "t", "v", rows, 2, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, path), "%s", err);
    free(rows);
}
