/*
 * idx_to_folders.c - MNIST's IDX files as an image-folder layout, for the
 * tests that train on both:
 *
 *   idx_to_folders SRC DST png|jpg [QUALITY]
 *
 * reads SRC/{train,t10k}-{images-idx3,labels-idx1}-ubyte (raw IDX, as
 * tests/tools/mnist_subset.sh writes them) and writes DST/train/<label>/ and
 * DST/test/<label>/ with image i as <i, 5 digits>.png (8-bit grey, libpng) or
 * .jpg (grey, libjpeg at QUALITY, default 95). It also writes DST/idx/, the
 * same images and labels as IDX files in the order the trainer reads the
 * folders (classes in sorted order, files in sorted order: here, a stable
 * sort by label), so that the two layouts can be compared image for image.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <png.h>

static void die(const char *what)
{
    fprintf(stderr, "idx_to_folders: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

static uint8_t *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(path);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    rewind(f);
    uint8_t *buf = malloc(*size);
    if (!buf || fread(buf, 1, *size, f) != *size)
        die(path);
    fclose(f);
    return buf;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

static void put_be32(FILE *f, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    fwrite(b, 1, 4, f);
}

static void write_png(const char *path, const uint8_t *px, int h, int w)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w, img.height = (png_uint_32)h;
    img.format = PNG_FORMAT_GRAY;
    if (!png_image_write_to_file(&img, path, 0, px, 0, NULL))
        die(path);
}

static void write_jpeg(const char *path, const uint8_t *px, int h, int w, int quality)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        die(path);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h;
    c.input_components = 1;
    c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    for (int y = 0; y < h; y++) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)y * w);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    if (fclose(f) != 0)
        die(path);
}

/* One split: SRC/<prefix>-* to DST/<split>/<label>/ and DST/idx/<prefix>-* in folder order. */
static void convert(const char *src, const char *dst, const char *prefix, const char *split, const char *format,
                    int quality)
{
    char path[4096];
    size_t isize, lsize;
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", src, prefix);
    uint8_t *images = read_all(path, &isize);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", src, prefix);
    uint8_t *labels = read_all(path, &lsize);
    uint32_t n = be32(images + 4), h = be32(images + 8), w = be32(images + 12);
    if (isize != 16 + (size_t)n * h * w || lsize != 8 + n) {
        errno = 0;
        die("IDX sizes do not match");
    }
    snprintf(path, sizeof path, "%s/%s", dst, split);
    mkdir(path, 0755);
    for (int k = 0; k < 256; k++) {
        int used = 0;
        for (uint32_t i = 0; i < n && !used; i++)
            used = labels[8 + i] == k;
        if (!used)
            continue;
        snprintf(path, sizeof path, "%s/%s/%d", dst, split, k);
        mkdir(path, 0755);
    }
    snprintf(path, sizeof path, "%s/idx/%s-images-idx3-ubyte", dst, prefix);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/idx/%s-labels-idx1-ubyte", dst, prefix);
    FILE *fl = fopen(path, "wb");
    if (!fi || !fl)
        die(path);
    put_be32(fi, 2051), put_be32(fi, n), put_be32(fi, h), put_be32(fi, w);
    put_be32(fl, 2049), put_be32(fl, n);
    /* folder order: label by label (sorted as text; single digits sort as numbers), index order within */
    for (int k = 0; k < 256; k++)
        for (uint32_t i = 0; i < n; i++) {
            if (labels[8 + i] != k)
                continue;
            const uint8_t *px = images + 16 + (size_t)i * h * w;
            snprintf(path, sizeof path, "%s/%s/%d/%05u.%s", dst, split, k, i, format);
            if (strcmp(format, "png") == 0)
                write_png(path, px, (int)h, (int)w);
            else
                write_jpeg(path, px, (int)h, (int)w, quality);
            fwrite(px, 1, (size_t)h * w, fi);
            fputc(k, fl);
        }
    if (fclose(fi) != 0 || fclose(fl) != 0)
        die("idx");
    free(images), free(labels);
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[3], "png") != 0 && strcmp(argv[3], "jpg") != 0)) {
        fprintf(stderr, "usage: idx_to_folders SRC DST png|jpg [QUALITY]\n");
        return 2;
    }
    int quality = argc > 4 ? atoi(argv[4]) : 95;
    char path[4096];
    mkdir(argv[2], 0755);
    snprintf(path, sizeof path, "%s/idx", argv[2]);
    mkdir(path, 0755);
    convert(argv[1], argv[2], "train", "train", argv[3], quality);
    convert(argv[1], argv[2], "t10k", "test", argv[3], quality);
    return 0;
}
