/*
 * files.c - whole files in, whole files out.
 *
 * Every reader in nnc (IDX data, checkpoints, images to classify) reads its
 * file whole and decodes the bytes in memory, so a truncated file is simply a
 * short buffer and the decoders can be fuzzed without the file system. Every
 * writer (checkpoints, history, and the compiler's generated C) goes through
 * a temporary file, fsync and rename, so the file at `path` is always either
 * the old one or the whole new one, never a part, even on a full disk or a
 * kill -9. The compiler links this file too.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nncrt.h"

int nnc_read_file(const char *path, const char *what, size_t max_bytes, uint8_t **data, size_t *size, char *err, size_t errlen) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        nnc_set_error(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            if (cap > max_bytes) { /* read one byte past the limit before refusing */
                nnc_set_error(err, errlen, "%s: larger than %zu MiB, too large for %s", path, max_bytes >> 20, what);
                free(buf), fclose(f);
                return -1;
            }
            cap = cap ? 2 * cap : 65536;
            uint8_t *grown = realloc(buf, cap);
            if (!grown) {
                nnc_set_error(err, errlen, "%s: out of memory reading it", path);
                free(buf), fclose(f);
                return -1;
            }
            buf = grown;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        /* A directory opens fine on Linux and fails here with EISDIR. */
        nnc_set_error(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        free(buf);
        return -1;
    }
    if (len > max_bytes) {
        nnc_set_error(err, errlen, "%s: larger than %zu MiB, too large for %s", path, max_bytes >> 20, what);
        free(buf);
        return -1;
    }
    *data = buf;
    *size = len;
    return 0;
}

int nnc_write_file_atomically(const char *path, const void *buf, size_t size, char *err, size_t errlen) {
    size_t tmp_len = strlen(path) + sizeof ".tmp.XXXXXX";
    char *tmp = malloc(tmp_len);
    if (!tmp) {
        nnc_set_error(err, errlen, "%s: out of memory", path);
        return -1;
    }
    snprintf(tmp, tmp_len, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        nnc_set_error(err, errlen, "%s: cannot create a temporary file %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    /* mkstemp makes the file 0600; what we write are ordinary files, so honour the umask as open() would. */
    mode_t mask = umask(0);
    umask(mask);
    (void)fchmod(fd, 0666 & ~mask);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        nnc_set_error(err, errlen, "%s: cannot write %s: %s", path, tmp, strerror(errno));
        close(fd);
        goto fail;
    }
    if (fwrite(buf, 1, size, f) != size || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        nnc_set_error(err, errlen, "%s: cannot write %s: %s", path, tmp, strerror(errno));
        fclose(f);
        goto fail;
    }
    if (fclose(f) != 0) {
        nnc_set_error(err, errlen, "%s: cannot write %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        nnc_set_error(err, errlen, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        goto fail;
    }
    free(tmp);
    return 0;
fail:
    remove(tmp);
    free(tmp);
    return -1;
}
