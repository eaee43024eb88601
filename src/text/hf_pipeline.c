#include "text/hf_pipeline.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"
#include "core/escape.h"
#include "text/piece_table.h"
#include "text/sp_model.h"
#include "text/sp_normalizer.h"
#include "text/unicode.h"

/* tokenizers' K_UNK_PENALTY: an unknown character scores this far below
 * the worst piece. */
#define UG_UNK_PENALTY 10.0
#define UG_MAX_STEPS 32

typedef enum {
    N_NFC, N_NFD, N_NFKC, N_NFKD, N_LOWER, N_STRIP_ACCENTS, N_REPLACE, N_PRECOMPILED, N_STRIP, N_PREPEND, N_BERT
} ug_norm_kind;
typedef enum { P_WS_SPLIT, P_METASPACE, P_BERT, P_WHITESPACE, P_PUNCT, P_DIGITS, P_SPLIT, P_BYTELEVEL } ug_pre_kind;
/* tokenizers' SplitDelimiterBehavior */
typedef enum { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS } ug_behavior;

typedef struct {
    ug_norm_kind kind;
    char *from, *to; /* Replace (from, to), Prepend (to) */
    size_t from_len, to_len;
    bool left, right; /* Strip */
    bool clean, chinese, lower; /* BertNormalizer */
    int strip_accents;          /* BertNormalizer: -1 follows lower */
} ug_norm;

typedef struct {
    ug_pre_kind kind;
    char repl[8]; /* Metaspace's replacement, UTF-8 */
    size_t repl_len;
    int prepend;  /* 0 never, 1 always, 2 first */
    bool split;
    ug_behavior behavior; /* Punctuation, Split, Digits */
    bool individual;      /* Digits */
    char *pattern;        /* Split's String */
    size_t pattern_len;
    bool add_prefix_space, use_regex; /* ByteLevel */
} ug_pre;

struct qb_hfp {
    const qb_wordpiece *wp; /* the model: wp, bpe, or (neither) the Unigram below */
    const qb_bpe *bpe;
    qb_ptab vocab; /* Unigram: pieces and all their prefixes */
    const char **pieces;
    double *scores;
    int n;
    int32_t unk_id;
    double unk_score;
    bool fuse_unk;
    ug_norm norm[UG_MAX_STEPS];
    int n_norm;
    ug_pre pre[UG_MAX_STEPS];
    int n_pre;
    bool byte_level;
    qb_spn charsmap; /* the Precompiled step's */
    unsigned char *charsmap_bytes;
};

/* ---- loading ------------------------------------------------------------ */

static qb_status ug_unsupported(const char *path, const char *part, const json_t *v, qb_error *err) {
    const char *t = qb_json_str(json_object_get(v, "type"), NULL);
    char shown[64];
    return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: %s %s is not supported", path, part,
                   qb_escape_str(shown, sizeof shown, t ? t : "(no type)"));
}

static int b64_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Standard base64 with padding; false when malformed. */
static bool b64_decode(const char *s, size_t len, unsigned char **out, size_t *out_len) {
    *out = malloc(len / 4 * 3 + 3);
    if (!*out) return false;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '=') break;
        int v = b64_val((unsigned char)s[i]);
        if (v < 0) return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            (*out)[n++] = (unsigned char)(acc >> bits);
        }
    }
    *out_len = n;
    return true;
}

static char *ug_dup(const json_t *v, size_t *len) { return qb_json_strdup(v, len); }

static qb_status ug_add_norm(qb_hfp *u, const json_t *v, const char *path, qb_error *err, int depth) {
    if (json_is_null(v) || !v) return QB_OK;
    const char *t = qb_json_str(json_object_get(v, "type"), NULL);
    if (!t) return qb_fail(err, QB_ERR_FORMAT, "%s: a normalizer has no type", path);
    if (strcmp(t, "Sequence") == 0 && depth < 4) {
        const json_t *list = json_object_get(v, "normalizers");
        for (size_t i = 0; i < json_array_size(list); i++) {
            qb_status st = ug_add_norm(u, json_array_get(list, i), path, err, depth + 1);
            if (st != QB_OK) return st;
        }
        return QB_OK;
    }
    if (u->n_norm >= UG_MAX_STEPS) return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: more than %d normalizers", path, UG_MAX_STEPS);
    ug_norm *n = &u->norm[u->n_norm];
    static const struct { const char *name; ug_norm_kind kind; } simple[] = {
        {"NFC", N_NFC}, {"NFD", N_NFD}, {"NFKC", N_NFKC}, {"NFKD", N_NFKD}, {"Lowercase", N_LOWER}, {"StripAccents", N_STRIP_ACCENTS}};
    for (size_t i = 0; i < sizeof simple / sizeof *simple; i++)
        if (strcmp(t, simple[i].name) == 0) {
            n->kind = simple[i].kind;
            u->n_norm++;
            return QB_OK;
        }
    if (strcmp(t, "Replace") == 0) {
        n->kind = N_REPLACE;
        n->from = ug_dup(json_object_get(json_object_get(v, "pattern"), "String"), &n->from_len);
        n->to = ug_dup(json_object_get(v, "content"), &n->to_len);
        u->n_norm++;
        if (!n->from || !n->to || n->from_len == 0)
            return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: normalizer Replace other than of a non-empty String is not supported",
                           path);
        return QB_OK;
    }
    if (strcmp(t, "BertNormalizer") == 0) {
        n->kind = N_BERT;
        n->clean = qb_json_get_bool(v, "clean_text", true);
        n->chinese = qb_json_get_bool(v, "handle_chinese_chars", true);
        n->lower = qb_json_get_bool(v, "lowercase", true);
        const json_t *sa = json_object_get(v, "strip_accents");
        n->strip_accents = json_is_boolean(sa) ? qb_json_bool(sa, false) : -1;
        u->n_norm++;
        return QB_OK;
    }
    if (strcmp(t, "Prepend") == 0) {
        n->kind = N_PREPEND;
        n->to = ug_dup(json_object_get(v, "prepend"), &n->to_len);
        u->n_norm++;
        return n->to ? QB_OK : qb_fail(err, QB_ERR_FORMAT, "%s: normalizer Prepend has no prepend string", path);
    }
    if (strcmp(t, "Strip") == 0) {
        n->kind = N_STRIP;
        n->left = qb_json_get_bool(v, "strip_left", true);
        n->right = qb_json_get_bool(v, "strip_right", true);
        u->n_norm++;
        return QB_OK;
    }
    if (strcmp(t, "Precompiled") == 0) {
        size_t len, n_bytes = 0;
        const char *b64 = qb_json_str(json_object_get(v, "precompiled_charsmap"), &len);
        if (u->charsmap_bytes) return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: two Precompiled normalizers", path);
        if (!b64 || !b64_decode(b64, len, &u->charsmap_bytes, &n_bytes))
            return qb_fail(err, QB_ERR_FORMAT, "%s: normalizer Precompiled: precompiled_charsmap is not base64", path);
        qb_spm_model m = {.charsmap = u->charsmap_bytes, .charsmap_len = n_bytes};
        qb_status st = qb_spn_init(&u->charsmap, &m, NULL, path, err);
        if (st != QB_OK) return st;
        n->kind = N_PRECOMPILED;
        u->n_norm++;
        return QB_OK;
    }
    return ug_unsupported(path, "normalizer", v, err);
}

static qb_status ug_add_pre(qb_hfp *u, const json_t *v, const char *path, qb_error *err, int depth) {
    if (json_is_null(v) || !v) return QB_OK;
    const char *t = qb_json_str(json_object_get(v, "type"), NULL);
    if (!t) return qb_fail(err, QB_ERR_FORMAT, "%s: a pre_tokenizer has no type", path);
    if (strcmp(t, "Sequence") == 0 && depth < 4) {
        const json_t *list = json_object_get(v, "pretokenizers");
        for (size_t i = 0; i < json_array_size(list); i++) {
            qb_status st = ug_add_pre(u, json_array_get(list, i), path, err, depth + 1);
            if (st != QB_OK) return st;
        }
        return QB_OK;
    }
    if (u->n_pre >= UG_MAX_STEPS) return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: more than %d pre_tokenizers", path, UG_MAX_STEPS);
    ug_pre *p = &u->pre[u->n_pre];
    static const struct { const char *name; ug_pre_kind kind; } simple[] = {
        {"WhitespaceSplit", P_WS_SPLIT}, {"BertPreTokenizer", P_BERT}, {"Whitespace", P_WHITESPACE}};
    for (size_t i = 0; i < sizeof simple / sizeof *simple; i++)
        if (strcmp(t, simple[i].name) == 0) {
            p->kind = simple[i].kind;
            u->n_pre++;
            return QB_OK;
        }
    if (strcmp(t, "Metaspace") == 0) {
        size_t len;
        const char *r = qb_json_str(json_object_get(v, "replacement"), &len);
        if (!r || len == 0 || len > 4) return qb_fail(err, QB_ERR_FORMAT, "%s: pre_tokenizer Metaspace: bad replacement", path);
        p->kind = P_METASPACE;
        memcpy(p->repl, r, len);
        p->repl_len = len;
        const char *scheme = qb_json_str(json_object_get(v, "prepend_scheme"), NULL);
        p->prepend = scheme ? (strcmp(scheme, "always") == 0 ? 1 : strcmp(scheme, "first") == 0 ? 2 : 0)
                            : qb_json_get_bool(v, "add_prefix_space", true);
        p->split = qb_json_get_bool(v, "split", true);
        u->n_pre++;
        return QB_OK;
    }
    if (strcmp(t, "ByteLevel") == 0) {
        p->kind = P_BYTELEVEL;
        p->add_prefix_space = qb_json_get_bool(v, "add_prefix_space", true);
        p->use_regex = qb_json_get_bool(v, "use_regex", true);
        u->byte_level = true;
        u->n_pre++;
        return QB_OK;
    }
    if (strcmp(t, "Punctuation") == 0 || strcmp(t, "Split") == 0 || strcmp(t, "Digits") == 0) {
        static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        const char *b = qb_json_str(json_object_get(v, "behavior"), NULL);
        p->behavior = B_ISOLATED;
        for (int i = 0; b && i < 5; i++)
            if (strcmp(b, names[i]) == 0) p->behavior = (ug_behavior)i;
        p->kind = t[0] == 'P' ? P_PUNCT : t[0] == 'D' ? P_DIGITS : P_SPLIT;
        if (p->kind == P_DIGITS) {
            p->individual = qb_json_get_bool(v, "individual_digits", false);
            p->behavior = p->individual ? B_ISOLATED : B_CONTIGUOUS;
        }
        if (p->kind == P_SPLIT) {
            p->pattern = qb_json_strdup(json_object_get(json_object_get(v, "pattern"), "String"), &p->pattern_len);
            u->n_pre++;
            if (!p->pattern || p->pattern_len == 0 || qb_json_get_bool(v, "invert", false))
                return qb_fail(err, QB_ERR_UNSUPPORTED,
                               "%s: pre_tokenizer Split other than on a non-empty String, not inverted, is not supported", path);
            return QB_OK;
        }
        u->n_pre++;
        return QB_OK;
    }
    return ug_unsupported(path, "pre_tokenizer", v, err);
}

static qb_status ug_vocab(qb_hfp *u, const json_t *model, const char *path, qb_error *err) {
    const json_t *vocab = json_object_get(model, "vocab");
    size_t n = json_array_size(vocab);
    if (!json_is_array(vocab) || n == 0 || n > (1u << 24))
        return qb_fail(err, QB_ERR_FORMAT, "%s: model.vocab is not a non-empty array of [piece, score]", path);
    int64_t *offs = malloc(n * sizeof *offs);
    u->pieces = calloc(n, sizeof *u->pieces);
    u->scores = malloc(n * sizeof *u->scores);
    if (!offs || !u->pieces || !u->scores || !qb_ptab_init(&u->vocab, n * 2)) {
        free(offs);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    }
    double min_score = INFINITY;
    qb_status st = QB_OK;
    for (size_t i = 0; i < n && st == QB_OK; i++) {
        const json_t *e = json_array_get(vocab, i);
        size_t len;
        const char *s = qb_json_str(json_array_get(e, 0), &len);
        const json_t *sc = json_array_get(e, 1);
        if (json_array_size(e) != 2 || !s || !json_is_number(sc)) {
            st = qb_fail(err, QB_ERR_FORMAT, "%s: model.vocab[%zu] is not [piece, score]", path, i);
            break;
        }
        u->scores[i] = qb_json_number(sc, 0);
        if (u->scores[i] < min_score) min_score = u->scores[i];
        offs[i] = qb_ptab_add_scannable(&u->vocab, s, len, (int32_t)i);
        if (offs[i] < 0) st = qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    }
    if (st == QB_OK && !qb_ptab_seal(&u->vocab)) st = qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    if (st == QB_OK) {
        for (size_t i = 0; i < n; i++) u->pieces[i] = qb_ptab_key(&u->vocab, offs[i]);
        u->n = (int)n;
        u->unk_score = min_score - UG_UNK_PENALTY;
    }
    free(offs);
    return st;
}

qb_status qb_hfp_load(const json_t *norm, const json_t *pre, const char *path, qb_hfp **out, qb_error *err) {
    *out = NULL;
    qb_hfp *u = calloc(1, sizeof *u);
    if (!u) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    u->unk_id = -1;
    qb_status st = ug_add_norm(u, norm, path, err, 0);
    if (st == QB_OK) st = ug_add_pre(u, pre, path, err, 0);
    if (st != QB_OK) {
        qb_hfp_free(u);
        return st;
    }
    *out = u;
    return QB_OK;
}

qb_status qb_hfp_set_unigram(qb_hfp *u, const json_t *model, const char *path, qb_error *err) {
    qb_status st = ug_vocab(u, model, path, err);
    int64_t unk = -1;
    const json_t *uj = json_object_get(model, "unk_id");
    if (st == QB_OK && uj && !json_is_null(uj) && (!qb_json_int(uj, &unk) || unk < 0 || unk >= u->n))
        st = qb_fail(err, QB_ERR_FORMAT, "%s: model.unk_id is not an id of the vocab", path);
    if (st == QB_OK && qb_json_get_bool(model, "byte_fallback", false))
        st = qb_fail(err, QB_ERR_UNSUPPORTED, "%s: model Unigram with byte_fallback is not supported", path);
    u->unk_id = (int32_t)unk;
    u->fuse_unk = true;
    return st;
}

void qb_hfp_set_wordpiece(qb_hfp *p, const qb_wordpiece *wp) { p->wp = wp; }
void qb_hfp_set_bpe(qb_hfp *p, const qb_bpe *bpe) { p->bpe = bpe; }
bool qb_hfp_byte_level(const qb_hfp *p) { return p->byte_level; }
bool qb_hfp_byte_regex(const qb_hfp *p) {
    for (int i = 0; i < p->n_pre; i++)
        if (p->pre[i].kind == P_BYTELEVEL && p->pre[i].use_regex) return true;
    return false;
}

void qb_hfp_free(qb_hfp *u) {
    if (!u) return;
    for (int i = 0; i < u->n_norm; i++) free(u->norm[i].from), free(u->norm[i].to);
    for (int i = 0; i < u->n_pre; i++) free(u->pre[i].pattern);
    qb_spn_free(&u->charsmap);
    free(u->charsmap_bytes);
    qb_ptab_free(&u->vocab);
    free(u->pieces);
    free(u->scores);
    free(u);
}

int qb_hfp_unigram_size(const qb_hfp *u) { return u->n; }
const char *qb_hfp_unigram_piece(const qb_hfp *u, int32_t id) { return id >= 0 && id < u->n ? u->pieces[id] : NULL; }

/* ---- normalizing -------------------------------------------------------- */

static bool is_ws(uint32_t c) { /* Rust's char::is_whitespace */
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static bool append(qb_bytebuf *o, const char *s, size_t n) {
    if (!QB_TOK_RESERVE(o, o->n + n + 1)) return false;
    if (n) memcpy(o->v + o->n, s, n);
    o->n += n;
    return true;
}

/* BertNormalizer: clean_text, handle_chinese_chars, strip_accents, lowercase;
 * in is consumed (a holds scratch results). */
static bool ug_bert_norm(const ug_norm *n, qb_u32buf *a, qb_u32buf *b) {
    if (!QB_TOK_RESERVE(b, 3 * a->n + 1)) return false;
    for (size_t i = 0; i < a->n; i++) {
        uint32_t c = a->v[i];
        if (n->clean && (c == 0 || c == 0xFFFD || qb_uni_is_bert_control(c))) continue;
        if (n->clean && qb_uni_is_bert_space(c)) c = ' ';
        bool cjk = n->chinese && qb_uni_is_cjk(c);
        if (cjk) b->v[b->n++] = ' ';
        b->v[b->n++] = c;
        if (cjk) b->v[b->n++] = ' ';
    }
    bool strip = n->strip_accents == 1 || (n->strip_accents == -1 && n->lower);
    if (strip) {
        a->n = 0;
        if (!qb_uni_normalize(b->v, b->n, QB_UNI_NFD, a)) return false;
        b->n = 0;
        for (size_t i = 0; i < a->n; i++)
            if (!qb_uni_is_mn(a->v[i])) b->v[b->n++] = a->v[i];
    }
    if (n->lower) {
        a->n = 0;
        if (!qb_uni_lower(b->v, b->n, false, a)) return false;
        b->n = 0;
        if (!QB_TOK_RESERVE(b, a->n + 1)) return false;
        memcpy(b->v, a->v, a->n * sizeof *a->v);
        b->n = a->n;
    }
    return true;
}

/* One code point step: in (UTF-8) -> out (UTF-8). */
static qb_status ug_cp_step(const ug_norm *n, const qb_bytebuf *in, qb_bytebuf *out, const char *what, qb_tok_work *w,
                            qb_error *err) {
    qb_u32buf *a = &w->cp[0], *b = &w->cp[1];
    a->n = b->n = 0;
    qb_status st = qb_utf8_decode(in->v, in->n, a, what, err);
    if (st != QB_OK) return st;
    bool ok = true;
    switch (n->kind) {
    case N_NFC: ok = qb_uni_normalize(a->v, a->n, QB_UNI_NFC, b); break;
    case N_NFD: ok = qb_uni_normalize(a->v, a->n, QB_UNI_NFD, b); break;
    case N_NFKC: ok = qb_uni_normalize(a->v, a->n, QB_UNI_NFKC, b); break;
    case N_NFKD: ok = qb_uni_normalize(a->v, a->n, QB_UNI_NFKD, b); break;
    case N_LOWER: ok = qb_uni_lower(a->v, a->n, false, b); break;
    case N_STRIP_ACCENTS:
        ok = QB_TOK_RESERVE(b, a->n + 1);
        for (size_t i = 0; ok && i < a->n; i++)
            if (!qb_uni_is_mn(a->v[i])) b->v[b->n++] = a->v[i];
        break;
    case N_STRIP: {
        size_t s = 0, e = a->n;
        if (n->left) while (s < e && is_ws(a->v[s])) s++;
        if (n->right) while (e > s && is_ws(a->v[e - 1])) e--;
        ok = QB_TOK_RESERVE(b, e - s + 1);
        if (ok) memcpy(b->v, a->v + s, (e - s) * sizeof *b->v), b->n = e - s;
        break;
    }
    case N_BERT: ok = ug_bert_norm(n, a, b); break;
    default: break;
    }
    out->n = 0;
    if (!ok || !qb_utf8_encode(b->v, b->n, out)) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", what);
    return QB_OK;
}

/* Runs the normalizers; the result is in *res (one of w->utf8[0..1]).  A
 * Prepend adds to a whole text, not to each of its characters (whole). */
static qb_status ug_normalize(const qb_hfp *u, const char *text, size_t len, bool whole, const char *what,
                              qb_tok_work *w, qb_bytebuf **res, qb_error *err) {
    qb_bytebuf *cur = &w->utf8[0], *nxt = &w->utf8[1];
    cur->n = 0;
    if (!append(cur, text, len)) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", what);
    for (int i = 0; i < u->n_norm; i++) {
        const ug_norm *n = &u->norm[i];
        bool ok = true;
        nxt->n = 0;
        if (n->kind == N_REPLACE) {
            for (size_t p = 0; ok && p < cur->n;) {
                if (cur->n - p >= n->from_len && memcmp(cur->v + p, n->from, n->from_len) == 0) {
                    ok = append(nxt, n->to, n->to_len);
                    p += n->from_len;
                } else {
                    ok = append(nxt, cur->v + p, 1);
                    p++;
                }
            }
        } else if (n->kind == N_PREPEND) {
            bool add = whole && cur->n > 0;
            ok = (!add || append(nxt, n->to, n->to_len)) && append(nxt, cur->v, cur->n);
        } else if (n->kind == N_PRECOMPILED) {
            ok = qb_spn_precompiled(&u->charsmap, cur->v, cur->n, nxt);
        } else {
            qb_status st = ug_cp_step(n, cur, nxt, what, w, err);
            if (st != QB_OK) return st;
        }
        if (!ok) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", what);
        qb_bytebuf *t = cur;
        cur = nxt, nxt = t;
    }
    *res = cur;
    return QB_OK;
}

/* ---- pre-tokenizing ----------------------------------------------------- */

static bool push_word(qb_bytebuf *b, qb_sp_spanbuf *sp, const char *s, size_t n, const char *pre, size_t pre_n) {
    if (!QB_TOK_RESERVE(sp, sp->n + 1)) return false;
    int32_t start = (int32_t)b->n;
    if (!append(b, pre, pre_n) || !append(b, s, n)) return false;
    sp->v[sp->n++] = (qb_sp_span){.start = start, .end = (int32_t)b->n, .id = 0};
    return true;
}

static bool ug_ws_split(const char *s, size_t n, qb_bytebuf *b, qb_sp_spanbuf *sp) {
    size_t i = 0;
    while (i < n) {
        uint32_t c;
        size_t k;
        while (i < n && (k = qb_utf8_decode_char(s + i, n - i, &c)) && is_ws(c)) i += k;
        size_t st = i;
        while (i < n) {
            k = qb_utf8_decode_char(s + i, n - i, &c);
            if (!k) k = 1, c = 0;
            if (is_ws(c)) break;
            i += k;
        }
        if (i > st && !push_word(b, sp, s + st, i - st, NULL, 0)) return false;
    }
    return true;
}

/* ' ' becomes the replacement, the prefix goes on, and (split) each
 * replacement starts a new word. */
static bool ug_metaspace(const ug_pre *p, const char *s, size_t n, bool first, qb_bytebuf *b, qb_sp_spanbuf *sp,
                         qb_bytebuf *tmp) {
    tmp->n = 0;
    bool prefix = p->prepend == 1 || (p->prepend == 2 && first);
    if (prefix && !(n >= p->repl_len && memcmp(s, p->repl, p->repl_len) == 0) && !append(tmp, p->repl, p->repl_len))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == ' ' ? append(tmp, p->repl, p->repl_len) : append(tmp, s + i, 1))) return false;
    if (!p->split) return push_word(b, sp, tmp->v, tmp->n, NULL, 0);
    size_t st = 0;
    for (size_t i = 0; i <= tmp->n; i++) {
        bool at = i < tmp->n && i > st && tmp->n - i >= p->repl_len && memcmp(tmp->v + i, p->repl, p->repl_len) == 0;
        if ((at || i == tmp->n) && i > st) {
            if (!push_word(b, sp, tmp->v + st, i - st, NULL, 0)) return false;
            st = i;
        }
    }
    return true;
}

/* The character at s[i] (U+FFFD for a malformed byte) and its length. */
static size_t ug_char(const char *s, size_t n, size_t i, uint32_t *c) {
    size_t k = qb_utf8_decode_char(s + i, n - i, c);
    if (!k) *c = 0xFFFD, k = 1;
    return k;
}

/* \w in Rust's regex: letters, marks, digits, connector punctuation. */
static bool ug_is_word(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return qb_uni_is_alnum(c) || (k >= UTF8PROC_CATEGORY_MN && k <= UTF8PROC_CATEGORY_ME) || k == UTF8PROC_CATEGORY_PC;
}

/* Length of the delimiter at s[i] for the splitting pre-tokenizers; 0: none. */
static size_t ug_delim(const ug_pre *p, const char *s, size_t n, size_t i) {
    uint32_t c;
    size_t k = ug_char(s, n, i, &c);
    switch (p->kind) {
    case P_PUNCT: return qb_uni_is_punct(c) ? k : 0;
    case P_DIGITS: { /* Rust's char::is_numeric: Nd, Nl, No */
        utf8proc_category_t g = utf8proc_category((utf8proc_int32_t)c);
        return g >= UTF8PROC_CATEGORY_ND && g <= UTF8PROC_CATEGORY_NO ? k : 0;
    }
    case P_SPLIT: return n - i >= p->pattern_len && memcmp(s + i, p->pattern, p->pattern_len) == 0 ? p->pattern_len : 0;
    default: return 0;
    }
}

/* tokenizers' NormalizedString::split with a behaviour. */
static bool ug_split(const ug_pre *p, const char *s, size_t n, qb_bytebuf *b, qb_sp_spanbuf *sp) {
    size_t piece = 0, i = 0; /* piece: where the current non-delimiter run began */
    size_t pending = SIZE_MAX; /* MergedWithNext: a delimiter waiting for the next run */
    while (i < n) {
        size_t d = ug_delim(p, s, n, i);
        if (!d) {
            uint32_t c;
            i += ug_char(s, n, i, &c);
            continue;
        }
        size_t e = i + d;
        if (p->behavior == B_CONTIGUOUS)
            while (e < n && (d = ug_delim(p, s, n, e)) > 0) e += d;
        size_t from = pending != SIZE_MAX ? pending : piece;
        switch (p->behavior) {
        case B_REMOVED:
            if (i > piece && !push_word(b, sp, s + piece, i - piece, NULL, 0)) return false;
            break;
        case B_ISOLATED:
        case B_CONTIGUOUS:
            if (i > piece && !push_word(b, sp, s + piece, i - piece, NULL, 0)) return false;
            if (!push_word(b, sp, s + i, e - i, NULL, 0)) return false;
            break;
        case B_MERGED_PREV:
            if (!push_word(b, sp, s + piece, e - piece, NULL, 0)) return false;
            break;
        case B_MERGED_NEXT:
            if (i > from && !push_word(b, sp, s + from, i - from, NULL, 0)) return false;
            pending = i;
            break;
        }
        piece = e;
        i = e;
    }
    size_t from = p->behavior == B_MERGED_NEXT && pending != SIZE_MAX ? pending : piece;
    return n <= from || push_word(b, sp, s + from, n - from, NULL, 0);
}

/* BertPreTokenizer: whitespace splits and goes, punctuation stands alone. */
static bool ug_bert_pre(const char *s, size_t n, qb_bytebuf *b, qb_sp_spanbuf *sp) {
    size_t st = 0, i = 0;
    while (i < n) {
        uint32_t c;
        size_t k = ug_char(s, n, i, &c);
        if (is_ws(c) || qb_uni_is_punct(c)) {
            if (i > st && !push_word(b, sp, s + st, i - st, NULL, 0)) return false;
            if (!is_ws(c) && !push_word(b, sp, s + i, k, NULL, 0)) return false;
            st = i + k;
        }
        i += k;
    }
    return n <= st || push_word(b, sp, s + st, n - st, NULL, 0);
}

/* Whitespace: the pattern \w+|[^\w\s]+. */
static bool ug_whitespace(const char *s, size_t n, qb_bytebuf *b, qb_sp_spanbuf *sp) {
    size_t i = 0;
    while (i < n) {
        uint32_t c;
        size_t k = ug_char(s, n, i, &c);
        if (is_ws(c)) {
            i += k;
            continue;
        }
        bool word = ug_is_word(c);
        size_t st = i;
        while (i < n) {
            k = ug_char(s, n, i, &c);
            if (is_ws(c) || ug_is_word(c) != word) break;
            i += k;
        }
        if (!push_word(b, sp, s + st, i - st, NULL, 0)) return false;
    }
    return true;
}

/* ByteLevel: the prefix space, GPT-2's split, each byte as its character. */
static bool ug_byte_level(const ug_pre *p, const char *s, size_t n, qb_bytebuf *b, qb_sp_spanbuf *sp,
                          qb_tok_work *w) {
    qb_u32buf *cp = &w->cp[0], *m = &w->cp[1];
    cp->n = 0;
    if (n == 0) return true;
    if (p->add_prefix_space && (n == 0 || s[0] != ' ')) {
        if (!QB_TOK_RESERVE(cp, 1)) return false;
        cp->v[cp->n++] = ' ';
    }
    for (size_t i = 0; i < n;) {
        uint32_t c;
        i += ug_char(s, n, i, &c);
        if (!QB_TOK_RESERVE(cp, cp->n + 1)) return false;
        cp->v[cp->n++] = c;
    }
    qb_bytebuf *u = &w->utf8[2];
    for (size_t i = 0; i < cp->n;) {
        size_t k = p->use_regex ? qb_bpe_gpt2_match(cp->v, cp->n, i) : cp->n - i;
        u->n = 0;
        m->n = 0;
        if (!qb_utf8_encode(cp->v + i, k, u) || !QB_TOK_RESERVE(m, u->n + 1)) return false;
        for (size_t j = 0; j < u->n; j++) m->v[m->n++] = qb_bpe_byte_char((unsigned char)u->v[j]);
        u->n = 0;
        if (!qb_utf8_encode(m->v, m->n, u) || !push_word(b, sp, u->v, u->n, NULL, 0)) return false;
        i += k;
    }
    return true;
}

static bool ug_pre_step(const qb_hfp *u, const ug_pre *p, const char *s, size_t n, bool first, qb_bytebuf *b,
                        qb_sp_spanbuf *sp, qb_bytebuf *tmp, qb_tok_work *w) {
    switch (p->kind) {
    case P_WS_SPLIT: return ug_ws_split(s, n, b, sp);
    case P_METASPACE: return ug_metaspace(p, s, n, first, b, sp, tmp);
    case P_BERT: return ug_bert_pre(s, n, b, sp);
    case P_WHITESPACE: return ug_whitespace(s, n, b, sp);
    case P_BYTELEVEL: return ug_byte_level(p, s, n, b, sp, w);
    default: (void)u; return ug_split(p, s, n, b, sp);
    }
}

/* ---- the model ---------------------------------------------------------- */

static void ug_relax(qb_ug_node *lat, size_t start, size_t end, int32_t id, double score) {
    double cand = score + lat[start].score;
    if (lat[end].start == -1 || cand > lat[end].score) lat[end] = (qb_ug_node){cand, id, (int32_t)start};
}

static bool ug_viterbi(const qb_hfp *u, const char *s, size_t n, qb_tok_work *w, qb_i32buf *ids) {
    if (n == 0) return true;
    if (n > INT32_MAX - 1 || !QB_TOK_RESERVE(&w->ug, n + 1)) return false;
    qb_ug_node *lat = w->ug.v;
    for (size_t i = 0; i <= n; i++) lat[i] = (qb_ug_node){0.0, -1, -1};
    for (size_t start = 0; start < n;) {
        size_t mblen = (size_t)qb_utf8_char_len((unsigned char)s[start]);
        if (mblen > n - start) mblen = n - start;
        bool single = false;
        qb_ptab_scan sc;
        qb_ptab_scan_start(&sc, &u->vocab, s + start, n - start);
        size_t len;
        for (int32_t id; (id = qb_ptab_scan_next(&sc, &len)) >= 0;) {
            ug_relax(lat, start, start + len, id, u->scores[id]);
            single = single || len == mblen;
        }
        if (!single) ug_relax(lat, start, start + mblen, u->unk_id, u->unk_score);
        start += mblen;
    }
    size_t first = ids->n, count = 0;
    for (size_t end = n; end > 0; end = (size_t)lat[end].start) count++;
    if (!QB_TOK_RESERVE(ids, ids->n + count)) return false;
    size_t k = ids->n + count;
    for (size_t end = n; end > 0; end = (size_t)lat[end].start) ids->v[--k] = lat[end].id;
    size_t m = first;
    for (size_t i = first; i < first + count; i++) {
        int32_t id = ids->v[i];
        if (id < 0) continue; /* unknown with no unk_id: HF errors; dropping is the nearest */
        if (u->fuse_unk && id == u->unk_id && m > first && ids->v[m - 1] == u->unk_id) continue;
        ids->v[m++] = id;
    }
    ids->n = m;
    return true;
}

/* Whether a Strip normalizer takes whitespace off the front of text: its
 * first character then no longer stands at original offset 0. */
static bool ug_strips_lead(const qb_hfp *u, const char *text, size_t len) {
    uint32_t c;
    bool ws = len && qb_utf8_decode_char(text, len, &c) && is_ws(c);
    for (int i = 0; ws && i < u->n_norm; i++)
        if (u->norm[i].kind == N_STRIP && u->norm[i].left) return true;
    return false;
}

/* Whether a pre-tokenizer's first word of a parent word still starts where
 * the parent did (Metaspace's prepend_scheme "first" asks for original
 * offset 0): the transforming ones keep the start, the splitting ones copy
 * bytes, so a word that dropped leading bytes no longer begins the parent. */
static bool ug_keeps_start(const ug_pre *p, const char *parent, size_t n, const char *child, size_t cn) {
    if (p->kind == P_METASPACE || p->kind == P_BYTELEVEL) return true;
    return cn <= n && memcmp(parent, child, cn) == 0;
}

qb_status qb_hfp_tokenize(const qb_hfp *u, const char *text, size_t len, bool at_start, const char *what,
                          qb_tok_work *w, qb_i32buf *ids, qb_error *err) {
    qb_u32buf *check = &w->cp[2];
    check->n = 0;
    qb_status st = qb_utf8_decode(text, len, check, what, err); /* the errors name the caller's byte offsets */
    if (st != QB_OK) return st;
    qb_bytebuf *norm = NULL;
    st = ug_normalize(u, text, len, true, what, w, &norm, err);
    if (st != QB_OK) return st;
    qb_bytebuf *cur = &w->pre[0], *nxt = &w->pre[1];
    qb_sp_spanbuf *cs = &w->words[0], *ns = &w->words[1];
    cur->n = cs->n = 0;
    if (norm->n && !push_word(cur, cs, norm->v, norm->n, NULL, 0)) goto nomem;
    if (norm->n) cs->v[0].id = at_start && !ug_strips_lead(u, text, len); /* id: starts at original offset 0 */
    qb_bytebuf *tmp = norm == &w->utf8[0] ? &w->utf8[1] : &w->utf8[0];
    for (int i = 0; i < u->n_pre; i++) {
        nxt->n = ns->n = 0;
        for (size_t k = 0; k < cs->n; k++) {
            const char *s = cur->v + cs->v[k].start;
            size_t n = (size_t)(cs->v[k].end - cs->v[k].start);
            size_t first = ns->n;
            bool at0 = cs->v[k].id != 0;
            if (!ug_pre_step(u, &u->pre[i], s, n, at0, nxt, ns, tmp, w)) goto nomem;
            for (size_t j = first; j < ns->n; j++) {
                const qb_sp_span *c = &ns->v[j];
                ns->v[j].id = at0 && j == first &&
                              ug_keeps_start(&u->pre[i], s, n, nxt->v + c->start, (size_t)(c->end - c->start));
            }
        }
        qb_bytebuf *tb = cur;
        cur = nxt, nxt = tb;
        qb_sp_spanbuf *tsp = cs;
        cs = ns, ns = tsp;
    }
    for (size_t k = 0; k < cs->n; k++) {
        const char *s = cur->v + cs->v[k].start;
        size_t n = (size_t)(cs->v[k].end - cs->v[k].start);
        bool ok = u->wp ? qb_wp_word(u->wp, s, n, w, ids) : u->bpe ? qb_bpe_word(u->bpe, s, n, w, ids)
                                                               : ug_viterbi(u, s, n, w, ids);
        if (!ok) goto nomem;
    }
    return QB_OK;
nomem:
    return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", what);
}

qb_status qb_hfp_normalize_char(const qb_hfp *p, const char *s, size_t n, qb_tok_work *w, qb_bytebuf **out,
                                qb_error *err) {
    return ug_normalize(p, s, n, false, "text", w, out, err);
}

size_t qb_hfp_leading_replace(const qb_hfp *p, const char *s, size_t n, const char **to, size_t *to_len) {
    for (int i = 0; i < p->n_norm && p->norm[i].kind == N_REPLACE; i++) {
        const ug_norm *r = &p->norm[i];
        if (r->from_len && r->from_len <= n && !memcmp(s, r->from, r->from_len)) {
            *to = r->to, *to_len = r->to_len;
            return r->from_len;
        }
    }
    return 0;
}

size_t qb_hfp_bytes(const qb_hfp *p) {
    return sizeof *p + qb_ptab_bytes(&p->vocab) + (size_t)p->n * (sizeof *p->pieces + sizeof *p->scores);
}
