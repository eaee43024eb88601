/* A quantized model (qb_model_load's binders for every linear format, then
 * one forward): the input is config.json, a "\n\0\n" separator, then
 * model.safetensors, beside the tiny test model's vocabulary.  The seeds
 * are the tiny BERT quantized to each format (make_corpus.py), so the
 * mutations reach what fuzz_safetensors cannot: packed codes, scales, zero
 * points, codebooks and trits checked against quantization_config, and the
 * kernels running whatever the checks let through. */
#include "fuzz_common.h"

static char dir[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    snprintf(dir, sizeof dir, "%s/quantized", fuzz_scratch());
    if (mkdir(dir, 0755) != 0) fuzz_die("cannot create", dir);
    char src[4096], dst[4300];
    fuzz_source_path(src, sizeof src, "tests/data/tiny-bert-seq/vocab.txt");
    snprintf(dst, sizeof dst, "%s/vocab.txt", dir);
    if (symlink(src, dst) != 0) fuzz_die("cannot link", dst);
    return 0;
}

/* One short sentence through the model: the kernels read every weight. */
static void fuzz_forward(const qb_model *m) {
    qb_session_params sp = qb_session_default_params();
    sp.max_batch = 1;
    sp.max_seq = 8;
    sp.n_threads = 1;
    qb_session *s = NULL;
    qb_encoding enc = {0};
    qb_error err;
    static const char text[] = "hello , world";
    if (qb_session_create(m, &sp, &s, &err) == QB_OK &&
        qb_tokenize(m, text, sizeof text - 1, NULL, 0, sp.max_seq, &enc, &err) == QB_OK) {
        const qb_encoding *encs[] = {&enc};
        if (qb_session_run_encodings(s, encs, 1, &err) == QB_OK) {
            qb_model_info info;
            qb_model_get_info(m, &info);
            fuzz_touch(qb_session_logits(s, 0), (size_t)info.num_labels * sizeof(float));
        }
    }
    qb_encoding_free(&enc);
    qb_session_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *sep = memmem(data, size, "\n\0\n", 3);
    if (!sep) return 0;
    char path[4400];
    snprintf(path, sizeof path, "%s/config.json", dir);
    fuzz_write_path(path, data, (size_t)(sep - data));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    fuzz_write_path(path, sep + 3, size - (size_t)(sep - data) - 3);
    qb_load_params lp = qb_load_default_params();
    lp.n_threads = 1;
    qb_model *m;
    qb_error err;
    if (qb_model_load(dir, &lp, &m, &err) != QB_OK) {
        fuzz_touch(err.msg, strlen(err.msg));
        return 0;
    }
    fuzz_forward(m);
    qb_model_free(m);
    return 0;
}
