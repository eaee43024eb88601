/* tokenizer.json (src/text/tokenizer_json.c and the models behind it): any
 * bytes as a tokenizer.json, then fixed texts through what loads. */
#include "fuzz_common.h"

#include "text/tokenizer.h"

static fuzz_file file;
static qb_encoding enc;

static const char *const samples[] = {
    "Hello, World! [CLS] unaffable na\xc3\xafve \xe4\xb8\xad\xe6\x96\x87 ##ing [MASK] <mask> \xf0\x9f\x98\x80",
    "  ``quoted''  \xef\xbc\xa1\xe2\x85\xa0 \xe3\x80\x80 tabs\tand\nnewlines\r\n's it'll abcabcabc 12,345",
    "", "a", "\xe2\x96\x81\xe2\x96\x81 [X] x[X] <m><m>"};

static void check(const qb_tokenizer *t, const qb_encoding *e, int max_length) {
    int v = qb_tokenizer_vocab_size(t);
    if (e->n < 0 || e->n > max_length || e->n_truncated < 0) abort();
    for (int i = 0; i < e->n; i++)
        if (e->input_ids[i] < 0 || e->input_ids[i] >= v || !qb_tokenizer_piece(t, e->input_ids[i])) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file_write(&file, data, size);
    qb_tokenizer *t;
    qb_error err;
    if (qb_tokenizer_load_json(path, &t, &err) != QB_OK) {
        if (!strstr(err.msg, path) || strchr(err.msg, '\n')) abort(); /* one line naming the file */
        return 0;
    }
    fuzz_touch(qb_tokenizer_describe(t), strlen(qb_tokenizer_describe(t)));
    for (size_t i = 0; i < sizeof samples / sizeof *samples; i++) {
        static const int lengths[] = {4, 512};
        for (int k = 0; k < 2; k++) {
            const char *s = samples[i];
            if (qb_tokenizer_encode(t, s, strlen(s), k ? s : NULL, strlen(s), lengths[k], &enc, &err) == QB_OK)
                check(t, &enc, lengths[k]);
            else
                fuzz_touch(err.msg, strlen(err.msg));
        }
    }
    const char *words[] = {"Hello", "wor", "ld!", "[MASK]"};
    size_t lens[] = {5, 3, 3, 6};
    if (qb_tokenizer_encode_words(t, words, lens, 4, 512, &enc, &err) == QB_OK) check(t, &enc, 512);
    qb_tokenizer_free(t);
    return 0;
}
