/*
 * idx.c - MNIST's IDX files, raw or gzip-compressed.
 *
 * IDX layout (big-endian): u32 magic = 0x00000800 | ndims (0x08 = unsigned
 * bytes), then ndims u32 sizes, then the bytes. We read through zlib's gzread,
 * which passes a file that is not gzip through unchanged, so the same code
 * reads both forms. A file is accepted only if it holds exactly the bytes its
 * header announces: truncation and trailing garbage are both errors, because
 * either one means the file is not what we think it is.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "nncrt.h"

#define IDX_TYPE_UBYTE 0x08
/* Far above MNIST (47 MB) but low enough that a hostile header cannot make us
 * allocate absurd amounts. */
#define IDX_MAX_BYTES ((size_t)1 << 30)
#define IDX_MAX_DIM 100000000u

/* zlib's own description of the last error, or a plain "unexpected end of file". */
static const char *gz_problem(gzFile f) {
    int code = Z_OK;
    const char *msg = gzerror(f, &code);
    if (code != Z_OK && msg && *msg) return msg;
    return "unexpected end of file";
}

/* Read exactly `len` bytes; gzread takes an unsigned int so go in chunks. */
static int gz_read_exact(gzFile f, void *buf, size_t len) {
    uint8_t *p = buf;
    while (len > 0) {
        unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        int got = gzread(f, p, chunk);
        if (got <= 0) return -1;
        p += got;
        len -= (size_t)got;
    }
    return 0;
}

static uint32_t read_be32(const uint8_t b[4]) {
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | (uint32_t)b[3];
}

int nnc_idx_read(const char *path, int expect_dims, int dims[3], uint8_t **data, size_t *count, char *err,
                 size_t errlen) {
    *data = NULL;
    *count = 0;
    dims[0] = dims[1] = dims[2] = 1;
    if (expect_dims < 1 || expect_dims > 3) {
        nnc_set_error(err, errlen, "%s: cannot read an IDX file with %d dimensions", path, expect_dims);
        return -1;
    }
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        nnc_set_error(err, errlen, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        return -1;
    }

    uint8_t header[4 + 4 * 3];
    size_t header_len = 4 + 4 * (size_t)expect_dims;
    if (gz_read_exact(f, header, header_len) != 0) {
        nnc_set_error(err, errlen, "%s: too short for an IDX header (%s)", path, gz_problem(f));
        goto fail;
    }
    uint32_t magic = read_be32(header);
    uint32_t expect_magic = (IDX_TYPE_UBYTE << 8) | (uint32_t)expect_dims;
    if (magic != expect_magic) {
        nnc_set_error(err, errlen, "%s: bad magic number 0x%08x, expected 0x%08x (an IDX file of unsigned bytes with %d dimensions)",
                path, magic, expect_magic, expect_dims);
        goto fail;
    }
    size_t total = 1;
    for (int d = 0; d < expect_dims; d++) {
        uint32_t size = read_be32(header + 4 + 4 * d);
        if (size == 0 || size > IDX_MAX_DIM) {
            nnc_set_error(err, errlen, "%s: dimension %d has size %u, which is not plausible", path, d, size);
            goto fail;
        }
        if (total > IDX_MAX_BYTES / size) {
            nnc_set_error(err, errlen, "%s: header announces more than %zu bytes of data", path, IDX_MAX_BYTES);
            goto fail;
        }
        total *= size;
        dims[d] = (int)size;
    }

    uint8_t *bytes = malloc(total);
    if (!bytes) {
        nnc_set_error(err, errlen, "%s: out of memory for %zu bytes", path, total);
        goto fail;
    }
    if (gz_read_exact(f, bytes, total) != 0) {
        nnc_set_error(err, errlen, "%s: truncated: the header announces %zu data bytes but they are not all there (%s)",
                path, total, gz_problem(f));
        free(bytes);
        goto fail;
    }
    uint8_t extra;
    int more = gzread(f, &extra, 1);
    if (more != 0) {
        if (more > 0)
            nnc_set_error(err, errlen, "%s: trailing bytes after the %zu data bytes the header announces", path, total);
        else
            nnc_set_error(err, errlen, "%s: corrupt after the data (%s)", path, gz_problem(f));
        free(bytes);
        goto fail;
    }
    gzclose(f);
    *data = bytes;
    *count = total;
    return 0;

fail:
    gzclose(f);
    dims[0] = dims[1] = dims[2] = 1;
    return -1;
}

/* `<dir>/<name>.gz` if it exists, else `<dir>/<name>`; -1 if neither does. */
static int find_idx_file(char *out, size_t outlen, const char *dir, const char *name, char *err, size_t errlen) {
    snprintf(out, outlen, "%s/%s.gz", dir, name);
    FILE *f = fopen(out, "rb");
    if (f) {
        fclose(f);
        return 0;
    }
    snprintf(out, outlen, "%s/%s", dir, name);
    f = fopen(out, "rb");
    if (f) {
        fclose(f);
        return 0;
    }
    nnc_set_error(err, errlen, "%s/%s[.gz]: not found", dir, name);
    return -1;
}

int nnc_dataset_load(nnc_dataset *ds, const char *dir, const char *prefix, char *err, size_t errlen) {
    memset(ds, 0, sizeof *ds);
    char name[256], images_path[4096], labels_path[4096];
    int image_dims[3], label_dims[3];
    size_t image_bytes, label_bytes;
    uint8_t *images = NULL, *labels = NULL;

    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    if (find_idx_file(images_path, sizeof images_path, dir, name, err, errlen) != 0) return -1;
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    if (find_idx_file(labels_path, sizeof labels_path, dir, name, err, errlen) != 0) return -1;

    if (nnc_idx_read(images_path, 3, image_dims, &images, &image_bytes, err, errlen) != 0) return -1;
    if (nnc_idx_read(labels_path, 1, label_dims, &labels, &label_bytes, err, errlen) != 0) {
        free(images);
        return -1;
    }
    if (label_dims[0] != image_dims[0]) {
        nnc_set_error(err, errlen, "%s: has %d labels but %s has %d images", labels_path, label_dims[0], images_path,
                image_dims[0]);
        free(images);
        free(labels);
        return -1;
    }
    ds->n = image_dims[0];
    ds->h = image_dims[1];
    ds->w = image_dims[2];
    ds->images = images;
    ds->labels = labels;
    return 0;
}

void nnc_dataset_free(nnc_dataset *ds) {
    free(ds->images);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

int nnc_dataset_check(const nnc_dataset *ds, const nnc_model *m, const char *what, char *err, size_t errlen) {
    if (m->in_c != 1) {
        nnc_set_error(err, errlen, "model %s expects %d channels but MNIST images have 1", m->name, m->in_c);
        return -1;
    }
    if (ds->h != m->in_h || ds->w != m->in_w) {
        nnc_set_error(err, errlen, "%s: images are %dx%d but model %s expects %dx%d", what, ds->h, ds->w, m->name,
                m->in_h, m->in_w);
        return -1;
    }
    for (int i = 0; i < ds->n; i++) {
        if (ds->labels[i] >= m->n_classes) {
            nnc_set_error(err, errlen, "%s: label %d of sample %d is out of range for model %s with %d classes", what,
                    ds->labels[i], i, m->name, m->n_classes);
            return -1;
        }
    }
    return 0;
}
