/* The tokenizer's insides, shared by its two loaders: tokenizer.c (vocab.txt,
 * spiece.model) and tokenizer_json.c (tokenizer.json). */
#ifndef QB_TEXT_TOKENIZER_IMPL_H
#define QB_TEXT_TOKENIZER_IMPL_H

#include "text/bpe.h"
#include "text/sentencepiece.h"
#include "text/tokenizer.h"
#include "text/hf_pipeline.h"
#include "text/wordpiece.h"

/* The post-processor as a template: a special token's id, or a sequence. */
#define QB_TOK_MAX_ITEMS 16
typedef struct {
    int8_t seq;   /* -1: the special token `id`; 0: text A; 1: text B */
    int32_t id;
    int32_t type; /* token type id */
} qb_tok_item;

typedef struct {
    qb_tok_item single[QB_TOK_MAX_ITEMS], pair[QB_TOK_MAX_ITEMS];
    int n_single, n_pair;
} qb_tok_template;

/* An added token, matched in the raw text before the model. */
typedef struct {
    char *content;
    size_t len;
    int32_t id;
    bool lstrip, rstrip, single_word;
    bool special; /* left out when decoding skips special tokens */
    bool normalized; /* tokenizer.json: HF matches it in the normalized text */
    bool fold;    /* content is lowercase ASCII and also matches the text in any case: a slow
                   * tokenizer with do_lower_case lowercases the text before matching */
} qb_tok_added;

/* How ids become text again: tokenizer.json's "decoder", or what the slow
 * files' tokenizers convert to (vocab.txt: WordPiece, spiece.model:
 * Metaspace). */
typedef enum { QB_DEC_JOIN, QB_DEC_WORDPIECE, QB_DEC_BYTE_LEVEL, QB_DEC_METASPACE, QB_DEC_UNSUPPORTED } qb_tok_dec_kind;

typedef struct {
    qb_tok_dec_kind kind;
    bool cleanup;     /* WordPiece's */
    bool strip_first; /* Metaspace: the first token's ▁ was prepended, not typed */
    char what[48];    /* an unsupported decoder's type, for its error */
} qb_tok_decoder;

struct qb_tokenizer {
    qb_tok_kind kind;
    qb_wordpiece *wp;     /* QB_TOK_WORDPIECE */
    qb_sentencepiece *sp; /* QB_TOK_SENTENCEPIECE */
    qb_bpe *bpe;          /* QB_TOK_BPE */
    qb_hfp *pipe;         /* tokenizer.json's normalizers and pre-tokenizers, then the model; NULL: the model's own */
    int32_t pad_id;
    bool slow;            /* vocab.txt or spiece.model: their slow tokenizers' rules */
    bool st_strip, st_lower; /* sentence-transformers' Transformer.tokenize (qb_tokenizer_set_sentence_prep) */
    qb_tok_template tmpl;
    qb_tok_added *added;         /* tokenizer.json's, or the slow files' special tokens */
    int n_added;
    size_t added_first[256 + 1]; /* added[] sorted by first byte: [first[c], first[c+1]) start with c */
    /* tokenizer.json only */
    char **pieces;               /* id -> text, vocab and added tokens */
    int n_pieces;
    bool trim_offsets;           /* the post-processor's trim_offsets (RobertaProcessing, ByteLevel) */
    bool trim_keeps_prefix;      /* ... and its add_prefix_space */
    qb_tok_decoder dec;
    char desc[96];               /* what `qbert info` prints */
};

/* [CLS] A [SEP] (B [SEP]) with types 0 (1 for B's part): BERT's layout. */
void qb_tok_template_bert(qb_tok_template *t, int32_t cls, int32_t sep);

/* Whether the tokenizer reads bytes (ByteLevel): a word carries its space. */
bool qb_tok_byte_level(const qb_tokenizer *t);

/* Sorts t->added by first byte and fills t->added_first. */
void qb_tok_added_index(qb_tokenizer *t);

/* The longest added token at s[i], or NULL. */
const qb_tok_added *qb_tok_added_at(const qb_tokenizer *t, const char *s, size_t len, size_t i);
/* The case folding of added tokens (fold): ASCII only, where a lowercasing
 * normalizer and do_lower_case agree.  qb_tok_fold_eq: s[0..n) is lower
 * with its ASCII letters in any case. */
static inline char qb_tok_ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }
bool qb_tok_fold_eq(const char *lower, const char *s, size_t n);
bool qb_tok_is_ascii(const char *s, size_t n);

/* The bytes [*s, *e) an added token found at text[i] takes: itself and the
 * whitespace its lstrip (back to lo at most) and rstrip ask for. */
void qb_tok_added_extent(const qb_tok_added *a, const char *text, size_t len, size_t i, size_t lo, size_t *s,
                         size_t *e);

/* The text (k 0) or pair (k 1) as sentence-transformers hands it to the
 * tokenizer: s[*start, *start + *len) after str.strip(), lowercased into
 * w->prep[k] when asked (*start still where it began in s). */
qb_status qb_tok_prep(const qb_tokenizer *t, const char **s, size_t *len, size_t *start, int k, qb_tok_work *w,
                      const char *what, qb_error *err);

/* The ids of one text, added tokens split out first, appended to ids. */
qb_status qb_tok_segment(const qb_tokenizer *t, const char *text, size_t len, const char *what, qb_tok_work *w,
                         qb_i32buf *ids, qb_error *err);

/* The template's items for a text (or a pair); returns how many are
 * special tokens. */
int qb_tok_template_items(const qb_tokenizer *t, bool has_pair, const qb_tok_item **it, int *n_it);

/* longest_first truncation of segments of n0 and n1 tokens to budget: the
 * lengths kept.  As the tokenizer's own Hugging Face class does it:
 * tokenizer.json's (Rust) keeps all of the shorter up to half and gives an
 * odd budget's last token to the longer, the second on ties; the slow
 * tokenizers qbert follows for vocab.txt and spiece.model take one token at
 * a time from the longer, the second on ties (63 + 62 where Rust gives
 * 62 + 63). */
void qb_tok_keep(const qb_tokenizer *t, size_t budget, size_t n0, size_t n1, size_t keep[2]);

qb_status qb_tokenizer_load_json(const char *path, qb_tokenizer **out, qb_error *err);

#endif
