/* WordPiece tokenizing of arbitrary bytes (invalid UTF-8 included) with a
 * real vocabulary: bert-mini's from the shared models when present, else
 * the tiny test model's.  One tokenizer per option set (lowercasing, accent
 * stripping, CJK splitting); the first input byte picks it. */
#include "fuzz_tok.h"

enum { N_OPT = 12 };
static qb_tokenizer *toks[N_OPT];
static qb_encoding enc;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char buf[4096];
    const char *vocab = fuzz_shared_path(buf, sizeof buf, "models/bert-mini-sst2/vocab.txt");
    if (!vocab) vocab = fuzz_source_path(buf, sizeof buf, "tests/data/tiny-bert-seq/vocab.txt");
    for (int i = 0; i < N_OPT; i++) {
        qb_tok_options o = qb_tok_default_options();
        o.do_lower_case = i & 1;
        o.tokenize_chinese_chars = (i >> 1) & 1;
        o.strip_accents = i / 4 - 1;
        qb_error err;
        if (qb_tokenizer_load_wordpiece(vocab, &o, &toks[i], &err) != QB_OK) fuzz_die(err.msg, NULL);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    fuzz_tokenize(toks[data[0] % N_OPT], &enc, data + 1, size - 1);
    return 0;
}
