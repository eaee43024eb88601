/* Tokenizers, token-exact with Hugging Face's slow BertTokenizer (WordPiece,
 * vocab.txt) and AlbertTokenizer (SentencePiece unigram, spiece.model).
 * Unicode properties and normalization come from utf8proc. */
#ifndef QB_TEXT_TOKENIZER_H
#define QB_TEXT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "qbert.h"
#include "text/tok_work.h"

typedef enum { QB_TOK_WORDPIECE, QB_TOK_SENTENCEPIECE, QB_TOK_BPE, QB_TOK_UNIGRAM } qb_tok_kind;

/* tokenizer_config.json settings, with HF's defaults from qb_tok_default_options(). */
typedef struct {
    bool do_lower_case;          /* both; default true */
    int strip_accents;           /* WordPiece: -1 unset (follows lowercasing), 0 false, 1 true */
    bool tokenize_chinese_chars; /* WordPiece; default true */
    bool remove_space;           /* SentencePiece; default true */
    bool keep_accents;           /* SentencePiece; default false */
    bool slow;                   /* WordPiece as the slow BertTokenizer: composes first, lowercases as
                                  * Python (a word-final sigma to U+03C2); default true */
} qb_tok_options;

qb_tok_options qb_tok_default_options(void);

typedef struct qb_tokenizer qb_tokenizer;

qb_status qb_tokenizer_load_wordpiece(const char *vocab_path, const qb_tok_options *o,
                                      qb_tokenizer **out, qb_error *err);
qb_status qb_tokenizer_load_sentencepiece(const char *spiece_path, const qb_tok_options *o,
                                          qb_tokenizer **out, qb_error *err);
/* Hugging Face's tokenizer.json (tokenizers' own format): the models,
 * normalizers, pre-tokenizers and post-processors listed in
 * docs/architecture.md; anything else is refused with a one-line error
 * naming the file and the component. */
qb_status qb_tokenizer_load_json(const char *path, qb_tokenizer **out, qb_error *err);
void qb_tokenizer_free(qb_tokenizer *t);
/* Heap bytes t holds: its vocabularies' tables and pieces. */
size_t qb_tokenizer_bytes(const qb_tokenizer *t);
/* What it is and where it came from, e.g. "tokenizer.json: BPE (byte-level),
 * 50265 tokens"; "wordpiece" / "sentencepiece" for vocab.txt / spiece.model. */
const char *qb_tokenizer_describe(const qb_tokenizer *t);

/* The slow tokenizers' other files in dir, for t from vocab.txt or
 * spiece.model: tokenizer_config.json's (parsed by the caller: cfg, NULL
 * when absent) and special_tokens_map.json's additional_special_tokens, and the added tokens (added_tokens_decoder,
 * else added_tokens.json), matched as transformers' tokenize() does (lower:
 * do_lower_case).  Special tokens other than the class's defaults, and
 * added tokens qbert cannot match as transformers does, are refused with a
 * one-line error naming the file and key. */
qb_status qb_tokenizer_read_slow_files(qb_tokenizer *t, const char *dir, const json_t *cfg, bool lower,
                                       qb_error *err);

/* Copies a model directory's tokenizer files (vocab.txt or spiece.model,
 * tokenizer_config.json, special_tokens_map.json, added_tokens.json,
 * tokenizer.json: those
 * present) into another, for the model directories qbert writes. */
qb_status qb_tokenizer_copy_files(const char *from_dir, const char *to_dir, qb_error *err);

qb_tok_kind qb_tokenizer_kind(const qb_tokenizer *t);
int qb_tokenizer_vocab_size(const qb_tokenizer *t);
int32_t qb_tokenizer_pad_id(const qb_tokenizer *t);
const char *qb_tokenizer_piece(const qb_tokenizer *t, int32_t id); /* NULL if out of range */
/* The mask token, [MASK] or <mask> (the first of them it has), or -1. */
int32_t qb_tokenizer_mask_id(const qb_tokenizer *t);

/* [CLS] a [SEP] (b [SEP]) with longest_first truncation to max_length.
 * Invalid UTF-8 is an error (QB_ERR_UTF8) that gives the byte offset. */
qb_status qb_tokenizer_encode(const qb_tokenizer *t, const char *text, size_t len,
                              const char *pair, size_t pair_len, int max_length,
                              qb_encoding *enc, qb_error *err);

/* sentence-transformers' Transformer.tokenize, for a model directory in its
 * layout: each text and pair str.strip()ped, then str.lower()ed when
 * sentence_bert_config.json's do_lower_case asks (qb_tokenizer_encode and
 * qb_tokenizer_offsets; offsets still point into the text as given, but
 * where lowercasing changes a character's byte length). */
void qb_tokenizer_set_sentence_prep(qb_tokenizer *t, bool strip, bool lower);

/* Words without the text around them (a CoNLL file's), each tokenized on
 * its own as transformers' is_split_into_words does (a byte-level BPE's
 * after a space); enc->word_ids maps tokens to words. */
qb_status qb_tokenizer_encode_words(const qb_tokenizer *t, const char *const *words,
                                    const size_t *lens, int n_words, int max_length,
                                    qb_encoding *enc, qb_error *err);
/* Words cut from a text (qb_tokenizer_split_words' tokenized spans, a
 * byte-level word carrying its own space), for a text and, when not NULL, a
 * pair, whose words are numbered after the text's.  Truncation as
 * qb_tokenizer_encode's. */
qb_status qb_tokenizer_encode_word_pair(const qb_tokenizer *t, const qb_words *text, const qb_words *pair,
                                        int max_length, qb_encoding *enc, qb_error *err);

/* See qb_split_words (qbert.h). */
qb_status qb_tokenizer_split_words(const qb_tokenizer *t, const char *text, size_t len, qb_word_span *spans,
                                   int *n, qb_error *err);

/* Token ids back to text into out (NUL-terminated); see qb_detokenize
 * (qbert.h). */
qb_status qb_tokenizer_decode(const qb_tokenizer *t, const int32_t *ids, int n, bool skip_special, qb_bytebuf *out,
                              qb_error *err);

/* See qb_token_offsets (qbert.h). */
qb_status qb_tokenizer_offsets(const qb_tokenizer *t, const char *text, size_t len, const char *pair,
                               size_t pair_len, const qb_encoding *e, qb_token_offset *out, qb_error *err);

#endif
