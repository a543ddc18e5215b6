/*
 * checkpoint.c - saving and loading trained weights.
 *
 * File format (all integers and floats little-endian, floats IEEE-754 binary32):
 *
 *   offset  size         field
 *   0       4            magic "NNCW"
 *   4       4   u32      version = 1
 *   8       8   u64      model signature (nnc_model.signature)
 *   16      8   u64      n_params
 *   24      8   u64      n_state
 *   32      8   f32[2]   preprocessing constants {mean, std} (or {scale, 0})
 *   40      4*n_params   f32 trainable parameters, in the model's flat order
 *   ...     4*n_state    f32 non-trainable state (batchnorm statistics)
 *   end-4   4   u32      CRC-32 (zlib crc32) of every byte before it
 *
 * Saving writes the whole file to `<path>.tmp.XXXXXX` in the same directory,
 * flushes and fsyncs it, and only then renames it over `path`: a crash or a
 * full disk leaves the previous checkpoint intact, never a half-written one.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "nncrt.h"

#define CKPT_MAGIC "NNCW"
#define CKPT_VERSION 1u
#define CKPT_HEADER_BYTES 40
#define CKPT_CRC_BYTES 4

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_f32(uint8_t *p, float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    put_u32(p, bits);
}
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static float get_f32(const uint8_t *p) {
    uint32_t bits = get_u32(p);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* zlib's crc32 takes a uInt length: feed it in chunks. */
static uint32_t crc32_of(const uint8_t *p, size_t len) {
    uLong crc = crc32(0L, Z_NULL, 0);
    while (len > 0) {
        uInt chunk = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = crc32(crc, p, chunk);
        p += chunk;
        len -= chunk;
    }
    return (uint32_t)crc;
}

static size_t checkpoint_size(uint64_t n_params, uint64_t n_state) {
    return CKPT_HEADER_BYTES + 4 * (size_t)(n_params + n_state) + CKPT_CRC_BYTES;
}

/* The whole file, serialized in memory (MNIST models are a few MB at most). */
static uint8_t *checkpoint_encode(const nnc_model *m, const float *params, const float *state, const float prep[2],
                                  size_t *size) {
    *size = checkpoint_size(m->n_params, m->n_state);
    uint8_t *buf = malloc(*size);
    if (!buf) return NULL;
    uint8_t *p = buf;
    memcpy(p, CKPT_MAGIC, 4);
    put_u32(p + 4, CKPT_VERSION);
    put_u64(p + 8, m->signature);
    put_u64(p + 16, m->n_params);
    put_u64(p + 24, m->n_state);
    put_f32(p + 32, prep[0]);
    put_f32(p + 36, prep[1]);
    p += CKPT_HEADER_BYTES;
    for (size_t i = 0; i < m->n_params; i++, p += 4) put_f32(p, params[i]);
    for (size_t i = 0; i < m->n_state; i++, p += 4) put_f32(p, state[i]);
    put_u32(p, crc32_of(buf, (size_t)(p - buf)));
    return buf;
}

/* Write all of buf to a fresh temp file next to `path`, make it durable, rename. */
static int write_file_atomically(const char *path, const uint8_t *buf, size_t size, char *err, size_t errlen) {
    size_t tmp_len = strlen(path) + sizeof ".tmp.XXXXXX";
    char *tmp = malloc(tmp_len);
    if (!tmp) {
        set_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    snprintf(tmp, tmp_len, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        set_err(err, errlen, "%s: cannot create a temporary file %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    /* mkstemp makes the file 0600; a checkpoint is an ordinary file. */
    (void)fchmod(fd, 0644);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        set_err(err, errlen, "%s: cannot write %s: %s", path, tmp, strerror(errno));
        close(fd);
        goto fail;
    }
    if (fwrite(buf, 1, size, f) != size || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        set_err(err, errlen, "%s: cannot write %s: %s", path, tmp, strerror(errno));
        fclose(f);
        goto fail;
    }
    if (fclose(f) != 0) {
        set_err(err, errlen, "%s: cannot write %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        set_err(err, errlen, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        goto fail;
    }
    free(tmp);
    return 0;
fail:
    remove(tmp);
    free(tmp);
    return -1;
}

int nnc_checkpoint_save(const char *path, const nnc_model *m, const float *params, const float *state,
                        const float prep[2], char *err, size_t errlen) {
    size_t size;
    uint8_t *buf = checkpoint_encode(m, params, state, prep, &size);
    if (!buf) {
        set_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = write_file_atomically(path, buf, size, err, errlen);
    free(buf);
    return rc;
}

/* Read a whole file into memory; its length comes from fstat. */
static uint8_t *read_whole_file(const char *path, size_t *size, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", path);
        fclose(f);
        return NULL;
    }
    *size = (size_t)st.st_size;
    uint8_t *buf = malloc(*size > 0 ? *size : 1);
    if (!buf) {
        set_err(err, errlen, "%s: out of memory for %zu bytes", path, *size);
        fclose(f);
        return NULL;
    }
    if (fread(buf, 1, *size, f) != *size) {
        set_err(err, errlen, "%s: read error: %s", path, ferror(f) ? strerror(errno) : "file shrank while reading");
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    return buf;
}

/* Checks in the order that gives the most useful message for each kind of bad file. */
static int checkpoint_validate(const char *path, const nnc_model *m, const uint8_t *buf, size_t size, char *err,
                               size_t errlen) {
    size_t expected = checkpoint_size(m->n_params, m->n_state);
    if (size < CKPT_HEADER_BYTES + CKPT_CRC_BYTES || memcmp(buf, CKPT_MAGIC, 4) != 0) {
        set_err(err, errlen, "%s: not an nnc checkpoint (no NNCW header)", path);
        return -1;
    }
    uint32_t version = get_u32(buf + 4);
    if (version != CKPT_VERSION) {
        set_err(err, errlen, "%s: checkpoint format version %u, this runtime reads version %u", path, version,
                CKPT_VERSION);
        return -1;
    }
    uint64_t signature = get_u64(buf + 8), n_params = get_u64(buf + 16), n_state = get_u64(buf + 24);
    /* Compare the file's own claimed size first: a CRC over a short file is meaningless. */
    int sizes_plausible = n_params <= ((uint64_t)1 << 40) && n_state <= ((uint64_t)1 << 40);
    if (!sizes_plausible || size != checkpoint_size(n_params, n_state)) {
        if (sizes_plausible)
            set_err(err, errlen, "%s: file is %zu bytes but its header announces %zu; it is truncated or corrupt",
                    path, size, checkpoint_size(n_params, n_state));
        else
            set_err(err, errlen, "%s: header announces implausible sizes; the file is corrupt", path);
        return -1;
    }
    uint32_t stored_crc = get_u32(buf + size - CKPT_CRC_BYTES);
    if (crc32_of(buf, size - CKPT_CRC_BYTES) != stored_crc) {
        set_err(err, errlen, "%s: checksum mismatch: file is corrupt", path);
        return -1;
    }
    if (signature != m->signature) {
        set_err(err, errlen, "%s: written by another model (signature 0x%016llx, this model %s is 0x%016llx)", path,
                (unsigned long long)signature, m->name ? m->name : "?", (unsigned long long)m->signature);
        return -1;
    }
    if (n_params != m->n_params || n_state != m->n_state || size != expected) {
        set_err(err, errlen, "%s: holds %llu parameters and %llu state values, model %s has %zu and %zu", path,
                (unsigned long long)n_params, (unsigned long long)n_state, m->name ? m->name : "?", m->n_params,
                m->n_state);
        return -1;
    }
    return 0;
}

int nnc_checkpoint_load(const char *path, const nnc_model *m, float *params, float *state, float prep[2],
                        char *err, size_t errlen) {
    size_t size;
    uint8_t *buf = read_whole_file(path, &size, err, errlen);
    if (!buf) return -1;
    if (checkpoint_validate(path, m, buf, size, err, errlen) != 0) {
        free(buf);
        return -1;
    }
    const uint8_t *p = buf + CKPT_HEADER_BYTES;
    for (size_t i = 0; i < m->n_params; i++, p += 4) params[i] = get_f32(p);
    for (size_t i = 0; i < m->n_state; i++, p += 4) state[i] = get_f32(p);
    prep[0] = get_f32(buf + 32);
    prep[1] = get_f32(buf + 36);
    free(buf);
    return 0;
}
