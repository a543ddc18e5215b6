/*
 * predict.c - classify the user's own images: digits (PNG or PGM) for grey
 * models, any PNG or JPEG for RGB ones (see load_rgb).
 *
 * A model trained on MNIST has only ever seen MNIST-shaped inputs: white ink
 * on a pure black background, the digit's larger side 20 pixels, centred by
 * its centre of mass in a 28x28 field (LeCun, Cortes and Burges, "The MNIST
 * database"). A photo or a drawing looks nothing like that, so each image is
 * first made to, in this order:
 *
 *   1. grey: ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B (as PIL's
 *      convert('L')); 16-bit samples scaled to 8 bits; transparent pixels
 *      composited over white when the opaque ink is dark, over black when it
 *      is light, so that the ink always stands out;
 *   2. polarity: inverted when its border is light (mean > 127), so that the
 *      digit is white on black;
 *   3. levels: the background (the border's median) goes to 0 and the
 *      brightest pixel to 255, as MNIST's ink peaks at 255 on exact 0;
 *   4. find the ink's bounding box (pixels above 10% of the peak, so that
 *      faint noise does not count) and crop it with a margin of 2 output
 *      pixels (the strokes' faint edges);
 *   5. scale so that the box's larger side is 20 pixels (20/28 of the
 *      model's input), keeping the aspect ratio: area averaging when
 *      shrinking, bilinear when enlarging;
 *   6. paste into a black in_h x in_w canvas (28x28) at a whole-pixel offset
 *      that puts the centre of mass at (in_h/2, in_w/2): MNIST's training
 *      digits have their mean centre of mass at (14.00, 14.01) in pixel
 *      indices (measured), so the target is 14, not 13.5;
 *   7. round to 8 bits, then apply the model's own preprocessing through
 *      nnc_prep_table, exactly as training converts its uint8 batches
 *      (scale: x * s; normalize: (x - mean) / std with the checkpoint's
 *      constants; none: raw 0..255).
 *
 * An MNIST digit saved as a file comes back unchanged, whether as is,
 * inverted, with a border, or enlarged by a whole factor (tests/test_predict.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nncrt.h"

#define MAX_FILE_BYTES (256L << 20) /* larger is surely not a digit; refuse rather than exhaust memory */
#define INK_FRACTION 0.10 /* of the peak: what counts as ink for the bounding box */
#define MIN_CONTRAST 8.0  /* grey levels between background and peak below which there is no digit */
#define ERR_LEN 512

/* A grey image, one double per pixel in 0..255, row-major. */
typedef struct {
    int h, w;
    double *px;
} grey_image;

/* ------------------------------------------------------------------------ */
/* Decoding PNG and PGM (the file is read whole by nnc_read_file)           */
/* ------------------------------------------------------------------------ */

static int png_to_grey(const char *path, const unsigned char *data, size_t size, grey_image *g, char *err,
                       size_t errlen) {
    nnc_image img;
    if (nnc_png_decode_rgba(path, data, size, &img, err, errlen) != 0) return -1;
    size_t n = (size_t)img.w * img.h;
    const unsigned char *rgba = img.px;
    g->px = malloc(n * sizeof(double));
    if (!g->px) {
        nnc_set_error(err, errlen, "%s: out of memory (%dx%d)", path, img.w, img.h);
        free(img.px);
        return -1;
    }
    g->h = img.h;
    g->w = img.w;

    /* Transparency: the ink is whatever is opaque. Its alpha-weighted mean
     * grey says whether it is dark or light; the background it is composited
     * over is the opposite, as a viewer would have to show it to be legible. */
    double ink_sum = 0.0, alpha_sum = 0.0;
    int translucent = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = rgba + 4 * i;
        double a = p[3] / 255.0;
        g->px[i] = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        ink_sum += a * g->px[i];
        alpha_sum += a;
        translucent |= p[3] != 255;
    }
    if (translucent) {
        double background = alpha_sum > 0 && ink_sum / alpha_sum > 127.5 ? 0.0 : 255.0;
        for (size_t i = 0; i < n; i++) {
            double a = rgba[4 * i + 3] / 255.0;
            g->px[i] = a * g->px[i] + (1.0 - a) * background;
        }
    }
    free(img.px);
    return 0;
}

/* PGM header and ASCII raster: skip whitespace and `#` comments, then read a
 * decimal number. -1 at the end of the data or on a non-digit. */
static long pgm_number(const unsigned char *data, size_t size, size_t *pos) {
    size_t i = *pos;
    for (;;) {
        while (i < size && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r' ||
                            data[i] == '\v' || data[i] == '\f'))
            i++;
        if (i < size && data[i] == '#') {
            while (i < size && data[i] != '\n') i++;
            continue;
        }
        break;
    }
    if (i >= size || data[i] < '0' || data[i] > '9') return -1;
    long v = 0;
    while (i < size && data[i] >= '0' && data[i] <= '9') {
        if (v > 100000000L) return -1; /* absurd; also keeps v from overflowing */
        v = 10 * v + (data[i++] - '0');
    }
    *pos = i;
    return v;
}

/* Netpbm greymaps: P2 (ASCII) and P5 (binary, 1 byte a sample, 2 big-endian
 * bytes when maxval > 255). Only the first image of a multi-image file. */
static int pgm_to_grey(const char *path, const unsigned char *data, size_t size, grey_image *g, char *err,
                       size_t errlen) {
    int binary = data[1] == '5';
    size_t pos = 2;
    long w = pgm_number(data, size, &pos);
    long h = pgm_number(data, size, &pos);
    long maxval = pgm_number(data, size, &pos);
    if (w < 0 || h < 0 || maxval < 0) {
        nnc_set_error(err, errlen, "%s: corrupt PGM header (expected width, height and maxval)", path);
        return -1;
    }
    if (maxval < 1 || maxval > 65535) {
        nnc_set_error(err, errlen, "%s: PGM maxval %ld is not in 1..65535", path, maxval);
        return -1;
    }
    if (nnc_image_size_ok(path, w, h, err, errlen) != 0) return -1;
    size_t n = (size_t)w * (size_t)h;
    if (binary) {
        /* Exactly one whitespace character separates maxval from the raster. */
        size_t bytes = maxval > 255 ? 2 : 1;
        if (pos >= size || !(data[pos] == ' ' || data[pos] == '\n' || data[pos] == '\r' || data[pos] == '\t')) {
            nnc_set_error(err, errlen, "%s: corrupt PGM header (no whitespace before the raster)", path);
            return -1;
        }
        pos++;
        if (size - pos < n * bytes) {
            nnc_set_error(err, errlen, "%s: truncated PGM: %zu of %zu raster bytes", path, size - pos, n * bytes);
            return -1;
        }
    }
    g->px = malloc(n * sizeof(double));
    if (!g->px) {
        nnc_set_error(err, errlen, "%s: out of memory (%ldx%ld)", path, w, h);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        long v;
        if (binary) {
            v = maxval > 255 ? (long)data[pos] << 8 | data[pos + 1] : data[pos];
            pos += maxval > 255 ? 2 : 1;
        } else if ((v = pgm_number(data, size, &pos)) < 0) {
            nnc_set_error(err, errlen, "%s: truncated or corrupt PGM: sample %zu of %zu is missing", path, i + 1, n);
            free(g->px), g->px = NULL;
            return -1;
        }
        if (v > maxval) {
            nnc_set_error(err, errlen, "%s: corrupt PGM: sample %zu is %ld, above maxval %ld", path, i + 1, v, maxval);
            free(g->px), g->px = NULL;
            return -1;
        }
        g->px[i] = 255.0 * (double)v / (double)maxval;
    }
    g->h = (int)h;
    g->w = (int)w;
    return 0;
}

/* Decide the format by content, not by the name's extension. */
static int load_grey(const char *path, grey_image *g, char *err, size_t errlen) {
    static const unsigned char png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char *data;
    size_t size;
    if (nnc_read_file(path, "a digit image", MAX_FILE_BYTES, &data, &size, err, errlen) != 0) return -1;
    int rc;
    if (size >= 8 && memcmp(data, png_signature, 8) == 0)
        rc = png_to_grey(path, data, size, g, err, errlen);
    else if (size >= 2 && data[0] == 'P' && (data[1] == '2' || data[1] == '5'))
        rc = pgm_to_grey(path, data, size, g, err, errlen);
    else {
        nnc_set_error(err, errlen, "%s: %s", path,
                size == 0 ? "empty file" : "not a PNG or PGM (P2/P5) image");
        rc = -1;
    }
    free(data);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Making it look like an MNIST digit                                       */
/* ------------------------------------------------------------------------ */

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Steps 2 and 3: white ink on a 0 background, peak 255. */
static int polarity_and_levels(const char *path, grey_image *g, char *err, size_t errlen) {
    int h = g->h, w = g->w;
    /* The outer ring of pixels (every pixel when the image is 1 or 2 wide). */
    size_t ring = h <= 2 || w <= 2 ? (size_t)h * w : 2 * (size_t)w + 2 * (size_t)(h - 2);
    double *border = malloc(ring * sizeof(double));
    if (!border) {
        nnc_set_error(err, errlen, "%s: out of memory", path);
        return -1;
    }
    size_t k = 0;
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++)
            if (h <= 2 || w <= 2 || r == 0 || r == h - 1 || c == 0 || c == w - 1) border[k++] = g->px[(size_t)r * w + c];
    double mean = 0.0;
    for (size_t i = 0; i < k; i++) mean += border[i];
    mean /= (double)k;
    int invert = mean > 127.0;
    size_t n = (size_t)h * w;
    if (invert) {
        for (size_t i = 0; i < n; i++) g->px[i] = 255.0 - g->px[i];
        for (size_t i = 0; i < k; i++) border[i] = 255.0 - border[i];
    }
    /* The median, not the mean: strokes that touch the border must not lift it. */
    qsort(border, k, sizeof *border, compare_doubles);
    double background = border[k / 2];
    free(border);
    double peak = 0.0;
    for (size_t i = 0; i < n; i++)
        if (g->px[i] > peak) peak = g->px[i];
    if (peak - background < MIN_CONTRAST) {
        nnc_set_error(err, errlen, "%s: no digit found: the image is blank (%ldx%ld, all grey levels within %.0f)", path,
                (long)w, (long)h, MIN_CONTRAST);
        return -1;
    }
    double gain = 255.0 / (peak - background);
    for (size_t i = 0; i < n; i++) {
        double v = (g->px[i] - background) * gain;
        g->px[i] = v < 0.0 ? 0.0 : v > 255.0 ? 255.0 : v;
    }
    return 0;
}

/* Step 5's resampling of src[sh][sw] to dst[dh][dw] (both axes scaled by about the same factor). */
static void resample(const double *src, int sh, int sw, double *dst, int dh, int dw) {
    double fy = (double)sh / dh, fx = (double)sw / dw; /* source pixels per destination pixel */
    if (fy >= 1.0 && fx >= 1.0) {
        /* Shrinking: each destination pixel is the mean of the source area it
         * covers, partial pixels weighted by their overlap. No aliasing. */
        for (int r = 0; r < dh; r++) {
            double y0 = r * fy, y1 = (r + 1) * fy;
            for (int c = 0; c < dw; c++) {
                double x0 = c * fx, x1 = (c + 1) * fx, sum = 0.0;
                for (int y = (int)y0; y < sh && y < y1; y++) {
                    double wy = fmin(y1, y + 1.0) - fmax(y0, (double)y);
                    for (int x = (int)x0; x < sw && x < x1; x++) {
                        double wx = fmin(x1, x + 1.0) - fmax(x0, (double)x);
                        sum += wy * wx * src[(size_t)y * sw + x];
                    }
                }
                dst[(size_t)r * dw + c] = sum / (fy * fx);
            }
        }
        return;
    }
    /* Enlarging: bilinear between pixel centres, edges held. */
    for (int r = 0; r < dh; r++) {
        double y = fmin(fmax((r + 0.5) * fy - 0.5, 0.0), sh - 1.0);
        int y0 = (int)y, y1 = y0 + 1 < sh ? y0 + 1 : y0;
        double ty = y - y0;
        for (int c = 0; c < dw; c++) {
            double x = fmin(fmax((c + 0.5) * fx - 0.5, 0.0), sw - 1.0);
            int x0 = (int)x, x1 = x0 + 1 < sw ? x0 + 1 : x0;
            double tx = x - x0;
            double top = (1 - tx) * src[(size_t)y0 * sw + x0] + tx * src[(size_t)y0 * sw + x1];
            double bottom = (1 - tx) * src[(size_t)y1 * sw + x0] + tx * src[(size_t)y1 * sw + x1];
            dst[(size_t)r * dw + c] = (1 - ty) * top + ty * bottom;
        }
    }
}

/* Steps 4 to 7 on a levelled image. */
static int crop_scale_centre(const char *path, const grey_image *g, int out_h, int out_w, uint8_t *out, char *err,
                             size_t errlen) {
    int top = g->h, bottom = -1, left = g->w, right = -1;
    for (int r = 0; r < g->h; r++)
        for (int c = 0; c < g->w; c++)
            if (g->px[(size_t)r * g->w + c] > INK_FRACTION * 255.0) {
                if (r < top) top = r;
                if (r > bottom) bottom = r;
                if (c < left) left = c;
                if (c > right) right = c;
            }
    /* polarity_and_levels guarantees a pixel at 255, so the box is never empty.
     * The box sets the scale; the crop keeps a margin around it, so that the
     * faint anti-aliased edge of a stroke (below the ink threshold) is
     * scaled along with it instead of cut off. */
    int bh = bottom - top + 1, bw = right - left + 1, big = bh > bw ? bh : bw;
    int box = (int)lround(20.0 * (out_h < out_w ? out_h : out_w) / 28.0);
    if (box < 1) box = 1;
    double s = (double)box / big;
    /* Two destination pixels' worth, a whole number of source pixels: then a
     * digit enlarged by a whole factor shrinks back along its own block grid. */
    int margin = (int)lround(2.0 / s);
    if (margin < 1) margin = 1;
    top = top - margin > 0 ? top - margin : 0;
    left = left - margin > 0 ? left - margin : 0;
    bottom = bottom + margin < g->h - 1 ? bottom + margin : g->h - 1;
    right = right + margin < g->w - 1 ? right + margin : g->w - 1;
    bh = bottom - top + 1, bw = right - left + 1;
    int dh = (int)lround(bh * s), dw = (int)lround(bw * s);
    if (dh < 1) dh = 1;
    if (dw < 1) dw = 1;

    double *crop = malloc((size_t)bh * bw * sizeof(double));
    double *digit = malloc((size_t)dh * dw * sizeof(double));
    if (!crop || !digit) {
        nnc_set_error(err, errlen, "%s: out of memory", path);
        free(crop), free(digit);
        return -1;
    }
    for (int r = 0; r < bh; r++)
        memcpy(crop + (size_t)r * bw, g->px + (size_t)(top + r) * g->w + left, (size_t)bw * sizeof(double));
    resample(crop, bh, bw, digit, dh, dw);

    double mass = 0.0, mr = 0.0, mc = 0.0;
    for (int r = 0; r < dh; r++)
        for (int c = 0; c < dw; c++) {
            double v = digit[(size_t)r * dw + c];
            mass += v, mr += v * r, mc += v * c;
        }
    int r0 = (int)lround(out_h / 2.0 - mr / mass), c0 = (int)lround(out_w / 2.0 - mc / mass);
    memset(out, 0, (size_t)out_h * out_w);
    for (int r = 0; r < dh; r++)
        for (int c = 0; c < dw; c++) {
            int y = r0 + r, x = c0 + c;
            if (y < 0 || y >= out_h || x < 0 || x >= out_w) continue; /* a lopsided digit may overhang */
            out[(size_t)y * out_w + x] = (uint8_t)lround(digit[(size_t)r * dw + c]);
        }
    free(crop), free(digit);
    return 0;
}

int nnc_image_load_mnist(const char *path, int h, int w, uint8_t *out, char *err, size_t errlen) {
    if (h < 1 || w < 1) {
        nnc_set_error(err, errlen, "%s: bad target size %dx%d", path, h, w);
        return -1;
    }
    grey_image g = {0, 0, NULL};
    int rc = load_grey(path, &g, err, errlen);
    if (rc == 0) rc = polarity_and_levels(path, &g, err, errlen);
    if (rc == 0) rc = crop_scale_centre(path, &g, h, w, out, err, errlen);
    free(g.px);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Classifying                                                              */
/* ------------------------------------------------------------------------ */

/* An RGB model's input from any PNG or JPEG: RGB (alpha dropped), resized bilinearly when its size
 * differs; no MNIST-style centring, which only means something for digits. */
static int load_rgb(const char *path, int h, int w, uint8_t *out, char *err, size_t errlen) {
    uint8_t *data;
    size_t size;
    if (nnc_read_file(path, "an image", MAX_FILE_BYTES, &data, &size, err, errlen) != 0) return -1;
    nnc_image img;
    int rc = nnc_image_decode(path, data, size, 3, &img, err, errlen);
    free(data);
    if (rc != 0) return -1;
    if (img.h == h && img.w == w)
        memcpy(out, img.px, (size_t)h * w * 3);
    else
        nnc_image_resize_bilinear(&img, h, w, out);
    free(img.px);
    return 0;
}

/* The one-time line that says what was done to the images. */
static void print_preprocessing(const nnc_model *m, const float prep[2], FILE *out) {
    if (m->in_c == 3)
        fprintf(out, "# %s: each image as RGB (alpha dropped), resized bilinearly to %dx%d when it is another size; "
                     "then ",
                m->name, m->in_h, m->in_w);
    else
        fprintf(out,
                "# %s: each image made MNIST-like: grey (BT.601 luma, alpha over a contrasting background), inverted "
                "if its border is light, background to 0 and peak to 255, cropped to the ink, larger side scaled to "
                "%d px, centred by mass in %dx%d; then ",
                m->name, (int)lround(20.0 * (m->in_h < m->in_w ? m->in_h : m->in_w) / 28.0), m->in_h, m->in_w);
    switch (m->prep) {
    case NNC_PREP_NONE: fprintf(out, "raw 0..255"); break;
    case NNC_PREP_SCALE: fprintf(out, "x * %g", (double)m->prep_scale); break;
    case NNC_PREP_NORMALIZE: fprintf(out, "(x - %g) / %g", (double)prep[0], (double)prep[1]); break;
    case NNC_PREP_CHANNELS:
        for (int c = 0; c < m->in_c && c < NNC_MAX_PREP_CHANNELS; c++)
            fprintf(out, "%s(x / 255 - %g) / %g", c ? ", " : "", (double)m->prep_mean[c], (double)m->prep_std[c]);
        break;
    }
    fprintf(out, " as in training\n");
}

int nnc_predict_files(const nnc_model *m, const float *params, const float *state, const float prep[2],
                      int n_files, char **files, int threads, FILE *out) {
    return nnc_predict_files_named(m, params, state, prep, NULL, n_files, files, threads, out);
}

int nnc_predict_files_named(const nnc_model *m, const float *params, const float *state, const float prep[2],
                            const nnc_dataset *classes, int n_files, char **files, int threads, FILE *out) {
    if (m->in_c != 1 && m->in_c != 3) {
        fprintf(stderr, "error: model %s takes %d-channel images; prediction reads grey (1) or RGB (3) images\n",
                m->name, m->in_c);
        return 1;
    }
    const int c = m->in_c;
    const size_t floats = (size_t)m->in_h * m->in_w * c;
    const int batch = m->max_batch > 0 ? m->max_batch : 1;
    float *x = malloc((size_t)batch * floats * sizeof(float));
    float *probs = malloc((size_t)batch * m->n_classes * sizeof(float));
    const char **names = malloc((size_t)batch * sizeof *names);
    uint8_t *image = malloc(floats);
    void *ws = nnc_workspace_new(m);
    if (!x || !probs || !names || !image || !ws) {
        fprintf(stderr, "error: out of memory for prediction buffers\n");
        free(x), free(probs), free(names), free(image), nnc_workspace_free(ws);
        return 1;
    }
    float table[3][256];
    for (int ch = 0; ch < c; ch++) nnc_prep_table(m, prep, ch, table[ch]);
    print_preprocessing(m, prep, out);
    nnc_step_ctx ctx = {.threads = threads > 0 ? threads : 1, .dropout_key = 0, .workspace = ws};

    /* Up to a batch of images at a time: errors are reported as files are
     * read, results in file order once their batch has run. */
    int status = 0;
    for (int i = 0; i < n_files;) {
        int n = 0;
        for (; i < n_files && n < batch; i++) {
            char err[ERR_LEN];
            int rc = c == 3 ? load_rgb(files[i], m->in_h, m->in_w, image, err, sizeof err)
                            : nnc_image_load_mnist(files[i], m->in_h, m->in_w, image, err, sizeof err);
            if (rc != 0) {
                fprintf(stderr, "error: %s\n", err);
                status = 1;
                continue;
            }
            for (size_t p = 0; p < floats; p++) x[(size_t)n * floats + p] = table[p % c][image[p]];
            names[n++] = files[i];
        }
        if (n == 0) continue;
        m->infer_batch(&ctx, x, n, params, state, probs);
        for (int b = 0; b < n; b++) {
            const float *p = probs + (size_t)b * m->n_classes;
            int k = nnc_argmax(p, m->n_classes);
            const char *name = nnc_class_name(classes, k);
            fprintf(out, "%s: %d%s%s (p=%.3f)  [", names[b], k, name ? " " : "", name ? name : "", (double)p[k]);
            for (int j = 0; j < m->n_classes; j++) fprintf(out, j ? " %.3f" : "%.3f", (double)p[j]);
            fprintf(out, "]\n");
        }
    }
    fflush(out);
    free(x), free(probs), free(names), free(image), nnc_workspace_free(ws);
    return status;
}
