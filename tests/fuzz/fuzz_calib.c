/* Calibration statistics (qb_calib_load, src/quant/calibrate.c, and the
 * per-linear histograms it reads through src/quant/observer_stats.c),
 * against the tiny test model. */
#include "fuzz_model.h"

#include "quant/calibrate.h"

static fuzz_file file;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_tiny_model();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file_write(&file, data, size);
    qb_calib c = {0};
    qb_error err;
    if (qb_calib_load(fuzz_model, path, &c, &err) != QB_OK) fuzz_touch(err.msg, strlen(err.msg));
    else fuzz_touch(c.source, strlen(c.source));
    qb_calib_free(&c);
    return 0;
}
