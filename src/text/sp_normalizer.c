#include "text/sp_normalizer.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "text/unicode.h"

#include <utf8proc.h>

/* sentencepiece keeps only this many trie matches per position. */
#define SPN_MAX_TRIE_RESULTS 32

/* Darts-clone unit fields. */
static inline bool darts_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static inline uint32_t darts_value(uint32_t u) { return u & 0x7FFFFFFFu; }
static inline uint32_t darts_label(uint32_t u) { return u & 0x800000FFu; }
static inline uint32_t darts_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

qb_status qb_spn_init(qb_spn *n, const qb_spm_model *m, const qb_ptab *user, const char *path,
                      qb_error *err) {
    memset(n, 0, sizeof *n);
    n->user = user;
    n->add_dummy_prefix = m->add_dummy_prefix;
    n->remove_extra_whitespaces = m->remove_extra_whitespaces;
    n->escape_whitespaces = m->escape_whitespaces;
    if (m->charsmap_len == 0) return QB_OK;
    const unsigned char *b = m->charsmap;
    size_t len = m->charsmap_len;
    uint32_t trie_bytes = len < 4 ? 0 : (uint32_t)b[0] | (uint32_t)b[1] << 8 |
                                            (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    if (len <= 4 || trie_bytes == 0 || trie_bytes % 4 || trie_bytes > len - 4)
        return qb_fail(err, QB_ERR_FORMAT, "%s: corrupt precompiled_charsmap (trie size %u of %zu)",
                       path, trie_bytes, len);
    n->n_units = trie_bytes / 4;
    n->strings_len = len - 4 - trie_bytes;
    n->units = malloc(n->n_units * sizeof *n->units);
    n->strings = malloc(n->strings_len + 1);
    if (!n->units || !n->strings) {
        qb_spn_free(n);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < n->n_units; i++) {
        const unsigned char *u = b + 4 + 4 * i;
        n->units[i] = (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 |
                      (uint32_t)u[3] << 24;
    }
    memcpy(n->strings, b + 4 + trie_bytes, n->strings_len);
    n->strings[n->strings_len] = 0; /* a corrupt last string still ends */
    return QB_OK;
}

void qb_spn_free(qb_spn *n) {
    free(n->units);
    free(n->strings);
    memset(n, 0, sizeof *n);
}

/* Longest charsmap key that prefixes s (Darts commonPrefixSearch); returns
 * its length and sets *value, or 0. */
static size_t spn_trie_longest(const qb_spn *n, const char *s, size_t len, uint32_t *value) {
    if (!n->units) return 0;
    size_t best = 0, found = 0;
    uint32_t id = darts_offset(n->units[0]);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        id ^= c;
        if (id >= n->n_units) break;
        uint32_t unit = n->units[id];
        if (darts_label(unit) != c) break;
        id ^= darts_offset(unit);
        if (darts_has_leaf(unit)) {
            if (id >= n->n_units) break;
            if (++found <= SPN_MAX_TRIE_RESULTS) {
                best = i + 1;
                *value = darts_value(n->units[id]);
            }
        }
    }
    return best;
}

/* Whether s[0..len) starts with a well-formed UTF-8 character; its length. */
static size_t spn_valid_char(const char *s, size_t len) {
    unsigned char c = (unsigned char)s[0];
    size_t k = (size_t)qb_utf8_char_len(c);
    if (c >= 0x80 && c < 0xC2) return 0;
    if (k > len) return 0;
    for (size_t i = 1; i < k; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) return 0;
    return k;
}

/* NormalizePrefix: the replacement for the longest rule at s, and how many
 * input bytes it consumes. */
static size_t spn_prefix(const qb_spn *n, const char *s, size_t len, const char **out,
                         size_t *out_len) {
    int32_t id;
    size_t k = n->user && n->user->used ? qb_ptab_longest_prefix(n->user, s, len, &id) : 0;
    if (k) { /* user-defined symbols are never normalized */
        *out = s;
        *out_len = k;
        return k;
    }
    uint32_t v;
    k = spn_trie_longest(n, s, len, &v);
    if (k && v < n->strings_len) {
        *out = n->strings + v;
        *out_len = strlen(*out);
        return k;
    }
    k = spn_valid_char(s, len);
    if (!k) { /* malformed byte: U+FFFD, one byte consumed */
        *out = "\xef\xbf\xbd";
        *out_len = 3;
        return 1;
    }
    *out = s;
    *out_len = k;
    return k;
}

static bool spn_append(qb_bytebuf *o, const char *s, size_t len) {
    if (!QB_TOK_RESERVE(o, o->n + len + 1)) return false;
    memcpy(o->v + o->n, s, len);
    o->n += len;
    return true;
}

static bool spn_append_space(const qb_spn *n, qb_bytebuf *o) {
    return n->escape_whitespaces ? spn_append(o, QB_UNI_SP_SPACE_UTF8, 3) : spn_append(o, " ", 1);
}

bool qb_spn_normalize(const qb_spn *n, const char *in, size_t len, qb_bytebuf *out) {
    out->n = 0;
    const char *sp;
    size_t sp_len, pos = 0;
    if (n->remove_extra_whitespaces) {
        while (pos < len) {
            size_t k = spn_prefix(n, in + pos, len - pos, &sp, &sp_len);
            if (sp_len != 1 || sp[0] != ' ') break;
            pos += k;
        }
    }
    if (pos == len) return true;
    if (n->add_dummy_prefix && !spn_append_space(n, out)) return false;
    bool prev_space = n->remove_extra_whitespaces;
    while (pos < len) {
        pos += spn_prefix(n, in + pos, len - pos, &sp, &sp_len);
        if (prev_space)
            while (sp_len && sp[0] == ' ') sp++, sp_len--;
        if (sp_len) {
            for (size_t i = 0; i < sp_len; i++) {
                bool ok = (n->escape_whitespaces && sp[i] == ' ') ? spn_append_space(n, out)
                                                                  : spn_append(out, sp + i, 1);
                if (!ok) return false;
            }
            prev_space = sp[sp_len - 1] == ' ';
        }
        if (!n->remove_extra_whitespaces) prev_space = false;
    }
    if (n->remove_extra_whitespaces) {
        size_t sl = n->escape_whitespaces ? 3 : 1;
        const char *sym = n->escape_whitespaces ? QB_UNI_SP_SPACE_UTF8 : " ";
        while (out->n >= sl && memcmp(out->v + out->n - sl, sym, sl) == 0) out->n -= sl;
    }
    return true;
}

/* Darts commonPrefixSearch's first result: the shortest key prefixing s. */
static bool spn_trie_shortest(const qb_spn *n, const char *s, size_t len, uint32_t *value) {
    if (!n->units) return false;
    uint32_t id = darts_offset(n->units[0]);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        id ^= c;
        if (id >= n->n_units) return false;
        uint32_t unit = n->units[id];
        if (darts_label(unit) != c) return false;
        id ^= darts_offset(unit);
        if (darts_has_leaf(unit)) {
            if (id >= n->n_units) return false;
            *value = darts_value(n->units[id]);
            return *value < n->strings_len;
        }
    }
    return false;
}

static bool spn_transform(const qb_spn *n, const char *s, size_t len, qb_bytebuf *out) {
    uint32_t v;
    if (!spn_trie_shortest(n, s, len, &v)) return spn_append(out, s, len);
    return spn_append(out, n->strings + v, strlen(n->strings + v));
}

bool qb_spn_precompiled(const qb_spn *n, const char *in, size_t len, qb_bytebuf *out) {
    out->n = 0;
    size_t pos = 0;
    while (pos < len) { /* the input is valid UTF-8: the caller decoded it */
        size_t end = pos;
        utf8proc_int32_t prev = -1, cp;
        utf8proc_int32_t state = 0;
        while (end < len) {
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)in + end, (utf8proc_ssize_t)(len - end), &cp);
            if (k <= 0) k = 1, cp = 0xFFFD;
            if (prev >= 0 && utf8proc_grapheme_break_stateful(prev, cp, &state)) break;
            prev = cp;
            end += (size_t)k;
        }
        uint32_t v;
        if (end - pos < 6 && spn_trie_shortest(n, in + pos, end - pos, &v)) {
            if (!spn_append(out, n->strings + v, strlen(n->strings + v))) return false;
        } else {
            for (size_t i = pos; i < end;) {
                size_t k = (size_t)qb_utf8_char_len((unsigned char)in[i]);
                if (k > end - i) k = end - i;
                if (!spn_transform(n, in + i, k, out)) return false;
                i += k;
            }
        }
        pos = end;
    }
    return true;
}
