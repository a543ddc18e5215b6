/* classify.h - the device side of the example: one image in, its class out. */
#ifndef CLASSIFY_H
#define CLASSIFY_H

#include <stdint.h>

/* Raw pixels as in training (0..255, DIGITS_INPUT_H x _W x _C); returns the class, and its probability if asked.
 * Not reentrant: it uses one static scratch array (digits_predict itself is reentrant). */
int classify(const uint8_t *pixels, float *confidence);

#endif
