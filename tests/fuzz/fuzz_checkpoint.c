/*
 * fuzz_checkpoint.c - libFuzzer harness for the checkpoint reader: arbitrary
 * bytes loaded as the weights of a small model must be refused cleanly, never
 * read out of bounds. Each input is tried twice: as it is, and with its last
 * four bytes replaced by the CRC32 of the rest, so that mutations get past the
 * checksum and reach the parser behind it.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "nncrt.h"

static const nnc_model tiny = {
    .name = "tiny", .in_h = 2, .in_w = 2, .in_c = 1, .n_classes = 2, .n_params = 10, .n_state = 4,
    .signature = 0x1234567890abcdefULL, .max_batch = 1,
};

static void load_bytes(const uint8_t *data, size_t size)
{
    char path[] = "/dev/shm/nnc-fuzz-ckpt-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return;
    if (write(fd, data, size) == (ssize_t)size) {
        float params[10], state[4], prep[2];
        char err[512];
        nnc_checkpoint_load(path, &tiny, params, state, prep, err, sizeof err);
    }
    close(fd);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_bytes(data, size);
    if (size > 4 && size < (1 << 20)) {
        uint8_t *fixed = malloc(size);
        if (!fixed)
            return 0;
        memcpy(fixed, data, size);
        uLong crc = crc32(0L, fixed, (uInt)(size - 4));
        for (int i = 0; i < 4; i++)
            fixed[size - 4 + i] = (uint8_t)(crc >> (8 * i)); /* little-endian, as the format stores it */
        load_bytes(fixed, size);
        free(fixed);
    }
    return 0;
}
