/* Tokenizing arbitrary bytes (invalid UTF-8 included) with a loaded
 * tokenizer, as predict and eval do: a text and an optional pair (split at
 * the first 0x1F byte), both truncations with the tokens' offsets and the
 * ids decoded back, and the same bytes as words. */
#ifndef QB_FUZZ_TOK_H
#define QB_FUZZ_TOK_H

#include "fuzz_common.h"

#include "text/tokenizer.h"
#include "text/unicode.h"

enum { FUZZ_MAX_WORDS = 512 };

static inline void fuzz_check_encoding(const qb_tokenizer *t, const qb_encoding *e, int max_length) {
    int v = qb_tokenizer_vocab_size(t);
    if (e->n < 2 || e->n > max_length || e->n_truncated < 0) abort();
    for (int i = 0; i < e->n; i++) {
        if (e->input_ids[i] < 0 || e->input_ids[i] >= v) abort();
        if (!qb_tokenizer_piece(t, e->input_ids[i])) abort();
    }
}

/* Offsets inside their segment, special tokens on none. */
static inline void fuzz_check_offsets(const qb_tokenizer *t, const qb_encoding *e, const char *text, size_t len,
                                      const char *pair, size_t pair_len) {
    static qb_token_offset off[1024];
    qb_error err;
    if (e->n > 1024) return;
    if (qb_tokenizer_offsets(t, text, len, pair, pair_len, e, off, &err) != QB_OK) abort();
    for (int i = 0; i < e->n; i++) {
        size_t n = off[i].segment == 1 ? pair_len : len;
        if (off[i].special ? off[i].segment != -1 || off[i].end : off[i].start > off[i].end || off[i].end > n)
            abort();
    }
}

/* The ids back to text, special tokens kept and left out: valid UTF-8. */
static inline void fuzz_check_decode(const qb_tokenizer *t, const qb_encoding *e) {
    for (int skip = 0; skip < 2; skip++) {
        qb_bytebuf text = {0};
        qb_u32buf cps = {0};
        qb_error err;
        qb_status st = qb_tokenizer_decode(t, e->input_ids, e->n, skip, &text, &err);
        if (st == QB_OK && qb_utf8_decode(text.v, text.n, &cps, "decoded", &err) != QB_OK) abort();
        free(text.v);
        free(cps.v);
    }
}

static inline void fuzz_tokenize(const qb_tokenizer *t, qb_encoding *enc, const uint8_t *data, size_t size) {
    const char *text = (const char *)data, *pair = NULL;
    size_t len = size, pair_len = 0;
    const uint8_t *us = memchr(data, 0x1F, size);
    if (us) {
        len = (size_t)(us - data);
        pair = (const char *)us + 1;
        pair_len = size - len - 1;
    }
    qb_error err;
    static const int lengths[] = {5, 512};
    for (int k = 0; k < 2; k++) {
        if (qb_tokenizer_encode(t, text, len, pair, pair_len, lengths[k], enc, &err) == QB_OK) {
            fuzz_check_encoding(t, enc, lengths[k]);
            fuzz_check_offsets(t, enc, text, len, pair, pair_len);
            fuzz_check_decode(t, enc);
        } else
            fuzz_touch(err.msg, strlen(err.msg));
    }
    /* the same bytes as space-separated words (CoNLL's path) */
    const char *words[FUZZ_MAX_WORDS];
    size_t lens[FUZZ_MAX_WORDS];
    int n = 0;
    for (size_t i = 0; i < size && n < FUZZ_MAX_WORDS;) {
        while (i < size && data[i] == ' ') i++;
        size_t s = i;
        while (i < size && data[i] != ' ') i++;
        if (i > s) words[n] = (const char *)data + s, lens[n++] = i - s;
    }
    if (qb_tokenizer_encode_words(t, words, lens, n, 512, enc, &err) == QB_OK) {
        fuzz_check_encoding(t, enc, 512);
        for (int i = 1; i + 1 < enc->n; i++)
            if (enc->word_ids[i] < 0 || enc->word_ids[i] >= n) abort();
    } else {
        fuzz_touch(err.msg, strlen(err.msg));
    }
}

#endif
