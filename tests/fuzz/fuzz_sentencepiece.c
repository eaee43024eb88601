/* SentencePiece tokenizing of arbitrary bytes (invalid UTF-8 included)
 * with a real model: albert-mini's spiece.model from the shared models when
 * present, else the committed seed model.  One tokenizer per option set
 * (lowercasing, remove_space, keep_accents); the first input byte picks it. */
#include "fuzz_tok.h"

enum { N_OPT = 8 };
static qb_tokenizer *toks[N_OPT];
static qb_encoding enc;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char buf[4096];
    const char *model = fuzz_shared_path(buf, sizeof buf, "models/albert-mini-sst2/spiece.model");
    if (!model) model = fuzz_source_path(buf, sizeof buf, "tests/fuzz/corpus/spiece_model/small-unigram.model");
    for (int i = 0; i < N_OPT; i++) {
        qb_tok_options o = qb_tok_default_options();
        o.do_lower_case = i & 1;
        o.remove_space = (i >> 1) & 1;
        o.keep_accents = (i >> 2) & 1;
        qb_error err;
        if (qb_tokenizer_load_sentencepiece(model, &o, &toks[i], &err) != QB_OK) fuzz_die(err.msg, NULL);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    fuzz_tokenize(toks[data[0] % N_OPT], &enc, data + 1, size - 1);
    return 0;
}
