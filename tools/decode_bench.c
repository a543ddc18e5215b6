/*
 * decode_bench.c - `make bench`'s decode rate of an image folder: loads SPLIT
 * (SPLIT/<class>/<image>.png|.jpg) with nnc_folder_load, the trainer's own
 * loader, on THREADS threads (the trainer's default: 2), ROUNDS times, and
 * prints one line a round:
 *
 *   decode IMAGES SECONDS
 *
 *   decode_bench SPLIT H W C [THREADS] [ROUNDS]
 *
 * The seconds are the whole call (listing, reading, decoding), as the
 * trainer spends them before its first epoch. Errors as the trainer's:
 * `error: SPLIT/...: message` and exit status 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nncrt.h"

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: decode_bench SPLIT H W C [THREADS] [ROUNDS]\n");
        return 2;
    }
    int h = atoi(argv[2]), w = atoi(argv[3]), c = atoi(argv[4]);
    int threads = argc > 5 ? atoi(argv[5]) : 2, rounds = argc > 6 ? atoi(argv[6]) : 3;
    if (h < 1 || w < 1 || (c != 1 && c != 3) || threads < 1 || rounds < 1) {
        fprintf(stderr, "decode_bench: bad size %sx%sx%s, threads or rounds\n", argv[2], argv[3], argv[4]);
        return 2;
    }
    for (int r = 0; r < rounds; r++) {
        nnc_dataset ds;
        char err[1024];
        double t0 = seconds_now();
        if (nnc_folder_load(&ds, argv[1], NULL, h, w, c, 0, threads, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "error: %s\n", err);
            return 1;
        }
        printf("decode %d %.6f\n", ds.n, seconds_now() - t0);
        fflush(stdout);
        nnc_dataset_free(&ds);
    }
    return 0;
}
