/*
 * idx.c - MNIST's IDX files, raw or gzip-compressed.
 *
 * IDX layout (big-endian): u32 magic = 0x00000800 | ndims (0x08 = unsigned
 * bytes), then ndims u32 sizes, then the bytes. The file is read into memory
 * whole and decoded from there (nnc_idx_decode), so that the decoder can be
 * tested and fuzzed on buffers without touching the file system. A file that
 * starts with gzip's magic is inflated (one or more members, as `cat a.gz
 * b.gz` makes); any other file is taken as raw IDX. A file is accepted only if
 * it holds exactly the bytes its header announces: truncation and trailing
 * garbage are both errors, because either one means the file is not what we
 * think it is.
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "nncrt.h"

#define IDX_TYPE_UBYTE 0x08
/* Far above MNIST (47 MB) but low enough that a hostile header cannot make us
 * allocate absurd amounts. The same bound applies to the file itself. */
#define IDX_MAX_BYTES ((size_t)1 << 30)
/* The file: that much data, its header, and gzip's worst case for data that
 * does not compress (stored blocks add 5 bytes per 64 KiB). */
#define IDX_MAX_FILE_BYTES (IDX_MAX_BYTES + (IDX_MAX_BYTES >> 12) + 4096)
#define IDX_MAX_DIM 100000000u

/* ---- the bytes of an IDX file, as a stream: copied, or inflated ------------ */

typedef struct {
    const uint8_t *in; /* the file's bytes */
    size_t in_len, in_pos;
    int gzip;
    z_stream z;
    int member_ended;    /* inflate reached the end of a gzip member */
    int trailing;        /* bytes after the last member that are not gzip */
    const char *problem; /* why the stream stopped early, for messages */
} idx_stream;

static int starts_with_gzip_magic(const uint8_t *p, size_t n) { return n >= 2 && p[0] == 0x1f && p[1] == 0x8b; }

static int stream_open(idx_stream *s, const uint8_t *bytes, size_t len) {
    memset(s, 0, sizeof *s);
    s->in = bytes;
    s->in_len = len;
    s->problem = "unexpected end of file";
    s->gzip = starts_with_gzip_magic(bytes, len);
    if (!s->gzip) return 0;
    s->z.next_in = (Bytef *)bytes; /* zlib's API is not const-correct; it only reads */
    s->z.avail_in = (uInt)len;     /* len <= IDX_MAX_FILE_BYTES < UINT_MAX */
    return inflateInit2(&s->z, 16 + MAX_WBITS) == Z_OK ? 0 : -1; /* 16: gzip wrapper only */
}

static void stream_close(idx_stream *s) {
    if (s->gzip) inflateEnd(&s->z);
}

/* Inflate up to `len` bytes, across gzip members; returns how many came. */
static size_t inflate_some(idx_stream *s, uint8_t *out, size_t len) {
    size_t done = 0;
    while (done < len) {
        if (s->member_ended) {
            if (!starts_with_gzip_magic(s->z.next_in, s->z.avail_in)) {
                s->trailing = s->z.avail_in > 0;
                break;
            }
            inflateReset(&s->z);
            s->member_ended = 0;
        }
        size_t want = len - done < UINT_MAX ? len - done : UINT_MAX;
        s->z.next_out = out + done;
        s->z.avail_out = (uInt)want;
        int rc = inflate(&s->z, Z_NO_FLUSH);
        done += want - s->z.avail_out;
        if (rc == Z_STREAM_END) {
            s->member_ended = 1;
        } else if (rc != Z_OK) {
            /* Z_BUF_ERROR: no input left before the member's end */
            s->problem = rc == Z_BUF_ERROR ? "compressed data ends early"
                       : rc == Z_MEM_ERROR ? "out of memory"
                       : s->z.msg          ? s->z.msg
                                           : "corrupt compressed data";
            break;
        }
    }
    return done;
}

/* Up to `len` bytes of IDX; fewer means the stream ended (s->problem says why). */
static size_t stream_read(idx_stream *s, uint8_t *out, size_t len) {
    if (s->gzip) return inflate_some(s, out, len);
    size_t n = s->in_len - s->in_pos < len ? s->in_len - s->in_pos : len;
    if (n) memcpy(out, s->in + s->in_pos, n);
    s->in_pos += n;
    return n;
}

typedef enum { DATA_COMPLETE, DATA_TRUNCATED, DATA_NO_MEMORY } data_status;

/* The `total` data bytes the header announced, into a malloc'ed *out. The
 * buffer grows as bytes arrive rather than being sized from the header, so a
 * short file that claims a gigabyte costs what it holds, not a gigabyte. */
static data_status stream_read_data(idx_stream *s, size_t total, uint8_t **out) {
    size_t cap = 0, have = 0;
    uint8_t *buf = NULL;
    while (have < total) {
        size_t new_cap = cap ? 2 * cap : 1 << 16;
        if (new_cap > total) new_cap = total;
        uint8_t *bigger = realloc(buf, new_cap);
        if (!bigger) {
            free(buf);
            return DATA_NO_MEMORY;
        }
        buf = bigger;
        cap = new_cap;
        size_t got = stream_read(s, buf + have, cap - have);
        have += got;
        if (have < cap) {
            free(buf);
            return DATA_TRUNCATED;
        }
    }
    *out = buf;
    return DATA_COMPLETE;
}

typedef enum { STREAM_AT_END, STREAM_TRAILING_BYTES, STREAM_CORRUPT } stream_end;

/* After the data, is the stream exactly at its end? For gzip this also
 * checks the last member's length and CRC, which come after the data. */
static stream_end stream_check_end(idx_stream *s) {
    uint8_t extra;
    if (stream_read(s, &extra, 1) == 1 || s->trailing) return STREAM_TRAILING_BYTES;
    if (s->gzip && !s->member_ended) return STREAM_CORRUPT;
    return STREAM_AT_END;
}

static uint32_t read_be32(const uint8_t b[4]) {
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | (uint32_t)b[3];
}

/* ---- decoding -------------------------------------------------------------- */

/* Check the header read from `s`, fill dims and return the data size, or 0
 * after writing a message. */
static size_t decode_header(idx_stream *s, const char *name, int expect_dims, int dims[3], char *err, size_t errlen) {
    uint8_t header[4 + 4 * 3];
    size_t header_len = 4 + 4 * (size_t)expect_dims;
    if (stream_read(s, header, header_len) != header_len) {
        nnc_set_error(err, errlen, "%s: too short for an IDX header (%s)", name, s->problem);
        return 0;
    }
    uint32_t magic = read_be32(header);
    uint32_t expect_magic = (IDX_TYPE_UBYTE << 8) | (uint32_t)expect_dims;
    if (magic != expect_magic) {
        nnc_set_error(err, errlen, "%s: bad magic number 0x%08x, expected 0x%08x (an IDX file of unsigned bytes with %d dimensions)",
                name, magic, expect_magic, expect_dims);
        return 0;
    }
    size_t total = 1;
    for (int d = 0; d < expect_dims; d++) {
        uint32_t size = read_be32(header + 4 + 4 * d);
        if (size == 0 || size > IDX_MAX_DIM) {
            nnc_set_error(err, errlen, "%s: dimension %d has size %u, which is not plausible", name, d, size);
            return 0;
        }
        if (total > IDX_MAX_BYTES / size) {
            nnc_set_error(err, errlen, "%s: header announces more than %zu bytes of data", name, IDX_MAX_BYTES);
            return 0;
        }
        total *= size;
        dims[d] = (int)size;
    }
    return total;
}

int nnc_idx_decode(const char *name, const uint8_t *bytes, size_t len, int expect_dims, int dims[3], uint8_t **data,
                   size_t *count, char *err, size_t errlen) {
    *data = NULL;
    *count = 0;
    dims[0] = dims[1] = dims[2] = 1;
    if (expect_dims < 1 || expect_dims > 3) {
        nnc_set_error(err, errlen, "%s: cannot read an IDX file with %d dimensions", name, expect_dims);
        return -1;
    }
    if (len > IDX_MAX_FILE_BYTES) { /* nnc_idx_read refuses these before reading them; also keeps len in zlib's uInt */
        nnc_set_error(err, errlen, "%s: larger than %zu bytes, too large for an IDX file", name, IDX_MAX_FILE_BYTES);
        return -1;
    }
    idx_stream s;
    if (stream_open(&s, bytes, len) != 0) {
        nnc_set_error(err, errlen, "%s: out of memory for zlib", name);
        return -1;
    }
    uint8_t *out = NULL;
    size_t total = decode_header(&s, name, expect_dims, dims, err, errlen);
    if (total == 0) goto fail;
    switch (stream_read_data(&s, total, &out)) {
    case DATA_COMPLETE:
        break;
    case DATA_TRUNCATED:
        nnc_set_error(err, errlen, "%s: truncated: the header announces %zu data bytes but they are not all there (%s)",
                name, total, s.problem);
        goto fail;
    case DATA_NO_MEMORY:
        nnc_set_error(err, errlen, "%s: out of memory for %zu bytes", name, total);
        goto fail;
    }
    switch (stream_check_end(&s)) {
    case STREAM_AT_END:
        break;
    case STREAM_TRAILING_BYTES:
        nnc_set_error(err, errlen, "%s: trailing bytes after the %zu data bytes the header announces", name, total);
        goto fail;
    case STREAM_CORRUPT:
        nnc_set_error(err, errlen, "%s: corrupt after the data (%s)", name, s.problem);
        goto fail;
    }
    stream_close(&s);
    *data = out;
    *count = total;
    return 0;

fail:
    free(out);
    stream_close(&s);
    dims[0] = dims[1] = dims[2] = 1;
    return -1;
}

/* ---- files ----------------------------------------------------------------- */

int nnc_idx_read(const char *path, int expect_dims, int dims[3], uint8_t **data, size_t *count, char *err,
                 size_t errlen) {
    *data = NULL;
    *count = 0;
    dims[0] = dims[1] = dims[2] = 1;
    uint8_t *bytes;
    size_t len;
    if (nnc_read_file(path, "an IDX file", IDX_MAX_FILE_BYTES, &bytes, &len, err, errlen) != 0) return -1;
    int rc = nnc_idx_decode(path, bytes, len, expect_dims, dims, data, count, err, errlen);
    free(bytes);
    return rc;
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
    ds->c = 1;
    ds->images = images;
    ds->labels = labels;
    return 0;
}

void nnc_dataset_free(nnc_dataset *ds) {
    free(ds->images);
    free(ds->labels);
    for (int i = 0; i < ds->n_class_names; i++) free(ds->class_names[i]);
    free(ds->class_names);
    memset(ds, 0, sizeof *ds);
}

const char *nnc_class_name(const nnc_dataset *ds, int k) {
    char number[16];
    snprintf(number, sizeof number, "%d", k);
    return ds && k >= 0 && k < ds->n_class_names && strcmp(ds->class_names[k], number) != 0 ? ds->class_names[k]
                                                                                            : NULL;
}

int nnc_dataset_check(const nnc_dataset *ds, const nnc_model *m, const char *what, char *err, size_t errlen) {
    if (ds->h != m->in_h || ds->w != m->in_w || ds->c != m->in_c) {
        nnc_set_error(err, errlen, "%s: images are %dx%dx%d but model %s expects %dx%dx%d (its 'input' line)", what,
                      ds->h, ds->w, ds->c, m->name, m->in_h, m->in_w, m->in_c);
        return -1;
    }
    if (ds->n_class_names > m->n_classes) {
        nnc_set_error(err, errlen, "%s: has %d classes (%s .. %s) but model %s has %d outputs", what,
                      ds->n_class_names, ds->class_names[0], ds->class_names[ds->n_class_names - 1], m->name,
                      m->n_classes);
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
