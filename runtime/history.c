/*
 * history.c - the training history as a CSV file and two SVG line charts.
 *
 * The trainer rewrites all three after every epoch from the rows it keeps
 * (nnc_train_state.history), so each file always describes the whole run so
 * far, also after --resume. Each is composed in memory and written with
 * nnc_write_file_atomically: a reader (or a plot viewer that reloads) never
 * sees half a file.
 *
 * The SVG is written by hand: a fixed-size canvas, "nice" axis ticks (1, 2 or
 * 5 times a power of ten), one polyline per curve, dots at the epochs, a
 * legend and a title. No dependencies, viewable in any browser.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nncrt.h"

/* A file composed in memory (open_memstream); NULL with a message naming path. */
static FILE *open_stream(const char *path, char **buf, size_t *size, char *err, size_t errlen) {
    FILE *f = open_memstream(buf, size);
    if (!f) nnc_set_error(err, errlen, "%s: out of memory composing the file", path);
    return f;
}

/* open_memstream's buffer, written atomically to path. */
static int write_stream(const char *path, FILE *f, char **buf, size_t *size, char *err, size_t errlen) {
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || !*buf) {
        free(*buf);
        nnc_set_error(err, errlen, "%s: out of memory composing the file", path);
        return -1;
    }
    int rc = nnc_write_file_atomically(path, *buf, *size, err, errlen);
    free(*buf);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* CSV                                                                      */
/* ------------------------------------------------------------------------ */

/* A number, or nothing when it is NaN (no validation data): pandas reads it as NaN. */
static void csv_number(FILE *f, const char *fmt, double v) {
    fputc(',', f);
    if (!isnan(v)) fprintf(f, fmt, v);
}

/* A header field, quoted as RFC 4180 says when a class name holds a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *prefix, const char *name) {
    int quote = strpbrk(name, ",\"\r\n") != NULL;
    fprintf(f, ",%s%s", quote ? "\"" : "", prefix);
    for (; *name; name++) {
        if (*name == '"') fputc('"', f); /* a quote doubled */
        fputc(*name, f);
    }
    if (quote) fputc('"', f);
}

int nnc_history_write_csv(const char *path, const nnc_history_row *rows, int n, const float *class_accuracy,
                          int n_classes, const nnc_dataset *classes, char *err, size_t errlen) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_stream(path, &buf, &size, err, errlen);
    if (!f) return -1;
    if (!class_accuracy) n_classes = 0;
    fprintf(f, "epoch,lr,loss,accuracy,val_loss,val_accuracy,seconds,images_per_second");
    for (int k = 0; k < n_classes; k++) {
        char number[16];
        snprintf(number, sizeof number, "%d", k);
        const char *name = nnc_class_name(classes, k);
        csv_field(f, "val_accuracy_", name ? name : number);
    }
    fputc('\n', f);
    for (int i = 0; i < n; i++) {
        const nnc_history_row *h = &rows[i];
        fprintf(f, "%d", h->epoch);
        csv_number(f, "%.7g", h->lr); /* a float: 7 digits say it exactly enough */
        csv_number(f, "%.6f", h->loss);
        csv_number(f, "%.6f", h->accuracy);
        csv_number(f, "%.6f", h->val_loss);
        csv_number(f, "%.6f", h->val_accuracy);
        csv_number(f, "%.3f", h->seconds);
        csv_number(f, "%.1f", h->images_per_second);
        for (int k = 0; k < n_classes; k++) csv_number(f, "%.6f", class_accuracy[(size_t)i * n_classes + k]);
        fputc('\n', f);
    }
    return write_stream(path, f, &buf, &size, err, errlen);
}

/* ------------------------------------------------------------------------ */
/* SVG                                                                      */
/* ------------------------------------------------------------------------ */

#define SVG_W 720
#define SVG_H 440
#define PLOT_LEFT 80.0
#define PLOT_RIGHT (SVG_W - 30.0)
#define PLOT_TOP 70.0
#define PLOT_BOTTOM (SVG_H - 60.0)
#define MAX_DOTS 60 /* more epochs than this: the line alone */
#define COLOR_TRAIN "#1f77b4"
#define COLOR_VAL "#ff7f0e"

/* A linear map from data to pixels along one axis. */
typedef struct {
    double lo, hi;   /* data range */
    double from, to; /* pixel range */
} axis;

static double axis_map(const axis *a, double v) {
    return a->from + (v - a->lo) / (a->hi - a->lo) * (a->to - a->from);
}

/* 1, 2 or 5 times a power of ten, at least x. */
static double nice_step(double x) {
    double p = pow(10.0, floor(log10(x)));
    double f = x / p;
    return (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * p;
}

/* Round [lo, hi] out to whole steps of about `ticks` intervals. */
static double nice_range(double *lo, double *hi, int ticks) {
    if (!(*hi > *lo)) { /* one value, or none: a small range around it */
        double pad = fabs(*lo) > 0 ? fabs(*lo) * 0.05 : 0.5;
        *lo -= pad, *hi += pad;
    }
    double step = nice_step((*hi - *lo) / ticks);
    *lo = floor(*lo / step + 1e-9) * step;
    *hi = ceil(*hi / step - 1e-9) * step;
    return step;
}

/* Decimals that show a tick step exactly: 0.05 -> 2, 5 -> 0. */
static int step_decimals(double step) {
    int d = (int)ceil(-log10(step) - 1e-9);
    return d > 0 ? d : 0;
}

/* Text content must not break the XML: &, < and > escaped, quotes too (attributes). */
static void xml_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* The value a chart shows for a row: accuracy in percent, or the loss. */
static double row_value(const nnc_history_row *h, nnc_plot_kind kind, int validation) {
    if (kind == NNC_PLOT_ACCURACY) return 100.0 * (validation ? h->val_accuracy : h->accuracy);
    return validation ? h->val_loss : h->loss;
}

static int has_validation(const nnc_history_row *rows, int n) {
    for (int i = 0; i < n; i++)
        if (!isnan(rows[i].val_accuracy)) return 1;
    return 0;
}

/* Range of the finite values of both curves. */
static void value_range(const nnc_history_row *rows, int n, nnc_plot_kind kind, int curves, double *lo, double *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    for (int c = 0; c < curves; c++)
        for (int i = 0; i < n; i++) {
            double v = row_value(&rows[i], kind, c);
            if (!isfinite(v)) continue;
            if (v < *lo) *lo = v;
            if (v > *hi) *hi = v;
        }
    if (*lo > *hi) *lo = *hi = 0.0; /* nothing finite */
}

static void svg_axes(FILE *f, const axis *x, const axis *y, double ystep, int xstep, int last, const char *ylabel) {
    int decimals = step_decimals(ystep);
    /* horizontal grid lines and y tick labels */
    for (double v = y->lo; v <= y->hi + ystep * 1e-6; v += ystep) {
        double py = axis_map(y, v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n", PLOT_LEFT, py,
                PLOT_RIGHT, py);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", PLOT_LEFT - 5, py,
                PLOT_LEFT, py);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", PLOT_LEFT - 8, py + 4, decimals,
                fabs(v) < ystep * 1e-6 ? 0.0 : v);
    }
    /* x ticks at whole epochs */
    for (int e = 1; e <= last; e++) {
        if (e < 1 || (e - 1) % xstep != 0) continue;
        double px = axis_map(x, e);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", px, PLOT_BOTTOM, px,
                PLOT_BOTTOM + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", px, PLOT_BOTTOM + 20, e);
    }
    /* the frame and the axis labels */
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n",
            PLOT_LEFT, PLOT_TOP, PLOT_RIGHT - PLOT_LEFT, PLOT_BOTTOM - PLOT_TOP);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">epoch</text>\n", (PLOT_LEFT + PLOT_RIGHT) / 2,
            SVG_H - 18);
    fprintf(f, "<text x=\"20\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 20 %.1f)\">%s</text>\n",
            (PLOT_TOP + PLOT_BOTTOM) / 2, (PLOT_TOP + PLOT_BOTTOM) / 2, ylabel);
}

/* One curve: a polyline through its finite points, and dots when there are few. */
static void svg_curve(FILE *f, const nnc_history_row *rows, int n, nnc_plot_kind kind, int validation,
                      const axis *x, const axis *y, const char *color) {
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
    for (int i = 0; i < n; i++) {
        double v = row_value(&rows[i], kind, validation);
        if (isfinite(v)) fprintf(f, "%s%.1f,%.1f", i ? " " : "", axis_map(x, rows[i].epoch), axis_map(y, v));
    }
    fprintf(f, "\"/>\n");
    if (n > MAX_DOTS) return;
    for (int i = 0; i < n; i++) {
        double v = row_value(&rows[i], kind, validation);
        if (isfinite(v))
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", axis_map(x, rows[i].epoch),
                    axis_map(y, v), color);
    }
}

static void svg_legend_entry(FILE *f, double x, double y, const char *color, const char *label) {
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n", x, y,
            x + 24, y, color);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", x + 30, y + 4);
    xml_text(f, label);
    fprintf(f, "</text>\n");
}

/* The document's start: the canvas, a white background and the title. */
static void svg_begin(FILE *f, const char *title) {
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"sans-serif\" font-size=\"13\">\n",
            SVG_W, SVG_H, SVG_W, SVG_H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"26\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\">", SVG_W / 2);
    xml_text(f, title);
    fprintf(f, "</text>\n");
}

/* Epochs 1..last with a margin, so that the first and last dots clear the frame; and the tick step. */
static axis epoch_axis(const nnc_history_row *rows, int n, int *last, int *xstep) {
    *last = n > 0 ? rows[n - 1].epoch : 1;
    *xstep = *last <= 12 ? 1 : (int)nice_step(*last / 10.0);
    double xpad = *last > 1 ? 0.03 * (*last - 1) : 1.0;
    return (axis){1.0 - xpad, (double)*last + xpad, PLOT_LEFT, PLOT_RIGHT};
}

/* The accuracy chart marks the epoch the validation data picked (the first best). */
static void svg_best_marker(FILE *f, const nnc_history_row *rows, int n, const axis *x) {
    int best = -1;
    for (int i = 0; i < n; i++)
        if (!isnan(rows[i].val_accuracy) && (best < 0 || rows[i].val_accuracy > rows[best].val_accuracy)) best = i;
    if (best < 0) return;
    double px = axis_map(x, rows[best].epoch);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"4 4\"/>\n", px,
            PLOT_TOP, px, PLOT_BOTTOM);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" fill=\"#555\">best: epoch %d</text>\n",
            px + (px > (PLOT_LEFT + PLOT_RIGHT) / 2 ? -4 : 4), PLOT_BOTTOM - 8,
            px > (PLOT_LEFT + PLOT_RIGHT) / 2 ? "end" : "start", rows[best].epoch);
}

int nnc_history_write_svg(const char *path, nnc_plot_kind kind, const char *title, const char *val_name,
                          const nnc_history_row *rows, int n, char *err, size_t errlen) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_stream(path, &buf, &size, err, errlen);
    if (!f) return -1;
    const int curves = has_validation(rows, n) ? 2 : 1;
    double lo, hi;
    value_range(rows, n, kind, curves, &lo, &hi);
    double ystep = nice_range(&lo, &hi, 5);
    int last, xstep;
    axis x = epoch_axis(rows, n, &last, &xstep);
    axis y = {lo, hi, PLOT_BOTTOM, PLOT_TOP};

    svg_begin(f, title);
    svg_axes(f, &x, &y, ystep, xstep, last, kind == NNC_PLOT_ACCURACY ? "accuracy (%)" : "loss");
    if (kind == NNC_PLOT_ACCURACY) svg_best_marker(f, rows, n, &x);
    svg_curve(f, rows, n, kind, 0, &x, &y, COLOR_TRAIN);
    if (curves == 2) svg_curve(f, rows, n, kind, 1, &x, &y, COLOR_VAL);
    svg_legend_entry(f, PLOT_LEFT, 50, COLOR_TRAIN, "training");
    if (curves == 2) svg_legend_entry(f, PLOT_LEFT + 130, 50, COLOR_VAL, val_name ? val_name : "validation");
    fprintf(f, "</svg>\n");
    return write_stream(path, f, &buf, &size, err, errlen);
}

/* Matplotlib's tab10: a colour per class, repeating after ten. */
static const char *const class_colors[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                             "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define CLASS_LEGEND_MAX 10 /* two rows of five; more classes are named in the CSV only */

int nnc_history_write_class_svg(const char *path, const char *title, const nnc_history_row *rows, int n,
                                const float *class_accuracy, int n_classes, const nnc_dataset *classes, char *err,
                                size_t errlen) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_stream(path, &buf, &size, err, errlen);
    if (!f) return -1;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < (size_t)n * n_classes; i++)
        if (isfinite(class_accuracy[i]))
            lo = fmin(lo, 100.0 * class_accuracy[i]), hi = fmax(hi, 100.0 * class_accuracy[i]);
    if (lo > hi) lo = hi = 0.0; /* no validation data */
    double ystep = nice_range(&lo, &hi, 5);
    int last, xstep;
    axis x = epoch_axis(rows, n, &last, &xstep);
    axis y = {lo, hi, PLOT_BOTTOM, PLOT_TOP};
    svg_begin(f, title);
    svg_axes(f, &x, &y, ystep, xstep, last, "accuracy per class (%)");
    for (int k = 0; k < n_classes; k++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", class_colors[k % 10]);
        int first = 1;
        for (int i = 0; i < n; i++) {
            double v = 100.0 * class_accuracy[(size_t)i * n_classes + k];
            if (!isfinite(v)) continue;
            fprintf(f, "%s%.1f,%.1f", first ? "" : " ", axis_map(&x, rows[i].epoch), axis_map(&y, v));
            first = 0;
        }
        fprintf(f, "\"/>\n");
    }
    for (int k = 0; k < n_classes && n_classes <= CLASS_LEGEND_MAX; k++) {
        char number[16];
        snprintf(number, sizeof number, "%d", k);
        const char *name = nnc_class_name(classes, k);
        svg_legend_entry(f, PLOT_LEFT + 120.0 * (k % 5), k < 5 ? 42 : 58, class_colors[k % 10], name ? name : number);
    }
    fprintf(f, "</svg>\n");
    return write_stream(path, f, &buf, &size, err, errlen);
}
