/*
 * dist.c - several processes training one model (MPI): the only file that
 * calls MPI. See "Several processes" in nncrt.h for the scheme.
 *
 * Built twice. Without NNC_MPI (in libnncrt.a) a run is one process: the
 * functions below are the one-process case, and a trainer that mpirun started
 * as one of several says so and stops instead of training N copies. With
 * NNC_MPI (mpicc, in libnncrt_mpi.a) they are the real exchange.
 *
 * Reproducible sums, as the MPI standard advises: a reduction (MPI_Allreduce)
 * may add in any order, so the processes gather each other's partial results
 * (MPI_Allgatherv) and every process adds them itself in slice order. That
 * costs bytes: every process receives every other process's slice gradients,
 * (N - 1)/N of CHUNKS copies of the parameters per step, where a ring
 * allreduce would receive about 2 (N - 1)/N of one copy.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "nncrt.h"

#ifdef NNC_MPI
#include <mpi.h>
#endif

struct nnc_dist {
    int rank, size;
    double sent, received, exchanges; /* nnc_dist_traffic */
    unsigned char *pack; /* strided blocks packed for the exchange */
    size_t pack_cap;
};

int nnc_dist_rank(const nnc_dist *d) { return d ? d->rank : 0; }
int nnc_dist_size(const nnc_dist *d) { return d ? d->size : 1; }

void nnc_dist_traffic(const nnc_dist *d, double *sent, double *received, double *exchanges) {
    *sent = d ? d->sent : 0.0;
    *received = d ? d->received : 0.0;
    *exchanges = d ? d->exchanges : 0.0;
}

void nnc_dist_blocks(const nnc_dist *d, int n, int *lo, int *hi) {
    int rank = nnc_dist_rank(d), size = nnc_dist_size(d);
    *lo = (int)((long)n * rank / size);
    *hi = (int)((long)n * (rank + 1) / size);
}

#ifndef NNC_MPI

/* The rank count and rank mpirun (Open MPI, or MPICH's Hydra and other PMI launchers) gave this
 * process in its environment; 1 and 0 when none did. */
static int launcher_size(int *rank) {
    static const char *const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"};
    static const char *const rank_vars[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MPI_LOCALRANKID"};
    for (size_t i = 0; i < sizeof size_vars / sizeof size_vars[0]; i++) {
        const char *s = getenv(size_vars[i]), *r = getenv(rank_vars[i]);
        if (s && atoi(s) > 0) {
            *rank = r ? atoi(r) : 0;
            return atoi(s);
        }
    }
    *rank = 0;
    return 1;
}

int nnc_dist_start(int *argc, char ***argv, int slices, nnc_dist **out, char *err, size_t errlen) {
    (void)argc, (void)argv, (void)slices;
    int rank, size = launcher_size(&rank);
    *out = NULL;
    if (size <= 1) return 0;
    nnc_set_error(err, errlen,
                  "mpirun started this trainer as process %d of %d, but it was built without MPI: each process "
                  "would train its own copy. Link it against libnncrt_mpi.a with mpicc (`make mpi` builds "
                  "build/bin-mpi/), or run it without mpirun",
                  rank, size);
    return -1;
}

void nnc_dist_share(const nnc_dist *d, void *base, size_t bytes, size_t stride, int n) {
    (void)d, (void)base, (void)bytes, (void)stride, (void)n;
}

int nnc_dist_same(const nnc_dist *d, const void *p, size_t bytes, const char *what, char *err, size_t errlen) {
    (void)d, (void)p, (void)bytes, (void)what, (void)err, (void)errlen;
    return 0;
}

int nnc_dist_finish(nnc_dist *d, int status) {
    (void)d;
    return status;
}

#else /* NNC_MPI */

static int check_rank_count(int size, int slices, char *err, size_t errlen) {
    if (slices % size == 0) return 0;
    nnc_set_error(err, errlen,
                  "%d processes cannot share this model's %d slices of a batch evenly: run a number of processes "
                  "that divides %d (the slice count is fixed so that the arithmetic, and so the weights, never "
                  "depend on how many processes or threads run)",
                  size, slices, slices);
    return -1;
}

int nnc_dist_start(int *argc, char ***argv, int slices, nnc_dist **out, char *err, size_t errlen) {
    *out = NULL;
    int provided, size, rank;
    /* SERIALIZED: the exchanges run in `omp single` blocks, on whichever thread gets there first. */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
        nnc_set_error(err, errlen, "MPI failed to start (MPI_Init_thread)");
        return -1;
    }
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (size == 1) { /* one process: the one-process code, exactly */
        MPI_Finalize();
        return 0;
    }
    if (provided < MPI_THREAD_SERIALIZED) {
        nnc_set_error(err, errlen, "this MPI library cannot be called from OpenMP threads (MPI_THREAD_SERIALIZED)");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (check_rank_count(size, slices, err, errlen) != 0) {
        /* One message, printed before any process leaves: mpirun stops the job as soon as one
         * exits with an error, and a message still to be written would be lost with it. */
        if (rank == 0) fprintf(stderr, "%s: error: %s\n", (*argv)[0], err);
        err[0] = '\0';
        MPI_Barrier(MPI_COMM_WORLD);
        MPI_Finalize();
        return -1;
    }
    nnc_dist *d = calloc(1, sizeof *d);
    if (!d) {
        nnc_set_error(err, errlen, "out of memory");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    d->rank = rank, d->size = size;
    *out = d;
    return 0;
}

/* Exchange the processes' blocks of `unit` bytes in place: block k of n at base + k*unit. */
static void allgather_blocks(const nnc_dist *d, unsigned char *base, size_t unit, int n) {
    int counts[d->size], displs[d->size];
    for (int r = 0; r < d->size; r++) {
        int lo = (int)((long)n * r / d->size), hi = (int)((long)n * (r + 1) / d->size);
        counts[r] = (int)((size_t)(hi - lo) * unit);
        displs[r] = (int)((size_t)lo * unit);
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, base, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
}

void nnc_dist_share(const nnc_dist *d_, void *base, size_t bytes, size_t stride, int n) {
    nnc_dist *d = (nnc_dist *)d_; /* the packing buffer is scratch; callers see no change */
    if (!d) return;
    int mine_lo, mine_hi;
    nnc_dist_blocks(d, n, &mine_lo, &mine_hi);
    d->sent += (double)(mine_hi - mine_lo) * (double)bytes;
    d->received += (double)(n - (mine_hi - mine_lo)) * (double)bytes;
    d->exchanges += 1;
    if (stride == bytes) { /* contiguous blocks: in place */
        allgather_blocks(d, base, bytes, n);
        return;
    }
    size_t need = bytes * (size_t)n;
    if (need > d->pack_cap) {
        unsigned char *p = realloc(d->pack, need);
        if (!p) {
            fprintf(stderr, "error: rank %d: out of memory for an exchange of %zu bytes\n", d->rank, need);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        d->pack = p, d->pack_cap = need;
    }
    unsigned char *b = base;
    int lo, hi;
    nnc_dist_blocks(d, n, &lo, &hi);
    for (int k = lo; k < hi; k++) memcpy(d->pack + (size_t)k * bytes, b + (size_t)k * stride, bytes);
    allgather_blocks(d, d->pack, bytes, n);
    for (int k = 0; k < n; k++)
        if (k < lo || k >= hi) memcpy(b + (size_t)k * stride, d->pack + (size_t)k * bytes, bytes);
}

int nnc_dist_same(const nnc_dist *d, const void *p, size_t bytes, const char *what, char *err, size_t errlen) {
    if (!d) return 0;
    uint32_t mine = nnc_crc32(0, p, bytes), all[d->size];
    MPI_Allgather(&mine, 1, MPI_UINT32_T, all, 1, MPI_UINT32_T, MPI_COMM_WORLD);
    for (int r = 1; r < d->size; r++)
        if (all[r] != all[0]) {
            nnc_set_error(err, errlen,
                          "%s differs between processes: rank 0 has CRC %08x, rank %d %08x (every process must "
                          "read the same files)",
                          what, (unsigned)all[0], r, (unsigned)all[r]);
            return -1;
        }
    return 0;
}

int nnc_dist_finish(nnc_dist *d, int status) {
    if (!d) return status;
    if (status != 0) MPI_Abort(MPI_COMM_WORLD, status);
    free(d->pack);
    free(d);
    MPI_Finalize();
    return status;
}

#endif /* NNC_MPI */
