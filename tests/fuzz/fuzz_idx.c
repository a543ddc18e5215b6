/*
 * fuzz_idx.c - libFuzzer harness for the IDX decoder: the bytes are decoded
 * in memory, as an image file (3 dimensions) and as a label file (1), the way
 * nnc_idx_read decodes a file it has read. Bytes that start with gzip's magic
 * go through zlib; the seed corpus has gzip inputs so that the fuzzer keeps
 * that path covered.
 */
#include <stdint.h>
#include <stdlib.h>

#include "nncrt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    for (int dims = 1; dims <= 3; dims += 2) {
        int shape[3];
        uint8_t *bytes = NULL;
        size_t count = 0;
        if (nnc_idx_decode("fuzz-input", data, size, dims, shape, &bytes, &count, err, sizeof err) == 0)
            free(bytes);
    }
    return 0;
}
