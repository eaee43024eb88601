#include "text/bpe.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"
#include "core/escape.h"
#include "text/piece_table.h"
#include "text/unicode.h"

typedef struct {
    uint64_t key; /* (a << 32) | b, UINT64_MAX when empty */
    int32_t rank, new_id;
} bpe_merge;

struct qb_bpe {
    qb_ptab vocab;
    bpe_merge *merges;
    size_t merge_mask;
    int32_t byte_id[256]; /* the byte-level alphabet's ids; -1 when absent */
    int32_t unk_id;
    bool byte_level, add_prefix_space, use_regex, ignore_merges;
};

/* ---- loading ------------------------------------------------------------ */

static size_t bpe_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k;
}

static const bpe_merge *bpe_find(const qb_bpe *b, int32_t x, int32_t y) {
    uint64_t key = ((uint64_t)(uint32_t)x << 32) | (uint32_t)y;
    for (size_t i = bpe_hash(key) & b->merge_mask;; i = (i + 1) & b->merge_mask) {
        if (b->merges[i].key == key) return &b->merges[i];
        if (b->merges[i].key == UINT64_MAX) return NULL;
    }
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the rest for 256, 257, ... in byte order. */
uint32_t qb_bpe_byte_char(unsigned c) {
    if (c < 33) return 256 + c;                /* 0..32: 256..288 */
    if (c >= 127 && c <= 160) return 289 + (c - 127); /* 289..322 */
    if (c == 173) return 323;
    return c;
}

/* qb_bpe_byte_char backwards: the one byte c can stand for, checked there. */
int qb_bpe_char_byte(uint32_t c) {
    uint32_t b = c < 256 ? c : c <= 288 ? c - 256 : c <= 322 ? c - 289 + 127 : 173;
    return c <= 323 && qb_bpe_byte_char(b) == c ? (int)b : -1;
}

static qb_status bpe_add_merges(qb_bpe *b, const qb_bpe_spec *s, const char *path, qb_error *err) {
    size_t cap = 16;
    while (cap < s->n_merges * 2) cap *= 2;
    b->merges = malloc(cap * sizeof *b->merges);
    if (!b->merges) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < cap; i++) b->merges[i].key = UINT64_MAX;
    b->merge_mask = cap - 1;
    char *joined = NULL;
    size_t joined_cap = 0;
    qb_status st = QB_OK;
    for (size_t r = 0; r < s->n_merges && st == QB_OK; r++) {
        size_t la = s->merge_a_len[r], lb = s->merge_b_len[r];
        int32_t x = qb_ptab_get(&b->vocab, s->merge_a[r], la, -1);
        int32_t y = qb_ptab_get(&b->vocab, s->merge_b[r], lb, -1);
        if (la + lb + 1 > joined_cap) {
            joined_cap = la + lb + 1;
            char *p = realloc(joined, joined_cap);
            if (!p) {
                st = qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            joined = p;
        }
        memcpy(joined, s->merge_a[r], la);
        memcpy(joined + la, s->merge_b[r], lb);
        int32_t z = qb_ptab_get(&b->vocab, joined, la + lb, -1);
        if (x < 0 || y < 0 || z < 0) {
            const char *bad = x < 0 ? s->merge_a[r] : y < 0 ? s->merge_b[r] : joined;
            size_t bad_len = x < 0 ? la : y < 0 ? lb : la + lb;
            char shown[64];
            qb_escape(shown, sizeof shown, bad, bad_len);
            st = x < 0 || y < 0
                     ? qb_fail(err, QB_ERR_FORMAT, "%s: model.merges[%zu] refers to a token not in the vocab (%s)",
                               path, r, shown)
                     : qb_fail(err, QB_ERR_FORMAT, "%s: model.merges[%zu]'s result %s is not in the vocab", path, r,
                               shown);
            break;
        }
        uint64_t key = ((uint64_t)(uint32_t)x << 32) | (uint32_t)y;
        size_t i = bpe_hash(key) & b->merge_mask;
        while (b->merges[i].key != UINT64_MAX && b->merges[i].key != key) i = (i + 1) & b->merge_mask;
        if (b->merges[i].key == key) continue; /* the first rank of a repeated merge wins */
        b->merges[i] = (bpe_merge){.key = key, .rank = (int32_t)r, .new_id = z};
    }
    free(joined);
    return st;
}

qb_status qb_bpe_load(const qb_bpe_spec *s, const char *path, qb_bpe **out, qb_error *err) {
    *out = NULL;
    if (s->n_merges > INT32_MAX) return qb_fail(err, QB_ERR_FORMAT, "%s: too many merges", path);
    qb_bpe *b = calloc(1, sizeof *b);
    if (!b || !qb_ptab_init(&b->vocab, (size_t)s->n)) {
        free(b);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    }
    b->unk_id = s->unk_id;
    b->byte_level = s->byte_level;
    b->add_prefix_space = s->add_prefix_space;
    b->use_regex = s->use_regex;
    b->ignore_merges = s->ignore_merges;
    qb_status st = QB_OK;
    for (int id = 0; id < s->n && st == QB_OK; id++)
        if (s->pieces[id] && qb_ptab_add(&b->vocab, s->pieces[id], s->lens[id], id, 0) < 0)
            st = qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    for (unsigned c = 0; c < 256 && st == QB_OK; c++) {
        uint32_t cp = qb_bpe_byte_char(c); /* below U+0800: one or two bytes */
        char u[2] = {(char)cp, 0};
        size_t n = 1;
        if (cp >= 0x80) u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
        b->byte_id[c] = qb_ptab_get(&b->vocab, u, n, -1);
    }
    if (st == QB_OK) st = bpe_add_merges(b, s, path, err);
    if (st != QB_OK) {
        qb_bpe_free(b);
        return st;
    }
    *out = b;
    return QB_OK;
}

void qb_bpe_free(qb_bpe *b) {
    if (!b) return;
    qb_ptab_free(&b->vocab);
    free(b->merges);
    free(b);
}

int32_t qb_bpe_id(const qb_bpe *b, const char *piece, size_t len, int32_t missing) {
    return qb_ptab_get(&b->vocab, piece, len, missing);
}

/* ---- merging ------------------------------------------------------------ */

static void heap_push(qb_u64buf *h, uint64_t v) {
    size_t i = h->n++;
    while (i > 0 && h->v[(i - 1) / 2] > v) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = v;
}

static uint64_t heap_pop(qb_u64buf *h) {
    uint64_t top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->v[c + 1] < h->v[c]) c++;
        if (h->v[c] >= last) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

static void bpe_offer(const qb_bpe *b, const int32_t *sym, int32_t pos, int32_t next, qb_u64buf *h) {
    if (pos < 0 || next < 0) return;
    const bpe_merge *m = bpe_find(b, sym[pos], sym[next]);
    if (m) heap_push(h, ((uint64_t)(uint32_t)m->rank << 32) | (uint32_t)pos);
}

/* Merges the symbols in w->bpe[0] (n of them) and appends the result.  Each
 * merge removes a symbol and offers at most two pairs: O(n log n). */
static bool bpe_merge_word(const qb_bpe *b, size_t n, qb_tok_work *w, qb_i32buf *ids) {
    int32_t *sym = w->bpe[0].v;
    if (!QB_TOK_RESERVE(&w->bpe[1], n) || !QB_TOK_RESERVE(&w->bpe[2], n) || !QB_TOK_RESERVE(&w->heap, n + 2 * n))
        return false;
    int32_t *prev = w->bpe[1].v, *next = w->bpe[2].v;
    qb_u64buf *h = &w->heap;
    h->n = 0;
    for (size_t i = 0; i < n; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) bpe_offer(b, sym, (int32_t)i, (int32_t)i + 1, h);
    while (h->n) {
        uint64_t top = heap_pop(h);
        int32_t pos = (int32_t)(uint32_t)top, rank = (int32_t)(top >> 32);
        if (sym[pos] < 0 || next[pos] < 0) continue;
        const bpe_merge *m = bpe_find(b, sym[pos], sym[next[pos]]);
        if (!m || m->rank != rank) continue; /* stale: a neighbour merged first */
        int32_t gone = next[pos];
        sym[pos] = m->new_id;
        sym[gone] = -1;
        next[pos] = next[gone];
        if (next[pos] >= 0) prev[next[pos]] = pos;
        bpe_offer(b, sym, prev[pos], pos, h);
        bpe_offer(b, sym, pos, next[pos], h);
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = next[i])
        if (!qb_tok_push(ids, sym[i])) return false;
    return true;
}

/* One pre-tokenized word (bytes) to ids. */
bool qb_bpe_word(const qb_bpe *b, const char *s, size_t len, qb_tok_work *w, qb_i32buf *ids) {
    if (len == 0) return true;
    if (b->ignore_merges) {
        int32_t whole = qb_ptab_get(&b->vocab, s, len, -1);
        if (whole >= 0) return qb_tok_push(ids, whole);
    }
    qb_i32buf *sym = &w->bpe[0];
    sym->n = 0;
    if (!QB_TOK_RESERVE(sym, len)) return false;
    for (size_t i = 0; i < len;) {
        int32_t id;
        size_t k = 1;
        if (b->byte_level) {
            id = b->byte_id[(unsigned char)s[i]];
        } else {
            k = (size_t)qb_utf8_char_len((unsigned char)s[i]);
            if (k > len - i) k = len - i;
            id = qb_ptab_get(&b->vocab, s + i, k, -1);
        }
        if (id < 0) id = b->unk_id; /* no unk token: the character is dropped, as HF does */
        if (id >= 0) sym->v[sym->n++] = id;
        i += k;
    }
    return bpe_merge_word(b, sym->n, w, ids);
}

/* ---- the byte-level pre-tokenizer --------------------------------------- */

static bool is_ws(uint32_t c) { /* Unicode White_Space, onig's \s */
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static bool is_letter(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static bool is_number(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

static bool is_other(uint32_t c) { return !is_ws(c) && !is_letter(c) && !is_number(c); }

/* Length of the match of GPT-2's pattern at s[i]:
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
size_t qb_bpe_gpt2_match(const uint32_t *s, size_t n, size_t i) {
    if (s[i] == '\'' && i + 1 < n) {
        uint32_t a = s[i + 1], c = i + 2 < n ? s[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if ((a == 'r' && c == 'e') || (a == 'v' && c == 'e') || (a == 'l' && c == 'l')) return 3;
    }
    bool (*classes[3])(uint32_t) = {is_letter, is_number, is_other};
    size_t j = i + (s[i] == ' ' && i + 1 < n);
    for (int k = 0; k < 3; k++) {
        if (!classes[k](s[j])) continue;
        size_t e = j;
        while (e < n && classes[k](s[e])) e++;
        return e - i;
    }
    size_t e = i;
    while (e < n && is_ws(s[e])) e++;
    if (e == n || e - i == 1) return e - i;
    return e - i - 1; /* leave the last space to the word after it */
}

qb_status qb_bpe_tokenize(const qb_bpe *b, const char *text, size_t len, const char *what, qb_tok_work *w,
                          qb_i32buf *ids, qb_error *err) {
    if (!b->byte_level) {
        if (!qb_bpe_word(b, text, len, w, ids)) goto nomem;
        return QB_OK;
    }
    qb_u32buf *cp = &w->cp[0];
    cp->n = 0;
    if (b->add_prefix_space && (len == 0 || text[0] != ' ')) {
        if (!QB_TOK_RESERVE(cp, 1)) goto nomem;
        cp->v[cp->n++] = ' ';
    }
    qb_status st = qb_utf8_decode(text, len, cp, what, err);
    if (st != QB_OK) return st;
    if (len == 0) return QB_OK; /* a prefix space alone is no word for HF either */
    qb_bytebuf *u = &w->utf8[1];
    for (size_t i = 0; i < cp->n;) {
        size_t k = b->use_regex ? qb_bpe_gpt2_match(cp->v, cp->n, i) : cp->n - i;
        u->n = 0;
        if (!qb_utf8_encode(cp->v + i, k, u) || !qb_bpe_word(b, u->v, u->n, w, ids)) goto nomem;
        i += k;
    }
    return QB_OK;
nomem:
    return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", what);
}

bool qb_bpe_byte_level(const qb_bpe *b) { return b->byte_level; }
bool qb_bpe_byte_regex(const qb_bpe *b) { return b->byte_level && b->use_regex; }

size_t qb_bpe_bytes(const qb_bpe *b) {
    return sizeof *b + qb_ptab_bytes(&b->vocab) + (b->merges ? (b->merge_mask + 1) * sizeof *b->merges : 0);
}
