/* spiece.model (the SentencePiece protobuf reader, src/text/sp_model.c,
 * and the piece tables and normalizer built from it): any bytes as a model,
 * then a fixed text through it. */
#include "fuzz_tok.h"

static fuzz_file file;
static qb_encoding enc;

static const char sample[] = "  Hello,  World! [CLS] na\xc3\xafve \xef\xbc\xa1\xe2\x85\xa0 \xe4\xb8\xad\xe6\x96\x87 <unk> \xe2\x96\x81x \xf0\x9f\x98\x80";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file_write(&file, data, size);
    qb_tokenizer *t;
    qb_error err;
    qb_tok_options o = qb_tok_default_options();
    if (qb_tokenizer_load_sentencepiece(path, &o, &t, &err) != QB_OK) {
        fuzz_touch(err.msg, strlen(err.msg));
        return 0;
    }
    fuzz_tokenize(t, &enc, (const uint8_t *)sample, sizeof sample - 1);
    qb_tokenizer_free(t);
    return 0;
}
