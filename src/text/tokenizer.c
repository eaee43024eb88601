/* The tokenizer front: loading either kind, and what both share: the
 * [CLS]/[SEP] layout, longest_first truncation and the encoding buffers. */
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "text/tok_work.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"

void qb_tok_template_bert(qb_tok_template *t, int32_t cls, int32_t sep) {
    *t = (qb_tok_template){.n_single = 3, .n_pair = 5};
    t->single[0] = t->pair[0] = (qb_tok_item){-1, cls, 0};
    t->single[1] = t->pair[1] = (qb_tok_item){0, 0, 0};
    t->single[2] = t->pair[2] = (qb_tok_item){-1, sep, 0};
    t->pair[3] = (qb_tok_item){1, 0, 1};
    t->pair[4] = (qb_tok_item){-1, sep, 1};
}

qb_tok_options qb_tok_default_options(void) {
    return (qb_tok_options){.do_lower_case = true,
                            .strip_accents = -1,
                            .tokenize_chinese_chars = true,
                            .remove_space = true,
                            .keep_accents = false,
                            .slow = true};
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

static int tok_added_cmp(const void *x, const void *y) {
    const qb_tok_added *a = x, *b = y;
    unsigned char ca = (unsigned char)a->content[0], cb = (unsigned char)b->content[0];
    if (ca != cb) return ca < cb ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

void qb_tok_added_index(qb_tokenizer *t) {
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, tok_added_cmp);
    size_t k = 0;
    for (int ch = 0; ch <= 256; ch++) {
        while (k < (size_t)t->n_added && (unsigned char)t->added[k].content[0] < ch) k++;
        t->added_first[ch] = k;
    }
    t->added_first[256] = (size_t)t->n_added;
}

/* The slow tokenizers' special tokens, as the added tokens they are in
 * Hugging Face: split out of the text wherever they stand ("[MASK]." is
 * [MASK] then "."), ALBERT's [MASK] taking the spaces before it. */
typedef struct {
    const char *name;
    bool lstrip;
} tok_special;

static bool tok_add_specials(qb_tokenizer *t, const tok_special *sp, int n) {
    if (!(t->added = calloc((size_t)n, sizeof *t->added))) return false;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(sp[i].name);
        int32_t id = t->wp ? qb_wp_id(t->wp, sp[i].name, -1) : qb_sp_id(t->sp, sp[i].name, len);
        bool absent = t->wp ? id < 0 : id == qb_sp_id(t->sp, "<unk>", 5) && strcmp(sp[i].name, "<unk>");
        if (absent) continue; /* not in this vocabulary: plain text */
        char *content = strdup(sp[i].name);
        if (!content) return false;
        t->added[t->n_added++] =
            (qb_tok_added){.content = content, .len = len, .id = id, .lstrip = sp[i].lstrip, .special = true};
    }
    qb_tok_added_index(t);
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
    t->kind = QB_TOK_WORDPIECE;
    t->wp = wp;
    t->slow = true;
    t->pad_id = qb_wp_id(wp, "[PAD]", 0);
    qb_tok_template_bert(&t->tmpl, cls, sep);
    t->dec = (qb_tok_decoder){.kind = QB_DEC_WORDPIECE, .cleanup = true};
    snprintf(t->desc, sizeof t->desc, "wordpiece");
    static const tok_special specials[] = {
        {"[PAD]", false}, {"[UNK]", false}, {"[CLS]", false}, {"[SEP]", false}, {"[MASK]", false}};
    if (!tok_add_specials(t, specials, 5)) {
        qb_tokenizer_free(t);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", vocab_path);
    }
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
    t->kind = QB_TOK_SENTENCEPIECE;
    t->sp = sp;
    t->slow = true;
    t->pad_id = qb_sp_id(sp, "<pad>", 5);
    qb_tok_template_bert(&t->tmpl, qb_sp_id(sp, "[CLS]", 5), qb_sp_id(sp, "[SEP]", 5));
    t->dec = (qb_tok_decoder){.kind = QB_DEC_METASPACE, .strip_first = true};
    snprintf(t->desc, sizeof t->desc, "sentencepiece");
    static const tok_special specials[] = {
        {"<pad>", false}, {"<unk>", false}, {"[CLS]", false}, {"[SEP]", false}, {"[MASK]", true}};
    if (!tok_add_specials(t, specials, 5)) {
        qb_tokenizer_free(t);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", spiece_path);
    }
    *out = t;
    return QB_OK;
}

void qb_tokenizer_free(qb_tokenizer *t) {
    if (!t) return;
    qb_wp_free(t->wp);
    qb_sp_free(t->sp);
    qb_bpe_free(t->bpe);
    qb_hfp_free(t->pipe);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    if (t->pieces)
        for (int i = 0; i < t->n_pieces; i++) free(t->pieces[i]);
    free(t->pieces);
    free(t);
}

size_t qb_tokenizer_bytes(const qb_tokenizer *t) {
    size_t n = sizeof *t + (t->wp ? qb_wp_bytes(t->wp) : 0) + (t->sp ? qb_sp_bytes(t->sp) : 0) +
               (t->bpe ? qb_bpe_bytes(t->bpe) : 0) + (t->pipe ? qb_hfp_bytes(t->pipe) : 0);
    for (int i = 0; i < t->n_added; i++) n += sizeof *t->added + t->added[i].len + 1;
    for (int i = 0; t->pieces && i < t->n_pieces; i++) n += sizeof *t->pieces + (t->pieces[i] ? strlen(t->pieces[i]) + 1 : 0);
    return n;
}

qb_tok_kind qb_tokenizer_kind(const qb_tokenizer *t) { return t->kind; }

const char *qb_tokenizer_describe(const qb_tokenizer *t) { return t->desc; }

int qb_tokenizer_vocab_size(const qb_tokenizer *t) {
    if (t->pieces) return t->n_pieces;
    return t->kind == QB_TOK_WORDPIECE ? qb_wp_vocab_size(t->wp) : qb_sp_vocab_size(t->sp);
}

int32_t qb_tokenizer_pad_id(const qb_tokenizer *t) { return t->pad_id; }

int32_t qb_tokenizer_mask_id(const qb_tokenizer *t) {
    static const char *names[] = {"[MASK]", "<mask>"};
    int n = qb_tokenizer_vocab_size(t);
    for (size_t k = 0; k < sizeof names / sizeof *names; k++)
        for (int32_t id = 0; id < n; id++) {
            const char *p = qb_tokenizer_piece(t, id);
            if (p && !strcmp(p, names[k])) return id;
        }
    return -1;
}

const char *qb_tokenizer_piece(const qb_tokenizer *t, int32_t id) {
    if (t->pieces) return id >= 0 && id < t->n_pieces ? t->pieces[id] : NULL;
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
        for (size_t i = 0; i < TOK_COUNT(w->bpe); i++) free(w->bpe[i].v);
        free(w->word.v);
        for (int k = 0; k < 2; k++) free(w->prep_cp[k].v), free(w->prep[k].v);
        free(w->heap.v);
        free(w->ug.v);
        for (size_t i = 0; i < TOK_COUNT(w->pre); i++) free(w->pre[i].v);
        for (size_t i = 0; i < TOK_COUNT(w->words); i++) free(w->words[i].v);
        for (size_t i = 0; i < TOK_COUNT(w->word_of); i++) free(w->word_of[i].v);
#undef TOK_COUNT
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

static qb_status tok_model(const qb_tokenizer *t, const char *text, size_t len, bool at_start, const char *what,
                           qb_tok_work *w, qb_i32buf *ids, qb_error *err) {
    if (t->pipe) return qb_hfp_tokenize(t->pipe, text, len, at_start, what, w, ids, err);
    switch (t->kind) {
    case QB_TOK_WORDPIECE: return qb_wp_tokenize(t->wp, text, len, what, w, ids, err);
    case QB_TOK_SENTENCEPIECE: return qb_sp_tokenize(t->sp, text, len, what, w, ids, err);
    case QB_TOK_BPE: return qb_bpe_tokenize(t->bpe, text, len, what, w, ids, err);
    case QB_TOK_UNIGRAM: break;
    }
    return qb_fail(err, QB_ERR_ARG, "%s: unknown tokenizer kind", what);
}

/* Rust's char::is_whitespace at s[i] (forward) or ending at s[i] (back):
 * its byte length, 0 when not whitespace. */
static size_t tok_space_at(const char *s, size_t len, size_t i) {
    uint32_t c;
    size_t k = qb_utf8_decode_char(s + i, len - i, &c);
    return k && qb_uni_is_py_space(c) && (c < 0x1C || c > 0x1F) ? k : 0;
}

static size_t tok_space_before(const char *s, size_t len, size_t i) {
    size_t j = i;
    while (j > 0 && j + 4 > i && ((unsigned char)s[j - 1] & 0xC0) == 0x80) j--;
    if (j == 0) return 0;
    j--;
    return tok_space_at(s, len, j) == i - j ? i - j : 0;
}

/* A letter, digit or '_' at s[i]: what single_word added tokens may not touch. */
static bool tok_word_char(const char *s, size_t len, size_t i) {
    uint32_t c;
    return qb_utf8_decode_char(s + i, len - i, &c) && (c == '_' || qb_uni_is_alnum(c));
}

static size_t tok_prev_char(const char *s, size_t i) {
    do i--;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80);
    return i;
}

bool qb_tok_fold_eq(const char *lower, const char *s, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (qb_tok_ascii_lower(s[k]) != lower[k]) return false;
    return true;
}

bool qb_tok_is_ascii(const char *s, size_t n) {
    for (size_t k = 0; k < n; k++)
        if ((unsigned char)s[k] >= 0x80) return false;
    return true;
}

static bool tok_added_match(const qb_tok_added *a, const char *s) {
    return a->fold ? qb_tok_fold_eq(a->content, s, a->len) : memcmp(s, a->content, a->len) == 0;
}

/* The longest added token at text[i] among those starting with byte c. */
static const qb_tok_added *tok_added_from(const qb_tokenizer *t, unsigned char c, const char *s, size_t len,
                                          size_t i, const qb_tok_added *best) {
    for (size_t k = t->added_first[c]; k < t->added_first[c + 1]; k++) {
        const qb_tok_added *a = &t->added[k];
        if (a->len > len - i || (best && a->len <= best->len) || !tok_added_match(a, s + i)) continue;
        if (a->single_word && ((i > 0 && tok_word_char(s, len, tok_prev_char(s, i))) ||
                               (i + a->len < len && tok_word_char(s, len, i + a->len))))
            continue;
        best = a;
    }
    return best;
}

/* The longest added token at text[i] (leftmost-longest, as HF's
 * Aho-Corasick), or NULL. */
const qb_tok_added *qb_tok_added_at(const qb_tokenizer *t, const char *s, size_t len, size_t i) {
    unsigned char c = (unsigned char)s[i], lower = (unsigned char)qb_tok_ascii_lower(s[i]);
    const qb_tok_added *best = tok_added_from(t, c, s, len, i, NULL);
    /* a folding token is filed under its lowercase first byte */
    return lower != c ? tok_added_from(t, lower, s, len, i, best) : best;
}

void qb_tok_added_extent(const qb_tok_added *a, const char *text, size_t len, size_t i, size_t lo, size_t *s,
                         size_t *e) {
    size_t k;
    *s = i, *e = i + a->len;
    if (a->lstrip)
        while (*s > lo && (k = tok_space_before(text, len, *s)) > 0) *s -= k;
    if (a->rstrip)
        while (*e < len && (k = tok_space_at(text, len, *e)) > 0) *e += k;
}

/* Added tokens split the text first (their ids stand as they are, the
 * whitespace lstrip/rstrip ask for goes with them); the model reads the rest. */
qb_status qb_tok_segment(const qb_tokenizer *t, const char *text, size_t len, const char *what, qb_tok_work *w,
                         qb_i32buf *ids, qb_error *err) {
    if (!text && len) return qb_fail(err, QB_ERR_ARG, "%s: NULL text with length %zu", what, len);
    if (!text) text = "";
    if (!t->n_added) return tok_model(t, text, len, true, what, w, ids, err);
    size_t start = 0, i = 0;
    while (i < len) {
        const qb_tok_added *a = qb_tok_added_at(t, text, len, i);
        if (!a) {
            i++;
            continue;
        }
        size_t s, e;
        qb_tok_added_extent(a, text, len, i, start, &s, &e);
        if (s > start) {
            qb_status st = tok_model(t, text + start, s - start, start == 0, what, w, ids, err);
            if (st != QB_OK) return st;
        }
        if (!qb_tok_push(ids, a->id)) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", what);
        start = i = e;
    }
    if (start < len || len == 0) return tok_model(t, text + start, len - start, start == 0, what, w, ids, err);
    return QB_OK;
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

int qb_tok_template_items(const qb_tokenizer *t, bool has_pair, const qb_tok_item **it, int *n_it) {
    *it = has_pair ? t->tmpl.pair : t->tmpl.single;
    *n_it = has_pair ? t->tmpl.n_pair : t->tmpl.n_single;
    int k = 0;
    for (int i = 0; i < *n_it; i++) k += (*it)[i].seq < 0;
    return k;
}

/* The template of a text (or a pair), room for its special tokens checked
 * against the caller's max_length: that is the length, as transformers
 * sets its own over tokenizer.json's truncation on every call. */
static qb_status tok_template(const qb_tokenizer *t, bool has_pair, int *max_length, const qb_tok_item **it,
                              int *n_it, int *specials, qb_error *err) {
    *specials = qb_tok_template_items(t, has_pair, it, n_it);
    if (*max_length < *specials || *max_length < 1)
        return qb_fail(err, QB_ERR_ARG, "max_length %d leaves no room for the %d special tokens", *max_length,
                       *specials);
    return QB_OK;
}

void qb_tok_keep(const qb_tokenizer *t, size_t budget, size_t n0, size_t n1, size_t keep[2]) {
    keep[0] = n0, keep[1] = n1;
    if (n0 + n1 <= budget) return;
    if (t->slow) {
        while (keep[0] + keep[1] > budget) keep[keep[0] <= keep[1]]--;
        return;
    }
    bool swap = n0 > n1;
    size_t shorter = swap ? n1 : n0, longer;
    if (shorter > budget / 2) shorter = budget / 2, longer = shorter + budget % 2;
    else longer = budget - shorter;
    keep[0] = swap ? longer : shorter;
    keep[1] = swap ? shorter : longer;
}

/* The segments' ids truncated longest_first (as qb_tok_keep) and laid into
 * the template; word_of (NULL: no words) maps each segment's ids to words. */
static qb_status tok_assemble(const qb_tokenizer *t, const qb_tok_item *it, int n_it, int specials, int max_length,
                              const qb_i32buf *seg, const qb_i32buf *word_of, qb_encoding *enc, qb_error *err) {
    size_t keep[2];
    qb_tok_keep(t, (size_t)(max_length - specials), seg[0].n, seg[1].n, keep);
    if (!tok_reserve_encoding(enc, keep[0] + keep[1] + (size_t)specials))
        return qb_fail(err, QB_ERR_NOMEM, "tokenizer: out of memory");
    enc->n = 0;
    enc->n_truncated = (int)((seg[0].n - keep[0]) + (seg[1].n - keep[1]));
    for (int i = 0; i < n_it; i++) {
        int sq = it[i].seq;
        if (sq < 0) tok_emit(enc, &it[i].id, 1, it[i].type, NULL);
        else tok_emit(enc, seg[sq].v, keep[sq], it[i].type, word_of ? word_of[sq].v : NULL);
    }
    return QB_OK;
}

void qb_tokenizer_set_sentence_prep(qb_tokenizer *t, bool strip, bool lower) {
    t->st_strip = strip;
    t->st_lower = lower;
}

qb_status qb_tok_prep(const qb_tokenizer *t, const char **s, size_t *len, size_t *start, int k, qb_tok_work *w,
                      const char *what, qb_error *err) {
    *start = 0;
    if (!*s) return QB_OK;
    size_t a = 0, b = *len, n;
    uint32_t c;
    while (t->st_strip && a < b && (n = qb_utf8_decode_char(*s + a, b - a, &c)) && qb_uni_is_py_space(c)) a += n;
    for (size_t p; t->st_strip && b > a; b = p) {
        p = tok_prev_char(*s, b);
        if (qb_utf8_decode_char(*s + p, b - p, &c) != b - p || !qb_uni_is_py_space(c)) break;
    }
    *s += a, *len = b - a, *start = a;
    if (!t->st_lower) return QB_OK;
    qb_u32buf *cp = w->prep_cp;
    cp[0].n = cp[1].n = w->prep[k].n = 0;
    qb_status st = qb_utf8_decode(*s, *len, &cp[0], what, err);
    if (st) return st;
    if (!qb_uni_lower(cp[0].v, cp[0].n, true, &cp[1]) || !qb_utf8_encode(cp[1].v, cp[1].n, &w->prep[k]))
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", what);
    *s = w->prep[k].v, *len = w->prep[k].n; /* *start still maps it back: lowercase keeps most lengths */
    return QB_OK;
}

qb_status qb_tokenizer_encode(const qb_tokenizer *t, const char *text, size_t len,
                              const char *pair, size_t pair_len, int max_length,
                              qb_encoding *enc, qb_error *err) {
    const qb_tok_item *it;
    int n_it, specials;
    qb_status st = tok_template(t, pair != NULL, &max_length, &it, &n_it, &specials, err);
    if (st != QB_OK) return st;
    qb_tok_work *w = tok_work(enc);
    if (!w) return qb_fail(err, QB_ERR_NOMEM, "tokenizer: out of memory");
    qb_i32buf *seg = w->seg;
    seg[0].n = seg[1].n = 0;
    size_t start;
    st = qb_tok_prep(t, &text, &len, &start, 0, w, "text", err);
    if (st == QB_OK && pair) st = qb_tok_prep(t, &pair, &pair_len, &start, 1, w, "text pair", err);
    if (st == QB_OK) st = qb_tok_segment(t, text, len, "text", w, &seg[0], err);
    if (st == QB_OK && pair) st = qb_tok_segment(t, pair, pair_len, "text pair", w, &seg[1], err);
    if (st != QB_OK) return st;
    return tok_assemble(t, it, n_it, specials, max_length, seg, NULL, enc, err);
}

bool qb_tok_byte_level(const qb_tokenizer *t) {
    return t->pipe ? qb_hfp_byte_level(t->pipe) : t->kind == QB_TOK_BPE && qb_bpe_byte_level(t->bpe);
}

/* Words without the text they came from (a CoNLL file's) are read as
 * transformers' is_split_into_words does, which needs a byte-level BPE
 * built with add_prefix_space: each word after a space ("ĠIndian"). */
static const char *tok_word_text(const qb_tokenizer *t, const char *s, size_t *len, qb_tok_work *w) {
    if (!qb_tok_byte_level(t) || (*len && s[0] == ' ')) return s;
    if (!QB_TOK_RESERVE(&w->word, *len + 2)) return NULL;
    w->word.v[0] = ' ';
    if (*len) memcpy(w->word.v + 1, s, *len);
    w->word.n = ++*len;
    return w->word.v;
}

/* One segment's words, tokenized one by one into ids, with word_of the
 * word index (first + i) of each id; bare: words without their text. */
static qb_status tok_words(const qb_tokenizer *t, const qb_words *ws, int first, bool bare, qb_tok_work *w,
                           qb_i32buf *ids, qb_i32buf *word_of, qb_error *err) {
    ids->n = word_of->n = 0;
    if (ws->n < 0 || (ws->n > 0 && (!ws->words || !ws->lens)))
        return qb_fail(err, QB_ERR_ARG, "encode_words: bad word list (%d words)", ws->n);
    for (int i = 0; i < ws->n; i++) {
        char what[32];
        snprintf(what, sizeof what, "word %d", first + i);
        size_t len = ws->lens[i];
        const char *s = bare && ws->words[i] ? tok_word_text(t, ws->words[i], &len, w) : ws->words[i];
        if (!s && ws->words[i]) return qb_fail(err, QB_ERR_NOMEM, "tokenizer: out of memory");
        qb_status st = qb_tok_segment(t, s, len, what, w, ids, err);
        if (st != QB_OK) return st;
        if (!QB_TOK_RESERVE(word_of, ids->n)) return qb_fail(err, QB_ERR_NOMEM, "tokenizer: out of memory");
        while (word_of->n < ids->n) word_of->v[word_of->n++] = first + i;
    }
    return QB_OK;
}

static qb_status tok_encode_words(const qb_tokenizer *t, const qb_words *text, const qb_words *pair, bool bare,
                                  int max_length, qb_encoding *enc, qb_error *err) {
    const qb_tok_item *it;
    int n_it, specials;
    qb_status st = tok_template(t, pair != NULL, &max_length, &it, &n_it, &specials, err);
    if (st != QB_OK) return st;
    qb_tok_work *w = tok_work(enc);
    if (!w) return qb_fail(err, QB_ERR_NOMEM, "tokenizer: out of memory");
    qb_i32buf *seg = w->seg, *word_of = w->word_of;
    seg[1].n = word_of[1].n = 0;
    st = tok_words(t, text, 0, bare, w, &seg[0], &word_of[0], err);
    if (st == QB_OK && pair) st = tok_words(t, pair, text->n, bare, w, &seg[1], &word_of[1], err);
    if (st != QB_OK) return st;
    return tok_assemble(t, it, n_it, specials, max_length, seg, word_of, enc, err);
}

qb_status qb_tokenizer_encode_words(const qb_tokenizer *t, const char *const *words,
                                    const size_t *lens, int n_words, int max_length,
                                    qb_encoding *enc, qb_error *err) {
    qb_words text = {words, lens, n_words};
    return tok_encode_words(t, &text, NULL, true, max_length, enc, err);
}

qb_status qb_tokenizer_encode_word_pair(const qb_tokenizer *t, const qb_words *text, const qb_words *pair,
                                        int max_length, qb_encoding *enc, qb_error *err) {
    return tok_encode_words(t, text, pair, false, max_length, enc, err);
}

/* The length of a special (added) token written at s[i], or 0. */
static size_t tok_special_len(const qb_tokenizer *t, const char *s, size_t len, size_t i) {
    const qb_tok_added *a = t->n_added ? qb_tok_added_at(t, s, len, i) : NULL;
    return a ? a->len : 0;
}

/* A byte-level BPE's pre-tokenizer also cuts inside a whitespace-free run
 * where GPT-2's pattern does ("York." -> "York", "."; "it's" -> "it",
 * "'s"): the run [start, end) as those pieces, else whole. */
static void put_word(bool regex, const char *text, size_t start, size_t end, uint32_t *cp, size_t *at,
                     qb_word_span *spans, int *n) {
    if (!regex) {
        spans[(*n)++] = (qb_word_span){start, end, start, end};
        return;
    }
    size_t m = 0;
    for (size_t i = start; i < end; m++) {
        at[m] = i;
        i += qb_utf8_decode_char(text + i, end - i, &cp[m]);
    }
    at[m] = end;
    for (size_t i = 0, k; i < m; i += k) {
        k = qb_bpe_gpt2_match(cp, m, i);
        spans[(*n)++] = (qb_word_span){at[i], at[i + k], at[i], at[i + k]};
    }
}

static qb_status split_words(const qb_tokenizer *t, bool bert, bool regex, const char *text, size_t len, uint32_t *cp,
                             size_t *at, qb_word_span *spans, int *n, qb_error *err) {
    size_t i = 0, start = 0;
    bool in_word = false;
    *n = 0;
    while (i < len) {
        uint32_t c;
        size_t k = qb_utf8_decode_char(text + i, len - i, &c), special = tok_special_len(t, text, len, i);
        if (!k) return qb_fail(err, QB_ERR_UTF8, "text: invalid UTF-8 at byte %zu", i);
        /* BERT's cleanup drops control characters before it splits: U+0085 joins, not splits */
        bool dropped = bert && (c == 0 || c == 0xFFFD || qb_uni_is_bert_control(c));
        bool space = !dropped && (qb_uni_is_py_space(c) || (bert && qb_uni_is_bert_space(c)));
        bool alone = special || (bert && (qb_uni_is_punct(c) || qb_uni_is_cjk(c)));
        if (in_word && (space || alone)) put_word(regex, text, start, i, cp, at, spans, n);
        in_word = !space && !alone && (in_word || (start = i, true));
        if (alone) spans[(*n)++] = (qb_word_span){i, i + (special ? special : k), i, i + (special ? special : k)};
        i += special ? special : k;
    }
    if (in_word) put_word(regex, text, start, len, cp, at, spans, n);
    bool byte_level = qb_tok_byte_level(t);
    for (int w = 0; byte_level && w < *n; w++) spans[w].tok_start = w ? spans[w - 1].end : 0;
    if (byte_level && *n) spans[*n - 1].tok_end = len;
    return QB_OK;
}

qb_status qb_tokenizer_split_words(const qb_tokenizer *t, const char *text, size_t len, qb_word_span *spans,
                                   int *n, qb_error *err) {
    bool bert = t->kind == QB_TOK_WORDPIECE;
    bool regex = t->pipe ? qb_hfp_byte_regex(t->pipe) : t->kind == QB_TOK_BPE && qb_bpe_byte_regex(t->bpe);
    uint32_t *cp = regex ? malloc((len + 1) * sizeof *cp) : NULL;
    size_t *at = regex ? malloc((len + 1) * sizeof *at) : NULL;
    if (regex && (!cp || !at)) {
        free(cp);
        free(at);
        return qb_fail(err, QB_ERR_NOMEM, "text: out of memory splitting words");
    }
    qb_status st = split_words(t, bert, regex, text, len, cp, at, spans, n, err);
    free(cp);
    free(at);
    return st;
}

qb_status qb_tokenizer_copy_files(const char *from_dir, const char *to_dir, qb_error *err) {
    static const char *const files[] = {"vocab.txt", "spiece.model", "tokenizer_config.json",
                                        "special_tokens_map.json", "added_tokens.json", "tokenizer.json"};
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
