/* Tests for runtime/files.c: whole-file reads with a size limit, and atomic writes. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nncrt.h"

static char dir[64];

static void make_dir(void) {
    strcpy(dir, "/tmp/nnc_files_test.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(runtime_files, .init = make_dir, .fini = remove_dir);

/* A file of n bytes (value i % 253) written atomically; returns its path in out. */
static void write_bytes(char *out, size_t outlen, const char *name, size_t n) {
    snprintf(out, outlen, "%s/%s", dir, name);
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(i % 253);
    char err[512] = "";
    cr_assert_eq(nnc_write_file_atomically(out, buf, n, err, sizeof err), 0, "%s", err);
    free(buf);
}

Test(runtime_files, reads_back_what_was_written_across_buffer_growth) {
    char path[256], err[512] = "";
    write_bytes(path, sizeof path, "a", 200000); /* more than the first 64 KiB buffer */
    uint8_t *data;
    size_t size;
    cr_assert_eq(nnc_read_file(path, "a test file", 1 << 20, &data, &size, err, sizeof err), 0, "%s", err);
    cr_assert_eq(size, 200000);
    for (size_t i = 0; i < size; i++) cr_assert_eq(data[i], i % 253, "byte %zu", i);
    free(data);
}

Test(runtime_files, refuses_a_file_over_the_limit_naming_what_it_should_be) {
    char path[256], err[512] = "";
    write_bytes(path, sizeof path, "big", (3 << 20) + 1);
    uint8_t *data = (uint8_t *)1;
    size_t size = 7;
    cr_assert_eq(nnc_read_file(path, "a test file", 3 << 20, &data, &size, err, sizeof err), -1);
    cr_expect_null(data);
    cr_expect_eq(size, 0);
    cr_expect_not_null(strstr(err, path), "%s", err);
    cr_expect_not_null(strstr(err, "larger than 3 MiB, too large for a test file"), "%s", err);
    /* exactly at the limit is fine */
    write_bytes(path, sizeof path, "edge", 3 << 20);
    cr_assert_eq(nnc_read_file(path, "a test file", 3 << 20, &data, &size, err, sizeof err), 0, "%s", err);
    cr_expect_eq(size, 3 << 20);
    free(data);
}

Test(runtime_files, reads_a_pipe_and_states_small_limits_in_bytes) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(write(fds[1], "0123456789", 10), 10);
    close(fds[1]);
    char path[64], err[512] = "";
    snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
    uint8_t *data;
    size_t size;
    cr_assert_eq(nnc_read_file(path, "x", 100, &data, &size, err, sizeof err), 0, "%s", err);
    cr_expect_eq(size, 10);
    cr_expect_eq(memcmp(data, "0123456789", 10), 0);
    free(data);
    close(fds[0]);
    write_bytes(path, sizeof path, "eleven", 11);
    cr_assert_eq(nnc_read_file(path, "a tiny file", 10, &data, &size, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "larger than 10 bytes, too large for a tiny file"), "%s", err);
}

Test(runtime_files, names_missing_files_and_directories) {
    char path[256], err[512] = "";
    uint8_t *data;
    size_t size;
    snprintf(path, sizeof path, "%s/none", dir);
    cr_assert_eq(nnc_read_file(path, "x", 100, &data, &size, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "cannot open"), "%s", err);
    cr_assert_eq(nnc_read_file(dir, "x", 100, &data, &size, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "not a regular file but a directory"), "%s", err);
    /* a device could be endless */
    cr_assert_eq(nnc_read_file("/dev/zero", "x", 100, &data, &size, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "/dev/zero: not a regular file"), "%s", err);
}

Test(runtime_files, atomic_write_honours_the_umask_and_leaves_no_temporary_file) {
    char path[256];
    mode_t old = umask(027);
    write_bytes(path, sizeof path, "w", 10);
    umask(old);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0640, "mode %o", st.st_mode & 0777);
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d));) entries += e->d_name[0] != '.';
    closedir(d);
    cr_expect_eq(entries, 1, "a temporary file was left behind");
}

Test(runtime_files, replacing_keeps_the_mode_and_devices_are_written_in_place) {
    char path[256], err[512] = "";
    write_bytes(path, sizeof path, "script", 10);
    cr_assert_eq(chmod(path, 0750), 0);
    cr_assert_eq(nnc_write_file_atomically(path, "new", 3, err, sizeof err), 0, "%s", err);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0750, "mode %o", st.st_mode & 0777);
    cr_expect_eq(st.st_size, 3);
    cr_assert_eq(nnc_write_file_atomically("/dev/null", "abc", 3, err, sizeof err), 0, "%s", err);
    cr_assert_eq(stat("/dev/null", &st), 0);
    cr_expect(S_ISCHR(st.st_mode), "/dev/null was replaced");
}

Test(runtime_files, failed_atomic_write_leaves_nothing_behind) {
    char sub[300], err[512] = "";
    /* a directory where the file should go: the write fails at the rename */
    snprintf(sub, sizeof sub, "%s/sub", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    cr_assert_eq(nnc_write_file_atomically(sub, "abc", 3, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, "cannot replace it: Is a directory"), "%s", err);
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d));) entries += e->d_name[0] != '.';
    closedir(d);
    cr_expect_eq(entries, 1, "the temporary file was left behind");
}
