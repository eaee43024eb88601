/* Masked-LM pre-training data: texts one a line, tokenized once with each
 * token's flags, and masked per batch as Hugging Face's
 * DataCollatorForLanguageModeling (or DataCollatorForWholeWordMask) does. */
#ifndef QB_TRAIN_MLM_DATA_H
#define QB_TRAIN_MLM_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "train/train_data.h"

/* Texts of a pre-training file: a plain text file, one document a
 * non-blank line; or, for *.tsv / *.jsonl / *.ndjson, the text column the
 * dataset readers find (labels, if any, ignored). */
typedef struct {
    int n;
    const char **text;
    size_t *len;
    int *line;              /* 1-based, for messages */
    char *path;
    char *buf;              /* plain text: the file */
    qb_dataset ds;          /* the dataset readers' examples */
} qb_mlm_texts;

/* limit > 0: the first `limit` texts.  No text at all is an error naming
 * the file. */
qb_status qb_mlm_texts_load(const char *path, int limit, qb_mlm_texts *t, qb_error *err);
void qb_mlm_texts_free(qb_mlm_texts *t);

/* Per-token flags of a qb_train_set made by qb_train_set_encode_mlm. */
enum {
    QB_MLM_SPECIAL = 1,     /* [CLS], [SEP] and the special tokens a text holds: never masked */
    QB_MLM_CONTINUES = 2,   /* a word's second or later piece (WordPiece "##x"; SentencePiece and
                               byte-level BPE: a piece without the word-start mark) */
};

/* Tokenizes every text (truncated to max_length) into ts, with ts->flags. */
qb_status qb_train_set_encode_mlm(const qb_model *m, const qb_mlm_texts *texts, int max_length, qb_train_set *ts,
                                  qb_error *err);

typedef struct {
    float probability;      /* share of tokens to predict (HF's mlm_probability; default 0.15) */
    bool whole_word;        /* choose whole words (DataCollatorForWholeWordMask) */
    int32_t mask_id;        /* what 80% of the chosen tokens become */
    int32_t vocab_size;     /* 10% become a uniform draw from [0, vocab_size) */
    uint64_t seed;
} qb_mlm_masking;

/* Masks one example of n tokens in place: each token not flagged special
 * is chosen with probability p (whole words: words in a random order are
 * taken whole while they fit in round(n * p) tokens, as HF's collator);
 * of the chosen, 80% become mask_id, 10% a random id, 10% stay.  labels[i]
 * is the original id where chosen, QB_IGNORE_INDEX elsewhere.  Every draw
 * is a hash of (seed, key, position): the same key masks the same way.
 * scratch: n ints (whole words).  Returns how many tokens were chosen. */
int qb_mlm_mask(const qb_mlm_masking *p, uint64_t key, int32_t *ids, const uint8_t *flags, int n, int32_t *labels,
                int *scratch);

#endif
