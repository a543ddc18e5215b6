/*
 * fuzz_idx.c - libFuzzer harness for the IDX reader: the bytes are written to
 * a file (raw, and gzip-wrapped when they start with gzip's magic) and read
 * back as an image file and as a label file.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "nncrt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/dev/shm/nnc-fuzz-idx-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    char err[512];
    for (int dims = 1; dims <= 3; dims += 2) {
        int shape[3];
        uint8_t *bytes = NULL;
        size_t count = 0;
        if (nnc_idx_read(path, dims, shape, &bytes, &count, err, sizeof err) == 0)
            free(bytes);
    }
    unlink(path);
    return 0;
}
