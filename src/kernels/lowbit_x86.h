/* Low-bit codes unpacked 16 at a time into a byte each, in k order, for
 * the AVX2 and AVX-512 files (their callers' weights start on a whole byte
 * of codes; ternary's anywhere). */
#ifndef QB_KERNELS_LOWBIT_X86_H
#define QB_KERNELS_LOWBIT_X86_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels_lowbit.h"

/* 16 INT4 codes from 8 bytes, in k order (low nibble first), a byte each. */
static inline __m128i qb_lb_u4_bytes16(const uint8_t *src) {
    __m128i b = _mm_loadl_epi64((const __m128i *)src), m = _mm_set1_epi8(15);
    return _mm_unpacklo_epi8(_mm_and_si128(b, m), _mm_and_si128(_mm_srli_epi16(b, 4), m));
}

/* 16 INT2 codes from 4 bytes, in k order, a byte each: dword d of the
 * shifted copies holds code 4 i + d in byte i. */
static inline __m128i qb_lb_u2_bytes16(const uint8_t *src) {
    uint32_t word;
    memcpy(&word, src, 4);
    __m128i v = _mm_srlv_epi32(_mm_set1_epi32((int)word), _mm_setr_epi32(0, 2, 4, 6));
    v = _mm_and_si128(v, _mm_set1_epi8(3));
    return _mm_shuffle_epi8(v, _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
}

/* 32 bytes: byte i is 4 where bit i of word is set, else 0 (INT3's bit 2). */
static inline __m256i qb_lb_fours32(uint32_t word) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                            3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)word), spread), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(b, bit), _mm256_set1_epi8(4));
}

/* 16 INT3 codes: their low bits from the INT2 plane, bit 2 from two bytes
 * of the high plane (code k's in bit k % 8). */
static inline __m128i qb_lb_u3_bytes16(const uint8_t *low, const uint8_t *high) {
    uint16_t bits;
    memcpy(&bits, high, 2);
    return _mm_or_si128(qb_lb_u2_bytes16(low), _mm256_castsi256_si128(qb_lb_fours32(bits)));
}

/* Lane p of the pattern for k % 5 == r: code r + p's byte from k / 5,
 * and the multiplier that takes its trit down to the low digit (mulhi by
 * ceil(2^16 / 3^d), exact on bytes; trit 0 keeps the byte instead). */
#define QB_LB_T5_BYTE(r, p) (((r) + (p)) / 5)
#define QB_LB_T5_MUL_D(d) ((d) == 1 ? 21846 : (d) == 2 ? 7282 : (d) == 3 ? 2428 : (d) == 4 ? 810 : 0)
#define QB_LB_T5_MUL(r, p) QB_LB_T5_MUL_D(((r) + (p)) % 5)
#define QB_LB_T5_KEEP(r, p) (((r) + (p)) % 5 ? 0 : 0xff)
#define QB_LB_16(F, r) F(r, 0), F(r, 1), F(r, 2), F(r, 3), F(r, 4), F(r, 5), F(r, 6), F(r, 7), \
                       F(r, 8), F(r, 9), F(r, 10), F(r, 11), F(r, 12), F(r, 13), F(r, 14), F(r, 15)
#define QB_LB_T5_PATTERN(r) {{QB_LB_16(QB_LB_T5_BYTE, r)}, {QB_LB_16(QB_LB_T5_MUL, r)}, {QB_LB_16(QB_LB_T5_KEEP, r)}}

/* 16 ternary codes from k: each lane's byte divided by 3^d, then mod 3 (q -
 * 3 floor(q / 3), floor by mulhi again), where a byte table (five trits
 * a byte, 243 entries) has no vector lookup. */
static inline __m128i qb_lb_t5_bytes16(const uint8_t *src, int r) {
    static const struct {
        _Alignas(16) uint8_t pick[16];
        _Alignas(32) uint16_t mul[16], keep[16];
    } pattern[5] = {QB_LB_T5_PATTERN(0), QB_LB_T5_PATTERN(1), QB_LB_T5_PATTERN(2), QB_LB_T5_PATTERN(3),
                    QB_LB_T5_PATTERN(4)};
    uint32_t word;
    memcpy(&word, src, 4);
    __m256i x = _mm256_cvtepu8_epi16(
        _mm_shuffle_epi8(_mm_cvtsi32_si128((int)word), _mm_load_si128((const __m128i *)pattern[r].pick)));
    __m256i q = _mm256_or_si256(_mm256_mulhi_epu16(x, _mm256_load_si256((const __m256i *)pattern[r].mul)),
                                _mm256_and_si256(x, _mm256_load_si256((const __m256i *)pattern[r].keep)));
    __m256i third = _mm256_mulhi_epu16(q, _mm256_set1_epi16(21846));
    __m256i d = _mm256_sub_epi16(q, _mm256_add_epi16(third, _mm256_add_epi16(third, third)));
    return _mm_packus_epi16(_mm256_castsi256_si128(d), _mm256_extracti128_si256(d, 1));
}

/* The byte of a row (its INT2 plane for INT3) that holds code k. */
static inline int qb_lb_row_byte(qb_code code, int k) {
    return code == QB_CODE_U4 ? k / 2 : code == QB_CODE_T5 ? k / 5 : k / 4;
}

/* The codes of row (w's layout) from k, whose start suits the code
 * (qb_lb_code_unit). */
static inline __attribute__((always_inline)) __m128i qb_lb_row_codes16(qb_code code, const uint8_t *row,
                                                                       size_t high, int k) {
    const uint8_t *at = row + qb_lb_row_byte(code, k);
    switch (code) {
    case QB_CODE_U4: return qb_lb_u4_bytes16(at);
    case QB_CODE_U2: return qb_lb_u2_bytes16(at);
    case QB_CODE_U3: return qb_lb_u3_bytes16(at, row + high + k / 8);
    default: return qb_lb_t5_bytes16(at, k % 5);
    }
}

/* CALL(code, book): w's code and whether it has a codebook as constants,
 * so that each gets a loop of its own rather than a switch per 16 codes. */
#define QB_LB_WITH_CODE(w, CALL)                                                                  \
    switch ((w)->code) {                                                                          \
    case QB_CODE_U4: (w)->codebook ? CALL(QB_CODE_U4, true) : CALL(QB_CODE_U4, false); break;     \
    case QB_CODE_U3: (w)->codebook ? CALL(QB_CODE_U3, true) : CALL(QB_CODE_U3, false); break;     \
    case QB_CODE_U2: (w)->codebook ? CALL(QB_CODE_U2, true) : CALL(QB_CODE_U2, false); break;     \
    default: (w)->codebook ? CALL(QB_CODE_T5, true) : CALL(QB_CODE_T5, false); break;             \
    }

/* The k that a run of codes read by qb_lb_row_codes16 must start on a
 * multiple of: a whole byte of codes (of both planes for INT3). */
static inline int qb_lb_code_unit(qb_code code) {
    static const int unit[] = {[QB_CODE_U4] = 2, [QB_CODE_U3] = 8, [QB_CODE_U2] = 4, [QB_CODE_T5] = 1};
    return unit[code];
}

/* How a row decoder goes on from k with left codes to decode: returns a
 * run (a multiple of 16, in one group unless w has a codebook) that
 * qb_lb_row_codes16 can read, or 0 with *scalar codes for
 * qb_lowbit_dequantize first (a group's end, or a start off the unit). */
static inline int qb_lb_row_run(const qb_lowbit_weights *w, int k, int left, int *scalar) {
    int len = w->codebook ? left : (k / w->group + 1) * w->group - k;
    len = len < left ? len : left;
    int unit = qb_lb_code_unit(w->code), off = k % unit;
    *scalar = off ? (unit - off < len ? unit - off : len) : len;
    return off || len < 16 ? 0 : len & ~15;
}

/* A run of a row's codes from k (qb_lb_row_run's) as floats: scale * (code
 * - zero), or with a codebook its entries (book, zero past its levels). */
typedef struct {
    const qb_lowbit_weights *w;
    const uint8_t *row;
    size_t high; /* INT3: where the row's plane of bit 2 starts */
    _Alignas(64) float book[16];
} qb_lb_row;
/* Row n's codebook, zero past its levels, for a vector permute. */
static inline void qb_lb_row_book(const qb_lowbit_weights *w, int n, float book[16]) {
    int levels = qb_code_levels(w->code);
    memset(book, 0, 16 * sizeof(float));
    memcpy(book, w->codebook + (size_t)n * levels, (size_t)levels * sizeof(float));
}

typedef void (*qb_lb_values_fn)(const qb_lb_row *r, int k, int run, float scale, int zero, float *out);

/* Row n of w from k0 as qb_lowbit_dequantize rounds it: runs of 16 codes
 * by `values` (the ISA's), the ends of groups and starts off a whole byte
 * of codes by qb_lowbit_dequantize. */
static inline __attribute__((always_inline)) void qb_lb_dequantize_row(const qb_lowbit_weights *w, int n, int k0,
                                                                       int count, float *out,
                                                                       qb_lb_values_fn values) {
    qb_lb_row r = {.w = w, .row = w->rows + (size_t)n * w->row_bytes, .high = qb_code_row_bytes(QB_CODE_U2, w->K)};
    if (w->codebook) qb_lb_row_book(w, n, r.book);
    for (int done = 0; done < count;) {
        int k = k0 + done, scalar, run = qb_lb_row_run(w, k, count - done, &scalar);
        if (!run) {
            qb_lowbit_dequantize(w, n, k, scalar, out + done);
            done += scalar;
            continue;
        }
        int g = k / w->group;
        if (w->codebook) values(&r, k, run, 0.0f, 0, out + done);
        else values(&r, k, run, w->scale[(size_t)n * w->G + g], qb_lowbit_zero_point(w, n, g), out + done);
        done += run;
    }
}

#endif
