/*
 * infer_run.c - classify every image of a raw IDX images file with the
 * inference C that `nnc --emit=inference` wrote (compiled with -DINFER_H to
 * its header and -DPREFIX to its prefix, linked with its .c), one line an
 * image: the argmax, then the probabilities. Plain C99, so that it builds for
 * any target: tests run it for this machine and, under qemu, for aarch64.
 *
 *   infer_run IMAGES-idx3-ubyte [LIMIT [FIRST]]
 *
 * classifies LIMIT images (default: all) from image FIRST (default 0), so that
 * several processes can share a file's images between them.
 *
 * The seconds the classifying took (the loop alone) go to stderr.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include INFER_H

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define CALL(name) CAT(PREFIX, name)
#define UPPER(name) CAT(PREFIX_UPPER, name)

static float scratch[(UPPER(_SCRATCH_BYTES) + sizeof(float) - 1) / sizeof(float)];

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: infer_run IMAGES-idx3-ubyte [LIMIT [FIRST]]\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    unsigned char head[16];
    if (!f || fread(head, 1, 16, f) != 16 || be32(head) != 0x803) {
        fprintf(stderr, "infer_run: %s: not a raw IDX images file\n", argv[1]);
        return 1;
    }
    long n = (long)be32(head + 4), limit = argc > 2 ? atol(argv[2]) : n, first = argc > 3 ? atol(argv[3]) : 0;
    size_t size = (size_t)be32(head + 8) * be32(head + 12);
    if (size != (size_t)UPPER(_INPUT_H) * UPPER(_INPUT_W) * UPPER(_INPUT_C)) {
        fprintf(stderr, "infer_run: %s: images of %zu pixels, the model takes %d\n", argv[1], size,
                UPPER(_INPUT_H) * UPPER(_INPUT_W) * UPPER(_INPUT_C));
        return 1;
    }
    uint8_t *pixels = malloc(size);
    if (first < 0 || first > n || fseek(f, first * (long)size, SEEK_CUR) != 0) {
        fprintf(stderr, "infer_run: %s: cannot start at image %ld of %ld\n", argv[1], first, n);
        return 1;
    }
    n -= first;
    float probs[UPPER(_CLASSES)];
    double seconds = 0;
    for (long i = 0; i < n && i < limit; i++) {
        if (!pixels || fread(pixels, 1, size, f) != size) {
            fprintf(stderr, "infer_run: %s: short file\n", argv[1]);
            return 1;
        }
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int best = CALL(_predict)(pixels, probs, scratch);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        seconds += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        printf("%d", best);
        for (int k = 0; k < UPPER(_CLASSES); k++)
            printf(" %.9g", (double)probs[k]);
        printf("\n");
    }
    fprintf(stderr, "seconds %.6f\n", seconds);
    free(pixels);
    fclose(f);
    return 0;
}
