/*
 * fuzz_checkpoint.c - libFuzzer harness for the checkpoint reader: arbitrary
 * bytes loaded as the weights of a small model must be refused cleanly, never
 * read out of bounds.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "nncrt.h"

static const nnc_model tiny = {
    .name = "tiny", .in_h = 2, .in_w = 2, .in_c = 1, .n_classes = 2, .n_params = 10, .n_state = 4,
    .signature = 0x1234567890abcdefULL, .max_batch = 1,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/dev/shm/nnc-fuzz-ckpt-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    float params[10], state[4], prep[2];
    char err[512];
    nnc_checkpoint_load(path, &tiny, params, state, prep, err, sizeof err);
    unlink(path);
    return 0;
}
