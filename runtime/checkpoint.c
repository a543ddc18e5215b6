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
 * Version 2 (training checkpoints, `<stem>.ckpt`) is version 1 with a training
 * section between the state and the CRC:
 *
 *   8   u64  section bytes S, then S bytes:
 *        run key     u32 epochs, u64 seed, u32 validation, u32 early_stop,
 *                    f32 lr, u32 n_train, u32 data_crc
 *        position    u32 epoch, u32 step, u64[2] rng at the epoch's start,
 *                    u64[2] rng now (state, inc)
 *        epoch sums  f64 loss_sum, i64 correct, i64 seen, f64 seconds
 *        optimizer   u32 kind, i64 step, u32 slots, slots x n_params f32
 *        selection   u32 best_epoch, f64 best_accuracy, u32 since_best
 *        history     u32 rows, rows x (u32 epoch, f64 lr, loss, accuracy,
 *                    val_loss, val_accuracy, seconds, images_per_second)
 *        per class   u32 classes, rows x classes f32 validation accuracy
 *                    (absent in files of earlier versions of nnc: then NAN)
 *
 * Weights files (--save, .best.nncw) stay version 1; both versions load as
 * weights.
 *
 * Saving writes the whole file to `<path>.tmp.XXXXXX` in the same directory,
 * flushes and fsyncs it, and only then renames it over `path`: a crash or a
 * full disk leaves the previous checkpoint intact, never a half-written one.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "nncrt.h"

#define CKPT_MAGIC "NNCW"
#define CKPT_VERSION 1u       /* weights only */
#define CKPT_VERSION_TRAIN 2u /* weights and a training section */
#define CKPT_HEADER_BYTES 40
#define CKPT_CRC_BYTES 4
/* Room in a training section beyond the optimizer's slots: fixed fields and
 * one 60-byte history row per epoch, for up to a million epochs. */
#define CKPT_SECTION_SLACK ((size_t)64 << 20)

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

static size_t checkpoint_size(uint64_t n_params, uint64_t n_state) {
    return CKPT_HEADER_BYTES + 4 * (size_t)(n_params + n_state) + CKPT_CRC_BYTES;
}

/* The largest file a checkpoint of `m` can be: its weights and state, and a
 * training section of at most two optimizer slots per parameter. Anything
 * bigger is refused before it is read whole. */
static size_t largest_checkpoint(const nnc_model *m) {
    return checkpoint_size(m->n_params, m->n_state) + 8 + 2 * 4 * (size_t)m->n_params + CKPT_SECTION_SLACK +
           ((size_t)4 * m->n_classes << 20); /* a float per class per epoch */
}

/* ---- a growing byte buffer for the training section ---- */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int oom;
} writer;

static uint8_t *w_reserve(writer *w, size_t n) {
    if (w->oom) return NULL;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n) cap *= 2;
        uint8_t *b = realloc(w->buf, cap);
        if (!b) {
            w->oom = 1;
            return NULL;
        }
        w->buf = b, w->cap = cap;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}
static void w_u32(writer *w, uint32_t v) {
    uint8_t *p = w_reserve(w, 4);
    if (p) put_u32(p, v);
}
static void w_u64(writer *w, uint64_t v) {
    uint8_t *p = w_reserve(w, 8);
    if (p) put_u64(p, v);
}
static void w_f32(writer *w, float f) {
    uint8_t *p = w_reserve(w, 4);
    if (p) put_f32(p, f);
}
static void w_f64(writer *w, double d) {
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    w_u64(w, bits);
}

/* ---- and its bounds-checked reader: a short section sets `bad` and reads zeros ---- */

typedef struct {
    const uint8_t *p, *end;
    int bad;
} reader;

static const uint8_t *r_take(reader *r, size_t n) {
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}
static uint32_t r_u32(reader *r) {
    const uint8_t *p = r_take(r, 4);
    return p ? get_u32(p) : 0;
}
static uint64_t r_u64(reader *r) {
    const uint8_t *p = r_take(r, 8);
    return p ? get_u64(p) : 0;
}
static float r_f32(reader *r) {
    const uint8_t *p = r_take(r, 4);
    return p ? get_f32(p) : 0.0f;
}
static double r_f64(reader *r) {
    uint64_t bits = r_u64(r);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* The whole file, serialized in memory (MNIST models are a few MB at most). */
static uint8_t *checkpoint_encode(const nnc_model *m, const float *params, const float *state, const float prep[2],
                                  const writer *section, size_t *size) {
    *size = checkpoint_size(m->n_params, m->n_state) + (section ? 8 + section->len : 0);
    uint8_t *buf = malloc(*size);
    if (!buf) return NULL;
    uint8_t *p = buf;
    memcpy(p, CKPT_MAGIC, 4);
    put_u32(p + 4, section ? CKPT_VERSION_TRAIN : CKPT_VERSION);
    put_u64(p + 8, m->signature);
    put_u64(p + 16, m->n_params);
    put_u64(p + 24, m->n_state);
    put_f32(p + 32, prep[0]);
    put_f32(p + 36, prep[1]);
    p += CKPT_HEADER_BYTES;
    for (size_t i = 0; i < m->n_params; i++, p += 4) put_f32(p, params[i]);
    for (size_t i = 0; i < m->n_state; i++, p += 4) put_f32(p, state[i]);
    if (section) {
        put_u64(p, section->len);
        memcpy(p + 8, section->buf, section->len);
        p += 8 + section->len;
    }
    put_u32(p, nnc_crc32(0, buf, (size_t)(p - buf)));
    return buf;
}

int nnc_checkpoint_save(const char *path, const nnc_model *m, const float *params, const float *state,
                        const float prep[2], char *err, size_t errlen) {
    size_t size;
    uint8_t *buf = checkpoint_encode(m, params, state, prep, NULL, &size);
    if (!buf) {
        nnc_set_error(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = nnc_write_file_atomically(path, buf, size, err, errlen);
    free(buf);
    return rc;
}

/* The size a file of this version and these sizes has; version 2 reads its
 * section length from the file (0 when the file is too short to hold it). */
static size_t expected_size(uint32_t version, uint64_t n_params, uint64_t n_state, const uint8_t *buf, size_t size,
                            uint64_t *section_bytes) {
    size_t base = checkpoint_size(n_params, n_state);
    *section_bytes = 0;
    if (version == CKPT_VERSION) return base;
    size_t at = base - CKPT_CRC_BYTES; /* where the section length is */
    if (size < at + 8) return 0;
    *section_bytes = get_u64(buf + at);
    if (*section_bytes > ((uint64_t)1 << 44)) return 0;
    return base + 8 + (size_t)*section_bytes;
}

/* Checks in the order that gives the most useful message for each kind of bad
 * file. On success *section_bytes is the training section's length (0: v1). */
static int checkpoint_validate(const char *path, const nnc_model *m, const uint8_t *buf, size_t size,
                               uint64_t *section_bytes, char *err, size_t errlen) {
    if (size < CKPT_HEADER_BYTES + CKPT_CRC_BYTES || memcmp(buf, CKPT_MAGIC, 4) != 0) {
        nnc_set_error(err, errlen, "%s: not an nnc checkpoint (no NNCW header)", path);
        return -1;
    }
    uint32_t version = get_u32(buf + 4);
    if (version != CKPT_VERSION && version != CKPT_VERSION_TRAIN) {
        nnc_set_error(err, errlen, "%s: checkpoint format version %u, this runtime reads versions %u and %u", path, version,
                CKPT_VERSION, CKPT_VERSION_TRAIN);
        return -1;
    }
    uint64_t signature = get_u64(buf + 8), n_params = get_u64(buf + 16), n_state = get_u64(buf + 24);
    /* Compare the file's own claimed size first: a CRC over a short file is meaningless. */
    int sizes_plausible = n_params <= ((uint64_t)1 << 40) && n_state <= ((uint64_t)1 << 40);
    size_t announced = sizes_plausible ? expected_size(version, n_params, n_state, buf, size, section_bytes) : 0;
    if (!sizes_plausible || announced == 0 || size != announced) {
        if (sizes_plausible && announced > 0)
            nnc_set_error(err, errlen, "%s: file is %zu bytes but its header announces %zu; it is truncated or corrupt",
                    path, size, announced);
        else if (sizes_plausible)
            nnc_set_error(err, errlen, "%s: file is %zu bytes, too short for its header; it is truncated or corrupt", path,
                    size);
        else
            nnc_set_error(err, errlen, "%s: header announces implausible sizes; the file is corrupt", path);
        return -1;
    }
    uint32_t stored_crc = get_u32(buf + size - CKPT_CRC_BYTES);
    if (nnc_crc32(0, buf, size - CKPT_CRC_BYTES) != stored_crc) {
        nnc_set_error(err, errlen, "%s: checksum mismatch: file is corrupt", path);
        return -1;
    }
    if (signature != m->signature) {
        nnc_set_error(err, errlen, "%s: written by another model (signature 0x%016llx, this model %s is 0x%016llx)", path,
                (unsigned long long)signature, m->name ? m->name : "?", (unsigned long long)m->signature);
        return -1;
    }
    if (n_params != m->n_params || n_state != m->n_state) {
        nnc_set_error(err, errlen, "%s: holds %llu parameters and %llu state values, model %s has %zu and %zu", path,
                (unsigned long long)n_params, (unsigned long long)n_state, m->name ? m->name : "?", m->n_params,
                m->n_state);
        return -1;
    }
    return 0;
}

/* Read and validate a file, then copy out the weights; returns the buffer
 * (the caller frees it) so that a training section can be read from it. */
static uint8_t *load_weights(const char *path, const nnc_model *m, float *params, float *state, float prep[2],
                             uint64_t *section_bytes, char *err, size_t errlen) {
    size_t size;
    uint8_t *buf;
    if (nnc_read_file(path, "a checkpoint of this model", largest_checkpoint(m), &buf, &size, err, errlen) != 0) return NULL;
    if (checkpoint_validate(path, m, buf, size, section_bytes, err, errlen) != 0) {
        free(buf);
        return NULL;
    }
    const uint8_t *p = buf + CKPT_HEADER_BYTES;
    for (size_t i = 0; i < m->n_params; i++, p += 4) params[i] = get_f32(p);
    for (size_t i = 0; i < m->n_state; i++, p += 4) state[i] = get_f32(p);
    prep[0] = get_f32(buf + 32);
    prep[1] = get_f32(buf + 36);
    return buf;
}

int nnc_checkpoint_load(const char *path, const nnc_model *m, float *params, float *state, float prep[2],
                        char *err, size_t errlen) {
    uint64_t section_bytes;
    uint8_t *buf = load_weights(path, m, params, state, prep, &section_bytes, err, errlen);
    free(buf);
    return buf ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Version 2: the training section                                          */
/* ------------------------------------------------------------------------ */

static int optimizer_slots(const nnc_optimizer *opt) {
    return (opt->slot1 != NULL) + (opt->slot2 != NULL);
}

static void encode_train_section(writer *w, const nnc_run_key *key, const nnc_train_state *ts) {
    w_u32(w, (uint32_t)key->epochs);
    w_u64(w, key->seed);
    w_u32(w, (uint32_t)key->validation);
    w_u32(w, (uint32_t)key->early_stop);
    w_f32(w, key->lr);
    w_u32(w, (uint32_t)key->n_train);
    w_u32(w, key->data_crc);

    w_u32(w, (uint32_t)ts->epoch);
    w_u32(w, (uint32_t)ts->step);
    w_u64(w, ts->rng_epoch.state);
    w_u64(w, ts->rng_epoch.inc);
    w_u64(w, ts->rng.state);
    w_u64(w, ts->rng.inc);

    w_f64(w, ts->loss_sum);
    w_u64(w, (uint64_t)ts->correct);
    w_u64(w, (uint64_t)ts->seen);
    w_f64(w, ts->seconds);

    const nnc_optimizer *opt = &ts->opt;
    w_u32(w, (uint32_t)opt->cfg.kind);
    w_u64(w, (uint64_t)opt->step);
    w_u32(w, (uint32_t)optimizer_slots(opt));
    const float *slots[2] = {opt->slot1, opt->slot2};
    for (int k = 0; k < 2; k++)
        if (slots[k])
            for (size_t i = 0; i < opt->n; i++) w_f32(w, slots[k][i]);

    w_u32(w, (uint32_t)ts->best_epoch);
    w_f64(w, ts->best_accuracy);
    w_u32(w, (uint32_t)ts->since_best);

    w_u32(w, (uint32_t)ts->n_history);
    for (int i = 0; i < ts->n_history; i++) {
        const nnc_history_row *h = &ts->history[i];
        w_u32(w, (uint32_t)h->epoch);
        w_f64(w, h->lr), w_f64(w, h->loss), w_f64(w, h->accuracy), w_f64(w, h->val_loss);
        w_f64(w, h->val_accuracy), w_f64(w, h->seconds), w_f64(w, h->images_per_second);
    }
    w_u32(w, (uint32_t)ts->n_classes);
    for (size_t i = 0; i < (size_t)ts->n_history * ts->n_classes; i++) w_f32(w, ts->class_accuracy[i]);
}

int nnc_checkpoint_save_train(const char *path, const nnc_model *m, const float *params, const float *state,
                              const float prep[2], const nnc_run_key *key, const nnc_train_state *ts, char *err,
                              size_t errlen) {
    writer w = {0};
    encode_train_section(&w, key, ts);
    size_t size = 0;
    uint8_t *buf = w.oom ? NULL : checkpoint_encode(m, params, state, prep, &w, &size);
    free(w.buf);
    if (!buf) {
        nnc_set_error(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = nnc_write_file_atomically(path, buf, size, err, errlen);
    free(buf);
    return rc;
}

/* The reverse of encode_train_section; the CRC already vouched for the bytes,
 * so what remains to check is that they fit this model and this state. */
static int decode_train_section(reader *r, nnc_run_key *key, nnc_train_state *ts, const char *path, char *err,
                                size_t errlen) {
    key->epochs = (int)r_u32(r);
    key->seed = r_u64(r);
    key->validation = (int)r_u32(r);
    key->early_stop = (int)r_u32(r);
    key->lr = r_f32(r);
    key->n_train = (int)r_u32(r);
    key->data_crc = r_u32(r);

    ts->epoch = (int)r_u32(r);
    ts->step = (int)r_u32(r);
    ts->rng_epoch.state = r_u64(r);
    ts->rng_epoch.inc = r_u64(r);
    ts->rng.state = r_u64(r);
    ts->rng.inc = r_u64(r);

    ts->loss_sum = r_f64(r);
    ts->correct = (long)r_u64(r);
    ts->seen = (long)r_u64(r);
    ts->seconds = r_f64(r);

    nnc_optimizer *opt = &ts->opt;
    uint32_t kind = r_u32(r);
    long step = (long)r_u64(r);
    uint32_t slots = r_u32(r);
    if (!r->bad && (kind != (uint32_t)opt->cfg.kind || slots != (uint32_t)optimizer_slots(opt))) {
        nnc_set_error(err, errlen, "%s: its optimizer state (kind %u, %u slots) is not this model's optimizer's", path,
                kind, slots);
        return -1;
    }
    opt->step = step;
    float *dst[2] = {opt->slot1, opt->slot2};
    for (int k = 0; k < 2; k++)
        if (dst[k])
            for (size_t i = 0; i < opt->n; i++) dst[k][i] = r_f32(r);

    ts->best_epoch = (int)r_u32(r);
    ts->best_accuracy = r_f64(r);
    ts->since_best = (int)r_u32(r);

    uint32_t rows = r_u32(r);
    if (!r->bad && rows > (uint32_t)ts->cap_history) {
        nnc_set_error(err, errlen, "%s: holds %u epochs of history, more than the run's %d epochs", path, rows,
                ts->cap_history);
        return -1;
    }
    ts->n_history = (int)rows;
    for (uint32_t i = 0; i < rows && !r->bad; i++) {
        nnc_history_row *h = &ts->history[i];
        h->epoch = (int)r_u32(r);
        h->lr = r_f64(r), h->loss = r_f64(r), h->accuracy = r_f64(r), h->val_loss = r_f64(r);
        h->val_accuracy = r_f64(r), h->seconds = r_f64(r), h->images_per_second = r_f64(r);
    }
    if (!r->bad && r->p != r->end) { /* the per-class accuracies */
        uint32_t classes = r_u32(r);
        if (!r->bad && classes != (uint32_t)ts->n_classes) {
            nnc_set_error(err, errlen, "%s: holds the accuracy of %u classes per epoch, this model has %d", path,
                          classes, ts->n_classes);
            return -1;
        }
        for (size_t i = 0; i < (size_t)rows * classes && !r->bad; i++) ts->class_accuracy[i] = r_f32(r);
    }
    if (r->bad || r->p != r->end) {
        nnc_set_error(err, errlen, "%s: its training section is %s; the file is corrupt", path,
                r->bad ? "truncated" : "longer than its contents");
        return -1;
    }
    ts->started = 1;
    return 0;
}

int nnc_checkpoint_load_train(const char *path, const nnc_model *m, float *params, float *state, float prep[2],
                              nnc_run_key *key, nnc_train_state *ts, char *err, size_t errlen) {
    uint64_t section_bytes;
    uint8_t *buf = load_weights(path, m, params, state, prep, &section_bytes, err, errlen);
    if (!buf) return -1;
    int rc = -1;
    if (get_u32(buf + 4) != CKPT_VERSION_TRAIN) {
        nnc_set_error(err, errlen, "%s: holds weights only, no training state to resume from (a .ckpt file does)", path);
    } else {
        size_t at = checkpoint_size(m->n_params, m->n_state) - CKPT_CRC_BYTES + 8;
        reader r = {buf + at, buf + at + section_bytes, 0};
        rc = decode_train_section(&r, key, ts, path, err, errlen);
    }
    free(buf);
    return rc;
}
