/* Training states (qb_train_state_load, src/train/train_state.c: a
 * safetensors file whose metadata holds the cursor), into a trainer of the
 * tiny test model.  QB_FUZZ_WRITE_SEED=FILE writes a valid state there
 * (fingerprint "fuzz") and exits: how the seed corpus was made. */
#include "fuzz_model.h"

#include "train/train_state.h"
#include "train/trainer.h"

static fuzz_file file;
static qb_trainer *trainer;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    qb_trainer_params tp = qb_trainer_default_params();
    qb_error err;
    if (qb_trainer_create(fuzz_tiny_model(), &tp, &trainer, &err) != QB_OK) fuzz_die(err.msg, NULL);
    const char *seed = getenv("QB_FUZZ_WRITE_SEED");
    if (seed && *seed) {
        qb_train_cursor c = {.epoch = 1, .batch = 3, .loss_sum = 0.5, .examples = 12, .steps = 7,
                             .trained = 40, .train_s = 1.25, .best_epoch = 1, .best = 0.75};
        if (qb_train_state_save(trainer, &c, "fuzz", seed, &err) != QB_OK) fuzz_die(err.msg, NULL);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file_write(&file, data, size);
    qb_train_cursor c;
    qb_error err;
    if (qb_train_state_load(trainer, &c, "fuzz", path, &err) != QB_OK) fuzz_touch(err.msg, strlen(err.msg));
    return 0;
}
