/*
 * cifar_synth.c - write a synthetic data set in CIFAR-10's binary layout, for
 * tests without CIFAR-10: `cifar_synth DIR RECORDS [SEED]` writes
 * DIR/data_batch_1.bin .. data_batch_5.bin and DIR/test_batch.bin of RECORDS
 * records each (3073 bytes: the label, then the red, green and blue 32x32
 * planes), and DIR/batches.meta.txt with CIFAR-10's class names.
 *
 * Class k is a colour of its own (a fixed palette) with a bright bar whose
 * position depends on k, under uniform noise: learnable in an epoch or two by
 * a small convolutional model. Deterministic for a seed (xorshift64*, not
 * libc's rand, so every machine writes the same bytes).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define SIDE 32
#define PLANE (SIDE * SIDE)
#define CLASSES 10

static const char *const names[CLASSES] = {"airplane", "automobile", "bird", "cat",  "deer",
                                           "dog",      "frog",       "horse", "ship", "truck"};
/* One RGB colour a class. */
static const uint8_t palette[CLASSES][3] = {{200, 40, 40}, {40, 200, 40}, {40, 40, 200}, {200, 200, 40},
                                            {200, 40, 200}, {40, 200, 200}, {120, 120, 120}, {220, 130, 40},
                                            {40, 130, 220}, {130, 40, 220}};

static uint64_t state;
static uint32_t next_random(void)
{
    state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
    return (uint32_t)((state * 0x2545F4914F6CDD1DULL) >> 32);
}

static int write_batch(const char *dir, const char *name, long records)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return -1;
    }
    uint8_t rec[1 + 3 * PLANE];
    for (long r = 0; r < records; r++) {
        int k = (int)(next_random() % CLASSES);
        rec[0] = (uint8_t)k;
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < PLANE; p++) {
                int bar = (p / SIDE) / 3 == k; /* rows 3k..3k+2 */
                int v = palette[k][c] / 2 + (bar ? 100 : 0) + (int)(next_random() % 60);
                rec[1 + c * PLANE + p] = (uint8_t)(v > 255 ? 255 : v);
            }
        if (fwrite(rec, sizeof rec, 1, f) != 1) {
            perror(path);
            fclose(f);
            return -1;
        }
    }
    return fclose(f);
}

int main(int argc, char **argv)
{
    if (argc < 3 || atol(argv[2]) < 1) {
        fprintf(stderr, "usage: cifar_synth DIR RECORDS_PER_FILE [SEED]\n");
        return 2;
    }
    state = argc > 3 ? strtoull(argv[3], NULL, 10) * 2 + 1 : 88172645463325252ULL;
    long records = atol(argv[2]);
    char name[64];
    for (int i = 1; i <= 5; i++) {
        snprintf(name, sizeof name, "data_batch_%d.bin", i);
        if (write_batch(argv[1], name, records) != 0)
            return 1;
    }
    if (write_batch(argv[1], "test_batch.bin", records) != 0)
        return 1;
    char path[4096];
    snprintf(path, sizeof path, "%s/batches.meta.txt", argv[1]);
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    for (int k = 0; k < CLASSES; k++)
        fprintf(f, "%s\n", names[k]);
    fprintf(f, "\n"); /* the distribution's file ends with blank lines */
    return fclose(f) != 0;
}
