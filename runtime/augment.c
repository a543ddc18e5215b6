/*
 * augment.c - random affine distortions, as Keras 2's ImageDataGenerator.
 *
 * Keras builds one 3x3 matrix per image, rotation * shift * shear * zoom,
 * moves its origin to the image centre, and hands it to
 * scipy.ndimage.affine_transform(order=1, mode='nearest'): the matrix maps each
 * OUTPUT pixel to the INPUT position it samples, bilinearly, with coordinates
 * beyond the border clamped to the nearest edge pixel. We do the same on the
 * preprocessed floats (bilinear sampling commutes with the per-pixel affine
 * preprocessing, so the order of the two does not matter).
 *
 * The random draws happen in a fixed order per image and only for the
 * distortions that are enabled, so the stream is reproducible.
 */
#include <math.h>
#include <string.h>

#include "nncrt.h"

#define DEG_TO_RAD 0.017453292519943295769

/* 3x3 affine matrices, row-major, last row (0 0 1). */
typedef struct {
    double a[3][3];
} affine3;

static affine3 affine_mul(affine3 x, affine3 y) {
    affine3 r;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) r.a[i][j] = x.a[i][0] * y.a[0][j] + x.a[i][1] * y.a[1][j] + x.a[i][2] * y.a[2][j];
    return r;
}

static affine3 affine_make(double a00, double a01, double a02, double a10, double a11, double a12) {
    affine3 r = {{{a00, a01, a02}, {a10, a11, a12}, {0, 0, 1}}};
    return r;
}

/* Uniform in [-r, r]; np.random.uniform(-r, r). */
static double uniform_symmetric(nnc_rng *rng, double r) { return r * (2.0 * nnc_rng_uniform(rng) - 1.0); }

/* Keras's random_transform: row axis is "x" in its matrices, column axis "y". */
static affine3 random_transform_matrix(const nnc_augment_cfg *cfg, int h, int w, nnc_rng *rng) {
    double theta = cfg->rotation > 0 ? DEG_TO_RAD * uniform_symmetric(rng, cfg->rotation) : 0.0;
    double tx = cfg->height_shift > 0 ? uniform_symmetric(rng, cfg->height_shift) * h : 0.0;
    double ty = cfg->width_shift > 0 ? uniform_symmetric(rng, cfg->width_shift) * w : 0.0;
    double shear = cfg->shear > 0 ? uniform_symmetric(rng, cfg->shear) : 0.0;
    double zx = 1.0, zy = 1.0;
    if (cfg->zoom > 0) {
        zx = 1.0 + uniform_symmetric(rng, cfg->zoom);
        zy = 1.0 + uniform_symmetric(rng, cfg->zoom);
    }
    affine3 t = affine_make(cos(theta), -sin(theta), 0, sin(theta), cos(theta), 0);
    t = affine_mul(t, affine_make(1, 0, tx, 0, 1, ty));
    t = affine_mul(t, affine_make(1, -sin(shear), 0, 0, cos(shear), 0));
    t = affine_mul(t, affine_make(zx, 0, 0, 0, zy, 0));
    /* transform_matrix_offset_center */
    double ox = h / 2.0 + 0.5, oy = w / 2.0 + 0.5;
    affine3 offset = affine_make(1, 0, ox, 0, 1, oy);
    affine3 reset = affine_make(1, 0, -ox, 0, 1, -oy);
    return affine_mul(affine_mul(offset, t), reset);
}

static double clamp(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Bilinear sample of channel ch at (row, col), edges extended ('nearest'). */
static float sample_bilinear(const float *src, int h, int w, int c, int ch, double row, double col) {
    row = clamp(row, 0.0, h - 1.0);
    col = clamp(col, 0.0, w - 1.0);
    int r0 = (int)floor(row), c0 = (int)floor(col);
    int r1 = r0 + 1 < h ? r0 + 1 : r0, c1 = c0 + 1 < w ? c0 + 1 : c0;
    double fr = row - r0, fc = col - c0;
    double top = (1 - fc) * src[(r0 * w + c0) * c + ch] + fc * src[(r0 * w + c1) * c + ch];
    double bottom = (1 - fc) * src[(r1 * w + c0) * c + ch] + fc * src[(r1 * w + c1) * c + ch];
    return (float)((1 - fr) * top + fr * bottom);
}

void nnc_augment_image(const nnc_augment_cfg *cfg, int h, int w, int c, const float *src, float *dst, nnc_rng *rng) {
    affine3 t = random_transform_matrix(cfg, h, w, rng);
    for (int r = 0; r < h; r++) {
        for (int col = 0; col < w; col++) {
            double in_r = t.a[0][0] * r + t.a[0][1] * col + t.a[0][2];
            double in_c = t.a[1][0] * r + t.a[1][1] * col + t.a[1][2];
            for (int ch = 0; ch < c; ch++) dst[(r * w + col) * c + ch] = sample_bilinear(src, h, w, c, ch, in_r, in_c);
        }
    }
}
