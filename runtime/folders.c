/*
 * folders.c - the image-folder layout (Keras's image_dataset_from_directory):
 * SPLIT/<class>/<image>, decoded once into the uint8 array the trainer reads.
 *
 * The order of the images is defined, so that a run is reproducible and can be
 * compared with the same images in IDX files: classes in sorted order of
 * their folder names, and within a class the files in sorted order of their
 * names, both compared byte by byte (strcmp, whatever the locale). Hidden
 * entries (a leading '.') and files without a .png, .jpg or .jpeg extension
 * (any case) are skipped, as Keras skips files of other formats.
 *
 * Memory stays bounded by the decoded array itself: the listing keeps each
 * file's name once, in one growing buffer, and each thread holds one encoded
 * file and one decoded image at a time.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nncrt.h"

#define MAX_CLASSES 256                  /* labels are bytes */
#define MAX_IMAGE_FILE_BYTES (64L << 20) /* an encoded training image; larger is refused unread */
#define PROGRESS_SECONDS 0.25
#define PATH_MAX_LEN 4096

/* Names in one buffer: name i is text + offset[i]. */
typedef struct {
    char *text;
    size_t len, cap;
    size_t *offset;
    int n, cap_n;
} name_list;

static void names_free(name_list *l) {
    free(l->text), free(l->offset);
    memset(l, 0, sizeof *l);
}

static int names_add(name_list *l, const char *name) {
    size_t need = strlen(name) + 1;
    if (l->len + need > l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4096;
        while (cap < l->len + need) cap *= 2;
        char *text = realloc(l->text, cap);
        if (!text) return -1;
        l->text = text, l->cap = cap;
    }
    if (l->n == l->cap_n) {
        int cap_n = l->cap_n ? 2 * l->cap_n : 256;
        size_t *offset = realloc(l->offset, (size_t)cap_n * sizeof *offset);
        if (!offset) return -1;
        l->offset = offset, l->cap_n = cap_n;
    }
    memcpy(l->text + l->len, name, need);
    l->offset[l->n++] = l->len;
    l->len += need;
    return 0;
}

static const char *name_at(const name_list *l, int i) { return l->text + l->offset[i]; }

/* qsort over offsets needs the buffer: sort in a copy of pointers instead. */
static int compare_strings(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sort names [from, to) of l by strcmp (offsets reordered, text untouched). */
static int names_sort(name_list *l, int from, int to) {
    int n = to - from;
    if (n < 2) return 0;
    char **p = malloc((size_t)n * sizeof *p);
    if (!p) return -1;
    for (int i = 0; i < n; i++) p[i] = l->text + l->offset[from + i];
    qsort(p, (size_t)n, sizeof *p, compare_strings);
    for (int i = 0; i < n; i++) l->offset[from + i] = (size_t)(p[i] - l->text);
    free(p);
    return 0;
}

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Append dir's entries that are folders (want_dirs) or image files, unsorted; returns how many, or -1. */
static int list_dir(name_list *l, const char *dir, int want_dirs, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) {
        nnc_set_error(err, errlen, "%s: cannot open the folder", dir);
        return -1;
    }
    int added = 0;
    char path[PATH_MAX_LEN];
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        if (want_dirs ? !is_dir(path) : !is_image_name(e->d_name) || is_dir(path)) continue;
        if (names_add(l, e->d_name) != 0) {
            closedir(d);
            nnc_set_error(err, errlen, "%s: out of memory listing the folder", dir);
            return -1;
        }
        added++;
    }
    closedir(d);
    return added;
}

/* The index of name among the training classes, or -1. */
static int class_index(const nnc_dataset *classes, const char *name) {
    for (int k = 0; k < classes->n_class_names; k++)
        if (strcmp(classes->class_names[k], name) == 0) return k;
    return -1;
}

/* ds's class names: copies of train's, or this split's own folders. */
static int set_class_names(nnc_dataset *ds, const nnc_dataset *classes, const name_list *folders) {
    int n = classes ? classes->n_class_names : folders->n;
    ds->class_names = calloc((size_t)n, sizeof *ds->class_names);
    if (!ds->class_names) return -1;
    ds->n_class_names = n;
    for (int k = 0; k < n; k++)
        if (!(ds->class_names[k] = strdup(classes ? classes->class_names[k] : name_at(folders, k)))) return -1;
    return 0;
}

/* The class folders of split_dir, sorted; -1 with a message when there are none or too many. */
static int list_classes(name_list *folders, const char *split_dir, char *err, size_t errlen) {
    if (list_dir(folders, split_dir, 1, err, errlen) < 0) return -1;
    if (folders->n == 0) {
        nnc_set_error(err, errlen, "%s: no class folders (the layout is %s/<class>/<image>.png|.jpg)", split_dir,
                      split_dir);
        return -1;
    }
    if (folders->n > MAX_CLASSES) {
        nnc_set_error(err, errlen, "%s: %d class folders; at most %d classes are supported", split_dir, folders->n,
                      MAX_CLASSES);
        return -1;
    }
    if (names_sort(folders, 0, folders->n) != 0) {
        nnc_set_error(err, errlen, "%s: out of memory", split_dir);
        return -1;
    }
    return 0;
}

int nnc_folder_classes(nnc_dataset *ds, const char *split_dir, char *err, size_t errlen) {
    memset(ds, 0, sizeof *ds);
    name_list folders = {0};
    int rc = list_classes(&folders, split_dir, err, errlen);
    if (rc == 0 && set_class_names(ds, NULL, &folders) != 0) {
        nnc_set_error(err, errlen, "%s: out of memory", split_dir);
        nnc_dataset_free(ds);
        rc = -1;
    }
    names_free(&folders);
    return rc;
}

/* The listing: every class folder's image files, class by class, each sorted. */
typedef struct {
    name_list folders; /* sorted */
    name_list files;   /* grouped by folder, sorted within */
    int *first;        /* [folders.n + 1]: folder k's files are first[k] .. first[k+1] - 1 */
} listing;

static void listing_free(listing *li) {
    names_free(&li->folders), names_free(&li->files);
    free(li->first);
}

static int list_split(listing *li, const char *split_dir, char *err, size_t errlen) {
    memset(li, 0, sizeof *li);
    if (list_classes(&li->folders, split_dir, err, errlen) != 0) return -1;
    li->first = malloc(((size_t)li->folders.n + 1) * sizeof *li->first);
    if (!li->first) {
        nnc_set_error(err, errlen, "%s: out of memory", split_dir);
        return -1;
    }
    char path[PATH_MAX_LEN];
    for (int k = 0; k < li->folders.n; k++) {
        snprintf(path, sizeof path, "%s/%s", split_dir, name_at(&li->folders, k));
        li->first[k] = li->files.n;
        int found = list_dir(&li->files, path, 0, err, errlen);
        if (found < 0) return -1;
        if (found == 0) {
            nnc_set_error(err, errlen, "%s: empty class folder (no .png, .jpg or .jpeg file)", path);
            return -1;
        }
        if (names_sort(&li->files, li->first[k], li->files.n) != 0) {
            nnc_set_error(err, errlen, "%s: out of memory", path);
            return -1;
        }
    }
    li->first[li->folders.n] = li->files.n;
    return 0;
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* What the decoding threads share. */
typedef struct {
    const char *split_dir;
    const listing *li;
    const int *folder_of; /* [n]: each image's folder in li */
    int h, w, c, resize;
    uint8_t *images;
    int first_bad;        /* the lowest failing image; n while none has failed */
    char message[1024];   /* its error */
} decode_job;

/* Read, decode and fit image i into its slot; 0 or -1 with a message. */
static int decode_one(const decode_job *job, int i, char *err, size_t errlen) {
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof path, "%s/%s/%s", job->split_dir, name_at(&job->li->folders, job->folder_of[i]),
             name_at(&job->li->files, i));
    uint8_t *bytes;
    size_t size;
    if (nnc_read_file(path, "an image", MAX_IMAGE_FILE_BYTES, &bytes, &size, err, errlen) != 0) return -1;
    nnc_image img;
    int rc = nnc_image_decode(path, bytes, size, job->c, &img, err, errlen);
    free(bytes);
    if (rc != 0) return -1;
    uint8_t *slot = job->images + (size_t)i * job->h * job->w * job->c;
    if (img.h == job->h && img.w == job->w)
        memcpy(slot, img.px, (size_t)job->h * job->w * job->c);
    else if (job->resize)
        nnc_image_resize_bilinear(&img, job->h, job->w, slot);
    else {
        nnc_set_error(err, errlen,
                      "%s: the image is %dx%d but the model's input is %dx%d (the first of another size, in the "
                      "loading order; add resize=bilinear to the model's input line to resize images)",
                      path, img.h, img.w, job->h, job->w);
        rc = -1;
    }
    free(img.px);
    return rc;
}

static void decode_all(decode_job *job, int n, int threads, FILE *progress) {
    const int live = progress && isatty(fileno(progress));
    const double t0 = seconds_now();
    double last = t0;
    int done = 0;
    job->first_bad = n;
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int i = 0; i < n; i++) {
        int bad;
#pragma omp atomic read
        bad = job->first_bad;
        if (bad < i) continue; /* an earlier image failed: its error is the one to report */
        char err[1024];
        if (decode_one(job, i, err, sizeof err) != 0) {
#pragma omp critical(nnc_folder_error)
            if (i < job->first_bad) {
                memcpy(job->message, err, sizeof job->message);
#pragma omp atomic write
                job->first_bad = i;
            }
        }
        int now_done;
#pragma omp atomic capture
        now_done = ++done;
        if (live && omp_get_thread_num() == 0 && seconds_now() - last >= PROGRESS_SECONDS) {
            last = seconds_now();
            fprintf(progress, "\rdecoding %s: %d/%d images", job->split_dir, now_done, n);
            fflush(progress);
        }
    }
    if (progress && job->first_bad == n) {
        double s = seconds_now() - t0;
        fprintf(progress, "%sdecoded %d images from %s into %dx%dx%d in %.1f s (%.0f images/s, %d thread%s)%s\n",
                live ? "\r" : "", n, job->split_dir, job->h, job->w, job->c, s, s > 0 ? n / s : 0.0, threads,
                threads == 1 ? "" : "s", live ? "\033[K" : "");
        fflush(progress);
    }
}

int nnc_folder_load(nnc_dataset *ds, const char *split_dir, const nnc_dataset *classes, int h, int w, int c,
                    int resize, int threads, FILE *progress, char *err, size_t errlen) {
    memset(ds, 0, sizeof *ds);
    listing li;
    int *folder_of = NULL, rc = -1;
    if (list_split(&li, split_dir, err, errlen) != 0) goto done;
    const int n = li.files.n;
    folder_of = malloc((size_t)n * sizeof *folder_of);
    ds->images = malloc((size_t)n * h * w * c);
    ds->labels = malloc((size_t)n);
    if (!folder_of || !ds->images || !ds->labels || set_class_names(ds, classes, &li.folders) != 0) {
        nnc_set_error(err, errlen, "%s: out of memory for %d images of %dx%dx%d", split_dir, n, h, w, c);
        goto done;
    }
    for (int k = 0; k < li.folders.n; k++) {
        int label = classes ? class_index(classes, name_at(&li.folders, k)) : k;
        if (label < 0) {
            nnc_set_error(err, errlen, "%s/%s: class '%s' is not among the training classes (%d folders, %s .. %s)",
                          split_dir, name_at(&li.folders, k), name_at(&li.folders, k), classes->n_class_names,
                          classes->class_names[0], classes->class_names[classes->n_class_names - 1]);
            goto done;
        }
        for (int i = li.first[k]; i < li.first[k + 1]; i++) folder_of[i] = k, ds->labels[i] = (uint8_t)label;
    }
    decode_job job = {.split_dir = split_dir, .li = &li, .folder_of = folder_of, .h = h, .w = w, .c = c,
                      .resize = resize, .images = ds->images};
    decode_all(&job, n, threads > 0 ? threads : 1, progress);
    if (job.first_bad < n) {
        nnc_set_error(err, errlen, "%s", job.message);
        goto done;
    }
    ds->n = n, ds->h = h, ds->w = w, ds->c = c;
    rc = 0;
done:
    listing_free(&li);
    free(folder_of);
    if (rc != 0) nnc_dataset_free(ds);
    return rc;
}
