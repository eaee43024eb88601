/* TSV datasets: SST-2, IMDB, generic TSV (the first input byte picks the
 * columns, header mode and row limit), and format detection. */
#include "fuzz_dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    uint8_t b = data[0];
    data++, size--;
    qb_tsv_columns cols = {.text_col = b & 3, .pair_col = (int)((b >> 2) & 3) - 1,
                           .label_col = (int)((b >> 4) & 3) - 1, .header = (int)((b >> 6) % 3) - 1};
    fuzz_dataset_load(data, size, QB_DATA_TSV, &cols, (b & 0x80) ? 2 : 0);
    fuzz_dataset_load(data, size, QB_DATA_TSV, NULL, 0);
    fuzz_dataset_load(data, size, QB_DATA_SST2, NULL, 0);
    fuzz_dataset_load(data, size, QB_DATA_IMDB, NULL, 0);
    fuzz_dataset_load(data, size, QB_DATA_AUTO, NULL, 0);
    return 0;
}
