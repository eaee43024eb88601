/* A whole model directory (qb_model_load): fuzzed JSON files, split at
 * "\n\0\n" separators into config.json, tokenizer_config.json and the
 * sentence-transformers files (config_sentence_transformers.json,
 * modules.json, 1_Pooling/config.json), beside one of the test models'
 * weights and vocab; the files an input has no section for are absent.
 * The first input byte picks the model (tiny BERT sequence, tiny ALBERT
 * sequence, tiny BERT token). */
#include "fuzz_common.h"

static const char *const models[] = {"tiny-bert-seq", "tiny-albert-seq", "tiny-bert-token"};
enum { N_MODELS = sizeof models / sizeof *models };
static char dirs[N_MODELS][4200];
static const char *const sections[] = {"config.json", "tokenizer_config.json", "config_sentence_transformers.json",
                                       "modules.json", "1_Pooling/config.json"};
enum { N_SECTIONS = sizeof sections / sizeof *sections };

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    for (int i = 0; i < N_MODELS; i++) {
        snprintf(dirs[i], sizeof dirs[i], "%s/%s", fuzz_scratch(), models[i]);
        char pooling[4300];
        snprintf(pooling, sizeof pooling, "%s/1_Pooling", dirs[i]);
        if (mkdir(dirs[i], 0755) != 0 || mkdir(pooling, 0755) != 0) fuzz_die("cannot create", dirs[i]);
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
    for (int k = 0; k < N_SECTIONS; k++) {
        char path[8400];
        snprintf(path, sizeof path, "%s/%s", dir, sections[k]);
        const uint8_t *sep = data ? memmem(data, size, "\n\0\n", 3) : NULL;
        size_t len = sep ? (size_t)(sep - data) : size;
        if (data) fuzz_write_path(path, data, len);
        else unlink(path);
        data = sep ? sep + 3 : NULL;
        size = sep ? size - len - 3 : 0;
    }
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
