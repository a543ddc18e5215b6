/*
 * fuzz_image.c - libFuzzer harness for the image decoding path of image
 * folders (runtime/image.c): the bytes as a PNG (libpng) or JPEG (libjpeg)
 * file, told apart by their signature, decoded as grey and as RGB, and each
 * decoded image resized bilinearly both down and up. Seeded with grey and RGB
 * PNG and JPEG files. Built with NNC_MAX_IMAGE_PIXELS at 4,096 (see the
 * Makefile): larger declared sizes are refused as the trainer refuses more
 * than 64 megapixels, and the fuzzer spends its time on the parsers.
 */
#include <stdint.h>
#include <stdlib.h>

#include "nncrt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    static uint8_t out[40 * 33 * 3];
    for (int channels = 1; channels <= 3; channels += 2) {
        nnc_image img;
        if (nnc_image_decode("fuzz-input", data, size, channels, &img, err, sizeof err) != 0)
            continue;
        nnc_image_resize_bilinear(&img, 3, 2, out);
        nnc_image_resize_bilinear(&img, 40, 33, out);
        free(img.px);
    }
    return 0;
}
