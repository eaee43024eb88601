/* config.json (src/io/config.c), quantization_config included. */
#include "fuzz_common.h"

#include "io/config.h"

static fuzz_file file;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file_write(&file, data, size);
    qb_config c;
    qb_error err;
    if (qb_config_load(path, &c, &err) != QB_OK) {
        fuzz_touch(err.msg, strlen(err.msg));
        return 0;
    }
    for (int i = 0; i < c.num_labels; i++) fuzz_touch(c.labels[i], strlen(c.labels[i]) + 1);
    for (int i = 0; i < 2 * c.quant.n_modules; i++)
        fuzz_touch(c.quant.modules[i], strlen(c.quant.modules[i]) + 1);
    fuzz_sink += qb_quant_config_module(&c.quant, "classifier") != NULL;
    fuzz_sink += qb_quant_config_dynamic(&c.quant, "bert.encoder.layer.0.attention.self.query");
    fuzz_touch(c.model_type, strlen(c.model_type));
    qb_config_free(&c);
    return 0;
}
