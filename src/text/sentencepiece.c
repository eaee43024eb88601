#include "text/sentencepiece.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "text/piece_table.h"
#include "text/sp_model.h"
#include "text/sp_normalizer.h"
#include "text/unicode.h"

/* Real spiece.model files are 0.2-5 MB (ALBERT 0.76 MB, XLM-R and mT5's
 * 250k pieces ~5 MB); 32 MiB is six times the largest.  Every matchable
 * piece is indexed with all its prefixes, up to ~30 bytes of index a byte
 * of model (~1 GB at the cap), so the cap is what bounds a hostile file's
 * memory; loading is linear in the file. */
#define SP_MODEL_FILE_MAX ((size_t)32 << 20)

/* sentencepiece's unigram kUnkPenalty: an unknown character scores this far
 * below the worst piece. */
#define SP_UNK_PENALTY 10.0f

struct qb_sentencepiece {
    qb_tok_options opt;
    qb_spm_model model;
    qb_ptab matchable; /* NORMAL, USER_DEFINED, UNUSED pieces and their prefixes */
    qb_ptab user;      /* USER_DEFINED pieces and their prefixes */
    qb_ptab by_text;   /* PieceToId */
    qb_spn norm;
    int32_t unk_id;
    float max_score, unk_score;
};

/* ---- loading ------------------------------------------------------------ */

static bool sp_is_matchable(int type) {
    return type == QB_SPM_NORMAL || type == QB_SPM_USER_DEFINED || type == QB_SPM_UNUSED;
}

static qb_status sp_index_pieces(qb_sentencepiece *sp, const char *path, qb_error *err) {
    const qb_spm_model *m = &sp->model;
    if (!qb_ptab_init(&sp->matchable, (size_t)m->n_pieces * 2) || !qb_ptab_init(&sp->user, 16) ||
        !qb_ptab_init(&sp->by_text, (size_t)m->n_pieces))
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    /* model order, then control/unknown pieces override: PieceToId looks in
     * the reserved map first */
    float min_score = FLT_MAX, max_score = FLT_MIN; /* FLT_MIN as sentencepiece has it */
    sp->unk_id = -1;
    bool ok = true;
    for (int pass = 0; pass < 2 && ok; pass++) {
        for (int i = 0; i < m->n_pieces && ok; i++) {
            const qb_spm_piece *p = &m->pieces[i];
            bool reserved = !sp_is_matchable(p->type);
            if (reserved != (pass == 1)) continue;
            ok = qb_ptab_add(&sp->by_text, p->text, p->len, i, 0) >= 0;
            if (ok && !reserved)
                ok = qb_ptab_add_scannable(&sp->matchable, p->text, p->len, i) >= 0;
            if (ok && p->type == QB_SPM_USER_DEFINED)
                ok = qb_ptab_add_scannable(&sp->user, p->text, p->len, i) >= 0;
            if (p->type == QB_SPM_UNKNOWN) sp->unk_id = i;
            if (p->type == QB_SPM_NORMAL) {
                if (p->score < min_score) min_score = p->score;
                if (p->score > max_score) max_score = p->score;
            }
        }
    }
    if (!ok || !qb_ptab_seal(&sp->matchable) || !qb_ptab_seal(&sp->user))
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    if (sp->unk_id < 0) return qb_fail(err, QB_ERR_FORMAT, "%s: SentencePiece model has no unknown piece", path);
    sp->max_score = max_score;
    sp->unk_score = min_score - SP_UNK_PENALTY;
    return QB_OK;
}

qb_status qb_sp_load(const char *spiece_path, const qb_tok_options *o, qb_sentencepiece **out,
                     qb_error *err) {
    *out = NULL;
    qb_file_map f;
    qb_status st = qb_file_map_open(&f, spiece_path, err);
    if (st != QB_OK) return st;
    if (f.size > SP_MODEL_FILE_MAX) {
        qb_file_map_close(&f);
        return qb_fail(err, QB_ERR_FORMAT, "%s: larger than %zu MiB, the limit for a spiece.model", spiece_path,
                       SP_MODEL_FILE_MAX >> 20);
    }
    qb_sentencepiece *sp = calloc(1, sizeof *sp);
    if (!sp) {
        qb_file_map_close(&f);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", spiece_path);
    }
    sp->opt = *o;
    st = qb_spm_parse(f.data, f.size, spiece_path, &sp->model, err);
    qb_file_map_close(&f);
    if (st == QB_OK) st = sp_index_pieces(sp, spiece_path, err);
    if (st == QB_OK) st = qb_spn_init(&sp->norm, &sp->model, &sp->user, spiece_path, err);
    if (st != QB_OK) {
        qb_sp_free(sp);
        return st;
    }
    *out = sp;
    return QB_OK;
}

void qb_sp_free(qb_sentencepiece *sp) {
    if (!sp) return;
    qb_spn_free(&sp->norm);
    qb_ptab_free(&sp->matchable);
    qb_ptab_free(&sp->user);
    qb_ptab_free(&sp->by_text);
    qb_spm_free(&sp->model);
    free(sp);
}

int qb_sp_vocab_size(const qb_sentencepiece *sp) { return sp->model.n_pieces; }

const char *qb_sp_piece(const qb_sentencepiece *sp, int32_t id) {
    return (id >= 0 && id < sp->model.n_pieces) ? sp->model.pieces[id].text : NULL;
}

int32_t qb_sp_id(const qb_sentencepiece *sp, const char *piece, size_t len) {
    return qb_ptab_get(&sp->by_text, piece, len, sp->unk_id);
}

/* ---- AlbertTokenizer.preprocess_text ------------------------------------ */

/* " ".join(text.strip().split()) with Python's whitespace. */
static void sp_collapse_space(const uint32_t *in, size_t n, qb_u32buf *out) {
    uint32_t *d = out->v;
    size_t i = 0;
    while (i < n) {
        while (i < n && qb_uni_is_py_space(in[i])) i++;
        if (i == n) break;
        if (d != out->v) *d++ = ' ';
        while (i < n && !qb_uni_is_py_space(in[i])) *d++ = in[i++];
    }
    out->n = (size_t)(d - out->v);
}

/* str.replace(pair, '"'), in place: non-overlapping, left to right. */
static void sp_replace_quote_pair(qb_u32buf *b, uint32_t q) {
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->v[i] == q && i + 1 < b->n && b->v[i + 1] == q) {
            b->v[k++] = '"';
            i++;
        } else {
            b->v[k++] = b->v[i];
        }
    }
    b->n = k;
}

static void sp_drop_combining(qb_u32buf *b) {
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++)
        if (qb_uni_combining_class(b->v[i]) == 0) b->v[k++] = b->v[i];
    b->n = k;
}

/* The preprocessed text, as UTF-8 in w->utf8[0]. */
static qb_status sp_preprocess(const qb_sentencepiece *sp, const char *text, size_t len,
                               const char *what, qb_tok_work *w, qb_error *err) {
    qb_u32buf *a = &w->cp[0], *b = &w->cp[1], *tmp;
    a->n = 0;
    qb_status st = qb_utf8_decode(text, len, a, what, err);
    if (st != QB_OK) return st;
    if (sp->opt.remove_space) {
        if (!QB_TOK_RESERVE(b, a->n + 1)) goto nomem;
        sp_collapse_space(a->v, a->n, b);
        tmp = a, a = b, b = tmp;
    }
    sp_replace_quote_pair(a, '`');
    sp_replace_quote_pair(a, '\'');
    if (!sp->opt.keep_accents) {
        b->n = 0;
        if (!qb_uni_normalize(a->v, a->n, QB_UNI_NFKD, b)) goto nomem;
        sp_drop_combining(b);
        tmp = a, a = b, b = tmp;
    }
    if (sp->opt.do_lower_case) {
        b->n = 0;
        if (!qb_uni_lower(a->v, a->n, true, b)) goto nomem;
        tmp = a, a = b, b = tmp;
    }
    w->utf8[0].n = 0;
    if (!qb_utf8_encode(a->v, a->n, &w->utf8[0])) goto nomem;
    return QB_OK;
nomem:
    return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", what);
}

/* ---- unigram segmentation ----------------------------------------------- */

/* Offers piece `id` for bytes [start, end) to the best path ending at end.
 * The arithmetic mirrors sentencepiece's EncodeOptimized: a user-defined
 * piece's score is a double, so its sum is compared in double. */
static void sp_relax(const qb_sentencepiece *sp, qb_sp_node *lat, size_t start, size_t end,
                     int32_t id) {
    qb_sp_node *t = &lat[end];
    const qb_spm_piece *p = &sp->model.pieces[id];
    double score = p->type == QB_SPM_USER_DEFINED
                       ? (double)((float)(end - start) * sp->max_score) - 0.1
                       : (double)p->score;
    double cand = score + (double)lat[start].score;
    if (t->start == -1 || cand > (double)t->score) {
        t->score = (float)cand;
        t->start = (int32_t)start;
        t->id = id;
    }
}

static void sp_relax_unknown(const qb_sentencepiece *sp, qb_sp_node *lat, size_t start,
                             size_t end) {
    qb_sp_node *t = &lat[end];
    float cand = sp->unk_score + lat[start].score;
    if (t->start == -1 || cand > t->score) {
        t->score = cand;
        t->start = (int32_t)start;
        t->id = sp->unk_id;
    }
}

/* Best segmentation of s[0..n) into spans; runs of unknown characters
 * become one span, as SentencePieceProcessor merges them. */
static bool sp_viterbi(const qb_sentencepiece *sp, const char *s, size_t n, qb_sp_nodebuf *lb,
                       qb_sp_spanbuf *out) {
    out->n = 0;
    if (n == 0) return true;
    if (n > INT32_MAX || !QB_TOK_RESERVE(lb, n + 1)) return false;
    qb_sp_node *lat = lb->v;
    for (size_t i = 0; i <= n; i++) lat[i] = (qb_sp_node){.score = 0.0f, .id = -1, .start = -1};
    for (size_t start = 0; start < n;) {
        size_t mblen = (size_t)qb_utf8_char_len((unsigned char)s[start]);
        if (mblen > n - start) mblen = n - start;
        bool has_single = false;
        qb_ptab_scan sc;
        qb_ptab_scan_start(&sc, &sp->matchable, s + start, n - start);
        size_t len;
        for (int32_t id; (id = qb_ptab_scan_next(&sc, &len)) >= 0;) {
            if (sp->model.pieces[id].type == QB_SPM_UNUSED) continue;
            sp_relax(sp, lat, start, start + len, id);
            if (len == mblen) has_single = true;
        }
        if (!has_single) sp_relax_unknown(sp, lat, start, start + mblen);
        start += mblen;
    }
    size_t count = 0;
    for (size_t end = n; end > 0; end = (size_t)lat[end].start) count++;
    if (!QB_TOK_RESERVE(out, count)) return false;
    size_t k = count;
    for (size_t end = n; end > 0; end = (size_t)lat[end].start)
        out->v[--k] = (qb_sp_span){.start = lat[end].start, .end = (int32_t)end, .id = lat[end].id};
    size_t m = 0;
    for (size_t i = 0; i < count; i++) {
        if (m && out->v[i].id == sp->unk_id && out->v[m - 1].id == sp->unk_id)
            out->v[m - 1].end = out->v[i].end;
        else
            out->v[m++] = out->v[i];
    }
    out->n = m;
    return true;
}

/* EncodeAsPieces: normalize into norm, segment into spans over it. */
static bool sp_encode(const qb_sentencepiece *sp, const char *text, size_t len, qb_bytebuf *norm,
                      qb_sp_nodebuf *lattice, qb_sp_spanbuf *spans) {
    if (!qb_spn_normalize(&sp->norm, text, len, norm)) return false;
    return sp_viterbi(sp, norm->v, norm->n, lattice, spans);
}

/* ---- AlbertTokenizer._tokenize ----------------------------------------- */

static bool sp_starts_with_space_symbol(const char *s, size_t len) {
    return len >= 3 && memcmp(s, QB_UNI_SP_SPACE_UTF8, 3) == 0;
}

/* A piece like "▁1," or "000," : ends in a comma right after a digit. */
static bool sp_is_digit_comma(const char *p, size_t len) {
    if (len < 2 || p[len - 1] != ',') return false;
    size_t k = len - 1; /* find the start of the character before the comma */
    do k--; while (k > 0 && ((unsigned char)p[k] & 0xC0) == 0x80);
    uint32_t cp;
    return qb_utf8_decode_char(p + k, len - 1 - k, &cp) == len - 1 - k && qb_uni_is_py_digit(cp);
}

/* Re-encodes the piece without its comma and "▁", then adds the comma. */
static bool sp_split_digit_comma(const qb_sentencepiece *sp, const char *p, size_t len,
                                 qb_tok_work *w, qb_i32buf *ids) {
    qb_bytebuf *sub = &w->utf8[2];
    sub->n = 0;
    if (!QB_TOK_RESERVE(sub, len)) return false;
    for (size_t i = 0; i < len - 1;) {
        if (sp_starts_with_space_symbol(p + i, len - 1 - i)) {
            i += 3;
        } else {
            sub->v[sub->n++] = p[i++];
        }
    }
    qb_bytebuf *norm = &w->utf8[3];
    qb_sp_spanbuf *cur = &w->spans[1];
    if (!sp_encode(sp, sub->v, sub->n, norm, &w->lattice[1], cur)) return false;
    size_t first = 0;
    if (!sp_starts_with_space_symbol(p, len) && cur->n > 0) {
        const qb_sp_span *c0 = &cur->v[0];
        const char *s0 = norm->v + c0->start;
        size_t n0 = (size_t)(c0->end - c0->start);
        if (sp_starts_with_space_symbol(s0, n0)) {
            first = 1;
            if (n0 > 3 && !qb_tok_push(ids, qb_sp_id(sp, s0 + 3, n0 - 3))) return false;
        }
    }
    for (size_t i = first; i < cur->n; i++)
        if (!qb_tok_push(ids, cur->v[i].id)) return false;
    return qb_tok_push(ids, qb_sp_id(sp, ",", 1));
}

qb_status qb_sp_tokenize(const qb_sentencepiece *sp, const char *text, size_t len,
                         const char *what, qb_tok_work *w, qb_i32buf *ids, qb_error *err) {
    qb_status st = sp_preprocess(sp, text, len, what, w, err);
    if (st != QB_OK) return st;
    qb_bytebuf *norm = &w->utf8[1];
    qb_sp_spanbuf *spans = &w->spans[0];
    if (!sp_encode(sp, w->utf8[0].v, w->utf8[0].n, norm, &w->lattice[0], spans)) goto nomem;
    for (size_t i = 0; i < spans->n; i++) {
        const qb_sp_span *s = &spans->v[i];
        const char *p = norm->v + s->start;
        size_t n = (size_t)(s->end - s->start);
        bool ok = sp_is_digit_comma(p, n) ? sp_split_digit_comma(sp, p, n, w, ids)
                                          : qb_tok_push(ids, s->id);
        if (!ok) goto nomem;
    }
    return QB_OK;
nomem:
    return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", what);
}

qb_status qb_sp_normalize_char(const qb_sentencepiece *sp, const char *s, size_t n, qb_tok_work *w,
                               qb_bytebuf **out, qb_error *err) {
    qb_status st = sp_preprocess(sp, s, n, "text", w, err);
    if (st != QB_OK) return st;
    *out = &w->utf8[1];
    if (!qb_spn_normalize(&sp->norm, w->utf8[0].v, w->utf8[0].n, *out))
        return qb_fail(err, QB_ERR_NOMEM, "text: out of memory");
    return QB_OK;
}

size_t qb_sp_bytes(const qb_sentencepiece *sp) {
    size_t n = sizeof *sp + qb_ptab_bytes(&sp->matchable) + qb_ptab_bytes(&sp->user) + qb_ptab_bytes(&sp->by_text) +
               sp->model.charsmap_len;
    for (int i = 0; i < sp->model.n_pieces; i++) n += sizeof *sp->model.pieces + sp->model.pieces[i].len + 1;
    return n;
}
