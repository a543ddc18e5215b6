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
 * may add in any order, so the processes gather partial results and add them
 * in a fixed order themselves, the slice order one process uses. Batchnorm's
 * statistics and the losses, a few numbers a slice, are gathered whole
 * (nnc_dist_share: an allgather). The gradient, the bulk, is summed in parts
 * (nnc_dist_sum_slices): process r gathers part r of every slice's gradient
 * (an all-to-all), adds it up in slice order, and the summed parts are
 * gathered by all (an allgather). Each process then receives
 * 2 (N - 1) / N of the gradient's bytes a step, as much as a
 * bandwidth-optimal allreduce; gathering every slice whole would be N - 1
 * times the gradient.
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "nncrt.h"

#ifdef NNC_MPI
#include <mpi.h>
#endif

struct nnc_dist {
    int rank, size;
    nnc_traffic traffic; /* so far: nnc_dist_traffic */
    unsigned char *pack; /* strided blocks packed for the exchange */
    size_t pack_cap;
};

int nnc_dist_rank(const nnc_dist *d) { return d ? d->rank : 0; }
int nnc_dist_size(const nnc_dist *d) { return d ? d->size : 1; }

nnc_traffic nnc_dist_traffic(const nnc_dist *d) {
    nnc_traffic none = {0.0, 0.0, 0.0};
    return d ? d->traffic : none;
}

/* Where rank r's share of n things begins: n*r/size (the same formula as the generated code's slice_lo). */
static size_t share_lo(size_t n, int r, int size) { return n * (size_t)r / (size_t)size; }

void nnc_dist_blocks(const nnc_dist *d, int n, int *lo, int *hi) {
    int rank = nnc_dist_rank(d), size = nnc_dist_size(d);
    *lo = (int)share_lo((size_t)n, rank, size);
    *hi = (int)share_lo((size_t)n, rank + 1, size);
}

/* sum[j] = the slices' part[j], added in slice order: the one-process arithmetic (float, no reassociation). */
static void sum_in_slice_order(const float *part, size_t stride, size_t len, int n_slices, float *sum) {
    for (size_t j = 0; j < len; j++) {
        float s = part[j];
        for (int c = 1; c < n_slices; c++) s += part[(size_t)c * stride + j];
        sum[j] = s;
    }
}

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

#ifndef NNC_MPI

int nnc_dist_start(const char *prog, int slices, nnc_dist **out, char *err, size_t errlen) {
    (void)prog, (void)slices;
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

void nnc_dist_sum_slices(const nnc_dist *d, const float *slices, size_t count, int n_slices, float *sum) {
    (void)d;
    sum_in_slice_order(slices, count, count, n_slices, sum);
}

int nnc_dist_same(const nnc_dist *d, const char *prog, const void *p, size_t bytes, const char *what) {
    (void)d, (void)prog, (void)p, (void)bytes, (void)what;
    return 0;
}

int nnc_dist_finish(nnc_dist *d, int status) {
    (void)d;
    return status;
}

int nnc_dist_finish_together(nnc_dist *d, int status) {
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

/* Stop every process after printing why: a failure this process may have met alone. */
static void abort_all(int rank, const char *what) {
    fprintf(stderr, "error: rank %d: %s\n", rank, what);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

int nnc_dist_start(const char *prog, int slices, nnc_dist **out, char *err, size_t errlen) {
    *out = NULL;
    int provided, size, rank, launcher_rank, launched = launcher_size(&launcher_rank);
    /* SERIALIZED: the exchanges run in `omp single` blocks, on whichever thread gets there first.
     * No argc/argv: the trainer parsed its own flags, and mpirun passes none. */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
        nnc_set_error(err, errlen, "MPI failed to start (MPI_Init_thread)");
        return -1;
    }
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (size == 1 && launched > 1) { /* mpiexec of another MPI than the one linked: N lone copies */
        nnc_set_error(err, errlen,
                      "the launcher started this trainer as process %d of %d, but its MPI library sees one "
                      "process alone (a launcher of another MPI implementation?): each would train its own copy",
                      launcher_rank, launched);
        MPI_Finalize();
        return -1;
    }
    if (size == 1) { /* one process: the one-process code, exactly */
        MPI_Finalize();
        return 0;
    }
    if (provided < MPI_THREAD_SERIALIZED)
        abort_all(rank, "this MPI library cannot be called from OpenMP threads (MPI_THREAD_SERIALIZED)");
    if (check_rank_count(size, slices, err, errlen) != 0) {
        /* One message, printed before any process leaves: mpirun stops the job as soon as one
         * exits with an error, and a message still to be written would be lost with it. */
        if (rank == 0) fprintf(stderr, "%s: error: %s\n", prog, err);
        err[0] = '\0';
        MPI_Barrier(MPI_COMM_WORLD);
        MPI_Finalize();
        return -1;
    }
    nnc_dist *d = calloc(1, sizeof *d);
    if (!d) abort_all(rank, "out of memory");
    d->rank = rank, d->size = size;
    *out = d;
    return 0;
}

/* d->pack holds at least `need` bytes. */
static void reserve_pack(nnc_dist *d, size_t need) {
    if (need <= d->pack_cap) return;
    unsigned char *p = realloc(d->pack, need);
    if (!p) abort_all(d->rank, "out of memory for an exchange");
    d->pack = p, d->pack_cap = need;
}

/* Exchange the processes' blocks of `unit` bytes in place: block k of n at base + k*unit. */
static void allgather_blocks(const nnc_dist *d, unsigned char *base, size_t unit, int n) {
    int counts[d->size], displs[d->size];
    if ((size_t)n * unit > INT_MAX) abort_all(d->rank, "an exchange of more than 2 GiB (MPI's int counts)");
    for (int r = 0; r < d->size; r++) {
        size_t lo = share_lo((size_t)n, r, d->size), hi = share_lo((size_t)n, r + 1, d->size);
        counts[r] = (int)((hi - lo) * unit);
        displs[r] = (int)(lo * unit);
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, base, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
}

void nnc_dist_share(const nnc_dist *d_, void *base, size_t bytes, size_t stride, int n) {
    nnc_dist *d = (nnc_dist *)d_; /* the packing buffer is scratch; callers see no change */
    if (!d) return;
    int lo, hi; /* this process's blocks */
    nnc_dist_blocks(d, n, &lo, &hi);
    d->traffic.sent += (double)(hi - lo) * (double)bytes * (d->size - 1); /* a copy to each */
    d->traffic.received += (double)(n - (hi - lo)) * (double)bytes;
    d->traffic.exchanges += 1;
    if (stride == bytes) { /* contiguous blocks: in place */
        allgather_blocks(d, base, bytes, n);
        return;
    }
    reserve_pack(d, bytes * (size_t)n);
    unsigned char *b = base;
    for (int k = lo; k < hi; k++) memcpy(d->pack + (size_t)k * bytes, b + (size_t)k * stride, bytes);
    allgather_blocks(d, d->pack, bytes, n);
    for (int k = 0; k < n; k++)
        if (k < lo || k >= hi) memcpy(b + (size_t)k * stride, d->pack + (size_t)k * bytes, bytes);
}

/*
 * Part r of the parameters is [share_lo(count, r), share_lo(count, r + 1)). Process r receives part r
 * of every slice (an all-to-all: from each process, that process's slices' part r), adds them in
 * slice order, and the sums are gathered by all (an allgather of the parts, in place).
 */
void nnc_dist_sum_slices(const nnc_dist *d_, const float *slices, size_t count, int n_slices, float *sum) {
    nnc_dist *d = (nnc_dist *)d_;
    if (!d) {
        sum_in_slice_order(slices, count, count, n_slices, sum);
        return;
    }
    const int size = d->size;
    int lo, hi, sendcounts[size], sdispls[size], recvcounts[size], rdispls[size];
    nnc_dist_blocks(d, n_slices, &lo, &hi);
    const size_t my_lo = share_lo(count, d->rank, size), my_len = share_lo(count, d->rank + 1, size) - my_lo;
    const size_t mine = (size_t)(hi - lo);
    if (mine * count > INT_MAX || (size_t)n_slices * my_len > INT_MAX)
        abort_all(d->rank, "a gradient exchange of more than 2^31 floats (MPI's int counts)");
    reserve_pack(d, (mine * count + (size_t)n_slices * my_len) * sizeof(float));
    float *send = (float *)d->pack, *recv = send + mine * count;
    size_t at = 0;
    for (int r = 0; r < size; r++) { /* to r: part r of each of my slices */
        const size_t part_lo = share_lo(count, r, size), part_len = share_lo(count, r + 1, size) - part_lo;
        sdispls[r] = (int)at;
        for (int k = lo; k < hi; k++, at += part_len)
            memcpy(send + at, slices + (size_t)k * count + part_lo, part_len * sizeof(float));
        sendcounts[r] = (int)(at - (size_t)sdispls[r]);
        /* from r: my part of each of its slices, which land in slice order */
        const size_t r_lo = share_lo((size_t)n_slices, r, size), r_hi = share_lo((size_t)n_slices, r + 1, size);
        recvcounts[r] = (int)((r_hi - r_lo) * my_len);
        rdispls[r] = (int)(r_lo * my_len);
    }
    MPI_Alltoallv(send, sendcounts, sdispls, MPI_FLOAT, recv, recvcounts, rdispls, MPI_FLOAT, MPI_COMM_WORLD);
    sum_in_slice_order(recv, my_len, my_len, n_slices, sum + my_lo);
    allgather_blocks(d, (unsigned char *)sum, sizeof(float), (int)count); /* process r's part: floats share_lo(count, r).. */
    d->traffic.sent += (double)(mine * (count - my_len) + my_len * (size_t)(size - 1)) * sizeof(float);
    d->traffic.received += (double)(((size_t)n_slices - mine) * my_len + (count - my_len)) * sizeof(float);
    d->traffic.exchanges += 2;
}

int nnc_dist_same(const nnc_dist *d, const char *prog, const void *p, size_t bytes, const char *what) {
    if (!d) return 0;
    uint32_t mine = nnc_crc32(0, p, bytes), all[d->size];
    MPI_Allgather(&mine, 1, MPI_UINT32_T, all, 1, MPI_UINT32_T, MPI_COMM_WORLD);
    int differs = 0;
    for (int r = 1; r < d->size && !differs; r++)
        if (all[r] != all[0]) {
            differs = r;
            if (d->rank == 0)
                fprintf(stderr, "%s: error: %s differs between processes: rank 0 has CRC %08x, rank %d %08x\n", prog,
                        what, (unsigned)all[0], r, (unsigned)all[r]);
        }
    MPI_Barrier(MPI_COMM_WORLD); /* rank 0 has said it before any process can leave */
    return differs ? -1 : 0;
}

int nnc_dist_finish(nnc_dist *d, int status) {
    if (!d) return status;
    if (status != 0) MPI_Abort(MPI_COMM_WORLD, status);
    return nnc_dist_finish_together(d, status);
}

int nnc_dist_finish_together(nnc_dist *d, int status) {
    if (!d) return status;
    free(d->pack);
    free(d);
    MPI_Finalize();
    return status;
}

#endif /* NNC_MPI */
