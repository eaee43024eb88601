/* The AVX-512 VNNI register tile that the int8 and the low-bit kernels
 * share: 6 rows x 64 columns of int32 sums, grown by vpdpbusd from 4
 * broadcast bytes of each row against one zmm of weights (4 k x 16 columns)
 * per 16-column panel.  Only for files compiled with AVX-512. */
#ifndef QB_KERNELS_VNNI_TILE_AVX512_H
#define QB_KERNELS_VNNI_TILE_AVX512_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A 4-byte group of an activation row, read unaligned without breaking
 * strict aliasing; the compiler folds it into vpbroadcastd's memory operand. */
typedef int32_t qb_vnni_u32_unaligned __attribute__((may_alias, aligned(1)));

/* The accumulators are named variables, not an array: GCC keeps an array
 * of vectors in memory and spills every update.  mr and nr are constants
 * in each instantiation, so the guards and unused variables vanish. */
#define QB_VNNI_FOR_TILE(X) \
    X(0, 0) X(0, 1) X(0, 2) X(0, 3) X(1, 0) X(1, 1) X(1, 2) X(1, 3) X(2, 0) X(2, 1) X(2, 2) X(2, 3) \
    X(3, 0) X(3, 1) X(3, 2) X(3, 3) X(4, 0) X(4, 1) X(4, 2) X(4, 3) X(5, 0) X(5, 1) X(5, 2) X(5, 3)
#define QB_VNNI_DECLARE(i, j) __m512i c##i##j = _mm512_setzero_si512();
#define QB_VNNI_ROW(i, av)                                                    \
    if (i < mr) {                                                             \
        __m512i a_ = (av);                                                    \
        if (nr > 0) c##i##0 = _mm512_dpbusd_epi32(c##i##0, a_, w0);           \
        if (nr > 1) c##i##1 = _mm512_dpbusd_epi32(c##i##1, a_, w1);           \
        if (nr > 2) c##i##2 = _mm512_dpbusd_epi32(c##i##2, a_, w2);           \
        if (nr > 3) c##i##3 = _mm512_dpbusd_epi32(c##i##3, a_, w3);           \
    }
#define QB_VNNI_ROWS(load)                                                    \
    QB_VNNI_ROW(0, load(0)) QB_VNNI_ROW(1, load(1)) QB_VNNI_ROW(2, load(2))  \
    QB_VNNI_ROW(3, load(3)) QB_VNNI_ROW(4, load(4)) QB_VNNI_ROW(5, load(5))
#define QB_VNNI_BROADCAST(i) _mm512_set1_epi32(*(const qb_vnni_u32_unaligned *)(a + i * lda))
#define QB_VNNI_BROADCAST_TAIL(i) qb_vnni_tail_bytes(a + i * lda, t->tail)
/* The nr panels' weights of one step of 4 k, 64 bytes apart. */
#define QB_VNNI_LOAD_WEIGHTS(w)                         \
    if (nr > 0) w0 = _mm512_load_si512(w);              \
    if (nr > 1) w1 = _mm512_load_si512((w) + 64);       \
    if (nr > 2) w2 = _mm512_load_si512((w) + 128);      \
    if (nr > 3) w3 = _mm512_load_si512((w) + 192);

/* The weights are zero past K, so only the bytes read from A must stay
 * inside the row. */
static inline __m512i qb_vnni_tail_bytes(const uint8_t *a, int tail) {
    int32_t bytes = 0;
    memcpy(&bytes, a, (size_t)tail);
    return _mm512_set1_epi32(bytes);
}

/* The output lines the epilogue will store to (C's mr rows, then the
 * residual's), one per step s: a large C is not in cache, and asking for
 * all of a tile's lines at once held every fill buffer while the weights
 * were loading (in-process A/B, 1 thread: +5-8% at M = 128, N >= 2304; +37%
 * at M = 1024, N = 3072; equal where C fits L2). */
static inline __attribute__((always_inline)) void qb_vnni_fetch_output_line(const float *c, size_t ldc,
                                                                             const float *res, size_t ldr, int cols,
                                                                             int mr, int s) {
    int row = s >> 2, col = (s & 3) * 16;
    if (col >= cols) return;
    if (c && row < mr) _mm_prefetch((const char *)(c + (size_t)row * ldc + col), _MM_HINT_T0);
    else if (res && row >= mr && row < 2 * mr) _mm_prefetch((const char *)(res + (size_t)(row - mr) * ldr + col), _MM_HINT_T0);
}

#endif
