/*
 * files.c - whole files in, whole files out.
 *
 * Every reader in nnc (model files, IDX data, checkpoints, images to
 * classify) reads its file whole and decodes the bytes in memory, so a
 * truncated file is simply a short buffer and the decoders can be fuzzed
 * without the file system. Every writer (generated C, checkpoints, history)
 * goes through a temporary file, fsync and rename, so the file at `path` is
 * always either the old one or the whole new one, never a part, even on a
 * full disk or a kill -9. The compiler links this file too.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nncrt.h"

/* "3 MiB" for whole mebibytes, else "1000 bytes": for messages. */
static const char *size_text(char *buf, size_t len, size_t bytes) {
    if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
        snprintf(buf, len, "%zu MiB", bytes >> 20);
    else
        snprintf(buf, len, "%zu bytes", bytes);
    return buf;
}

int nnc_read_file(const char *path, const char *what, size_t max_bytes, uint8_t **data, size_t *size, char *err,
                  size_t errlen) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        nnc_set_error(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    /* Files and pipes (--predict /dev/stdin); not directories or devices, which
     * are a wrong argument and could be endless (/dev/zero). */
    struct stat st;
    int known = fstat(fileno(f), &st) == 0;
    if (!known || !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode))) {
        nnc_set_error(err, errlen, "%s: not a regular file%s", path, known && S_ISDIR(st.st_mode) ? " but a directory" : "");
        fclose(f);
        return -1;
    }
    char limit[32];
    if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > max_bytes) {
        nnc_set_error(err, errlen, "%s: larger than %s, too large for %s", path, size_text(limit, sizeof limit, max_bytes),
                what);
        fclose(f);
        return -1;
    }
    /* Read until the end, or until one byte past the limit (a pipe's size is
     * not known, and a regular file may grow while we read it). */
    size_t cap_max = max_bytes < SIZE_MAX ? max_bytes + 1 : SIZE_MAX;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    int failed = 0, saved_errno = 0;
    while (len < cap_max) {
        if (len == cap) {
            size_t grown_cap = cap ? 2 * cap : 65536;
            if (grown_cap > cap_max || grown_cap < cap) grown_cap = cap_max;
            uint8_t *grown = realloc(buf, grown_cap);
            if (!grown) {
                nnc_set_error(err, errlen, "%s: out of memory reading it", path);
                free(buf), fclose(f);
                return -1;
            }
            buf = grown;
            cap = grown_cap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            failed = ferror(f);
            saved_errno = errno;
            break;
        }
    }
    fclose(f);
    if (failed) {
        nnc_set_error(err, errlen, "%s: cannot read: %s", path, strerror(saved_errno));
        free(buf);
        return -1;
    }
    if (len > max_bytes) {
        nnc_set_error(err, errlen, "%s: larger than %s, too large for %s", path, size_text(limit, sizeof limit, max_bytes),
                what);
        free(buf);
        return -1;
    }
    *data = buf;
    *size = len;
    return 0;
}

/* Create a new file `<path>.tmp.XXXXXX` for writing (six letters or digits,
 * the shape mkstemp gives and the trainer's leftover cleanup looks for).
 * Unlike mkstemp's 0600, the mode is 0666 less the umask, as for any file
 * the user creates, and no process-wide umask() call is needed for that. */
static int create_temp_beside(const char *path, char *tmp, size_t tmp_len) {
    static const char letters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static unsigned counter;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t x = ((uint64_t)getpid() << 32) ^ (uint64_t)now.tv_nsec ^ ((uint64_t)now.tv_sec << 20);
    for (int attempt = 0; attempt < 100; attempt++) {
        x += 0x9E3779B97F4A7C15ull + counter++; /* splitmix64: a new name per attempt */
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        char suffix[7];
        for (int i = 0; i < 6; i++, z /= 62) suffix[i] = letters[z % 62];
        suffix[6] = '\0';
        snprintf(tmp, tmp_len, "%s.tmp.%s", path, suffix);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1;
}

/* Write to something that is not a regular file (/dev/null, a pipe, a
 * terminal) in place: it cannot be replaced by a rename, and should not be. */
static int write_in_place(const char *path, const void *buf, size_t size, char *err, size_t errlen) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        nnc_set_error(err, errlen, "%s: cannot open for writing: %s", path, strerror(errno));
        return -1;
    }
    int ok = fwrite(buf, 1, size, f) == size && fflush(f) == 0;
    int saved_errno = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        saved_errno = errno;
    }
    if (!ok) nnc_set_error(err, errlen, "%s: cannot write: %s", path, strerror(saved_errno));
    return ok ? 0 : -1;
}

int nnc_write_file_atomically(const char *path, const void *buf, size_t size, char *err, size_t errlen) {
    struct stat existing;
    int exists = stat(path, &existing) == 0;
    if (exists && !S_ISREG(existing.st_mode) && !S_ISDIR(existing.st_mode))
        return write_in_place(path, buf, size, err, errlen);
    size_t tmp_len = strlen(path) + sizeof ".tmp.XXXXXX";
    char *tmp = malloc(tmp_len);
    if (!tmp) {
        nnc_set_error(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int fd = create_temp_beside(path, tmp, tmp_len);
    if (fd < 0) {
        nnc_set_error(err, errlen, "%s: cannot create a file in its directory: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    if (exists && S_ISREG(existing.st_mode)) /* replacing a file keeps its permissions */
        (void)fchmod(fd, existing.st_mode & 07777);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        nnc_set_error(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        close(fd);
        goto fail;
    }
    if (fwrite(buf, 1, size, f) != size || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        nnc_set_error(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        fclose(f);
        goto fail;
    }
    if (fclose(f) != 0) {
        nnc_set_error(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        nnc_set_error(err, errlen, "%s: cannot replace it: %s", path, strerror(errno));
        goto fail;
    }
    free(tmp);
    return 0;
fail:
    remove(tmp);
    free(tmp);
    return -1;
}
