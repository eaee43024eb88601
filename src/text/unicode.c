#include "text/unicode.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"

int qb_utf8_char_len(unsigned char c) {
    static const unsigned char len_by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1,
                                                         1, 1, 1, 1, 2, 2, 3, 4};
    return len_by_high_nibble[c >> 4];
}

size_t qb_utf8_decode_char(const char *str, size_t len, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str;
    if (len == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) { n = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { n = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (n > len) return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

qb_status qb_utf8_decode(const char *s, size_t len, qb_u32buf *out, const char *what,
                         qb_error *err) {
    if (!QB_TOK_RESERVE(out, out->n + len + 1))
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory decoding %zu bytes", what, len);
    const unsigned char *u = (const unsigned char *)s;
    uint32_t *dst = out->v + out->n;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x80) { /* ASCII runs dominate real text */
            *dst++ = u[i++];
            continue;
        }
        uint32_t cp;
        size_t k = qb_utf8_decode_char((const char *)u + i, len - i, &cp);
        if (!k) return qb_fail(err, QB_ERR_UTF8, "%s: invalid UTF-8 at byte %zu", what, i);
        *dst++ = cp;
        i += k;
    }
    out->n = (size_t)(dst - out->v);
    return QB_OK;
}

static size_t utf8_put(uint32_t cp, char *d) {
    if (cp < 0x80) { d[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool qb_utf8_encode(const uint32_t *cps, size_t n, qb_bytebuf *out) {
    if (!QB_TOK_RESERVE(out, out->n + 4 * n + 1)) return false;
    char *d = out->v + out->n;
    for (size_t i = 0; i < n; i++) d += utf8_put(cps[i], d);
    out->n = (size_t)(d - out->v);
    return true;
}

bool qb_uni_is_py_space(uint32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    if (c < 0x85) return false;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool qb_uni_is_bert_space(uint32_t c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return true;
    return c >= 0x80 && utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_ZS;
}

bool qb_uni_is_bert_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    if (c >= 0x20 && c < 0x7F) return false;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    /* Python's category()[0] == "C" includes unassigned (Cn) code points. */
    return cat == UTF8PROC_CATEGORY_CN || cat == UTF8PROC_CATEGORY_CC ||
           cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CS ||
           cat == UTF8PROC_CATEGORY_CO;
}

bool qb_uni_is_punct(uint32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return true;
    if (c < 0x80) return false;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

bool qb_uni_is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool qb_uni_is_py_digit(uint32_t c) {
    /* Python's isdigit() is Nd plus the characters whose Numeric_Type is
     * Digit (superscripts, circled digits...), which utf8proc does not expose. */
    static const uint32_t digit_ranges[][2] = {
        {0xB2, 0xB3}, {0xB9, 0xB9}, {0x1369, 0x1371}, {0x19DA, 0x19DA},
        {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089}, {0x2460, 0x2468},
        {0x2474, 0x247C}, {0x2488, 0x2490}, {0x24EA, 0x24EA}, {0x24F5, 0x24FD},
        {0x24FF, 0x24FF}, {0x2776, 0x277E}, {0x2780, 0x2788}, {0x278A, 0x2792},
        {0x10A40, 0x10A43}, {0x10E60, 0x10E68}, {0x11052, 0x1105A}, {0x1F100, 0x1F10A},
    };
    if (c < 0x80) return c >= '0' && c <= '9';
    if (utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_ND) return true;
    for (size_t i = 0; i < sizeof digit_ranges / sizeof digit_ranges[0]; i++)
        if (c >= digit_ranges[i][0] && c <= digit_ranges[i][1]) return true;
    return false;
}

bool qb_uni_is_mn(uint32_t c) {
    return c >= 0x300 && utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_MN;
}

int qb_uni_combining_class(uint32_t c) {
    return c < 0x300 ? 0 : utf8proc_get_property((utf8proc_int32_t)c)->combining_class;
}

/* Unicode's Cased property, approximated by the letter case categories plus
 * anything that has a case mapping (Other_Uppercase/Other_Lowercase). */
static bool uni_is_cased(uint32_t c) {
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT)
        return true;
    return utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c ||
           utf8proc_toupper((utf8proc_int32_t)c) != (utf8proc_int32_t)c;
}

/* Unicode's Case_Ignorable: marks, formats, modifiers, and the word-break
 * MidLetter/MidNumLet/Single_Quote characters. */
static bool uni_is_case_ignorable(uint32_t c) {
    static const uint32_t mid_word[] = {0x27,   0x2E,   0x3A,   0xB7,   0x387,  0x55F,
                                        0x5F4,  0x2018, 0x2019, 0x2024, 0x2027, 0xFE13,
                                        0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
    for (size_t i = 0; i < sizeof mid_word / sizeof mid_word[0]; i++)
        if (c == mid_word[i]) return true;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME ||
           cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_LM ||
           cat == UTF8PROC_CATEGORY_SK;
}

/* CPython's Final_Sigma test: a cased letter before (skipping case-ignorable
 * ones) and none after. */
static bool uni_sigma_is_final(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && uni_is_case_ignorable(s[j - 1])) j--;
    if (j == 0 || !uni_is_cased(s[j - 1])) return false;
    j = i + 1;
    while (j < n && uni_is_case_ignorable(s[j])) j++;
    return j == n || !uni_is_cased(s[j]);
}

bool qb_uni_lower(const uint32_t *in, size_t n, bool final_sigma, qb_u32buf *out) {
    if (!QB_TOK_RESERVE(out, out->n + 2 * n + 1)) return false;
    uint32_t *d = out->v + out->n;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c < 0x80) {
            *d++ = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        } else if (c == 0x130) { /* the one multi-code-point lowercase mapping */
            *d++ = 'i';
            *d++ = 0x307;
        } else if (c == 0x3A3) {
            *d++ = final_sigma && uni_sigma_is_final(in, n, i) ? 0x3C2 : 0x3C3;
        } else {
            *d++ = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
        }
    }
    out->n = (size_t)(d - out->v);
    return true;
}

/* Below these code points a form leaves every string unchanged, which lets
 * plain ASCII/Latin-1 text skip utf8proc entirely. */
static uint32_t uni_form_stable_below(qb_uni_form form) {
    switch (form) {
    case QB_UNI_NFC: return 0x300;
    case QB_UNI_NFD: return 0xC0;
    case QB_UNI_NFKD:
    case QB_UNI_NFKC: return 0xA0;
    }
    return 0;
}

/* Runs of non-starters up to this long are insertion-sorted (real text has
 * one to three marks); longer ones, which only crafted input has, go
 * through a counting sort so the whole pass stays linear. */
#define UNI_SHORT_RUN 32

/* Stable sort of v[0..n) (all non-starters, classes in cc) by class. */
static bool uni_sort_run(uint32_t *v, unsigned char *cc, size_t n, uint32_t **tmp, size_t *tmp_cap) {
    if (n <= UNI_SHORT_RUN) {
        for (size_t i = 1; i < n; i++) {
            uint32_t c = v[i];
            unsigned char k = cc[i];
            size_t j = i;
            for (; j > 0 && cc[j - 1] > k; j--) {
                v[j] = v[j - 1];
                cc[j] = cc[j - 1];
            }
            v[j] = c;
            cc[j] = k;
        }
        return true;
    }
    if (!qb_tok_reserve((void **)tmp, tmp_cap, n, sizeof **tmp)) return false;
    size_t start[257] = {0};
    for (size_t i = 0; i < n; i++) start[cc[i] + 1]++;
    for (int k = 1; k <= 256; k++) start[k] += start[k - 1];
    for (size_t i = 0; i < n; i++) (*tmp)[start[cc[i]]++] = v[i];
    memcpy(v, *tmp, n * sizeof *v);
    return true; /* cc is stale now; the caller moves past the run */
}

/* Canonical ordering: stable sort of each run of non-starters by class. */
static bool uni_canonical_order(uint32_t *v, size_t n) {
    unsigned char cc[UNI_SHORT_RUN + 1];
    unsigned char *big = NULL;
    uint32_t *tmp = NULL;
    size_t tmp_cap = 0, big_cap = 0;
    bool ok = true;
    for (size_t i = 0; i < n && ok;) {
        int c = qb_uni_combining_class(v[i]);
        if (c == 0) {
            i++;
            continue;
        }
        size_t end = i + 1;
        while (end < n && qb_uni_combining_class(v[end]) != 0) end++;
        size_t len = end - i;
        unsigned char *k = cc;
        if (len > UNI_SHORT_RUN) {
            ok = qb_tok_reserve((void **)&big, &big_cap, len, 1);
            k = big;
        }
        if (ok) {
            for (size_t j = 0; j < len; j++) k[j] = (unsigned char)qb_uni_combining_class(v[i + j]);
            ok = uni_sort_run(v + i, k, len, &tmp, &tmp_cap);
        }
        i = end;
    }
    free(big);
    free(tmp);
    return ok;
}

bool qb_uni_normalize(const uint32_t *in, size_t n, qb_uni_form form, qb_u32buf *out) {
    uint32_t stable = uni_form_stable_below(form);
    size_t i = 0;
    while (i < n && in[i] < stable) i++;
    if (!QB_TOK_RESERVE(out, out->n + n + 1)) return false;
    if (i == n) {
        memcpy(out->v + out->n, in, n * sizeof *in);
        out->n += n;
        return true;
    }
    utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
    if (form == QB_UNI_NFKD || form == QB_UNI_NFKC) opt |= UTF8PROC_COMPAT;
    size_t start = out->n;
    for (i = 0; i < n; i++) {
        /* 32 exceeds the longest decomposition (18 code points) */
        if (!QB_TOK_RESERVE(out, out->n + 32)) return false;
        if (in[i] < stable) {
            out->v[out->n++] = in[i];
            continue;
        }
        int boundclass = 0;
        utf8proc_ssize_t k = utf8proc_decompose_char((utf8proc_int32_t)in[i],
                                                     (utf8proc_int32_t *)out->v + out->n, 32,
                                                     opt, &boundclass);
        if (k < 0 || k > 32) out->v[out->n++] = in[i]; /* cannot happen for valid input */
        else out->n += (size_t)k;
    }
    if (!uni_canonical_order(out->v + start, out->n - start)) return false;
    if (form == QB_UNI_NFC || form == QB_UNI_NFKC) {
        utf8proc_ssize_t k = utf8proc_normalize_utf32((utf8proc_int32_t *)out->v + start,
                                                      (utf8proc_ssize_t)(out->n - start),
                                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (k >= 0) out->n = start + (size_t)k;
    }
    return true;
}

bool qb_uni_is_alnum(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}
