/* Tests for runtime/idx.c: IDX files the tests write into a temporary directory. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "nncrt.h"

static char dir[64];

static void make_dir(void) {
    strcpy(dir, "/tmp/nnc_idx_test.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(runtime_idx, .init = make_dir, .fini = remove_dir);

static void path_of(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", dir, name); }

/* An IDX header for unsigned bytes with the given sizes; returns its length. */
static size_t idx_header(uint8_t *h, uint32_t magic, int ndims, const uint32_t *sizes) {
    uint32_t words[4] = {magic, ndims > 0 ? sizes[0] : 0, ndims > 1 ? sizes[1] : 0, ndims > 2 ? sizes[2] : 0};
    for (int i = 0; i <= ndims; i++)
        for (int b = 0; b < 4; b++) h[4 * i + b] = (uint8_t)(words[i] >> (24 - 8 * b));
    return 4 + 4 * (size_t)ndims;
}

/* Write header + `n` data bytes (value i % 251), raw or gzip. */
static void write_idx(const char *name, int gzip, uint32_t magic, int ndims, const uint32_t *sizes, size_t n) {
    char path[256];
    path_of(path, sizeof path, name);
    uint8_t h[16];
    size_t hl = idx_header(h, magic, ndims, sizes);
    uint8_t *data = malloc(n + 1);
    for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i % 251);
    if (gzip) {
        gzFile f = gzopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(gzwrite(f, h, (unsigned)hl), (int)hl);
        if (n) cr_assert_eq(gzwrite(f, data, (unsigned)n), (int)n);
        cr_assert_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(h, 1, hl, f), hl);
        cr_assert_eq(fwrite(data, 1, n, f), n);
        cr_assert_eq(fclose(f), 0);
    }
    free(data);
}

static const uint32_t img_sizes[3] = {3, 4, 5};

/* Read `name` expecting failure; the message must name the file and contain `needle`. */
static void expect_read_fails(const char *name, int ndims, const char *needle) {
    char path[256], err[512] = "";
    path_of(path, sizeof path, name);
    int dims[3];
    uint8_t *data = (uint8_t *)1;
    size_t count = 99;
    cr_assert_eq(nnc_idx_read(path, ndims, dims, &data, &count, err, sizeof err), -1, "%s was accepted", name);
    cr_expect_null(data);
    cr_expect_eq(count, 0);
    cr_expect_not_null(strstr(err, path), "message does not name the file: %s", err);
    cr_expect_not_null(strstr(err, needle), "message lacks '%s': %s", needle, err);
}

static void expect_read_ok(const char *name) {
    char path[256], err[512] = "";
    path_of(path, sizeof path, name);
    int dims[3];
    uint8_t *data;
    size_t count;
    cr_assert_eq(nnc_idx_read(path, 3, dims, &data, &count, err, sizeof err), 0, "%s", err);
    cr_expect_eq(dims[0], 3);
    cr_expect_eq(dims[1], 4);
    cr_expect_eq(dims[2], 5);
    cr_expect_eq(count, 60);
    for (size_t i = 0; i < 60; i++) cr_expect_eq(data[i], i % 251);
    free(data);
}

Test(runtime_idx, reads_raw_file) {
    write_idx("a", 0, 0x803, 3, img_sizes, 60);
    expect_read_ok("a");
}

Test(runtime_idx, reads_gzip_file) {
    write_idx("a.gz", 1, 0x803, 3, img_sizes, 60);
    expect_read_ok("a.gz");
}

Test(runtime_idx, refuses_truncated_raw_and_gzip) {
    write_idx("short", 0, 0x803, 3, img_sizes, 59);
    expect_read_fails("short", 3, "truncated");
    write_idx("short.gz", 1, 0x803, 3, img_sizes, 59);
    expect_read_fails("short.gz", 3, "truncated");
}

Test(runtime_idx, refuses_trailing_bytes) {
    write_idx("long", 0, 0x803, 3, img_sizes, 61);
    expect_read_fails("long", 3, "trailing");
    write_idx("long.gz", 1, 0x803, 3, img_sizes, 61);
    expect_read_fails("long.gz", 3, "trailing");
}

Test(runtime_idx, refuses_wrong_magic) {
    write_idx("magic", 0, 0x0803 | 0x01000000, 3, img_sizes, 60);
    expect_read_fails("magic", 3, "magic");
    /* a labels file where images are expected, and the other way round */
    const uint32_t n[1] = {60};
    write_idx("labels", 0, 0x801, 1, n, 60);
    expect_read_fails("labels", 3, "magic");
    write_idx("images", 0, 0x803, 3, img_sizes, 60);
    expect_read_fails("images", 1, "magic");
}

Test(runtime_idx, refuses_empty_and_header_only_files) {
    write_idx("empty", 0, 0x803, 0, img_sizes, 0); /* 4 bytes: magic only */
    expect_read_fails("empty", 3, "header");
    const uint32_t zero[3] = {0, 28, 28};
    write_idx("zero", 0, 0x803, 3, zero, 0);
    expect_read_fails("zero", 3, "size 0");
}

Test(runtime_idx, refuses_absurd_sizes_without_allocating_them) {
    const uint32_t huge[3] = {60000, 100000, 100000};
    write_idx("huge", 0, 0x803, 3, huge, 10);
    expect_read_fails("huge", 3, "bytes");
}

Test(runtime_idx, refuses_corrupt_gzip) {
    char path[256];
    path_of(path, sizeof path, "bad.gz");
    const uint32_t big[3] = {10, 28, 28};
    write_idx("bad.gz", 1, 0x803, 3, big, 7840);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    for (long off = 20; off < size - 8; off += 7) { /* spoil the deflate stream, keep the gzip header */
        fseek(f, off, SEEK_SET);
        fputc(0xA5, f);
    }
    fclose(f);
    expect_read_fails("bad.gz", 3, "");
}

Test(runtime_idx, refuses_missing_file) { expect_read_fails("nope", 3, "cannot open"); }

/* The bytes of a file in the test directory. */
static uint8_t *slurp(const char *name, size_t *len) {
    char path[256];
    path_of(path, sizeof path, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    uint8_t *buf = malloc(1 << 16);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

static void spit(const char *name, const uint8_t *bytes, size_t len) {
    char path[256];
    path_of(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(bytes, 1, len, f), len);
    fclose(f);
}

/* `cat a.gz b.gz > ab.gz` is one valid gzip file (gzip itself reads it). */
Test(runtime_idx, reads_gzip_of_two_members) {
    uint8_t h[16];
    size_t hl = idx_header(h, 0x803, 3, img_sizes);
    uint8_t data[60];
    for (int i = 0; i < 60; i++) data[i] = (uint8_t)(i % 251);
    char path[256];
    path_of(path, sizeof path, "two.gz");
    for (int member = 0; member < 2; member++) { /* header in the first member, data in the second */
        gzFile f = gzopen(path, member ? "ab" : "wb");
        cr_assert_not_null(f);
        if (member) cr_assert_eq(gzwrite(f, data, 60), 60);
        else cr_assert_eq(gzwrite(f, h, (unsigned)hl), (int)hl);
        cr_assert_eq(gzclose(f), Z_OK);
    }
    expect_read_ok("two.gz");
}

Test(runtime_idx, refuses_gzip_without_its_trailer_or_with_a_wrong_crc) {
    write_idx("a.gz", 1, 0x803, 3, img_sizes, 60);
    size_t len;
    uint8_t *bytes = slurp("a.gz", &len);
    spit("notrailer.gz", bytes, len - 8); /* the data is all there, its CRC and length are not */
    expect_read_fails("notrailer.gz", 3, "corrupt after the data");
    bytes[len - 8] ^= 0x01; /* the CRC-32 of the uncompressed data */
    spit("badcrc.gz", bytes, len);
    expect_read_fails("badcrc.gz", 3, "incorrect data check");
    free(bytes);
}

Test(runtime_idx, refuses_garbage_after_the_gzip_stream) {
    write_idx("a.gz", 1, 0x803, 3, img_sizes, 60);
    size_t len;
    uint8_t *bytes = slurp("a.gz", &len);
    bytes = realloc(bytes, len + 3);
    memcpy(bytes + len, "xyz", 3);
    spit("garbage.gz", bytes, len + 3);
    expect_read_fails("garbage.gz", 3, "trailing");
    free(bytes);
}

/* The decoder the reader uses, on bytes in memory, naming what it was given. */
Test(runtime_idx, decodes_from_memory) {
    const uint32_t n[1] = {3};
    uint8_t buf[11];
    size_t hl = idx_header(buf, 0x801, 1, n);
    buf[hl] = 7, buf[hl + 1] = 8, buf[hl + 2] = 9;
    int dims[3];
    uint8_t *data;
    size_t count;
    char err[256] = "";
    cr_assert_eq(nnc_idx_decode("mem", buf, hl + 3, 1, dims, &data, &count, err, sizeof err), 0, "%s", err);
    cr_expect_eq(count, 3);
    cr_expect_eq(dims[0], 3);
    cr_expect_eq(data[2], 9);
    free(data);
    cr_assert_eq(nnc_idx_decode("mem", buf, hl + 2, 1, dims, &data, &count, err, sizeof err), -1);
    cr_expect_null(data);
    cr_expect_not_null(strstr(err, "mem: truncated"), "%s", err);
}

/* ------------------------------------------------------------------------ */

static void write_split(const char *prefix, int gzip, uint32_t n_images, uint32_t n_labels) {
    char name[128];
    const uint32_t sizes[3] = {n_images, 4, 4};
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, gzip ? ".gz" : "");
    write_idx(name, gzip, 0x803, 3, sizes, (size_t)n_images * 16);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, gzip ? ".gz" : "");
    const uint32_t ln[1] = {n_labels};
    write_idx(name, gzip, 0x801, 1, ln, n_labels);
}

Test(runtime_idx, dataset_load_gzip_and_raw) {
    write_split("train", 1, 5, 5);
    write_split("t10k", 0, 3, 3);
    nnc_dataset tr, te;
    char err[512] = "";
    cr_assert_eq(nnc_dataset_load(&tr, dir, "train", err, sizeof err), 0, "%s", err);
    cr_assert_eq(nnc_dataset_load(&te, dir, "t10k", err, sizeof err), 0, "%s", err);
    cr_expect_eq(tr.n, 5);
    cr_expect_eq(tr.h, 4);
    cr_expect_eq(tr.w, 4);
    cr_expect_eq(te.n, 3);
    cr_expect_eq(tr.images[17], 17);
    cr_expect_eq(te.labels[2], 2);
    nnc_dataset_free(&tr);
    nnc_dataset_free(&te);
    cr_expect_null(tr.images);
}

Test(runtime_idx, dataset_label_count_mismatch) {
    write_split("train", 1, 5, 4);
    nnc_dataset ds;
    char err[512] = "";
    cr_assert_eq(nnc_dataset_load(&ds, dir, "train", err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "4 labels"), "%s", err);
    cr_expect_not_null(strstr(err, "5 images"), "%s", err);
    cr_expect_null(ds.images);
}

Test(runtime_idx, dataset_missing_files) {
    nnc_dataset ds;
    char err[512] = "";
    cr_assert_eq(nnc_dataset_load(&ds, dir, "train", err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "train-images-idx3-ubyte"), "%s", err);
    cr_expect_not_null(strstr(err, "not found"), "%s", err);
}

Test(runtime_idx, dataset_check_against_model) {
    write_split("train", 0, 20, 20); /* labels are 0..19 */
    nnc_dataset ds;
    char err[512] = "";
    cr_assert_eq(nnc_dataset_load(&ds, dir, "train", err, sizeof err), 0, "%s", err);
    nnc_model m = {.name = "tiny", .in_h = 4, .in_w = 4, .in_c = 1, .n_classes = 20};
    cr_expect_eq(nnc_dataset_check(&ds, &m, "train", err, sizeof err), 0, "%s", err);
    m.n_classes = 10;
    cr_expect_eq(nnc_dataset_check(&ds, &m, "train", err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "label 10"), "%s", err);
    cr_expect_not_null(strstr(err, "out of range"), "%s", err);
    m.n_classes = 20;
    m.in_h = 28;
    cr_expect_eq(nnc_dataset_check(&ds, &m, "train", err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "4x4"), "%s", err);
    m.in_h = 4;
    m.in_c = 3;
    cr_expect_eq(nnc_dataset_check(&ds, &m, "train", err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "4x4x1 but model tiny expects 4x4x3"), "%s", err);
    nnc_dataset_free(&ds);
}
