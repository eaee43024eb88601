/* JSON Lines datasets: as JSONL (all rows, and a limit of 2) and by
 * format detection. */
#include "fuzz_dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_dataset_load(data, size, QB_DATA_JSONL, NULL, 0);
    fuzz_dataset_load(data, size, QB_DATA_JSONL, NULL, 2);
    fuzz_dataset_load(data, size, QB_DATA_AUTO, NULL, 0);
    return 0;
}
