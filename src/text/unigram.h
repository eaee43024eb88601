/* tokenizers' Unigram model (tokenizer.json), behind its normalizers and
 * pre-tokenizers: the steps are read from the JSON here, run in order on
 * each text, and each pre-token goes through a float64 Viterbi as
 * tokenizers' Unigram::encode_optimized does. */
#ifndef QB_TEXT_UNIGRAM_H
#define QB_TEXT_UNIGRAM_H

#include "core/json.h"
#include "text/tok_work.h"
#include "text/tokenizer.h"

typedef struct qb_unigram qb_unigram;

/* model is tokenizer.json's "model" object; norm and pre its "normalizer"
 * and "pre_tokenizer" (JSON null when absent).  path names the file. */
qb_status qb_unigram_load(const json_t *model, const json_t *norm, const json_t *pre, const char *path,
                          qb_unigram **out, qb_error *err);
void qb_unigram_free(qb_unigram *u);

qb_status qb_unigram_tokenize(const qb_unigram *u, const char *text, size_t len, const char *what,
                              qb_tok_work *w, qb_i32buf *ids, qb_error *err);

int qb_unigram_vocab_size(const qb_unigram *u);
const char *qb_unigram_piece(const qb_unigram *u, int32_t id);
int32_t qb_unigram_id(const qb_unigram *u, const char *piece, size_t len);

#endif
