/*
 * image.c - one PNG or JPEG file's bytes into 8-bit grey or RGB pixels, and
 * the bilinear resize the model's `input HxWxC resize=bilinear` asks for.
 *
 * PNG through libpng's simplified API (every colour type and bit depth in,
 * RGBA8 out; 16-bit samples read as scaled values, as image tools write them),
 * JPEG through libjpeg(-turbo) into RGB. Then, as Keras's load_img does with
 * PIL: alpha is dropped (convert('RGB')), and grey is PIL's convert('L'),
 * L = (19595 R + 38470 G + 7471 B + 32768) >> 16, which keeps a grey pixel
 * (R = G = B) exactly as it was.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h> /* jpeglib.h needs size_t and FILE first */
#include <jpeglib.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "nncrt.h"

/* Beyond that a file is surely not an image to learn from: refused before decoding. (The fuzz harness
 * builds with a smaller limit, as libjpeg-turbo's own harnesses do: a few corrupt bytes can declare a
 * 64-megapixel image that libjpeg then fills in, seconds per input.) */
#ifndef NNC_MAX_IMAGE_PIXELS
#define NNC_MAX_IMAGE_PIXELS (64L << 20)
#endif
#define MAX_PIXELS NNC_MAX_IMAGE_PIXELS

int nnc_image_size_ok(const char *path, long w, long h, char *err, size_t errlen) {
    if (w <= 0 || h <= 0) {
        nnc_set_error(err, errlen, "%s: zero-size image (%ldx%ld)", path, w, h);
        return -1;
    }
    if (w > MAX_PIXELS / h) {
        nnc_set_error(err, errlen, "%s: image too large (%ldx%ld)", path, w, h);
        return -1;
    }
    return 0;
}

/* RGB(A) pixels (stride 3 or 4) into `channels` channels: RGB as is, grey as PIL's convert('L'). */
static void from_rgb(const uint8_t *src, int stride, size_t pixels, int channels, uint8_t *dst) {
    for (size_t i = 0; i < pixels; i++, src += stride) {
        if (channels == 3)
            memcpy(dst + 3 * i, src, 3);
        else
            dst[i] = (uint8_t)((19595u * src[0] + 38470u * src[1] + 7471u * src[2] + 32768u) >> 16);
    }
}

int nnc_png_decode_rgba(const char *path, const uint8_t *data, size_t size, nnc_image *out, char *err,
                        size_t errlen) {
    png_image img;
    memset(&img, 0, sizeof img);
    memset(out, 0, sizeof *out);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&img, data, size)) {
        nnc_set_error(err, errlen, "%s: corrupt PNG: %s", path, img.message);
        png_image_free(&img);
        return -1;
    }
    if (nnc_image_size_ok(path, (long)img.width, (long)img.height, err, errlen) != 0) {
        png_image_free(&img);
        return -1;
    }
    img.format = PNG_FORMAT_RGBA;
    /* Without a gAMA chunk libpng takes 16-bit samples as linear light and
     * would brighten them into sRGB; files from image tools and numpy are
     * plain scaled values, so read them as 8-bit ones are. */
    img.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
    out->px = malloc((size_t)img.width * img.height * 4);
    if (!out->px) {
        nnc_set_error(err, errlen, "%s: out of memory (%ux%u)", path, img.width, img.height);
        png_image_free(&img);
        return -1;
    }
    if (!png_image_finish_read(&img, NULL, out->px, 0, NULL)) {
        nnc_set_error(err, errlen, "%s: corrupt or truncated PNG: %s", path, img.message);
        png_image_free(&img);
        free(out->px);
        out->px = NULL;
        return -1;
    }
    out->h = (int)img.height, out->w = (int)img.width, out->c = 4;
    return 0;
}

static int decode_png(const char *path, const uint8_t *data, size_t size, int channels, nnc_image *out, char *err,
                      size_t errlen) {
    nnc_image rgba;
    if (nnc_png_decode_rgba(path, data, size, &rgba, err, errlen) != 0) return -1;
    size_t pixels = (size_t)rgba.h * rgba.w;
    out->px = malloc(pixels * (size_t)channels);
    if (!out->px) {
        nnc_set_error(err, errlen, "%s: out of memory (%dx%d)", path, rgba.w, rgba.h);
        free(rgba.px);
        return -1;
    }
    from_rgb(rgba.px, 4, pixels, channels, out->px);
    out->h = rgba.h, out->w = rgba.w, out->c = channels;
    free(rgba.px);
    return 0;
}

/* libjpeg reports errors through error_exit, which must not return: jump back with the message. */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf escape;
    char message[JMSG_LENGTH_MAX];
} jpeg_errors;

static void jpeg_error_exit(j_common_ptr cinfo) {
    jpeg_errors *e = (jpeg_errors *)cinfo->err;
    e->pub.format_message(cinfo, e->message);
    longjmp(e->escape, 1);
}

static void jpeg_no_output(j_common_ptr cinfo) { (void)cinfo; } /* warnings (corrupt data recovered) stay quiet */

static int decode_jpeg(const char *path, const uint8_t *data, size_t size, int channels, nnc_image *out, char *err,
                       size_t errlen) {
    struct jpeg_decompress_struct cinfo;
    jpeg_errors jerr;
    uint8_t *volatile rgb = NULL;
    out->px = NULL;
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_error_exit;
    jerr.pub.output_message = jpeg_no_output;
    if (setjmp(jerr.escape)) {
        nnc_set_error(err, errlen, "%s: corrupt JPEG: %s", path, jerr.message);
        jpeg_destroy_decompress(&cinfo);
        free(rgb), free(out->px);
        out->px = NULL;
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB; /* grey JPEGs too: R = G = B, so convert('L') gives them back */
    if (nnc_image_size_ok(path, (long)cinfo.image_width, (long)cinfo.image_height, err, errlen) != 0) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_start_decompress(&cinfo);
    size_t pixels = (size_t)cinfo.output_width * cinfo.output_height, row = (size_t)cinfo.output_width * 3;
    rgb = malloc(pixels * 3);
    out->px = malloc(pixels * (size_t)channels);
    if (!rgb || !out->px) {
        nnc_set_error(err, errlen, "%s: out of memory (%ux%u)", path, cinfo.output_width, cinfo.output_height);
        jpeg_destroy_decompress(&cinfo);
        free(rgb), free(out->px);
        out->px = NULL;
        return -1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW line = rgb + cinfo.output_scanline * row;
        jpeg_read_scanlines(&cinfo, &line, 1);
    }
    out->h = (int)cinfo.output_height, out->w = (int)cinfo.output_width, out->c = channels;
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    from_rgb(rgb, 3, pixels, channels, out->px);
    free(rgb);
    return 0;
}

int nnc_image_decode(const char *path, const uint8_t *data, size_t size, int channels, nnc_image *out, char *err,
                     size_t errlen) {
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memset(out, 0, sizeof *out);
    if (channels != 1 && channels != 3) {
        nnc_set_error(err, errlen, "%s: images are read as 1 (grey) or 3 (RGB) channels, not %d", path, channels);
        return -1;
    }
    if (size >= 8 && memcmp(data, png_magic, 8) == 0) return decode_png(path, data, size, channels, out, err, errlen);
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return decode_jpeg(path, data, size, channels, out, err, errlen);
    nnc_set_error(err, errlen, "%s: neither a PNG nor a JPEG file (%zu bytes)", path, size);
    return -1;
}

/*
 * Bilinear with half-pixel centres, as tf.image.resize(method='bilinear')
 * (Keras's image_dataset_from_directory) without antialiasing: output pixel
 * (y, x) samples the input at ((y + 0.5) * ih / oh - 0.5, ...), clamped to
 * the image, and is rounded to the nearest 8-bit value.
 */
void nnc_image_resize_bilinear(const nnc_image *in, int oh, int ow, uint8_t *out) {
    const int c = in->c;
    for (int y = 0; y < oh; y++) {
        double sy = fmin(fmax((y + 0.5) * in->h / oh - 0.5, 0.0), in->h - 1.0);
        int y0 = (int)sy, y1 = y0 + 1 < in->h ? y0 + 1 : y0;
        double fy = sy - y0;
        for (int x = 0; x < ow; x++) {
            double sx = fmin(fmax((x + 0.5) * in->w / ow - 0.5, 0.0), in->w - 1.0);
            int x0 = (int)sx, x1 = x0 + 1 < in->w ? x0 + 1 : x0;
            double fx = sx - x0;
            for (int ch = 0; ch < c; ch++) {
                const uint8_t *p = in->px;
                double top = (1 - fx) * p[((size_t)y0 * in->w + x0) * c + ch] + fx * p[((size_t)y0 * in->w + x1) * c + ch];
                double bot = (1 - fx) * p[((size_t)y1 * in->w + x0) * c + ch] + fx * p[((size_t)y1 * in->w + x1) * c + ch];
                out[((size_t)y * ow + x) * c + ch] = (uint8_t)lround((1 - fy) * top + fy * bot);
            }
        }
    }
}
