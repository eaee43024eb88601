/* Token ids back to text, as tokenizers' Tokenizer::decode: each id's token
 * (the special ones left out when asked), then the decoder's chain
 * (WordPiece, ByteLevel, Metaspace, or the tokens joined by spaces). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"

/* Hugging Face's special tokens: tokenizer.json's added tokens marked
 * special; for vocab.txt and spiece.model those its slow tokenizers list
 * ([CLS], [SEP], the padding, [MASK], the unknown token). */
static bool dec_special(const qb_tokenizer *t, int32_t id, int32_t mask) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return t->added[i].special;
    if (t->n_added) return false;
    for (int i = 0; i < t->tmpl.n_single; i++)
        if (t->tmpl.single[i].seq < 0 && t->tmpl.single[i].id == id) return true;
    const char *p = qb_tokenizer_piece(t, id);
    return id == t->pad_id || id == mask || (p && (!strcmp(p, "[UNK]") || !strcmp(p, "<unk>")));
}

static bool dec_put(qb_bytebuf *o, const char *s, size_t n) {
    if (!QB_TOK_RESERVE(o, o->n + n + 1)) return false;
    if (n) memcpy(o->v + o->n, s, n);
    o->n += n;
    o->v[o->n] = 0;
    return true;
}

/* tokenizers' wordpiece::cleanup, on one token. */
static bool dec_cleanup(qb_bytebuf *tok, qb_bytebuf *tmp) {
    static const char *const rules[][2] = {{" .", "."},      {" ?", "?"},   {" !", "!"},   {" ,", ","},
                                           {" ' ", "'"},     {" n't", "n't"}, {" 'm", "'m"}, {" do not", " don't"},
                                           {" 's", "'s"},    {" 've", "'ve"}, {" 're", "'re"}};
    for (size_t r = 0; r < sizeof rules / sizeof *rules; r++) {
        size_t fl = strlen(rules[r][0]), tl = strlen(rules[r][1]);
        tmp->n = 0;
        for (size_t i = 0; i < tok->n;) {
            bool hit = tok->n - i >= fl && !memcmp(tok->v + i, rules[r][0], fl);
            if (!dec_put(tmp, hit ? rules[r][1] : tok->v + i, hit ? tl : 1)) return false;
            i += hit ? fl : 1;
        }
        qb_bytebuf x = *tok;
        *tok = *tmp, *tmp = x;
    }
    return true;
}

/* WordPiece: a continuation loses its prefix, any other token after the
 * first gets a space before it; then the cleanup. */
static bool dec_wordpiece(const qb_tokenizer *t, const char *p, bool first, qb_bytebuf *tok, qb_bytebuf *tmp) {
    bool cont = !first && !strncmp(p, "##", 2);
    tok->n = 0;
    bool ok = (first || cont || dec_put(tok, " ", 1)) && dec_put(tok, p + (cont ? 2 : 0), strlen(p) - (cont ? 2 : 0));
    return ok && (!t->dec.cleanup || dec_cleanup(tok, tmp));
}

/* ByteLevel: each character back to its byte; a token with a character
 * outside the byte alphabet (an added token) stays as it is. */
static bool dec_byte_level(const char *p, qb_bytebuf *tok) {
    size_t n = strlen(p);
    tok->n = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t k = qb_utf8_decode_char(p + i, n - i, &c);
        int b = k ? qb_bpe_char_byte(c) : -1;
        if (b < 0) {
            tok->n = 0;
            return dec_put(tok, p, n);
        }
        char ch = (char)b;
        if (!dec_put(tok, &ch, 1)) return false;
        i += k;
    }
    return true;
}

/* Metaspace: ▁ is a space, except in the first token when the encoder
 * prepended it. */
static bool dec_metaspace(const qb_tokenizer *t, const char *p, bool first, qb_bytebuf *tok) {
    size_t n = strlen(p);
    tok->n = 0;
    for (size_t i = 0; i < n;) {
        bool meta = n - i >= 3 && !memcmp(p + i, QB_UNI_SP_SPACE_UTF8, 3);
        if (meta && !(first && t->dec.strip_first) && !dec_put(tok, " ", 1)) return false;
        if (!meta && !dec_put(tok, p + i, 1)) return false;
        i += meta ? 3 : 1;
    }
    return true;
}

/* Rust's String::from_utf8_lossy: each maximal invalid subsequence one U+FFFD. */
static bool dec_lossy(const qb_bytebuf *in, qb_bytebuf *out) {
    out->n = 0;
    for (size_t i = 0; i < in->n;) {
        uint32_t c;
        size_t k = qb_utf8_decode_char(in->v + i, in->n - i, &c);
        if (k) {
            if (!dec_put(out, in->v + i, k)) return false;
            i += k;
            continue;
        }
        unsigned char b = (unsigned char)in->v[i];
        size_t need = b >= 0xC2 && b <= 0xDF ? 1 : b >= 0xE0 && b <= 0xEF ? 2 : b >= 0xF0 && b <= 0xF4 ? 3 : 0;
        size_t j = 1;
        for (; j <= need && i + j < in->n; j++) {
            unsigned char x = (unsigned char)in->v[i + j];
            unsigned char lo = j > 1 ? 0x80 : b == 0xE0 ? 0xA0 : b == 0xF0 ? 0x90 : 0x80;
            unsigned char hi = j > 1 ? 0xBF : b == 0xED ? 0x9F : b == 0xF4 ? 0x8F : 0xBF;
            if (x < lo || x > hi) break;
        }
        if (!dec_put(out, "\xef\xbf\xbd", 3)) return false;
        i += j;
    }
    return true;
}

qb_status qb_tokenizer_decode(const qb_tokenizer *t, const int32_t *ids, int n, bool skip_special, qb_bytebuf *out,
                              qb_error *err) {
    if (t->dec.kind == QB_DEC_UNSUPPORTED)
        return qb_fail(err, QB_ERR_UNSUPPORTED, "decode: the tokenizer's decoder %s is not supported", t->dec.what);
    /* the slow files' [MASK] is found by a scan of the vocabulary: only when it matters */
    int32_t mask = skip_special && !t->n_added ? qb_tokenizer_mask_id(t) : -1;
    qb_bytebuf raw = {0}, tok = {0}, tmp = {0};
    out->n = 0;
    bool ok = dec_put(out, "", 0);
    qb_status st = QB_OK;
    for (int i = 0, kept = 0; ok && st == QB_OK && i < n; i++) {
        const char *p = qb_tokenizer_piece(t, ids[i]);
        if (!p) st = qb_fail(err, QB_ERR_ARG, "decode: id %d is past the vocabulary (%d tokens)", (int)ids[i],
                             qb_tokenizer_vocab_size(t));
        if (!p || (skip_special && dec_special(t, ids[i], mask))) continue;
        bool first = kept++ == 0;
        switch (t->dec.kind) {
        case QB_DEC_WORDPIECE: ok = dec_wordpiece(t, p, first, &tok, &tmp) && dec_put(out, tok.v, tok.n); break;
        case QB_DEC_BYTE_LEVEL: ok = dec_byte_level(p, &tok) && dec_put(&raw, tok.v, tok.n); break;
        case QB_DEC_METASPACE: ok = dec_metaspace(t, p, first, &tok) && dec_put(out, tok.v, tok.n); break;
        default: ok = (first || dec_put(out, " ", 1)) && dec_put(out, p, strlen(p)); break;
        }
    }
    if (ok && st == QB_OK && t->dec.kind == QB_DEC_BYTE_LEVEL) ok = dec_lossy(&raw, out);
    free(raw.v), free(tok.v), free(tmp.v);
    if (st == QB_OK && !ok) st = qb_fail(err, QB_ERR_NOMEM, "decode: out of memory");
    return st;
}
