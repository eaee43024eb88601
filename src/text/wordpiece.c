#include "text/wordpiece.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "text/piece_table.h"
#include "text/unicode.h"

/* HF's max_input_chars_per_word: longer words become a single [UNK]. */
#define WP_MAX_WORD_CHARS 100
/* So no longest-match scan reaches past this many UTF-8 bytes (4 a code
 * point), and the piece tables index no longer prefixes: a vocab line of
 * megabytes costs its copy, not megabytes of prefix entries. */
#define WP_MAX_WORD_BYTES (4 * WP_MAX_WORD_CHARS)
/* Real vocab.txt files are 0.2-1 MB (multilingual BERT, 120k tokens: 1 MB);
 * 32 MiB is 30 times that.  Loading costs up to ~30 bytes of prefix index a
 * byte of vocabulary (~1 GB at the cap, for lines built to be worst), so
 * the cap is what bounds a hostile file's memory. */
#define WP_VOCAB_FILE_MAX ((size_t)32 << 20)

/* BasicTokenizer's never_split set: kept whole and never lowercased. */
static const char *const wp_specials[] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};
#define WP_N_SPECIALS (sizeof wp_specials / sizeof wp_specials[0])

struct qb_wordpiece {
    qb_tok_options opt;
    qb_ptab words;  /* every vocab line as written */
    qb_ptab suffix; /* "##x" lines keyed by x, for continuation lookups */
    const char **pieces; /* id -> line */
    int n_pieces;
    int32_t unk_id;
    int32_t special_ids[WP_N_SPECIALS]; /* vocab id, or unk_id when absent */
};

/* ---- loading ------------------------------------------------------------ */

static qb_status wp_add_line(qb_wordpiece *wp, const char *s, size_t len, int32_t id,
                             int64_t *off, const char *path, qb_error *err) {
    *off = qb_ptab_add(&wp->words, s, len, id, WP_MAX_WORD_BYTES);
    bool ok = *off >= 0;
    if (ok && len > 2 && s[0] == '#' && s[1] == '#')
        ok = qb_ptab_add(&wp->suffix, s + 2, len - 2, id, WP_MAX_WORD_BYTES) >= 0;
    return ok ? QB_OK : qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
}

/* Where the line at pos ends, and (in *next) where the one after it starts:
 * Python's universal newlines, which load_vocab's text-mode readlines()
 * uses, end a line at "\n", "\r\n" or a lone "\r". */
static size_t wp_line_end(const char *buf, size_t size, size_t pos, size_t *next) {
    size_t i = pos;
    while (i < size && buf[i] != '\n' && buf[i] != '\r') i++;
    *next = i + (i < size) + (i + 1 < size && buf[i] == '\r' && buf[i + 1] == '\n');
    return i;
}

/* The lines HF reads: trailing empty lines are its "" token, which no text
 * produces, so they are left out (a vocab.txt saved with extra newlines
 * still fits config.json's vocab_size); 0 when none holds text. */
static size_t wp_count_lines(const char *buf, size_t size) {
    size_t n = 0, kept = 0, next;
    for (size_t pos = 0; pos < size; pos = next) {
        size_t end = wp_line_end(buf, size, pos, &next);
        n++;
        if (end > pos) kept = n;
    }
    return kept;
}

/* HF reads vocab.txt as UTF-8 and fails on anything else; so does qbert,
 * naming the line (1-based). */
static qb_status wp_check_utf8(const char *s, size_t len, size_t line, const char *path, qb_error *err) {
    uint32_t c;
    for (size_t i = 0, k; i < len; i += k)
        if (!(k = qb_utf8_decode_char(s + i, len - i, &c)))
            return qb_fail(err, QB_ERR_UTF8, "%s: line %zu is not valid UTF-8 (byte %zu)", path, line, i + 1);
    return QB_OK;
}

/* One token per line, id = line number. */
static qb_status wp_read_vocab(qb_wordpiece *wp, const char *buf, size_t size, const char *path,
                               qb_error *err) {
    size_t n_lines = wp_count_lines(buf, size);
    if (n_lines == 0) return qb_fail(err, QB_ERR_FORMAT, "%s: empty vocabulary", path);
    if (n_lines > INT32_MAX / 2) return qb_fail(err, QB_ERR_FORMAT, "%s: too many lines", path);
    int64_t *offs = malloc(n_lines * sizeof *offs);
    wp->pieces = malloc(n_lines * sizeof *wp->pieces);
    if (!offs || !wp->pieces || !qb_ptab_init(&wp->words, n_lines * 2) ||
        !qb_ptab_init(&wp->suffix, n_lines)) {
        free(offs);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t pos = 0, next;
    qb_status st = QB_OK;
    for (size_t id = 0; id < n_lines && st == QB_OK; id++, pos = next) {
        size_t len = wp_line_end(buf, size, pos, &next) - pos;
        st = wp_check_utf8(buf + pos, len, id + 1, path, err);
        if (st == QB_OK) st = wp_add_line(wp, buf + pos, len, (int32_t)id, &offs[id], path, err);
    }
    if (st == QB_OK) {
        for (size_t id = 0; id < n_lines; id++) wp->pieces[id] = qb_ptab_key(&wp->words, offs[id]);
        wp->n_pieces = (int)n_lines;
    }
    free(offs);
    return st;
}

/* The vocab.txt reading's tail: [UNK] and the never_split ids. */
static qb_status wp_finish(qb_wordpiece *wp, const char *path, qb_error *err) {
    wp->unk_id = qb_ptab_get(&wp->words, "[UNK]", 5, -1);
    if (wp->unk_id < 0)
        return qb_fail(err, QB_ERR_FORMAT, "%s: the vocabulary has no [UNK] token", path);
    for (size_t i = 0; i < WP_N_SPECIALS; i++)
        wp->special_ids[i] = qb_ptab_get(&wp->words, wp_specials[i], strlen(wp_specials[i]), wp->unk_id);
    return QB_OK;
}

qb_status qb_wp_load_pieces(const char *const *pieces, const size_t *lens, int n, const qb_tok_options *o,
                            const char *path, qb_wordpiece **out, qb_error *err) {
    *out = NULL;
    qb_wordpiece *wp = calloc(1, sizeof *wp);
    int64_t *offs = malloc(((size_t)n + 1) * sizeof *offs);
    if (!wp || !offs || !(wp->pieces = malloc(((size_t)n + 1) * sizeof *wp->pieces)) ||
        !qb_ptab_init(&wp->words, (size_t)n * 2) || !qb_ptab_init(&wp->suffix, (size_t)n)) {
        free(offs);
        qb_wp_free(wp);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    }
    wp->opt = *o;
    qb_status st = QB_OK;
    for (int id = 0; id < n && st == QB_OK; id++)
        st = wp_add_line(wp, pieces[id], lens[id], id, &offs[id], path, err);
    if (st == QB_OK) {
        for (int id = 0; id < n; id++) wp->pieces[id] = qb_ptab_key(&wp->words, offs[id]);
        wp->n_pieces = n;
        st = wp_finish(wp, path, err);
    }
    free(offs);
    if (st != QB_OK) {
        qb_wp_free(wp);
        return st;
    }
    *out = wp;
    return QB_OK;
}

qb_status qb_wp_load(const char *vocab_path, const qb_tok_options *o, qb_wordpiece **out,
                     qb_error *err) {
    *out = NULL;
    char *buf;
    size_t size;
    qb_status st = qb_file_read_max(vocab_path, WP_VOCAB_FILE_MAX, 0, "a vocab.txt", &buf, &size, err);
    if (st != QB_OK) return st;
    qb_wordpiece *wp = calloc(1, sizeof *wp);
    if (!wp) {
        free(buf);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", vocab_path);
    }
    wp->opt = *o;
    st = wp_read_vocab(wp, buf, size, vocab_path, err);
    free(buf);
    if (st == QB_OK) st = wp_finish(wp, vocab_path, err);
    if (st != QB_OK) {
        qb_wp_free(wp);
        return st;
    }
    *out = wp;
    return QB_OK;
}

void qb_wp_free(qb_wordpiece *wp) {
    if (!wp) return;
    qb_ptab_free(&wp->words);
    qb_ptab_free(&wp->suffix);
    free(wp->pieces);
    free(wp);
}

int qb_wp_vocab_size(const qb_wordpiece *wp) { return wp->n_pieces; }

const char *qb_wp_piece(const qb_wordpiece *wp, int32_t id) {
    return (id >= 0 && id < wp->n_pieces) ? wp->pieces[id] : NULL;
}

int32_t qb_wp_id(const qb_wordpiece *wp, const char *piece, int32_t missing) {
    return qb_ptab_get(&wp->words, piece, strlen(piece), missing);
}

/* ---- tokenizing --------------------------------------------------------- */

/* Index into wp_specials of the word, or -1. */
static int wp_special_index(const uint32_t *cp, size_t n) {
    if (n < 5 || n > 6 || cp[0] != '[') return -1;
    for (size_t i = 0; i < WP_N_SPECIALS; i++) {
        const char *s = wp_specials[i];
        size_t k = 0;
        while (k < n && s[k] && cp[k] == (unsigned char)s[k]) k++;
        if (k == n && !s[k]) return (int)i;
    }
    return -1;
}

/* _clean_text and _tokenize_chinese_chars in one pass: drop NUL, U+FFFD and
 * control characters, map whitespace to ' ', put spaces around ideographs. */
static bool wp_clean(const qb_wordpiece *wp, const uint32_t *in, size_t n, qb_u32buf *out) {
    if (!QB_TOK_RESERVE(out, out->n + 3 * n + 1)) return false;
    uint32_t *d = out->v + out->n;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c == 0 || c == 0xFFFD || qb_uni_is_bert_control(c)) continue;
        if (qb_uni_is_bert_space(c)) {
            *d++ = ' ';
        } else if (wp->opt.tokenize_chinese_chars && qb_uni_is_cjk(c)) {
            *d++ = ' ';
            *d++ = c;
            *d++ = ' ';
        } else {
            *d++ = c;
        }
    }
    out->n = (size_t)(d - out->v);
    return true;
}

/* NFD, then drop nonspacing marks (_run_strip_accents). */
static bool wp_strip_accents(const uint32_t *in, size_t n, qb_u32buf *out) {
    size_t start = out->n;
    if (!qb_uni_normalize(in, n, QB_UNI_NFD, out)) return false;
    size_t k = start;
    for (size_t i = start; i < out->n; i++)
        if (!qb_uni_is_mn(out->v[i])) out->v[k++] = out->v[i];
    out->n = k;
    return true;
}

/* Greedy longest-match-first split of one punctuation-free word. */
static bool wp_word_pieces(const qb_wordpiece *wp, const uint32_t *cp, size_t n, qb_tok_work *w,
                           qb_i32buf *ids) {
    if (n > WP_MAX_WORD_CHARS) return qb_tok_push(ids, wp->unk_id);
    qb_bytebuf *b = &w->utf8[0];
    b->n = 0;
    if (!qb_utf8_encode(cp, n, b)) return false;
    size_t first = ids->n;
    size_t start = 0;
    while (start < b->n) {
        const qb_ptab *tab = start == 0 ? &wp->words : &wp->suffix;
        uint32_t h = QB_PTAB_SEED;
        size_t best_end = 0;
        int32_t best_id = -1;
        const qb_ptab_entry *e = NULL;
        for (size_t k = start; k < b->n; k++) {
            h = qb_ptab_hash_step(h, (unsigned char)b->v[k]);
            bool char_ends = k + 1 == b->n || ((unsigned char)b->v[k + 1] & 0xC0) != 0x80;
            if (!char_ends) continue;
            e = qb_ptab_find_next(tab, b->v + start, k + 1 - start, h, e);
            if (!e) break;
            if (e->id != QB_PTAB_PREFIX_ONLY) {
                best_end = k + 1;
                best_id = e->id;
            }
        }
        if (best_id < 0) { /* any unmatchable rest makes the whole word [UNK] */
            ids->n = first;
            return qb_tok_push(ids, wp->unk_id);
        }
        if (!qb_tok_push(ids, best_id)) return false;
        start = best_end;
    }
    return true;
}

bool qb_wp_word(const qb_wordpiece *wp, const char *s, size_t len, qb_tok_work *w, qb_i32buf *ids) {
    qb_u32buf *cp = &w->cp[2];
    cp->n = 0;
    qb_error err;
    if (qb_utf8_decode(s, len, cp, "word", &err) != QB_OK) return qb_tok_push(ids, wp->unk_id);
    return cp->n == 0 || wp_word_pieces(wp, cp->v, cp->n, w, ids);
}

/* _run_split_on_punc: every punctuation character is its own word. */
static bool wp_split_punct(const qb_wordpiece *wp, const uint32_t *cp, size_t n, qb_tok_work *w,
                           qb_i32buf *ids) {
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (!qb_uni_is_punct(cp[i])) continue;
        if (i > run && !wp_word_pieces(wp, cp + run, i - run, w, ids)) return false;
        if (!wp_word_pieces(wp, cp + i, 1, w, ids)) return false;
        run = i + 1;
    }
    return n <= run || wp_word_pieces(wp, cp + run, n - run, w, ids);
}

/* Lowercasing and accent stripping, as the options ask, into w->cp[1] and
 * w->cp[2] (so *cp must be neither); *cp and *n then name the result. */
static bool wp_fold(const qb_wordpiece *wp, const uint32_t **cp, size_t *n, qb_tok_work *w) {
    const qb_tok_options *o = &wp->opt;
    if (o->do_lower_case) {
        w->cp[1].n = 0;
        if (!qb_uni_lower(*cp, *n, o->slow, &w->cp[1])) return false;
        *cp = w->cp[1].v, *n = w->cp[1].n;
    }
    if (o->do_lower_case ? o->strip_accents != 0 : o->strip_accents == 1) {
        w->cp[2].n = 0;
        if (!wp_strip_accents(*cp, *n, &w->cp[2])) return false;
        *cp = w->cp[2].v, *n = w->cp[2].n;
    }
    return true;
}

/* One whitespace-separated token through lowercasing, accent stripping and
 * punctuation splitting. */
static bool wp_basic_token(const qb_wordpiece *wp, const uint32_t *cp, size_t n, qb_tok_work *w,
                           qb_i32buf *ids) {
    int sp = wp_special_index(cp, n);
    if (sp >= 0) return qb_tok_push(ids, wp->special_ids[sp]);
    if (!wp_fold(wp, &cp, &n, w)) return false;
    /* _run_split_on_punc checks never_split again on the transformed token */
    sp = wp_special_index(cp, n);
    if (sp >= 0) return qb_tok_push(ids, wp->special_ids[sp]);
    return wp_split_punct(wp, cp, n, w, ids);
}

qb_status qb_wp_tokenize(const qb_wordpiece *wp, const char *text, size_t len, const char *what,
                         qb_tok_work *w, qb_i32buf *ids, qb_error *err) {
    qb_u32buf *raw = &w->cp[0], *clean = &w->cp[1];
    raw->n = 0;
    qb_status st = qb_utf8_decode(text, len, raw, what, err);
    if (st != QB_OK) return st;
    clean->n = 0;
    if (!wp_clean(wp, raw->v, raw->n, clean)) goto nomem;
    raw->n = 0;
    /* the slow BertTokenizer composes first; tokenizers' BertNormalizer does not */
    if (wp->opt.slow ? !qb_uni_normalize(clean->v, clean->n, QB_UNI_NFC, raw)
                    : !QB_TOK_RESERVE(raw, clean->n + 1))
        goto nomem;
    if (!wp->opt.slow) {
        memcpy(raw->v, clean->v, clean->n * sizeof *raw->v);
        raw->n = clean->n;
    }
    /* raw now holds the NFC text; cp[1] and cp[2] are free for per-token work */
    const uint32_t *s = raw->v;
    size_t n = raw->n, i = 0;
    while (i < n) {
        while (i < n && qb_uni_is_py_space(s[i])) i++;
        size_t start = i;
        while (i < n && !qb_uni_is_py_space(s[i])) i++;
        if (i > start && !wp_basic_token(wp, s + start, i - start, w, ids)) goto nomem;
    }
    return QB_OK;
nomem:
    return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", what);
}

qb_status qb_wp_normalize_char(const qb_wordpiece *wp, const char *s, size_t n, qb_tok_work *w, qb_bytebuf **out,
                               qb_error *err) {
    qb_u32buf *raw = &w->cp[1], *clean = &w->cp[0];
    raw->n = clean->n = 0;
    qb_status st = qb_utf8_decode(s, n, raw, "text", err);
    if (st != QB_OK) return st;
    bool ok = wp_clean(wp, raw->v, raw->n, clean);
    const uint32_t *cp = clean->v;
    size_t k = clean->n;
    *out = &w->utf8[0];
    (*out)->n = 0;
    if (!ok || !wp_fold(wp, &cp, &k, w) || !qb_utf8_encode(cp, k, *out))
        return qb_fail(err, QB_ERR_NOMEM, "text: out of memory");
    return QB_OK;
}

size_t qb_wp_bytes(const qb_wordpiece *wp) {
    return sizeof *wp + qb_ptab_bytes(&wp->words) + qb_ptab_bytes(&wp->suffix) +
           (size_t)wp->n_pieces * sizeof *wp->pieces;
}
