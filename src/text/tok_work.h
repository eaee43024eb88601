/* Growable scratch buffers for tokenization.  They live in qb_encoding.work
 * so repeated calls reuse the memory of the largest input seen: the per-token
 * paths only append into capacity that is already there. */
#ifndef QB_TEXT_TOK_WORK_H
#define QB_TEXT_TOK_WORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct { uint32_t *v; size_t n, cap; } qb_u32buf; /* code points */
typedef struct { char *v; size_t n, cap; } qb_bytebuf;    /* UTF-8 */
typedef struct { int32_t *v; size_t n, cap; } qb_i32buf;  /* ids */
typedef struct { uint64_t *v; size_t n, cap; } qb_u64buf; /* BPE's merge heap */

/* One Viterbi candidate / chosen piece of the SentencePiece encoder. */
typedef struct {
    float score;
    int32_t id;
    int32_t start; /* byte where the piece begins; -1 while unreached */
} qb_sp_node;

typedef struct {
    qb_sp_node *v;
    size_t n, cap;
} qb_sp_nodebuf;

/* One node of the Unigram (tokenizer.json) lattice: float64 as tokenizers. */
typedef struct {
    double score;
    int32_t id, start;
} qb_ug_node;

typedef struct {
    qb_ug_node *v;
    size_t n, cap;
} qb_ug_nodebuf;

/* A piece of a normalized string: bytes [start, end) with its id. */
typedef struct {
    int32_t start, end, id;
} qb_sp_span;

typedef struct {
    qb_sp_span *v;
    size_t n, cap;
} qb_sp_spanbuf;

/* The scratch one encoding call needs.  The SentencePiece digit-comma rule
 * re-encodes a piece while the outer pieces are still in use, hence the
 * second normalized/lattice/span set. */
typedef struct qb_tok_work {
    qb_u32buf cp[3];
    qb_bytebuf utf8[4];
    qb_sp_nodebuf lattice[2];
    qb_sp_spanbuf spans[2];
    qb_i32buf seg[2];    /* ids of text and pair before [CLS]/[SEP] */
    qb_i32buf word_of[2]; /* encode_words: word index of each id in seg[0] and seg[1] */
    qb_bytebuf word;     /* encode_words: a byte-level word with the space before it */
    qb_u32buf prep_cp[2]; /* sentence-transformers' lowercasing: code points before and after */
    qb_bytebuf prep[2];  /* ... and the text and pair it gives */
    qb_i32buf bpe[3];    /* BPE: a word's symbols, their prev and next links */
    qb_u64buf heap;      /* BPE: candidate merges, (rank << 32) | position */
    qb_ug_nodebuf ug;    /* Unigram's lattice */
    qb_bytebuf pre[2];   /* Unigram: pre-tokens' bytes, before and after a step */
    qb_sp_spanbuf words[2]; /* ... and their spans */
} qb_tok_work;

/* Makes room for `need` elements of size `elem`; false when out of memory.
 * Growth is geometric so appends are amortized O(1). */
bool qb_tok_reserve(void **v, size_t *cap, size_t need, size_t elem);

#define QB_TOK_RESERVE(buf, need) \
    qb_tok_reserve((void **)&(buf)->v, &(buf)->cap, (need), sizeof *(buf)->v)

/* Appends one id; false when out of memory. */
static inline bool qb_tok_push(qb_i32buf *b, int32_t id) {
    if (b->n == b->cap && !QB_TOK_RESERVE(b, b->n + 1)) return false;
    b->v[b->n++] = id;
    return true;
}

#endif
