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
 * The DSL's ranges, against Keras's arguments of the same names:
 *   rotation=DEG  rotation_range: theta uniform in [-DEG, DEG] degrees;
 *                 positive theta turns the content clockwise as displayed
 *                 (row 0 at the top).
 *   shift=F       width_shift_range / height_shift_range as a fraction of
 *                 the width / height: uniform in [-F, F] * size pixels.
 *                 (Keras 2 reads a value >= 1 as pixels; the DSL caps F at 1.)
 *   shear=F       shear_range in RADIANS: angle uniform in [-F, F]. That is
 *                 Keras 1 and Keras 2 up to 2.1 (documented "as radians");
 *                 keras-preprocessing, from Keras 2.2, takes DEGREES. Seed 001
 *                 is Keras 1 code (fit_generator with samples_per_epoch), so
 *                 its shear_range=0.3 is 0.3 rad (17 degrees): write shear=0.3.
 *                 A Keras >= 2.2 shear_range=S is shear=S*pi/180 here.
 *   zoom=F        zoom_range: zx and zy drawn independently in [1-F, 1+F];
 *                 they scale the sampling position, so > 1 shrinks the digit.
 *   horizontal_flip  with probability 1/2 the result is mirrored left-right
 *                 (Keras's horizontal_flip=True), after the affine part, as
 *                 Keras flips after apply_affine_transform.
 *   fill          always 'nearest' (Keras's default): edge pixels extended.
 * Keras 1 and Keras 2 before keras-preprocessing 1.0.6 sampled with order=0
 * (nearest neighbour); later ones, and we, sample bilinearly (order=1).
 * Keras also takes h/2 + 0.5 as the centre, not (h - 1)/2; we do the same.
 *
 * The random draws happen in a fixed order per image and only for the
 * distortions that are enabled, so the stream is reproducible (and a recipe
 * without horizontal_flip draws exactly what it drew before flips existed).
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

/*
 * Keras's random_transform: the draws. The row axis is "x" in its matrices,
 * the column axis "y". Each parameter is drawn only when its range is
 * non-zero, in Keras's order.
 */
void nnc_augment_draw(const nnc_augment_cfg *cfg, int h, int w, nnc_rng *rng, nnc_augment_params *p) {
    p->theta = cfg->rotation > 0 ? uniform_symmetric(rng, cfg->rotation) : 0.0;
    p->tx = cfg->height_shift > 0 ? uniform_symmetric(rng, cfg->height_shift) * h : 0.0;
    p->ty = cfg->width_shift > 0 ? uniform_symmetric(rng, cfg->width_shift) * w : 0.0;
    p->shear = cfg->shear > 0 ? uniform_symmetric(rng, cfg->shear) : 0.0;
    p->zx = p->zy = 1.0;
    if (cfg->zoom > 0) {
        p->zx = 1.0 + uniform_symmetric(rng, cfg->zoom);
        p->zy = 1.0 + uniform_symmetric(rng, cfg->zoom);
    }
    /* Keras: np.random.random() < 0.5, drawn after the affine parameters. */
    p->flip = cfg->horizontal_flip ? nnc_rng_uniform(rng) < 0.5f : 0;
}

/* Keras's apply_affine_transform: rotation * shift * shear * zoom, about the centre. */
static affine3 transform_matrix(const nnc_augment_params *p, int h, int w) {
    double theta = DEG_TO_RAD * p->theta;
    affine3 t = affine_make(cos(theta), -sin(theta), 0, sin(theta), cos(theta), 0);
    t = affine_mul(t, affine_make(1, 0, p->tx, 0, 1, p->ty));
    t = affine_mul(t, affine_make(1, -sin(p->shear), 0, 0, cos(p->shear), 0));
    t = affine_mul(t, affine_make(p->zx, 0, 0, 0, p->zy, 0));
    /* transform_matrix_offset_center. Keras's centre is h/2 + 0.5, a pixel
     * below and right of the true one, (h - 1)/2; kept, to distort as it does. */
    double ox = h / 2.0 + 0.5, oy = w / 2.0 + 0.5;
    affine3 offset = affine_make(1, 0, ox, 0, 1, oy);
    affine3 reset = affine_make(1, 0, -ox, 0, 1, -oy);
    return affine_mul(affine_mul(offset, t), reset);
}

static double clamp(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

void nnc_augment_apply(const nnc_augment_params *p, int h, int w, int c, const float *src, float *dst) {
    affine3 t = transform_matrix(p, h, w);
    for (int r = 0; r < h; r++) {
        for (int col = 0; col < w; col++) {
            /* The INPUT position this output pixel samples; beyond the border,
             * the nearest edge pixel ('nearest'). Bilinear (order=1): every
             * output is a convex combination of inputs, so stays in their range. */
            int ac = p->flip ? w - 1 - col : col; /* the column of the affine result this pixel shows */
            double row = clamp(t.a[0][0] * r + t.a[0][1] * ac + t.a[0][2], 0.0, h - 1.0);
            double cc = clamp(t.a[1][0] * r + t.a[1][1] * ac + t.a[1][2], 0.0, w - 1.0);
            int r0 = (int)row, c0 = (int)cc; /* floor: both are >= 0 */
            int r1 = r0 + 1 < h ? r0 + 1 : r0, c1 = c0 + 1 < w ? c0 + 1 : c0;
            double fr = row - r0, fc = cc - c0;
            const float *p00 = src + (size_t)(r0 * w + c0) * c, *p01 = src + (size_t)(r0 * w + c1) * c;
            const float *p10 = src + (size_t)(r1 * w + c0) * c, *p11 = src + (size_t)(r1 * w + c1) * c;
            float *out = dst + (size_t)(r * w + col) * c;
            for (int ch = 0; ch < c; ch++) {
                double top = (1 - fc) * p00[ch] + fc * p01[ch];
                double bottom = (1 - fc) * p10[ch] + fc * p11[ch];
                out[ch] = (float)((1 - fr) * top + fr * bottom);
            }
        }
    }
}

void nnc_augment_image(const nnc_augment_cfg *cfg, int h, int w, int c, const float *src, float *dst, nnc_rng *rng) {
    nnc_augment_params p;
    nnc_augment_draw(cfg, h, w, rng, &p);
    nnc_augment_apply(&p, h, w, c, src, dst);
}
