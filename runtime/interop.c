/*
 * interop.c - weights in other tools' formats: export to safetensors (Hugging
 * Face) and npz (NumPy), import from safetensors written by nnc or PyTorch;
 * the ONNX inference graph is onnx.c's.
 *
 * safetensors: u64 little-endian header length N, N bytes of JSON (padded
 * with spaces to a multiple of 8), then the raw little-endian data. The JSON
 * object maps each tensor's name to {"dtype", "shape", "data_offsets": [begin,
 * end)} (offsets relative to the first data byte), plus "__metadata__", an
 * object of strings. nnc writes its tensor tables' names and Keras layouts
 * (params, then state, in table order) and, in the metadata, "format": "nnc",
 * the model, its source, the nnc version, each tensor's layout
 * ("layout.NAME") and the preprocessing constants ("prep": none | scale |
 * normalize, "prep_scale", or "prep_mean" and "prep_std", printed with %.9g so
 * that they read back exactly).
 *
 * npz: a zip (stored, no compression) of NAME.npy files, NPY format 1.0.
 *
 * Import takes nnc's names and layouts or PyTorch's (see README.md, "Using
 * trained weights elsewhere"): L.weight / L.bias of a conv (OIHW), linear
 * ([out][in], its input flattened NCHW when nnc's is an image flattened NHWC)
 * or batchnorm (gamma / beta), L.running_mean, L.running_var, and
 * L.num_batches_tracked (ignored), behind at most one common prefix such as
 * "mods." or "model.". The header goes through a small strict JSON reader
 * (objects, strings with escapes, numbers, arrays; nesting at most 4 deep).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bytebuf.h"
#include "nncrt.h"

#define ST_MAX_HEADER ((size_t)100 << 20) /* the safetensors library's own limit */
#define JSON_MAX_DEPTH 4
#define MAX_RANK 8

/* A JSON string literal. */
static void buf_json_string(buf_t *b, const char *s) {
    buf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') buf_printf(b, "\\%c", c);
        else if (c < 0x20) buf_printf(b, "\\u%04x", c);
        else buf_put(b, s, 1);
    }
    buf_put(b, "\"", 1);
}

/* ------------------------------------------------------------------------ */
/* The tensors of a model                                                   */
/* ------------------------------------------------------------------------ */

/* Tensor i of the model's params (i < n_tensors) then state tables, and its floats. */
static const nnc_tensor_info *tensor_at(const nnc_model *m, int i, const float *params, const float *state,
                                        const float **data) {
    if (i < m->n_tensors) {
        if (data) *data = params + m->tensors[i].offset;
        return &m->tensors[i];
    }
    const nnc_tensor_info *t = &m->state_tensors[i - m->n_tensors];
    if (data) *data = state + t->offset;
    return t;
}

static const char *prep_name(nnc_prep_kind k) {
    return k == NNC_PREP_SCALE       ? "scale"
           : k == NNC_PREP_NORMALIZE ? "normalize"
           : k == NNC_PREP_CHANNELS  ? "normalize_channels"
                                     : "none";
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ------------------------------------------------------------------------ */
/* Export                                                                   */
/* ------------------------------------------------------------------------ */

static void put_meta(buf_t *h, const char *key, const char *value, int *first) {
    buf_put(h, *first ? "" : ",", *first ? 0 : 1);
    *first = 0;
    buf_json_string(h, key);
    buf_put(h, ":", 1);
    buf_json_string(h, value);
}

/* The model's per-channel constants as "0.4914,0.4822,0.4465" (informational: the model holds them). */
static void put_channel_constants(buf_t *h, const nnc_model *m, int *first) {
    const float *values[2] = {m->prep_mean, m->prep_std};
    const char *keys[2] = {"prep_channel_mean", "prep_channel_std"};
    for (int k = 0; k < 2; k++) {
        char text[NNC_MAX_PREP_CHANNELS * 20] = "";
        for (int c = 0; c < m->in_c && c < NNC_MAX_PREP_CHANNELS; c++)
            snprintf(text + strlen(text), sizeof text - strlen(text), "%s%.9g", c ? "," : "", (double)values[k][c]);
        put_meta(h, keys[k], text, first);
    }
}

/* The class names as a JSON array in a string (metadata values are strings): ["airplane","automobile",...]. */
static void put_class_names(buf_t *h, const nnc_dataset *classes, int *first) {
    buf_t list = {0};
    buf_put(&list, "[", 1);
    for (int k = 0; k < classes->n_class_names; k++) {
        if (k) buf_put(&list, ",", 1);
        buf_json_string(&list, classes->class_names[k]);
    }
    buf_put(&list, "]", 2); /* and the terminating NUL */
    if (!list.oom) put_meta(h, "classes", (const char *)list.p, first);
    h->oom |= list.oom;
    free(list.p);
}

int nnc_safetensors_encode(const nnc_model *m, const float *params, const float *state, const float prep[2],
                           const nnc_dataset *classes, uint8_t **out, size_t *size) {
    buf_t h = {0}, f = {0};
    int n = m->n_tensors + m->n_state_tensors, first = 1;
    char num[64], key[256];
    buf_put(&h, "{\"__metadata__\":{", 17);
    put_meta(&h, "format", "nnc", &first);
    put_meta(&h, "model", m->name, &first);
    put_meta(&h, "source", m->source ? m->source : "", &first);
    put_meta(&h, "nnc_version", NNC_VERSION, &first);
    put_meta(&h, "prep", prep_name(m->prep), &first);
    if (m->prep == NNC_PREP_SCALE) {
        snprintf(num, sizeof num, "%.9g", (double)prep[0]);
        put_meta(&h, "prep_scale", num, &first);
    } else if (m->prep == NNC_PREP_NORMALIZE) {
        snprintf(num, sizeof num, "%.9g", (double)prep[0]);
        put_meta(&h, "prep_mean", num, &first);
        snprintf(num, sizeof num, "%.9g", (double)prep[1]);
        put_meta(&h, "prep_std", num, &first);
    } else if (m->prep == NNC_PREP_CHANNELS) {
        put_channel_constants(&h, m, &first);
    }
    if (classes && classes->n_class_names > 0) put_class_names(&h, classes, &first);
    for (int i = 0; i < n; i++) {
        const nnc_tensor_info *t = tensor_at(m, i, NULL, NULL, NULL);
        snprintf(key, sizeof key, "layout.%s", t->name);
        put_meta(&h, key, t->layout, &first);
    }
    buf_put(&h, "}", 1);
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        const float *data;
        const nnc_tensor_info *t = tensor_at(m, i, params, state, &data);
        buf_put(&h, ",", 1);
        buf_json_string(&h, t->name);
        buf_put(&h, ":{\"dtype\":\"F32\",\"shape\":[", 25);
        for (int d = 0; d < t->rank; d++) buf_printf(&h, "%s%d", d ? "," : "", t->dims[d]);
        buf_printf(&h, "],\"data_offsets\":[%zu,%zu]}", offset, offset + 4 * t->count);
        offset += 4 * t->count;
        buf_floats(&f, data, t->count);
    }
    buf_put(&h, "}", 1);
    while (h.len % 8) buf_put(&h, " ", 1);
    buf_t all = {0};
    buf_le(&all, h.len, 8);
    buf_put(&all, h.p, h.len);
    buf_put(&all, f.p, f.len);
    int oom = h.oom || f.oom || all.oom;
    free(h.p), free(f.p);
    if (oom) {
        free(all.p);
        return -1;
    }
    *out = all.p, *size = all.len;
    return 0;
}

/* One NPY (version 1.0) file: header padded so the data starts at a multiple of 64. */
static void npy_put(buf_t *b, const nnc_tensor_info *t, const float *data) {
    char head[256];
    int n = snprintf(head, sizeof head, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int d = 0; d < t->rank; d++) n += snprintf(head + n, sizeof head - (size_t)n, "%d, ", t->dims[d]);
    if (t->rank > 1) n -= 2; /* (3, 3, 1, 32) but (32,) */
    else if (t->rank == 1) n -= 1;
    n += snprintf(head + n, sizeof head - (size_t)n, "), }");
    size_t total = 10 + (size_t)n + 1; /* magic, version, length, header, '\n' */
    size_t pad = (64 - total % 64) % 64;
    buf_put(b, "\x93NUMPY\x01\x00", 8);
    buf_le(b, (uint64_t)n + pad + 1, 2);
    buf_put(b, head, (size_t)n);
    for (size_t i = 0; i < pad; i++) buf_put(b, " ", 1);
    buf_put(b, "\n", 1);
    buf_floats(b, data, t->count);
}

int nnc_npz_encode(const nnc_model *m, const float *params, const float *state, uint8_t **out, size_t *size) {
    int n = m->n_tensors + m->n_state_tensors;
    buf_t z = {0}, cd = {0}, npy = {0};
    for (int i = 0; i < n; i++) {
        const float *data;
        const nnc_tensor_info *t = tensor_at(m, i, params, state, &data);
        char name[300];
        int name_len = snprintf(name, sizeof name, "%s.npy", t->name);
        npy.len = 0;
        npy_put(&npy, t, data);
        if (npy.oom || z.len > 0xffffffffu || npy.len > 0xffffffffu) {
            z.oom = 1;
            break;
        }
        uint32_t crc = nnc_crc32(0, npy.p, npy.len);
        uint64_t local = z.len;
        /* local file header: version 2.0, no flags, stored, 1980-01-01 00:00 */
        buf_le(&z, 0x04034b50u, 4), buf_le(&z, 20, 2), buf_le(&z, 0, 2), buf_le(&z, 0, 2);
        buf_le(&z, 0, 2), buf_le(&z, 0x21, 2), buf_le(&z, crc, 4), buf_le(&z, npy.len, 4), buf_le(&z, npy.len, 4);
        buf_le(&z, (uint64_t)name_len, 2), buf_le(&z, 0, 2);
        buf_put(&z, name, (size_t)name_len);
        buf_put(&z, npy.p, npy.len);
        /* its central directory entry */
        buf_le(&cd, 0x02014b50u, 4), buf_le(&cd, 20, 2), buf_le(&cd, 20, 2), buf_le(&cd, 0, 2), buf_le(&cd, 0, 2);
        buf_le(&cd, 0, 2), buf_le(&cd, 0x21, 2), buf_le(&cd, crc, 4), buf_le(&cd, npy.len, 4), buf_le(&cd, npy.len, 4);
        buf_le(&cd, (uint64_t)name_len, 2), buf_le(&cd, 0, 2), buf_le(&cd, 0, 2), buf_le(&cd, 0, 2);
        buf_le(&cd, 0, 2), buf_le(&cd, 0, 4), buf_le(&cd, local, 4);
        buf_put(&cd, name, (size_t)name_len);
    }
    uint64_t cd_offset = z.len;
    buf_put(&z, cd.p, cd.len);
    /* end of central directory */
    buf_le(&z, 0x06054b50u, 4), buf_le(&z, 0, 2), buf_le(&z, 0, 2), buf_le(&z, (uint64_t)n, 2);
    buf_le(&z, (uint64_t)n, 2), buf_le(&z, cd.len, 4), buf_le(&z, cd_offset, 4), buf_le(&z, 0, 2);
    int bad = z.oom || cd.oom || z.len > 0xffffffffu || n > 0xffff;
    free(cd.p), free(npy.p);
    if (bad) {
        free(z.p);
        return -1;
    }
    *out = z.p, *size = z.len;
    return 0;
}

int nnc_export_format_ok(const char *path) {
    return has_suffix(path, ".safetensors") || has_suffix(path, ".npz") || has_suffix(path, ".onnx");
}

int nnc_export_weights(const char *path, const nnc_model *m, const float *params, const float *state,
                       const float prep[2], const nnc_dataset *classes, char *err, size_t errlen) {
    uint8_t *bytes = NULL;
    size_t size = 0;
    int rc;
    if (has_suffix(path, ".safetensors"))
        rc = nnc_safetensors_encode(m, params, state, prep, classes, &bytes, &size);
    else if (has_suffix(path, ".npz"))
        rc = nnc_npz_encode(m, params, state, &bytes, &size);
    else if (has_suffix(path, ".onnx"))
        rc = nnc_onnx_encode(m, params, state, prep, &bytes, &size);
    else {
        nnc_set_error(err, errlen, "%s: cannot tell the export format: the name must end in .safetensors, .npz or "
                      ".onnx", path);
        return -1;
    }
    if (rc == -2) {
        nnc_set_error(err, errlen, "%s: model %s's inference graph has a layer ONNX export does not handle", path,
                      m->name);
        return -1;
    }
    if (rc != 0) {
        nnc_set_error(err, errlen, "%s: out of memory while encoding the weights", path);
        return -1;
    }
    rc = nnc_write_file_atomically(path, bytes, size, err, errlen);
    free(bytes);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* A strict JSON reader for the safetensors header                          */
/* ------------------------------------------------------------------------ */

enum { J_OBJECT, J_ARRAY, J_STRING, J_NUMBER };

typedef struct {
    int type;
    int first, next; /* first child, next sibling: node indices, -1 none */
    const char *key; /* in an object: the member's name (decoded) */
    const char *str; /* J_STRING: decoded, NUL-terminated */
    int is_uint;     /* J_NUMBER: a whole number 0..2^64-1 */
    uint64_t u;
} jnode;

typedef struct {
    const char *s;
    size_t len, pos;
    jnode *nodes;
    int n_nodes, cap_nodes;
    char *strs; /* decoded strings, each NUL-terminated */
    size_t strs_len;
    const char *file;
    char *err;
    size_t errlen;
} jparser;

static int jfail(jparser *p, const char *what) {
    nnc_set_error(p->err, p->errlen, "%s: the safetensors header is not valid JSON: %s at byte %zu of the header",
                  p->file, what, p->pos);
    return -1;
}

static void jspace(jparser *p) {
    while (p->pos < p->len && strchr(" \t\r\n", p->s[p->pos]) && p->s[p->pos]) p->pos++;
}

static int jnew(jparser *p, int type) {
    if (p->n_nodes == p->cap_nodes) return -1; /* cap_nodes is one per header byte: cannot happen */
    jnode *n = &p->nodes[p->n_nodes];
    memset(n, 0, sizeof *n);
    n->type = type, n->first = n->next = -1;
    return p->n_nodes++;
}

static int hex4(const char *s, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = *v * 16 + (unsigned)d;
    }
    return 0;
}

/* A string literal at p->pos, decoded into p->strs; *out points at it. */
static int jstring(jparser *p, const char **out) {
    if (p->pos >= p->len || p->s[p->pos] != '"') return jfail(p, "expected a string");
    p->pos++;
    char *dst = p->strs + p->strs_len, *start = dst;
    for (;;) {
        if (p->pos >= p->len) return jfail(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->pos++];
        if (c == '"') break;
        if (c < 0x20) return jfail(p, "control character in a string");
        if (c != '\\') {
            *dst++ = (char)c;
            continue;
        }
        if (p->pos >= p->len) return jfail(p, "unterminated string");
        char e = p->s[p->pos++];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            *dst++ = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            continue;
        }
        unsigned cp, lo;
        if (e != 'u' || p->pos + 4 > p->len || hex4(p->s + p->pos, &cp) != 0) return jfail(p, "bad escape");
        p->pos += 4;
        if (cp >= 0xd800 && cp < 0xdc00) { /* a surrogate pair */
            if (p->pos + 6 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                hex4(p->s + p->pos + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                return jfail(p, "unpaired surrogate");
            p->pos += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp < 0xe000) {
            return jfail(p, "unpaired surrogate");
        }
        if (cp == 0) return jfail(p, "\\u0000 in a string");
        /* UTF-8; never longer than the 6-byte escape it came from */
        if (cp < 0x80) *dst++ = (char)cp;
        else if (cp < 0x800) *dst++ = (char)(0xc0 | cp >> 6), *dst++ = (char)(0x80 | (cp & 0x3f));
        else if (cp < 0x10000)
            *dst++ = (char)(0xe0 | cp >> 12), *dst++ = (char)(0x80 | ((cp >> 6) & 0x3f)), *dst++ = (char)(0x80 | (cp & 0x3f));
        else
            *dst++ = (char)(0xf0 | cp >> 18), *dst++ = (char)(0x80 | ((cp >> 12) & 0x3f)),
            *dst++ = (char)(0x80 | ((cp >> 6) & 0x3f)), *dst++ = (char)(0x80 | (cp & 0x3f));
    }
    *dst++ = '\0';
    p->strs_len += (size_t)(dst - start);
    *out = start;
    return 0;
}

/* A number (JSON's grammar); whole non-negative ones also kept exactly. */
static int jnumber(jparser *p, jnode *n) {
    size_t i = p->pos;
    const char *s = p->s;
    if (i < p->len && s[i] == '-') i++;
    if (i >= p->len || s[i] < '0' || s[i] > '9') return jfail(p, "unexpected character");
    if (s[i] == '0' && i + 1 < p->len && s[i + 1] >= '0' && s[i + 1] <= '9') return jfail(p, "leading zero");
    int whole = s[p->pos] != '-', overflow = 0;
    uint64_t u = 0;
    for (; i < p->len && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (u > (UINT64_MAX - d) / 10) overflow = 1;
        u = u * 10 + d;
    }
    if (i < p->len && s[i] == '.') {
        whole = 0, i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') return jfail(p, "bad number");
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        whole = 0, i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') return jfail(p, "bad number");
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    n->is_uint = whole && !overflow;
    n->u = u;
    p->pos = i;
    return 0;
}

static int jvalue(jparser *p, int depth, int *out);

/* The members of an object or the elements of an array, after its '{' or '['. */
static int jcontainer(jparser *p, int depth, int node) {
    int is_obj = p->nodes[node].type == J_OBJECT, last = -1;
    char close = is_obj ? '}' : ']';
    jspace(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        int child;
        jspace(p);
        if (is_obj) {
            if (jstring(p, &key) != 0) return -1;
            jspace(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') return jfail(p, "expected ':'");
            p->pos++;
        }
        if (jvalue(p, depth + 1, &child) != 0) return -1;
        p->nodes[child].key = key;
        if (last < 0) p->nodes[node].first = child;
        else p->nodes[last].next = child;
        last = child;
        jspace(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return 0;
        }
        return jfail(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int jvalue(jparser *p, int depth, int *out) {
    jspace(p);
    if (depth > JSON_MAX_DEPTH) return jfail(p, "nested too deeply");
    if (p->pos >= p->len) return jfail(p, "unexpected end");
    char c = p->s[p->pos];
    int node;
    if (c == '{' || c == '[') {
        node = *out = jnew(p, c == '{' ? J_OBJECT : J_ARRAY);
        if (node < 0) return jfail(p, "too many values");
        p->pos++;
        return jcontainer(p, depth, node);
    }
    node = *out = jnew(p, c == '"' ? J_STRING : J_NUMBER);
    if (node < 0) return jfail(p, "too many values");
    if (c == '"') return jstring(p, &p->nodes[node].str);
    return jnumber(p, &p->nodes[node]);
}

/* Parse text[0..len) whole as one JSON value that opens with `open` ('{' or '['), into p's own buffers
 * (freed by the caller, also on failure); what[] names it in the message when it is not one. */
static int jparse(jparser *p, const char *text, size_t len, char open, const char *what, int *root) {
    p->s = text, p->len = len, p->pos = 0;
    p->cap_nodes = (int)len + 1;
    p->nodes = malloc(sizeof *p->nodes * (size_t)p->cap_nodes);
    p->strs = malloc(len + 1);
    if (!p->nodes || !p->strs) {
        nnc_set_error(p->err, p->errlen, "%s: out of memory for a %zu-byte header", p->file, len);
        return -1;
    }
    jspace(p);
    if (p->pos >= p->len || p->s[p->pos] != open) {
        nnc_set_error(p->err, p->errlen, "%s: %s", p->file, what);
        return -1;
    }
    if (jvalue(p, 0, root) != 0) return -1;
    jspace(p);
    return p->pos == p->len ? 0 : jfail(p, "trailing characters after the value");
}

/* ------------------------------------------------------------------------ */
/* Import                                                                   */
/* ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {{"F32", 4}, {"F64", 8}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
              {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};

typedef struct {
    const char *name;
    const char *dtype;
    size_t elem; /* bytes per element */
    int is_f32;
    int rank;
    uint64_t shape[MAX_RANK];
    uint64_t begin, end;
    int target;  /* index into the model's tensors (params then state), -1: ignored */
    int torch;   /* 1: PyTorch's name and layout */
} st_entry;

static int cmp_begin(const void *a, const void *b) {
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Read one tensor's description {"dtype", "shape", "data_offsets"}. */
static int read_entry(const char *file, const jnode *nodes, const jnode *obj, st_entry *e, char *err, size_t errlen) {
    int have_dtype = 0, have_shape = 0, have_off = 0;
    if (obj->type != J_OBJECT) {
        nnc_set_error(err, errlen, "%s: tensor '%s' is not described by a JSON object", file, e->name);
        return -1;
    }
    for (int c = obj->first; c >= 0; c = nodes[c].next) {
        const jnode *v = &nodes[c];
        if (!strcmp(v->key, "dtype") && v->type == J_STRING && !have_dtype) {
            have_dtype = 1;
            size_t k = 0;
            while (k < sizeof dtypes / sizeof dtypes[0] && strcmp(dtypes[k].name, v->str) != 0) k++;
            if (k == sizeof dtypes / sizeof dtypes[0]) {
                nnc_set_error(err, errlen, "%s: tensor '%s' has the unknown dtype '%s'", file, e->name, v->str);
                return -1;
            }
            e->elem = dtypes[k].size;
            e->dtype = v->str;
            e->is_f32 = k == 0;
        } else if ((!strcmp(v->key, "shape") || !strcmp(v->key, "data_offsets")) && v->type == J_ARRAY) {
            int is_shape = v->key[0] == 's', n = 0;
            uint64_t vals[MAX_RANK];
            if (is_shape ? have_shape++ : have_off++) goto bad;
            for (int a = v->first; a >= 0; a = nodes[a].next, n++) {
                if (nodes[a].type != J_NUMBER || !nodes[a].is_uint || n >= (is_shape ? MAX_RANK : 2)) goto bad;
                vals[n] = nodes[a].u;
            }
            if (is_shape) {
                e->rank = n;
                memcpy(e->shape, vals, sizeof vals);
            } else {
                if (n != 2) goto bad;
                e->begin = vals[0], e->end = vals[1];
            }
        } else {
            goto bad;
        }
    }
    if (have_dtype && have_shape && have_off) return 0;
bad:
    nnc_set_error(err, errlen,
                  "%s: tensor '%s': expected {\"dtype\": string, \"shape\": [up to %d whole numbers], "
                  "\"data_offsets\": [begin, end]} and nothing else",
                  file, e->name, MAX_RANK);
    return -1;
}

/* Is `layer` (len bytes) the layer part of one of the model's tensor names? */
static int is_layer(const nnc_model *m, const char *layer, size_t len) {
    for (int i = 0; i < m->n_tensors + m->n_state_tensors; i++) {
        const char *name = tensor_at(m, i, NULL, NULL, NULL)->name;
        if (strncmp(name, layer, len) == 0 && name[len] == '.') return 1;
    }
    return 0;
}

static int find_tensor(const nnc_model *m, const char *layer, size_t len, const char *suffix) {
    for (int i = 0; i < m->n_tensors + m->n_state_tensors; i++) {
        const char *name = tensor_at(m, i, NULL, NULL, NULL)->name;
        if (strncmp(name, layer, len) == 0 && name[len] == '.' && strcmp(name + len + 1, suffix) == 0) return i;
    }
    return -1;
}

/* Match a file's tensor name to the model: its prefix (the part before the
 * first component that is a layer of the model), and target/torch, or -1. */
static int map_name(const nnc_model *m, st_entry *e, size_t *prefix_len) {
    const char *s = e->name;
    for (const char *c = s;; c = strchr(c, '.') + 1) {
        const char *dot = strchr(c, '.');
        if (!dot) return -1;
        size_t len = (size_t)(dot - c);
        if (!is_layer(m, c, len)) continue;
        *prefix_len = (size_t)(c - s);
        const char *suffix = dot + 1;
        static const char *const torch[][3] = {
            /* PyTorch's suffix, then nnc's for conv/dense and for batchnorm */
            {"weight", "kernel", "gamma"},
            {"bias", "bias", "beta"},
            {"running_mean", "moving_mean", NULL},
            {"running_var", "moving_variance", NULL},
        };
        e->target = find_tensor(m, c, len, suffix); /* nnc's own name */
        e->torch = 0;
        if (e->target >= 0 && strcmp(suffix, "bias") != 0) return 0;
        for (size_t k = 0; k < sizeof torch / sizeof torch[0]; k++) {
            if (strcmp(suffix, torch[k][0]) != 0) continue;
            e->target = find_tensor(m, c, len, torch[k][1]);
            if (e->target < 0 && torch[k][2]) e->target = find_tensor(m, c, len, torch[k][2]);
            e->torch = 1;
            return e->target >= 0 ? 0 : -1;
        }
        if (strcmp(suffix, "num_batches_tracked") == 0 && find_tensor(m, c, len, "moving_mean") >= 0) {
            e->target = -1, e->torch = 1;
            return 0;
        }
        return -1;
    }
}

int nnc_torch_shape(const nnc_tensor_info *t, uint64_t shape[4]) {
    for (int d = 0; d < t->rank; d++) shape[d] = (uint64_t)t->dims[d];
    if (t->rank == 4) { /* HWIO -> OIHW */
        shape[0] = (uint64_t)t->dims[3], shape[1] = (uint64_t)t->dims[2];
        shape[2] = (uint64_t)t->dims[0], shape[3] = (uint64_t)t->dims[1];
    } else if (t->rank == 2) {
        shape[0] = (uint64_t)t->dims[1], shape[1] = (uint64_t)t->dims[0];
    }
    return t->rank;
}

/* The shape a tensor has in the file: nnc's, or PyTorch's (OIHW, [out][in]). */
static void expected_shape(const nnc_tensor_info *t, int torch, int *rank, uint64_t shape[4]) {
    *rank = t->rank;
    for (int d = 0; d < t->rank; d++) shape[d] = (uint64_t)t->dims[d];
    if (torch) nnc_torch_shape(t, shape);
}

static void shape_text(char *buf, size_t len, int rank, const uint64_t *shape) {
    size_t n = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < rank && n < len; d++)
        n += (size_t)snprintf(buf + n, len - n, "%s%llu", d ? ", " : "", (unsigned long long)shape[d]);
    if (n < len) snprintf(buf + n, len - n, "]");
}

static float get_f32(const uint8_t *p) {
    uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

size_t nnc_torch_index(const nnc_tensor_info *t, size_t i) {
    if (t->rank == 4) { /* nnc's (h, w, i, o) is PyTorch's (o, i, h, w) */
        size_t H = (size_t)t->dims[0], W = (size_t)t->dims[1], I = (size_t)t->dims[2], O = (size_t)t->dims[3];
        size_t o = i % O, in = i / O % I, w = i / (O * I) % W, h = i / (O * I * W);
        return ((o * I + in) * H + h) * W + w;
    }
    if (t->rank == 2) { /* nnc's (r, o) is PyTorch's (o, col) */
        size_t In = (size_t)t->dims[0], O = (size_t)t->dims[1], r = i / O, o = i % O, col = r;
        size_t fh = (size_t)t->from_image[0], fw = (size_t)t->from_image[1], fc = (size_t)t->from_image[2];
        /* nnc's row r is pixel (h, w), channel c in NHWC order; PyTorch flattened (c, h, w) */
        if (fh > 0 && fw > 0 && fc > 0 && fh * fw * fc == In) col = ((r % fc) * fh + r / (fw * fc)) * fw + (r / fc) % fw;
        return o * In + col;
    }
    return i;
}

/* Copy one tensor's data into the model's buffer, undoing PyTorch's layout. */
static void copy_tensor(const nnc_tensor_info *t, int torch, const uint8_t *src, float *dst) {
    for (size_t i = 0; i < t->count; i++) dst[i] = get_f32(src + 4 * (torch ? nnc_torch_index(t, i) : i));
}

/* __metadata__'s preprocessing constants, when the file is nnc's. */
static int read_prep(const char *file, const nnc_model *m, const jnode *nodes, const jnode *meta, float prep[2],
                     int *prep_known, char *err, size_t errlen) {
    const char *format = NULL, *kind = NULL, *vals[3] = {NULL, NULL, NULL};
    static const char *const keys[3] = {"prep_scale", "prep_mean", "prep_std"};
    for (int c = meta->first; c >= 0; c = nodes[c].next) {
        if (nodes[c].type != J_STRING) {
            nnc_set_error(err, errlen, "%s: __metadata__ value '%s' is not a string", file, nodes[c].key);
            return -1;
        }
        if (!strcmp(nodes[c].key, "format")) format = nodes[c].str;
        if (!strcmp(nodes[c].key, "prep")) kind = nodes[c].str;
        for (int k = 0; k < 3; k++)
            if (!strcmp(nodes[c].key, keys[k])) vals[k] = nodes[c].str;
    }
    if (!format || strcmp(format, "nnc") != 0) return 0;
    if (!kind || strcmp(kind, prep_name(m->prep)) != 0) {
        nnc_set_error(err, errlen, "%s: written for preprocessing '%s', but this model's is '%s'", file,
                      kind ? kind : "(none given)", prep_name(m->prep));
        return -1;
    }
    prep[0] = prep[1] = 0.0f;
    for (int k = 0; k < 3; k++) {
        int needed = m->prep == NNC_PREP_SCALE ? k == 0 : m->prep == NNC_PREP_NORMALIZE ? k > 0 : 0;
        if (!needed) continue;
        char *end = NULL;
        double v = vals[k] ? strtod(vals[k], &end) : NAN;
        if (!vals[k] || *end || !isfinite(v) || (k == 2 && !(v > 0))) {
            nnc_set_error(err, errlen, "%s: __metadata__ lacks a valid %s for '%s'", file, keys[k], kind);
            return -1;
        }
        prep[k == 2 ? 1 : 0] = (float)v;
    }
    *prep_known = 1;
    return 0;
}

int nnc_safetensors_decode(const char *file, const uint8_t *bytes, size_t size, const nnc_model *m, float *params,
                           float *state, float prep[2], int *prep_known, char *err, size_t errlen) {
    *prep_known = 0;
    if (size < 8) {
        nnc_set_error(err, errlen, "%s: truncated: %zu bytes, shorter than a safetensors header length", file, size);
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)bytes[i] << (8 * i);
    if (hlen > size - 8) {
        nnc_set_error(err, errlen, "%s: the header length %llu runs past the end of the file (%zu bytes): truncated "
                      "or not a safetensors file", file, (unsigned long long)hlen, size);
        return -1;
    }
    if (hlen > ST_MAX_HEADER) {
        nnc_set_error(err, errlen, "%s: header of %llu bytes, more than safetensors allows", file,
                      (unsigned long long)hlen);
        return -1;
    }
    jparser p = {.file = file, .err = err, .errlen = errlen};
    int n_tensors = m->n_tensors + m->n_state_tensors, status = -1;
    st_entry *entries = NULL, **sorted = NULL;
    char *seen = calloc((size_t)n_tensors + 1, 1);
    const uint8_t *data = bytes + 8 + hlen;
    uint64_t data_len = size - 8 - hlen;
    int root;
    if (!seen) {
        nnc_set_error(err, errlen, "%s: out of memory for a %llu-byte header", file, (unsigned long long)hlen);
        goto done;
    }
    if (jparse(&p, (const char *)bytes + 8, (size_t)hlen, '{', "the safetensors header is not a JSON object", &root) !=
        0)
        goto done;
    int n_entries = 0;
    for (int c = p.nodes[root].first; c >= 0; c = p.nodes[c].next) n_entries++;
    entries = calloc((size_t)n_entries + 1, sizeof *entries);
    sorted = calloc((size_t)n_entries + 1, sizeof *sorted);
    if (!entries || !sorted) {
        nnc_set_error(err, errlen, "%s: out of memory", file);
        goto done;
    }
    int n = 0, torch = -1;
    size_t prefix_len = 0;
    const char *prefix = NULL;
    for (int c = p.nodes[root].first; c >= 0; c = p.nodes[c].next) {
        const jnode *v = &p.nodes[c];
        for (int k = p.nodes[root].first; k != c; k = p.nodes[k].next)
            if (!strcmp(p.nodes[k].key, v->key)) {
                nnc_set_error(err, errlen, "%s: the name '%s' appears twice in the header", file, v->key);
                goto done;
            }
        if (!strcmp(v->key, "__metadata__")) {
            if (v->type != J_OBJECT) {
                nnc_set_error(err, errlen, "%s: __metadata__ is not a JSON object", file);
                goto done;
            }
            if (read_prep(file, m, p.nodes, v, prep, prep_known, err, errlen) != 0) goto done;
            continue;
        }
        st_entry *e = &entries[n];
        e->name = v->key;
        if (read_entry(file, p.nodes, v, e, err, errlen) != 0) goto done;
        size_t plen;
        if (map_name(m, e, &plen) != 0) {
            nnc_set_error(err, errlen, "%s: tensor '%s' is not a tensor of model %s (an extra tensor, or another "
                          "model's weights)", file, e->name, m->name);
            goto done;
        }
        if (!prefix) prefix = e->name, prefix_len = plen;
        if (plen != prefix_len || strncmp(prefix, e->name, plen) != 0) {
            nnc_set_error(err, errlen, "%s: tensor '%s' has another prefix than '%s' ('%.*s'): one common prefix is "
                          "allowed", file, e->name, prefix, (int)prefix_len, prefix);
            goto done;
        }
        if (e->target >= 0 && e->torch != torch && strcmp(strrchr(e->name, '.'), ".bias") != 0) {
            if (torch >= 0) {
                nnc_set_error(err, errlen, "%s: tensor '%s' is named as %s does, but earlier ones as %s does: one "
                              "convention a file", file, e->name, e->torch ? "PyTorch" : "nnc",
                              e->torch ? "nnc" : "PyTorch");
                goto done;
            }
            torch = e->torch;
        }
        if (e->target >= 0) {
            const nnc_tensor_info *t = tensor_at(m, e->target, NULL, NULL, NULL);
            if (seen[e->target]) {
                nnc_set_error(err, errlen, "%s: tensor '%s' gives %s a second time", file, e->name, t->name);
                goto done;
            }
            seen[e->target] = 1;
            if (!e->is_f32) {
                nnc_set_error(err, errlen, "%s: tensor '%s' is %s; nnc reads F32 (float32) only: convert it first, "
                              "e.g. with tensor.float() in PyTorch", file, e->name, e->dtype);
                goto done;
            }
        }
        uint64_t elems = 1;
        for (int d = 0; d < e->rank; d++) elems = e->shape[d] && elems > UINT64_MAX / e->shape[d] ? UINT64_MAX
                                                                                                   : elems * e->shape[d];
        if (e->begin > e->end || e->end > data_len || (elems != UINT64_MAX && e->end - e->begin != elems * e->elem) ||
            elems == UINT64_MAX) {
            nnc_set_error(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu) do not fit its shape and dtype "
                          "or run past the end of the data (%llu bytes)", file, e->name,
                          (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)data_len);
            goto done;
        }
        sorted[n] = e;
        n++;
    }
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_begin);
    for (int i = 1; i < n; i++)
        if (sorted[i]->begin < sorted[i - 1]->end) {
            nnc_set_error(err, errlen, "%s: the data of tensors '%s' and '%s' overlap", file, sorted[i - 1]->name,
                          sorted[i]->name);
            goto done;
        }
    for (int i = 0; i < n_tensors; i++)
        if (!seen[i]) {
            const char *name = tensor_at(m, i, NULL, NULL, NULL)->name;
            nnc_set_error(err, errlen, "%s: tensor %s is missing (%s's '%s'%s)", file, name, torch == 1 ? "PyTorch" : "nnc",
                          name, torch == 1 ? ", under its PyTorch name" : "");
            goto done;
        }
    for (int i = 0; i < n; i++) {
        st_entry *e = &entries[i];
        if (e->target < 0) continue;
        float *dst;
        const nnc_tensor_info *t = tensor_at(m, e->target, params, state, (const float **)&dst);
        int rank;
        uint64_t shape[4];
        expected_shape(t, e->torch, &rank, shape);
        if (rank != e->rank || memcmp(shape, e->shape, sizeof(uint64_t) * (size_t)rank) != 0) {
            char want[96], got[96];
            shape_text(want, sizeof want, rank, shape);
            shape_text(got, sizeof got, e->rank, e->shape);
            nnc_set_error(err, errlen, "%s: tensor '%s' has shape %s; model %s needs %s (%s, layout %s)", file,
                          e->name, got, m->name, want, e->torch ? "PyTorch's" : "nnc's",
                          e->torch && rank == 4 ? "OIHW" : e->torch && rank == 2 ? "[out][in]" : t->layout);
            goto done;
        }
    }
    for (int i = 0; i < n; i++) {
        st_entry *e = &entries[i];
        if (e->target < 0) continue;
        const float *dst;
        const nnc_tensor_info *t = tensor_at(m, e->target, params, state, &dst);
        copy_tensor(t, e->torch, data + e->begin, (float *)dst);
    }
    status = 0;
done:
    if (status != 0) *prep_known = 0;
    free(p.nodes), free(p.strs), free(entries), free(sorted), free(seen);
    return status;
}

int nnc_safetensors_load(const char *path, const nnc_model *m, float *params, float *state, float prep[2],
                         int *prep_known, char *err, size_t errlen) {
    uint8_t *bytes;
    size_t size;
    size_t max = ST_MAX_HEADER + 8 * (m->n_params + m->n_state) + ((size_t)1 << 20);
    *prep_known = 0;
    if (nnc_read_file(path, "a safetensors file of this model", max, &bytes, &size, err, errlen) != 0) return -1;
    int rc = nnc_safetensors_decode(path, bytes, size, m, params, state, prep, prep_known, err, errlen);
    free(bytes);
    return rc;
}

/* __metadata__'s "classes", a JSON array of strings in a string, into names; none when it has none. */
static int decode_classes(jparser *head, int meta, nnc_dataset *names) {
    const jnode *nodes = head->nodes;
    int list = -1;
    for (int c = nodes[meta].first; c >= 0; c = nodes[c].next)
        if (!strcmp(nodes[c].key, "classes") && nodes[c].type == J_STRING) list = c;
    if (list < 0) return 0;
    jparser p = {.file = head->file, .err = head->err, .errlen = head->errlen};
    int root, n = 0, rc = -1;
    if (jparse(&p, nodes[list].str, strlen(nodes[list].str), '[', "__metadata__'s classes is not a JSON array",
               &root) == 0) {
        for (int c = p.nodes[root].first; c >= 0; c = p.nodes[c].next) n++;
        names->class_names = calloc((size_t)n + 1, sizeof *names->class_names);
        rc = names->class_names ? 0 : -1;
        for (int c = p.nodes[root].first; rc == 0 && c >= 0; c = p.nodes[c].next) {
            if (p.nodes[c].type != J_STRING || n > 256)
                rc = -1, nnc_set_error(p.err, p.errlen, "%s: __metadata__'s classes is not a list of at most 256 "
                                                        "names", p.file);
            else if (!(names->class_names[names->n_class_names++] = strdup(p.nodes[c].str)))
                rc = -1, nnc_set_error(p.err, p.errlen, "%s: out of memory", p.file);
        }
    }
    free(p.nodes), free(p.strs);
    return rc;
}

int nnc_safetensors_classes(const char *path, nnc_dataset *names, char *err, size_t errlen) {
    memset(names, 0, sizeof *names);
    FILE *f = fopen(path, "rb");
    uint8_t len8[8];
    if (!f || fread(len8, 1, 8, f) != 8) {
        nnc_set_error(err, errlen, "%s: %s", path, f ? "truncated: shorter than a safetensors header length"
                                                     : "cannot open the file");
        if (f) fclose(f);
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)len8[i] << (8 * i);
    char *text = hlen <= ST_MAX_HEADER ? malloc((size_t)hlen + 1) : NULL;
    int rc = -1, root;
    jparser p = {.file = path, .err = err, .errlen = errlen};
    if (!text)
        nnc_set_error(err, errlen, "%s: header of %llu bytes, more than safetensors allows", path,
                      (unsigned long long)hlen);
    else if (fread(text, 1, (size_t)hlen, f) != (size_t)hlen)
        nnc_set_error(err, errlen, "%s: the header runs past the end of the file", path);
    else if (jparse(&p, text, (size_t)hlen, '{', "the safetensors header is not a JSON object", &root) == 0) {
        rc = 0;
        for (int c = p.nodes[root].first; rc == 0 && c >= 0; c = p.nodes[c].next)
            if (!strcmp(p.nodes[c].key, "__metadata__") && p.nodes[c].type == J_OBJECT)
                rc = decode_classes(&p, c, names);
    }
    fclose(f);
    free(text), free(p.nodes), free(p.strs);
    if (rc != 0) nnc_dataset_free(names);
    return rc;
}

int nnc_weights_load(const char *path, const nnc_model *m, float *params, float *state, float prep[2],
                     int *prep_known, char *err, size_t errlen) {
    if (has_suffix(path, ".safetensors"))
        return nnc_safetensors_load(path, m, params, state, prep, prep_known, err, errlen);
    *prep_known = 1;
    return nnc_checkpoint_load(path, m, params, state, prep, err, errlen);
}
