/* Byte-pair encoding as Hugging Face's tokenizers runs it (models.BPE):
 * merges applied by rank, lowest first and leftmost on ties, optionally on
 * the GPT-2 byte-level alphabet with its pre-tokenizing regex. */
#ifndef QB_TEXT_BPE_H
#define QB_TEXT_BPE_H

#include "text/tok_work.h"
#include "text/tokenizer.h"

typedef struct qb_bpe qb_bpe;

/* pieces[id] for ids 0..n-1 (pieces[id] may be NULL for an id the vocab
 * leaves out); merges[i] = "a b" of rank i, split at a_len.  unk_id -1: none.
 * path names the file in errors. */
typedef struct {
    const char *const *pieces;
    const size_t *lens;
    int n;
    const char *const *merge_a, *const *merge_b;
    const size_t *merge_a_len, *merge_b_len;
    size_t n_merges;
    int32_t unk_id;
    bool byte_level;       /* ByteLevel pre-tokenizer: GPT-2 regex and byte alphabet */
    bool add_prefix_space; /* ByteLevel's */
    bool use_regex;        /* ByteLevel's */
    bool ignore_merges;    /* a word already in the vocab is one token */
} qb_bpe_spec;

qb_status qb_bpe_load(const qb_bpe_spec *spec, const char *path, qb_bpe **out, qb_error *err);
void qb_bpe_free(qb_bpe *b);
/* Heap bytes b holds. */
size_t qb_bpe_bytes(const qb_bpe *b);

/* Appends the ids of text to ids; `what` names the text in errors. */
qb_status qb_bpe_tokenize(const qb_bpe *b, const char *text, size_t len, const char *what,
                          qb_tok_work *w, qb_i32buf *ids, qb_error *err);

/* One pre-tokenized word (bytes; on the byte-level alphabet already unless
 * the model was loaded byte_level) merged into ids.  False when out of memory. */
bool qb_bpe_word(const qb_bpe *b, const char *s, size_t len, qb_tok_work *w, qb_i32buf *ids);
/* GPT-2's bytes_to_unicode: the character that stands for byte c. */
uint32_t qb_bpe_byte_char(unsigned c);
/* The byte a character of that alphabet stands for, -1 outside it. */
int qb_bpe_char_byte(uint32_t c);
/* Length of the GPT-2 pre-tokenizing pattern's match at s[i] (code points). */
size_t qb_bpe_gpt2_match(const uint32_t *s, size_t n, size_t i);

int32_t qb_bpe_id(const qb_bpe *b, const char *piece, size_t len, int32_t missing);
/* Whether it was loaded with ByteLevel as its own pre-tokenizer. */
bool qb_bpe_byte_level(const qb_bpe *b);
bool qb_bpe_byte_regex(const qb_bpe *b); /* byte-level, split with GPT-2's pattern */

#endif
