/* ALBERT's SentencePiece unigram tokenizer (spiece.model), as Hugging
 * Face's slow AlbertTokenizer: its own text preprocessing, sentencepiece's
 * normalizer and Viterbi segmentation, then the digit-comma split. */
#ifndef QB_TEXT_SENTENCEPIECE_H
#define QB_TEXT_SENTENCEPIECE_H

#include "text/tok_work.h"
#include "text/tokenizer.h"

typedef struct qb_sentencepiece qb_sentencepiece;

qb_status qb_sp_load(const char *spiece_path, const qb_tok_options *o, qb_sentencepiece **out,
                     qb_error *err);
void qb_sp_free(qb_sentencepiece *sp);
/* Heap bytes sp holds. */
size_t qb_sp_bytes(const qb_sentencepiece *sp);

/* Appends the ids of text to ids; `what` names the text in errors. */
qb_status qb_sp_tokenize(const qb_sentencepiece *sp, const char *text, size_t len,
                         const char *what, qb_tok_work *w, qb_i32buf *ids, qb_error *err);

/* What AlbertTokenizer's preprocessing and the model's normalizer make of
 * one character (n bytes at s), in *out (a buffer of w), for token offsets. */
qb_status qb_sp_normalize_char(const qb_sentencepiece *sp, const char *s, size_t n, qb_tok_work *w,
                               qb_bytebuf **out, qb_error *err);
int qb_sp_vocab_size(const qb_sentencepiece *sp);
const char *qb_sp_piece(const qb_sentencepiece *sp, int32_t id);
/* sentencepiece's PieceToId: unknown strings give the <unk> id. */
int32_t qb_sp_id(const qb_sentencepiece *sp, const char *piece, size_t len);

#endif
