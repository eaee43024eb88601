/* Token offsets as Hugging Face's tokenizers reports them.  They are found
 * after the fact instead of being carried through every normalizer and
 * model: the text is split into the words its pre-tokenizer makes, each
 * word is tokenized alone, and its tokens are laid over the word as the
 * normalizer spells it, one character at a time, so that every normalized
 * byte points back at the character it came from, as tokenizers' alignments
 * do.  Only /tokenize asks for offsets, so this costs the hot path nothing. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"

typedef struct {
    size_t start, end;
    bool added; /* an added token: its text is the original's, whitespace it strips included */
} off_range;

typedef struct {
    qb_bytebuf s;      /* a word as its tokens spell it */
    off_range *from;   /* per byte of s: the text's character it came from */
    size_t from_cap;
    qb_bytebuf pieces; /* the word's tokens as they appear in s, end to end */
    size_t *at;        /* per token: where it starts in pieces, then where in s */
    size_t at_cap;
    qb_i32buf ids;     /* the word's tokens */
    qb_word_span *words;
    size_t words_cap;
    qb_i32buf seg[2];  /* each segment's tokens, word by word */
    off_range *out[2]; /* ... and where they came from */
    size_t out_cap[2];
    bool byte_level;
} off_work;

static qb_status off_nomem(qb_error *err) { return qb_fail(err, QB_ERR_NOMEM, "offsets: out of memory"); }

static qb_status off_normalize(const qb_tokenizer *t, const char *c, size_t n, qb_tok_work *w, qb_bytebuf **out,
                               qb_error *err) {
    if (t->pipe) return qb_hfp_normalize_char(t->pipe, c, n, w, out, err);
    if (t->kind == QB_TOK_WORDPIECE) return qb_wp_normalize_char(t->wp, c, n, w, out, err);
    if (t->kind == QB_TOK_SENTENCEPIECE) return qb_sp_normalize_char(t->sp, c, n, w, out, err);
    *out = &w->utf8[0];
    if (!QB_TOK_RESERVE(*out, n + 1)) return off_nomem(err);
    memcpy((*out)->v, c, n);
    (*out)->n = n;
    return QB_OK;
}

/* Appends r's characters to o->s, pointing back at src; spaces and ▁ stand
 * between tokens, never in one, so they are left out unless keep_spaces. */
static bool off_put(off_work *o, const char *r, size_t n, off_range src, bool keep_spaces) {
    if (!QB_TOK_RESERVE(&o->s, o->s.n + n + 1) ||
        !qb_tok_reserve((void **)&o->from, &o->from_cap, o->s.n + n + 1, sizeof *o->from))
        return false;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t k = qb_utf8_decode_char(r + i, n - i, &c);
        if (!k) k = 1, c = 0;
        if (keep_spaces || (c != QB_UNI_SP_SPACE && !qb_uni_is_py_space(c)))
            for (size_t j = 0; j < k; j++) o->from[o->s.n] = src, o->s.v[o->s.n++] = r[i + j];
        i += k;
    }
    return true;
}

/* A normalizer's replacement of several characters at s (tokenizers'
 * leading Replace normalizers, AlbertTokenizer's `` and ''): the bytes it
 * replaces, 0 if none, and in *to what it puts there. */
static size_t off_replaced(const qb_tokenizer *t, const char *s, size_t n, const char **to, size_t *to_len) {
    if (t->pipe) return qb_hfp_leading_replace(t->pipe, s, n, to, to_len);
    if (t->kind != QB_TOK_SENTENCEPIECE || n < 2 || s[0] != s[1] || (s[0] != '`' && s[0] != '\'')) return 0;
    *to = "\"", *to_len = 1;
    return 2;
}

/* The word text[r) as its tokens spell it: normalized character by
 * character, or its bytes for a byte-level BPE.  A replacement points back
 * at the last character it replaces, as tokenizers aligns it. */
static qb_status off_spell(const qb_tokenizer *t, const char *text, size_t len, off_range r, off_work *o,
                           qb_tok_work *w, qb_error *err) {
    o->s.n = 0;
    for (size_t i = r.start; i < r.end;) {
        uint32_t c;
        size_t k = qb_utf8_decode_char(text + i, len - i, &c);
        if (!k) return qb_fail(err, QB_ERR_UTF8, "text: invalid UTF-8 at byte %zu", i);
        const char *to = text + i;
        size_t to_len = k, rl = o->byte_level ? 0 : off_replaced(t, text + i, r.end - i, &to, &to_len);
        off_range src = {i, i + k, false};
        if (rl) {
            src = (off_range){i + rl - 1, i + rl, false};
            while (src.start > i && ((unsigned char)text[src.start] & 0xC0) == 0x80) src.start--;
        }
        qb_bytebuf *nb = NULL;
        qb_status st = o->byte_level ? QB_OK : off_normalize(t, to, to_len, w, &nb, err);
        if (st != QB_OK) return st;
        if (!off_put(o, nb ? nb->v : to, nb ? nb->n : to_len, src, o->byte_level)) return off_nomem(err);
        i += rl ? rl : k;
    }
    return QB_OK;
}

/* A token as it appears in its word's spelling: a WordPiece continuation
 * without its "##", ▁ and spaces left out, byte-level characters back to
 * their bytes. */
static bool off_surface(const qb_tokenizer *t, const off_work *o, int32_t id, bool continuation, qb_bytebuf *out) {
    const char *p = qb_tokenizer_piece(t, id);
    size_t n = p ? strlen(p) : 0;
    if (continuation && t->kind == QB_TOK_WORDPIECE && n >= 2 && p[0] == '#' && p[1] == '#') p += 2, n -= 2;
    if (!QB_TOK_RESERVE(out, out->n + n + 1)) return false;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t k = qb_utf8_decode_char(p + i, n - i, &c);
        if (!k) k = 1, c = 0;
        int b = o->byte_level ? qb_bpe_char_byte(c) : -1;
        if (b >= 0) out->v[out->n++] = (char)b;
        else if (o->byte_level || (c != QB_UNI_SP_SPACE && !qb_uni_is_py_space(c)))
            for (size_t j = 0; j < k; j++) out->v[out->n++] = p[i + j];
        i += k;
    }
    return true;
}

static bool off_matches(const off_work *o, size_t pos, size_t i) {
    size_t l = o->at[i + 1] - o->at[i];
    return pos <= o->s.n && l <= o->s.n - pos && (!l || !memcmp(o->s.v + pos, o->pieces.v + o->at[i], l));
}

/* Lays the word's k tokens (their surfaces from o->at[i] in o->pieces) over
 * its spelling o->s; on return o->at[k + 1 + i] is where token i starts in
 * s.  A token that differs from the spelling ("[UNK]", "<unk>") covers what
 * lies before the next token's first match.  False when they cannot be laid. */
static bool off_lay(off_work *o, size_t k) {
    size_t *at = o->at + k + 1, n = o->s.n, pos = 0;
    for (size_t i = 0; i < k; i++) {
        at[i] = pos;
        if (off_matches(o, pos, i)) {
            pos += o->at[i + 1] - o->at[i];
            continue;
        }
        if (i + 1 == k) {
            pos = n;
            break;
        }
        do pos++;
        while (pos < n && !off_matches(o, pos, i + 1));
        if (!off_matches(o, pos, i + 1)) return false;
    }
    at[k] = n;
    return pos == n;
}

/* Where token i of a laid word came from: the characters its bytes point
 * at; a token of no bytes (a lone ▁) takes the character after it. */
static off_range off_token_range(const off_work *o, size_t k, size_t i, size_t word_end) {
    const size_t *at = o->at + k + 1;
    if (at[i] < at[i + 1]) return (off_range){o->from[at[i]].start, o->from[at[i + 1] - 1].end, false};
    if (at[i] < o->s.n) return o->from[at[i]];
    return (off_range){word_end, word_end, false};
}

static bool off_push(off_work *o, int s, int32_t id, off_range r) {
    qb_i32buf *seg = &o->seg[s];
    if (!qb_tok_reserve((void **)&o->out[s], &o->out_cap[s], seg->n + 1, sizeof *o->out[s])) return false;
    o->out[s][seg->n] = r;
    return qb_tok_push(seg, id);
}

/* The word text[r)'s tokens (o->ids) with where they came from, onto
 * segment s: each token where it lies, or all of them on the whole word
 * when they cannot be laid (a normalizer that joins characters). */
static qb_status off_word(const qb_tokenizer *t, const char *text, size_t len, off_range r, int s, off_work *o,
                          qb_tok_work *w, qb_error *err) {
    size_t k = o->ids.n;
    qb_status st = off_spell(t, text, len, r, o, w, err);
    if (st != QB_OK) return st;
    if (!qb_tok_reserve((void **)&o->at, &o->at_cap, 2 * (k + 1), sizeof *o->at)) return off_nomem(err);
    o->pieces.n = 0;
    for (size_t i = 0; i < k; i++) {
        o->at[i] = o->pieces.n;
        if (!off_surface(t, o, o->ids.v[i], i > 0, &o->pieces)) return off_nomem(err);
    }
    o->at[k] = o->pieces.n;
    /* ByteLevel's add_prefix_space: a space before the text, aligned with its first character */
    if (o->byte_level && r.start == 0 && o->s.n && o->pieces.n && o->pieces.v[0] == ' ' && o->s.v[0] != ' ') {
        if (!off_put(o, " ", 1, o->from[0], true)) return off_nomem(err);
        memmove(o->s.v + 1, o->s.v, o->s.n - 1);
        memmove(o->from + 1, o->from, (o->s.n - 1) * sizeof *o->from);
        o->s.v[0] = ' ';
    }
    bool laid = off_lay(o, k);
    for (size_t i = 0; i < k; i++)
        if (!off_push(o, s, o->ids.v[i], laid ? off_token_range(o, k, i, r.end) : r)) return off_nomem(err);
    return QB_OK;
}

/* Word i's bytes as it is tokenized alone: an added token takes the
 * whitespace its lstrip and rstrip ask for. */
static off_range off_word_range(const qb_tokenizer *t, const char *text, size_t len, const off_work *o, int i,
                                size_t prev_end) {
    const qb_word_span *wd = &o->words[i];
    off_range r = {o->byte_level ? wd->tok_start : wd->start, o->byte_level ? wd->tok_end : wd->end, false};
    const qb_tok_added *a = t->n_added ? qb_tok_added_at(t, text, len, wd->start) : NULL;
    if (a && a->len == wd->end - wd->start) {
        r.added = true;
        qb_tok_added_extent(a, text, len, wd->start, i > 0 ? o->words[i - 1].end : 0, &r.start, &r.end);
    }
    if (r.start < prev_end) r.start = prev_end;
    return r;
}

/* RobertaProcessing's trim_offsets: a token's leading and trailing spaces
 * (Ġ) leave its offsets, counted in characters as tokenizers counts them.
 * An added token's text is what it matched, the whitespace it strips too. */
static off_range off_trim(const qb_tokenizer *t, const char *text, int32_t id, bool first, off_range r) {
    const char *p = r.added ? text + r.start : qb_tokenizer_piece(t, id);
    size_t n = r.added ? r.end - r.start : p ? strlen(p) : 0, lead = 0, trail = 0, i = 0;
    bool in_lead = true;
    while (i < n) {
        uint32_t c;
        size_t k = qb_utf8_decode_char(p + i, n - i, &c);
        if (!k) break;
        bool space = c == qb_bpe_byte_char(' ') || qb_uni_is_py_space(c);
        lead += in_lead && space;
        in_lead = in_lead && space;
        trail = space ? trail + 1 : 0;
        i += k;
    }
    if (lead == 1 && (first || r.start == 0) && t->trim_keeps_prefix) lead = 0;
    if (lead) r.start = r.start + lead < r.end ? r.start + lead : r.end;
    if (trail && r.end >= trail) r.end = r.end - trail > r.start ? r.end - trail : r.start;
    return r;
}

/* Segment s's tokens word by word with where they came from.  When they
 * are not the segment's own tokens (SentencePiece's Viterbi breaks a tie
 * otherwise in a whole text; whitespace alone under a byte-level BPE), the
 * segment's tokens are laid over the whole text instead. */
static qb_status off_segment(const qb_tokenizer *t, const char *text, size_t len, int s, off_work *o,
                             qb_tok_work *w, qb_error *err) {
    int n = 0;
    if (!qb_tok_reserve((void **)&o->words, &o->words_cap, len + 1, sizeof *o->words)) return off_nomem(err);
    qb_status st = qb_tokenizer_split_words(t, text, len, o->words, &n, err);
    size_t prev_end = 0;
    o->seg[s].n = 0;
    for (int i = 0; st == QB_OK && i < n; i++) {
        off_range r = off_word_range(t, text, len, o, i, prev_end);
        prev_end = r.end;
        o->ids.n = 0;
        st = qb_tok_segment(t, text + r.start, r.end - r.start, "text", w, &o->ids, err);
        if (st == QB_OK && r.added && o->ids.n == 1 && !off_push(o, s, o->ids.v[0], r)) st = off_nomem(err);
        else if (st == QB_OK && !r.added) st = off_word(t, text, len, r, s, o, w, err);
    }
    o->ids.n = 0;
    if (st == QB_OK) st = qb_tok_segment(t, text, len, "text", w, &o->ids, err);
    if (st != QB_OK) return st;
    size_t n_ids = o->ids.n;
    bool same = n_ids == o->seg[s].n && (!n_ids || !memcmp(o->ids.v, o->seg[s].v, n_ids * sizeof *o->ids.v));
    if (!same) {
        o->seg[s].n = 0;
        st = off_word(t, text, len, (off_range){0, len, false}, s, o, w, err);
        if (st != QB_OK) return st;
    }
    for (size_t i = 0; t->trim_offsets && i < o->seg[s].n; i++)
        o->out[s][i] = off_trim(t, text, o->seg[s].v[i], i == 0, o->out[s][i]);
    return QB_OK;
}

/* e's tokens laid into the template, each from its segment or special. */
static qb_status off_assemble(const qb_tokenizer *t, bool has_pair, const off_work *o, const qb_encoding *e,
                              qb_token_offset *out, qb_error *err) {
    const qb_tok_item *it;
    int n_it, pos = 0, specials = qb_tok_template_items(t, has_pair, &it, &n_it);
    size_t keep[2] = {0, 0};
    if (e->n >= specials) qb_tok_keep(t, (size_t)(e->n - specials), o->seg[0].n, has_pair ? o->seg[1].n : 0, keep);
    bool ok = e->n >= specials;
    for (int i = 0; ok && i < n_it; i++) {
        int s = it[i].seq;
        size_t k = s < 0 ? 1 : keep[s];
        for (size_t j = 0; ok && j < k; j++, pos++) {
            ok = pos < e->n && e->input_ids[pos] == (s < 0 ? it[i].id : o->seg[s].v[j]);
            if (ok && s < 0) out[pos] = (qb_token_offset){0, 0, -1, 1};
            else if (ok) out[pos] = (qb_token_offset){o->out[s][j].start, o->out[s][j].end, s, 0};
        }
    }
    if (!ok || pos != e->n)
        return qb_fail(err, QB_ERR_ARG, "offsets: the encoding's %d tokens are not those of this text", e->n);
    return QB_OK;
}

static void off_free(off_work *o) {
    free(o->s.v), free(o->from), free(o->pieces.v), free(o->at), free(o->ids.v), free(o->words);
    for (int s = 0; s < 2; s++) free(o->seg[s].v), free(o->out[s]);
    free(o);
}

qb_status qb_tokenizer_offsets(const qb_tokenizer *t, const char *text, size_t len, const char *pair,
                               size_t pair_len, const qb_encoding *e, qb_token_offset *out, qb_error *err) {
    off_work *o = calloc(1, sizeof *o);
    qb_encoding scratch = {0};
    scratch.work = calloc(1, sizeof(qb_tok_work));
    qb_status st = o && scratch.work ? QB_OK : off_nomem(err);
    size_t start[2] = {0, 0};
    if (!text) text = "", len = 0;
    if (st == QB_OK) st = qb_tok_prep(t, &text, &len, &start[0], 0, scratch.work, "text", err);
    if (st == QB_OK && pair) st = qb_tok_prep(t, &pair, &pair_len, &start[1], 1, scratch.work, "text pair", err);
    if (st == QB_OK) {
        o->byte_level = qb_tok_byte_level(t);
        st = off_segment(t, text, len, 0, o, scratch.work, err);
    }
    if (st == QB_OK && pair) st = off_segment(t, pair, pair_len, 1, o, scratch.work, err);
    if (st == QB_OK) st = off_assemble(t, pair != NULL, o, e, out, err);
    for (int i = 0; st == QB_OK && i < e->n; i++) /* back into the text as given, before stripping */
        if (!out[i].special) out[i].start += start[out[i].segment], out[i].end += start[out[i].segment];
    if (o) off_free(o);
    qb_encoding_free(&scratch);
    return st;
}
