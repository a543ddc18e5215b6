/*
 * fuzz_cifar.c - libFuzzer harness for CIFAR-10's binary reader and the class
 * names list (runtime/cifar.c), in memory: the bytes as a batch file, twice
 * (the second appended to the first, as the five training batches are), and
 * as a batches.meta.txt. Seeded with a one-record batch from
 * tests/tools/cifar_synth.c and CIFAR-10's names file.
 */
#include <stdint.h>
#include <stdlib.h>

#include "nncrt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    nnc_dataset ds = {0};
    if (nnc_cifar_decode("fuzz-input", data, size, &ds, err, sizeof err) == 0)
        (void)nnc_cifar_decode("fuzz-input", data, size, &ds, err, sizeof err);
    nnc_dataset_free(&ds);
    if (nnc_class_names_decode("fuzz-input", data, size, &ds, err, sizeof err) == 0)
        nnc_dataset_free(&ds);
    return 0;
}
