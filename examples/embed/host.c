/*
 * host.c - the example on a PC: reads a PGM or PNG digit, makes it an
 * MNIST-like image as training data was (libnncrt's nnc_image_load_mnist:
 * inverted if dark on light, cropped, scaled to 20 pixels, centred by mass),
 * and classifies it with classify.c, the part that would run on a device.
 *
 *   embed IMAGE.pgm|IMAGE.png      prints the digit; its probability on stderr
 */
#include <stdio.h>

#include "classify.h"
#include "digits.h"
#include "nncrt.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s IMAGE.pgm|IMAGE.png\n", argv[0]);
        return 2;
    }
    static uint8_t pixels[DIGITS_INPUT_H * DIGITS_INPUT_W * DIGITS_INPUT_C];
    char err[1024];
    if (DIGITS_INPUT_C != 1) {
        fprintf(stderr, "error: this example reads grey images; the model takes %d channels\n", DIGITS_INPUT_C);
        return 1;
    }
    if (nnc_image_load_mnist(argv[1], DIGITS_INPUT_H, DIGITS_INPUT_W, pixels, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    float confidence;
    int digit = classify(pixels, &confidence);
    printf("%d\n", digit);
    fprintf(stderr, "%s: %d with probability %.3f\n", argv[1], digit, (double)confidence);
    return 0;
}
