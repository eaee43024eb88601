/* The tokenizer front: loading either kind, and what both share: the
 * [CLS]/[SEP] layout, longest_first truncation and the encoding buffers. */
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "text/sentencepiece.h"
#include "text/tok_work.h"
#include "text/wordpiece.h"

struct qb_tokenizer {
    qb_tok_kind kind;
    qb_wordpiece *wp;     /* QB_TOK_WORDPIECE */
    qb_sentencepiece *sp; /* QB_TOK_SENTENCEPIECE */
    int32_t cls_id, sep_id, pad_id;
};

qb_tok_options qb_tok_default_options(void) {
    return (qb_tok_options){.do_lower_case = true,
                            .strip_accents = -1,
                            .tokenize_chinese_chars = true,
                            .remove_space = true,
                            .keep_accents = false};
}

bool qb_tok_reserve(void **v, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need) ncap *= 2;
    void *p = realloc(*v, ncap * elem);
    if (!p) return false;
    *v = p;
    *cap = ncap;
    return true;
}

qb_status qb_tokenizer_load_wordpiece(const char *vocab_path, const qb_tok_options *o,
                                      qb_tokenizer **out, qb_error *err) {
    *out = NULL;
    qb_tok_options def = qb_tok_default_options();
    qb_wordpiece *wp;
    qb_status st = qb_wp_load(vocab_path, o ? o : &def, &wp, err);
    if (st != QB_OK) return st;
    int32_t cls = qb_wp_id(wp, "[CLS]", -1), sep = qb_wp_id(wp, "[SEP]", -1);
    if (cls < 0 || sep < 0) {
        qb_wp_free(wp);
        return qb_fail(err, QB_ERR_FORMAT, "%s: the vocabulary has no %s token", vocab_path,
                       cls < 0 ? "[CLS]" : "[SEP]");
    }
    qb_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        qb_wp_free(wp);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", vocab_path);
    }
    *t = (qb_tokenizer){.kind = QB_TOK_WORDPIECE, .wp = wp, .cls_id = cls, .sep_id = sep,
                        .pad_id = qb_wp_id(wp, "[PAD]", 0)};
    *out = t;
    return QB_OK;
}

qb_status qb_tokenizer_load_sentencepiece(const char *spiece_path, const qb_tok_options *o,
                                          qb_tokenizer **out, qb_error *err) {
    *out = NULL;
    qb_tok_options def = qb_tok_default_options();
    qb_sentencepiece *sp;
    qb_status st = qb_sp_load(spiece_path, o ? o : &def, &sp, err);
    if (st != QB_OK) return st;
    qb_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        qb_sp_free(sp);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", spiece_path);
    }
    /* AlbertTokenizer resolves its specials with PieceToId, unknown -> <unk> */
    *t = (qb_tokenizer){.kind = QB_TOK_SENTENCEPIECE, .sp = sp,
                        .cls_id = qb_sp_id(sp, "[CLS]", 5), .sep_id = qb_sp_id(sp, "[SEP]", 5),
                        .pad_id = qb_sp_id(sp, "<pad>", 5)};
    *out = t;
    return QB_OK;
}

void qb_tokenizer_free(qb_tokenizer *t) {
    if (!t) return;
    qb_wp_free(t->wp);
    qb_sp_free(t->sp);
    free(t);
}

qb_tok_kind qb_tokenizer_kind(const qb_tokenizer *t) { return t->kind; }

int qb_tokenizer_vocab_size(const qb_tokenizer *t) {
    return t->kind == QB_TOK_WORDPIECE ? qb_wp_vocab_size(t->wp) : qb_sp_vocab_size(t->sp);
}

int32_t qb_tokenizer_pad_id(const qb_tokenizer *t) { return t->pad_id; }

const char *qb_tokenizer_piece(const qb_tokenizer *t, int32_t id) {
    return t->kind == QB_TOK_WORDPIECE ? qb_wp_piece(t->wp, id) : qb_sp_piece(t->sp, id);
}

void qb_encoding_free(qb_encoding *e) {
    if (!e) return;
    qb_tok_work *w = e->work;
    if (w) {
#define TOK_COUNT(a) (sizeof(a) / sizeof((a)[0]))
        for (size_t i = 0; i < TOK_COUNT(w->cp); i++) free(w->cp[i].v);
        for (size_t i = 0; i < TOK_COUNT(w->utf8); i++) free(w->utf8[i].v);
        for (size_t i = 0; i < TOK_COUNT(w->lattice); i++) free(w->lattice[i].v);
        for (size_t i = 0; i < TOK_COUNT(w->spans); i++) free(w->spans[i].v);
        for (size_t i = 0; i < TOK_COUNT(w->seg); i++) free(w->seg[i].v);
#undef TOK_COUNT
        free(w->word_of.v);
        free(w);
    }
    free(e->input_ids);
    free(e->token_type_ids);
    free(e->word_ids);
    memset(e, 0, sizeof *e);
}

static qb_tok_work *tok_work(qb_encoding *enc) {
    if (!enc->work) enc->work = calloc(1, sizeof(qb_tok_work));
    return enc->work;
}

static qb_status tok_segment(const qb_tokenizer *t, const char *text, size_t len, const char *what,
                             qb_tok_work *w, qb_i32buf *ids, qb_error *err) {
    if (!text && len) return qb_fail(err, QB_ERR_ARG, "%s: NULL text with length %zu", what, len);
    if (!text) text = "";
    return t->kind == QB_TOK_WORDPIECE ? qb_wp_tokenize(t->wp, text, len, what, w, ids, err)
                                       : qb_sp_tokenize(t->sp, text, len, what, w, ids, err);
}

static bool tok_reserve_encoding(qb_encoding *enc, size_t n) {
    if (n > INT32_MAX) return false;
    if ((int)n <= enc->cap) return true;
    size_t cap = enc->cap > 0 ? (size_t)enc->cap : 16;
    while (cap < n) cap *= 2;
    int32_t *a = realloc(enc->input_ids, cap * sizeof *a);
    if (a) enc->input_ids = a;
    int32_t *b = realloc(enc->token_type_ids, cap * sizeof *b);
    if (b) enc->token_type_ids = b;
    int32_t *c = realloc(enc->word_ids, cap * sizeof *c);
    if (c) enc->word_ids = c;
    if (!a || !b || !c) return false;
    enc->cap = (int)cap;
    return true;
}

/* Appends ids with one token type and word index (or the word map). */
static void tok_emit(qb_encoding *enc, const int32_t *ids, size_t n, int32_t type,
                     const int32_t *word_of) {
    for (size_t i = 0; i < n; i++) {
        enc->input_ids[enc->n] = ids[i];
        enc->token_type_ids[enc->n] = type;
        enc->word_ids[enc->n] = word_of ? word_of[i] : -1;
        enc->n++;
    }
}

static void tok_emit_special(qb_encoding *enc, int32_t id, int32_t type) {
    tok_emit(enc, &id, 1, type, NULL);
}

qb_status qb_tokenizer_encode(const qb_tokenizer *t, const char *text, size_t len,
                              const char *pair, size_t pair_len, int max_length,
                              qb_encoding *enc, qb_error *err) {
    bool has_pair = pair != NULL;
    int specials = has_pair ? 3 : 2;
    if (max_length < specials)
        return qb_fail(err, QB_ERR_ARG, "max_length %d leaves no room for the %d special tokens",
                       max_length, specials);
    qb_tok_work *w = tok_work(enc);
    if (!w) return qb_fail(err, QB_ERR_NOMEM, "tokenizer: out of memory");
    qb_i32buf *a = &w->seg[0], *b = &w->seg[1];
    a->n = b->n = 0;
    qb_status st = tok_segment(t, text, len, "text", w, a, err);
    if (st == QB_OK && has_pair) st = tok_segment(t, pair, pair_len, "text pair", w, b, err);
    if (st != QB_OK) return st;
    size_t budget = (size_t)(max_length - specials);
    size_t na = a->n, nb = b->n;
    /* longest_first: drop one token at a time from the longer segment,
     * from the pair on ties */
    while (na + nb > budget) {
        if (na > nb) na--;
        else nb--;
    }
    if (!tok_reserve_encoding(enc, na + nb + (size_t)specials))
        return qb_fail(err, QB_ERR_NOMEM, "tokenizer: out of memory");
    enc->n = 0;
    enc->n_truncated = (int)((a->n - na) + (b->n - nb));
    tok_emit_special(enc, t->cls_id, 0);
    tok_emit(enc, a->v, na, 0, NULL);
    tok_emit_special(enc, t->sep_id, 0);
    if (has_pair) {
        tok_emit(enc, b->v, nb, 1, NULL);
        tok_emit_special(enc, t->sep_id, 1);
    }
    return QB_OK;
}

qb_status qb_tokenizer_encode_words(const qb_tokenizer *t, const char *const *words,
                                    const size_t *lens, int n_words, int max_length,
                                    qb_encoding *enc, qb_error *err) {
    if (max_length < 2)
        return qb_fail(err, QB_ERR_ARG, "max_length %d leaves no room for [CLS] and [SEP]",
                       max_length);
    if (n_words < 0 || (n_words > 0 && (!words || !lens)))
        return qb_fail(err, QB_ERR_ARG, "encode_words: bad word list (%d words)", n_words);
    qb_tok_work *w = tok_work(enc);
    if (!w) return qb_fail(err, QB_ERR_NOMEM, "tokenizer: out of memory");
    qb_i32buf *ids = &w->seg[0], *word_of = &w->word_of;
    ids->n = word_of->n = 0;
    for (int i = 0; i < n_words; i++) {
        char what[32];
        snprintf(what, sizeof what, "word %d", i);
        qb_status st = tok_segment(t, words[i], lens[i], what, w, ids, err);
        if (st != QB_OK) return st;
        if (!QB_TOK_RESERVE(word_of, ids->n)) return qb_fail(err, QB_ERR_NOMEM, "tokenizer: out of memory");
        while (word_of->n < ids->n) word_of->v[word_of->n++] = i;
    }
    size_t keep = ids->n < (size_t)(max_length - 2) ? ids->n : (size_t)(max_length - 2);
    if (!tok_reserve_encoding(enc, keep + 2))
        return qb_fail(err, QB_ERR_NOMEM, "tokenizer: out of memory");
    enc->n = 0;
    enc->n_truncated = (int)(ids->n - keep);
    tok_emit_special(enc, t->cls_id, 0);
    tok_emit(enc, ids->v, keep, 0, word_of->v);
    tok_emit_special(enc, t->sep_id, 0);
    return QB_OK;
}

qb_status qb_tokenizer_copy_files(const char *from_dir, const char *to_dir, qb_error *err) {
    static const char *const files[] = {"vocab.txt", "spiece.model", "tokenizer_config.json",
                                        "special_tokens_map.json", "tokenizer.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char s[4200], d[4200];
        if (!qb_path_join(s, sizeof s, from_dir, files[i]) || !qb_path_join(d, sizeof d, to_dir, files[i]))
            return qb_fail(err, QB_ERR_ARG, "%s: path too long", to_dir);
        if (!qb_file_exists(s)) continue;
        qb_status st = qb_file_copy(s, d, err);
        if (st) return st;
    }
    return QB_OK;
}
