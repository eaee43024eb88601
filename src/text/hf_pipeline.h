/* A tokenizer.json's normalizers and pre-tokenizers, run in order on each
 * text as Hugging Face's tokenizers runs them, then each pre-token through
 * the model: Unigram (its vocabulary lives here: a float64 Viterbi as
 * tokenizers' Unigram::encode_optimized), or a WordPiece or BPE model the
 * caller owns. */
#ifndef QB_TEXT_HF_PIPELINE_H
#define QB_TEXT_HF_PIPELINE_H

#include "core/json.h"
#include "text/bpe.h"
#include "text/tok_work.h"
#include "text/tokenizer.h"
#include "text/wordpiece.h"

typedef struct qb_hfp qb_hfp;

/* norm and pre are tokenizer.json's "normalizer" and "pre_tokenizer" (JSON
 * null or NULL when absent); path names the file in errors. */
qb_status qb_hfp_load(const json_t *norm, const json_t *pre, const char *path, qb_hfp **out, qb_error *err);
void qb_hfp_free(qb_hfp *p);
/* Heap bytes p holds of its own (not its wp or bpe). */
size_t qb_hfp_bytes(const qb_hfp *p);

/* The model, one of: a Unigram "model" object, read here ... */
qb_status qb_hfp_set_unigram(qb_hfp *p, const json_t *model, const char *path, qb_error *err);
/* ... or a WordPiece / BPE model that must outlive p. */
void qb_hfp_set_wordpiece(qb_hfp *p, const qb_wordpiece *wp);
void qb_hfp_set_bpe(qb_hfp *p, const qb_bpe *bpe);
/* Whether a ByteLevel pre-tokenizer maps the words to GPT-2's byte alphabet. */
bool qb_hfp_byte_level(const qb_hfp *p);
/* A ByteLevel step splits with GPT-2's pattern (use_regex). */
bool qb_hfp_byte_regex(const qb_hfp *p);

/* at_start: text begins the input (no added token stands before it), as
 * Metaspace's prepend_scheme "first" asks. */
qb_status qb_hfp_tokenize(const qb_hfp *p, const char *text, size_t len, bool at_start, const char *what,
                          qb_tok_work *w, qb_i32buf *ids, qb_error *err);

/* What the normalizers make of one character (n bytes at s), in *out (a
 * buffer of w), for token offsets; a Prepend is left out. */
qb_status qb_hfp_normalize_char(const qb_hfp *p, const char *s, size_t n, qb_tok_work *w, qb_bytebuf **out,
                                qb_error *err);
/* A Replace among the first normalizers that matches at s: the bytes it
 * replaces (0: none) and, in *to, what it puts there. */
size_t qb_hfp_leading_replace(const qb_hfp *p, const char *s, size_t n, const char **to, size_t *to_len);
int qb_hfp_unigram_size(const qb_hfp *p);
const char *qb_hfp_unigram_piece(const qb_hfp *p, int32_t id);

#endif
