/*
 * cifar.c - CIFAR-10's binary layout (https://www.cs.toronto.edu/~kriz/cifar.html).
 *
 * A file is a run of 3073-byte records: the label (0..9), then the 1024 red,
 * the 1024 green and the 1024 blue bytes of a 32x32 image, each plane row by
 * row. The trainers take NHWC (the channels of a pixel together), so each
 * image is interleaved as it is read. The distribution's files hold 10000
 * records each; any whole number of records is accepted (subsets, tests), a
 * file that is not is refused, naming it. `batches.meta.txt` names the
 * classes, one a line.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "nncrt.h"

#define PLANE (NNC_CIFAR_SIDE * NNC_CIFAR_SIDE)
/* The distribution's files are 30730000 bytes; refuse anything far larger before reading it. */
#define MAX_FILE_BYTES ((size_t)1 << 31)
#define MAX_META_BYTES ((size_t)1 << 20)
#define MAX_CLASSES 256 /* labels are bytes */

int nnc_cifar_decode(const char *name, const uint8_t *bytes, size_t len, nnc_dataset *ds, char *err, size_t errlen) {
    if (len == 0 || len % NNC_CIFAR_RECORD != 0) {
        nnc_set_error(err, errlen,
                      "%s: %zu bytes is not a whole number of CIFAR-10 records (%d bytes each: a label and a 32x32 RGB "
                      "image; the distribution's files are 10000 records, 30730000 bytes); the file is truncated or "
                      "not CIFAR-10's binary version",
                      name, len, NNC_CIFAR_RECORD);
        return -1;
    }
    size_t records = len / NNC_CIFAR_RECORD, image_bytes = 3 * (size_t)PLANE;
    if (records > (size_t)0x7fffffff - (size_t)ds->n) {
        nnc_set_error(err, errlen, "%s: too many images", name);
        return -1;
    }
    size_t total = (size_t)ds->n + records;
    uint8_t *images = realloc(ds->images, total * image_bytes);
    if (images) ds->images = images;
    uint8_t *labels = realloc(ds->labels, total);
    if (labels) ds->labels = labels;
    if (!images || !labels) {
        nnc_set_error(err, errlen, "%s: out of memory for %zu images", name, total);
        return -1;
    }
    for (size_t r = 0; r < records; r++) {
        const uint8_t *rec = bytes + r * NNC_CIFAR_RECORD, *planes = rec + 1;
        uint8_t *dst = ds->images + ((size_t)ds->n + r) * image_bytes;
        for (int p = 0; p < PLANE; p++)
            for (int c = 0; c < 3; c++) dst[3 * p + c] = planes[c * PLANE + p];
        ds->labels[(size_t)ds->n + r] = rec[0];
    }
    ds->n = (int)total;
    ds->h = ds->w = NNC_CIFAR_SIDE;
    ds->c = 3;
    return 0;
}

/* Drop a line's trailing blanks (and a Windows \r). */
static size_t trimmed_length(const char *line, size_t len) {
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r')) len--;
    return len;
}

static void free_names(char **names, int n) {
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

int nnc_class_names_decode(const char *name, const uint8_t *text, size_t size, nnc_dataset *ds, char *err,
                           size_t errlen) {
    char **names = calloc(MAX_CLASSES, sizeof *names);
    int n = 0;
    const char *problem = names ? NULL : "out of memory";
    for (size_t at = 0; !problem && at < size;) {
        const char *line = (const char *)text + at;
        const char *nl = memchr(line, '\n', size - at);
        size_t len = nl ? (size_t)(nl - line) : size - at;
        at += len + 1;
        len = trimmed_length(line, len);
        if (len == 0) continue; /* batches.meta.txt ends with blank lines */
        if (memchr(line, '\0', len))
            problem = "not a text file of class names";
        else if (n == MAX_CLASSES)
            problem = "more than 256 class names";
        else if (!(names[n++] = strndup(line, len)))
            problem = "out of memory";
    }
    if (problem) {
        nnc_set_error(err, errlen, "%s: %s", name, problem);
        free_names(names, n);
        return -1;
    }
    ds->class_names = names;
    ds->n_class_names = n;
    return 0;
}

int nnc_class_names_read(const char *path, nnc_dataset *ds, char *err, size_t errlen) {
    uint8_t *text;
    size_t size;
    if (nnc_read_file(path, "a list of class names", MAX_META_BYTES, &text, &size, err, errlen) != 0) return -1;
    int rc = nnc_class_names_decode(path, text, size, ds, err, errlen);
    free(text);
    return rc;
}

/* Read one file whole and append its records. */
static int load_file(nnc_dataset *ds, const char *path, char *err, size_t errlen) {
    uint8_t *bytes;
    size_t size;
    if (nnc_read_file(path, "a CIFAR-10 batch file", MAX_FILE_BYTES, &bytes, &size, err, errlen) != 0) return -1;
    int rc = nnc_cifar_decode(path, bytes, size, ds, err, errlen);
    free(bytes);
    return rc;
}

int nnc_cifar_load(nnc_dataset *ds, const char *dir, const char *split, char *err, size_t errlen) {
    memset(ds, 0, sizeof *ds);
    char path[4200];
    int files = strcmp(split, "train") == 0 ? NNC_CIFAR_TRAIN_FILES : 1;
    for (int i = 1; i <= files; i++) {
        if (files == 1)
            snprintf(path, sizeof path, "%s/test_batch.bin", dir);
        else
            snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, i);
        if (load_file(ds, path, err, errlen) != 0) {
            nnc_dataset_free(ds);
            return -1;
        }
    }
    snprintf(path, sizeof path, "%s/batches.meta.txt", dir);
    FILE *meta = fopen(path, "rb");
    if (meta) {
        fclose(meta);
        if (nnc_class_names_read(path, ds, err, errlen) != 0) {
            nnc_dataset_free(ds);
            return -1;
        }
    }
    return 0;
}
