/*
 * output_lines.h - the lines trainer_run.c and onnx_random_run.c print for a
 * batch of a model's outputs, which the comparison scripts read: the argmax,
 * then the outputs (%.9g, exact for a float), one line an image.
 */
#ifndef NNC_OUTPUT_LINES_H
#define NNC_OUTPUT_LINES_H

#include <stdio.h>

#include "nncrt.h"

static void print_output_lines(const float *probs, int batch, int n_classes)
{
    for (int b = 0; b < batch; b++) {
        const float *p = probs + (size_t)b * n_classes;
        printf("%d", nnc_argmax(p, n_classes));
        for (int k = 0; k < n_classes; k++)
            printf(" %.9g", (double)p[k]);
        printf("\n");
    }
}

#endif
