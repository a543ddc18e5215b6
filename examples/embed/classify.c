/*
 * classify.c - a trained model the way a microcontroller runs it: the
 * inference C that `nnc --emit=inference` wrote (digits.c, digits.h), one
 * fixed scratch array, no heap, no operating system, no library but <math.h>.
 *
 * This file is the part that goes on the device; host.c feeds it from an
 * image file for trying it out on a PC.
 */
#include <stdint.h>

#include "classify.h"
#include "digits.h"

/* The activations' memory: exactly what the model needs, stated by its header. */
static float scratch[(DIGITS_SCRATCH_BYTES + sizeof(float) - 1) / sizeof(float)];

int classify(const uint8_t *pixels, float *confidence)
{
    float probs[DIGITS_CLASSES];
    int digit = digits_predict(pixels, probs, scratch);
    if (confidence)
        *confidence = probs[digit];
    return digit;
}
