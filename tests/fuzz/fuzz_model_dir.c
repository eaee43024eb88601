/* A whole model directory (qb_model_load): a fuzzed config.json and,
 * after a "\n\0\n" separator when the input has one, a fuzzed
 * tokenizer_config.json, beside one of the test models' weights and vocab.
 * The first input byte picks the model (tiny BERT sequence, tiny ALBERT
 * sequence, tiny BERT token). */
#include "fuzz_common.h"

static const char *const models[] = {"tiny-bert-seq", "tiny-albert-seq", "tiny-bert-token"};
enum { N_MODELS = sizeof models / sizeof *models };
static char dirs[N_MODELS][4200];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    for (int i = 0; i < N_MODELS; i++) {
        snprintf(dirs[i], sizeof dirs[i], "%s/%s", fuzz_scratch(), models[i]);
        if (mkdir(dirs[i], 0755) != 0) fuzz_die("cannot create", dirs[i]);
        static const char *const files[] = {"model.safetensors", "vocab.txt"};
        for (int k = 0; k < 2; k++) {
            char src[4096], rel[256], dst[8400];
            snprintf(rel, sizeof rel, "tests/data/%s/%s", models[i], files[k]);
            fuzz_source_path(src, sizeof src, rel);
            snprintf(dst, sizeof dst, "%s/%s", dirs[i], files[k]);
            if (symlink(src, dst) != 0) fuzz_die("cannot link", dst);
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const char *dir = dirs[data[0] % N_MODELS];
    data++, size--;
    char cfg[8400], tcfg[8400];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    snprintf(tcfg, sizeof tcfg, "%s/tokenizer_config.json", dir);
    size_t cfg_len = size;
    const uint8_t *sep = memmem(data, size, "\n\0\n", 3);
    if (sep) cfg_len = (size_t)(sep - data);
    fuzz_write_path(cfg, data, cfg_len);
    if (sep) fuzz_write_path(tcfg, sep + 3, size - cfg_len - 3);
    else unlink(tcfg);
    qb_load_params lp = qb_load_default_params();
    lp.n_threads = 1; /* inputs run one at a time: starting threads for each would dominate */
    qb_model *m;
    qb_error err;
    if (qb_model_load(dir, &lp, &m, &err) != QB_OK) {
        fuzz_touch(err.msg, strlen(err.msg));
        return 0;
    }
    qb_model_free(m);
    return 0;
}
