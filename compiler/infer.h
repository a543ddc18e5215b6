/* infer.h - the inference back end (infer.c): dependency-free C99 for one image. */
#ifndef NNC_INFER_H
#define NNC_INFER_H

#include <stdio.h>

#include "model.h"

/*
 * Write NAME.c to c_out and NAME.h to h_out (prefix: NAME, a C identifier),
 * with the trained parameters, state and preprocessing constants of a weights
 * file (weights_path, named in the comments) baked in. 0, or -1 when writing failed.
 */
int nnc_emit_inference(FILE *c_out, FILE *h_out, const model *m, const char *prefix, const float *params,
                       const float *state, const float prep[2], const char *weights_path);

#endif
