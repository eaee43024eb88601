/* BERT's WordPiece tokenizer (vocab.txt), as Hugging Face's slow
 * BertTokenizer: BasicTokenizer cleanup and splitting, then greedy
 * longest-match-first subwords with "##" continuations. */
#ifndef QB_TEXT_WORDPIECE_H
#define QB_TEXT_WORDPIECE_H

#include "text/tok_work.h"
#include "text/tokenizer.h"

typedef struct qb_wordpiece qb_wordpiece;

qb_status qb_wp_load(const char *vocab_path, const qb_tok_options *o, qb_wordpiece **out,
                     qb_error *err);
/* The same from a tokenizer.json vocabulary: pieces[id] for ids 0..n-1;
 * path names the file in errors. */
qb_status qb_wp_load_pieces(const char *const *pieces, const size_t *lens, int n, const qb_tok_options *o,
                            const char *path, qb_wordpiece **out, qb_error *err);
void qb_wp_free(qb_wordpiece *wp);
/* Heap bytes wp holds. */
size_t qb_wp_bytes(const qb_wordpiece *wp);

/* Appends the ids of text to ids; `what` names the text in errors. */
qb_status qb_wp_tokenize(const qb_wordpiece *wp, const char *text, size_t len, const char *what,
                         qb_tok_work *w, qb_i32buf *ids, qb_error *err);

/* One pre-tokenized word (UTF-8) through greedy longest-match-first:
 * tokenizers' WordPiece model.  False when out of memory. */
bool qb_wp_word(const qb_wordpiece *wp, const char *s, size_t len, qb_tok_work *w, qb_i32buf *ids);

/* What BasicTokenizer's cleanup, lowercasing and accent stripping make of
 * one character (n bytes at s), in *out (a buffer of w), for token offsets. */
qb_status qb_wp_normalize_char(const qb_wordpiece *wp, const char *s, size_t n, qb_tok_work *w, qb_bytebuf **out,
                               qb_error *err);
int qb_wp_vocab_size(const qb_wordpiece *wp);
const char *qb_wp_piece(const qb_wordpiece *wp, int32_t id);
int32_t qb_wp_id(const qb_wordpiece *wp, const char *piece, int32_t missing);

#endif
