/* Precision maps ({"<linear or glob>": "<format>"}, parsed by
 * apply_precision_map in src/quant/quantize.c, which is static): reached
 * through qb_quantize on the tiny test model with an output directory that
 * already exists, so a map that parses stops at "already exists" before
 * anything is quantized or written; a map that does not parse stops at its
 * own error first. */
#include "fuzz_model.h"

static fuzz_file file;
static char out_dir[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_tiny_model();
    snprintf(out_dir, sizeof out_dir, "%s/out", fuzz_scratch());
    if (mkdir(out_dir, 0755) != 0) fuzz_die("cannot create", out_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const qb_quant_method methods[] = {QB_QUANT_DYNAMIC, QB_QUANT_WEIGHT_ONLY, QB_QUANT_FP16};
    qb_quant_params p = qb_quant_default_params(methods[size % 3]);
    if (p.method == QB_QUANT_WEIGHT_ONLY) p.bits = 4;
    p.precision_map = fuzz_file_write(&file, data, size);
    qb_error err;
    qb_status st = qb_quantize(fuzz_model, &p, out_dir, NULL, &err);
    if (st == QB_OK) abort(); /* out_dir exists and force is off: must refuse */
    fuzz_touch(err.msg, strlen(err.msg));
    return 0;
}
