/* Tests for runtime/checkpoint.c. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nncrt.h"

#define N_PARAMS 1000
#define N_STATE 7

static char dir[64], path[128];
static float params[N_PARAMS], state[N_STATE];
static const float prep[2] = {33.3f, 78.5f};
static const nnc_model model = {.name = "ckpt", .n_params = N_PARAMS, .n_state = N_STATE,
                                .signature = 0x0123456789abcdefULL};

static void setup(void) {
    strcpy(dir, "/tmp/nnc_ckpt_test.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/w.nncw", dir);
    for (int i = 0; i < N_PARAMS; i++) params[i] = (float)i * 0.25f - 7.0f;
    for (int i = 0; i < N_STATE; i++) state[i] = 1.0f / (float)(i + 1);
}

static void teardown(void) {
    char cmd[128];
    chmod(dir, 0700);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(runtime_checkpoint, .init = setup, .fini = teardown);

static void save_ok(void) {
    char err[512] = "";
    cr_assert_eq(nnc_checkpoint_save(path, &model, params, state, prep, err, sizeof err), 0, "%s", err);
}

/* Load into fresh buffers and compare with the saved globals. */
static void expect_loads_original(void) {
    float p[N_PARAMS], s[N_STATE], pr[2];
    char err[512] = "";
    cr_assert_eq(nnc_checkpoint_load(path, &model, p, s, pr, err, sizeof err), 0, "%s", err);
    cr_expect_arr_eq(p, params, sizeof p);
    cr_expect_arr_eq(s, state, sizeof s);
    cr_expect_eq(pr[0], prep[0]);
    cr_expect_eq(pr[1], prep[1]);
}

static void expect_load_fails(const nnc_model *m, const char *needle) {
    float p[N_PARAMS], s[N_STATE], pr[2];
    char err[512] = "";
    cr_assert_eq(nnc_checkpoint_load(path, m, p, s, pr, err, sizeof err), -1, "bad checkpoint accepted");
    cr_expect_not_null(strstr(err, path), "message does not name the file: %s", err);
    cr_expect_not_null(strstr(err, needle), "message lacks '%s': %s", needle, err);
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

/* The directory must hold only w.nncw: no temporary left behind. */
static void expect_no_temp_files(void) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    int others = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "w.nncw")) others++;
    closedir(d);
    cr_expect_eq(others, 0, "%d stray files in %s", others, dir);
}

Test(runtime_checkpoint, round_trip_and_documented_size) {
    save_ok();
    cr_expect_eq(file_size(path), 40 + 4 * (N_PARAMS + N_STATE) + 4);
    expect_loads_original();
    expect_no_temp_files();
    save_ok(); /* overwriting an existing checkpoint works too */
    expect_loads_original();
}

Test(runtime_checkpoint, header_is_little_endian_nncw) {
    save_ok();
    FILE *f = fopen(path, "rb");
    uint8_t h[16];
    cr_assert_eq(fread(h, 1, 16, f), 16u);
    fclose(f);
    cr_expect_eq(memcmp(h, "NNCW", 4), 0);
    cr_expect_eq(h[4], 1);
    cr_expect_eq(h[5] | h[6] | h[7], 0);
    cr_expect_eq(h[8], 0xef); /* signature, low byte first */
    cr_expect_eq(h[15], 0x01);
}

Test(runtime_checkpoint, refuses_another_models_file) {
    save_ok();
    nnc_model other = model;
    other.signature = 0xfeedULL;
    expect_load_fails(&other, "written by another model");
    expect_load_fails(&other, "0x0123456789abcdef");
}

Test(runtime_checkpoint, refuses_size_mismatch_with_same_signature) {
    save_ok();
    nnc_model other = model;
    other.n_params = N_PARAMS - 1;
    expect_load_fails(&other, "parameters");
}

Test(runtime_checkpoint, detects_a_corrupt_byte) {
    save_ok();
    FILE *f = fopen(path, "r+b");
    fseek(f, 40 + 4 * 500 + 2, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 40 + 4 * 500 + 2, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
    expect_load_fails(&model, "checksum mismatch: file is corrupt");
}

Test(runtime_checkpoint, refuses_truncated_and_extended_files) {
    save_ok();
    long size = file_size(path);
    cr_assert_eq(truncate(path, size - 3), 0);
    expect_load_fails(&model, "truncated");
    cr_assert_eq(truncate(path, 10), 0);
    expect_load_fails(&model, "not an nnc checkpoint");
    save_ok();
    FILE *f = fopen(path, "ab");
    fputc(0, f);
    fclose(f);
    expect_load_fails(&model, "truncated or corrupt");
}

Test(runtime_checkpoint, refuses_other_files) {
    FILE *f = fopen(path, "wb");
    fputs("this is not a checkpoint at all, just some text that is long enough", f);
    fclose(f);
    expect_load_fails(&model, "not an nnc checkpoint");
    remove(path);
    expect_load_fails(&model, "cannot open");
}

/* Save new weights where saving must fail; returns the child's exit status. */
static int save_in_child(int drop_to_nobody, rlim_t file_size_limit) {
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        /* root ignores directory permissions, so become nobody first */
        if (drop_to_nobody && geteuid() == 0 && setuid(65534) != 0) _exit(4);
        if (file_size_limit) {
            signal(SIGXFSZ, SIG_IGN); /* get EFBIG from write instead of dying */
            struct rlimit rl = {file_size_limit, file_size_limit};
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(4);
        }
        for (int i = 0; i < N_PARAMS; i++) params[i] = 42.0f;
        char err[512] = "";
        int rc = nnc_checkpoint_save(path, &model, params, state, prep, err, sizeof err);
        _exit(rc == -1 && strstr(err, path) ? 3 : rc == 0 ? 0 : 5);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

Test(runtime_checkpoint, unwritable_dir_keeps_the_old_file) {
    save_ok();
    cr_assert_eq(chmod(dir, 0555), 0); /* readable and searchable by all, writable by none */
    cr_expect_eq(save_in_child(1, 0), 3, "saving into a read-only directory did not fail cleanly");
    chmod(dir, 0700);
    expect_loads_original();
    expect_no_temp_files();
}

Test(runtime_checkpoint, failed_write_keeps_the_old_file_and_removes_the_temp) {
    save_ok();
    cr_expect_eq(save_in_child(0, 1000), 3, "a write hitting the file size limit did not fail cleanly");
    expect_loads_original();
    expect_no_temp_files();
}

Test(runtime_checkpoint, missing_directory_fails_with_message) {
    char err[512] = "";
    char p[256];
    snprintf(p, sizeof p, "%s/no/such/dir/w.nncw", dir);
    cr_expect_eq(nnc_checkpoint_save(p, &model, params, state, prep, err, sizeof err), -1);
    cr_expect_not_null(strstr(err, p), "%s", err);
}
