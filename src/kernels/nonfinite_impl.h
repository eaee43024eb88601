/* The non-finite scan of the loading pass: one plain loop that ops_scalar.c,
 * ops_avx2.c and ops_avx512.c each include, so the compiler vectorizes it
 * with that file's instruction set (the baseline -O2 build does not
 * vectorize it, and ran it 4x slower than AVX2).  The scalar table's copy
 * is the reference. */
#ifndef QB_KERNELS_NONFINITE_IMPL_H
#define QB_KERNELS_NONFINITE_IMPL_H

#include <stdint.h>
#include <string.h>

/* Blocks are small enough to stay in L1 when one holds a hit and is
 * scanned again element by element, large enough that the branch out of
 * the vector loop is rare. */
#define QB_NONFINITE_BLOCK 2048

/* Elements are read through memcpy: tensors sit at any byte offset. */
static inline int64_t qb_nonfinite_find_32(const unsigned char *p, int64_t n, uint32_t mask) {
    for (int64_t b = 0; b < n; b += QB_NONFINITE_BLOCK) {
        int64_t e = b + QB_NONFINITE_BLOCK < n ? b + QB_NONFINITE_BLOCK : n;
        uint32_t hit = 0;
        for (int64_t i = b; i < e; i++) {
            uint32_t w;
            memcpy(&w, p + 4 * i, 4);
            hit |= (w & mask) == mask;
        }
        for (int64_t i = b; hit && i < e; i++) {
            uint32_t w;
            memcpy(&w, p + 4 * i, 4);
            if ((w & mask) == mask) return i;
        }
    }
    return -1;
}

static inline int64_t qb_nonfinite_find_16(const unsigned char *p, int64_t n, uint16_t mask) {
    for (int64_t b = 0; b < n; b += QB_NONFINITE_BLOCK) {
        int64_t e = b + QB_NONFINITE_BLOCK < n ? b + QB_NONFINITE_BLOCK : n;
        uint16_t hit = 0;
        for (int64_t i = b; i < e; i++) {
            uint16_t w;
            memcpy(&w, p + 2 * i, 2);
            hit |= (uint16_t)((w & mask) == mask);
        }
        for (int64_t i = b; hit && i < e; i++) {
            uint16_t w;
            memcpy(&w, p + 2 * i, 2);
            if ((w & mask) == mask) return i;
        }
    }
    return -1;
}

/* A value is NaN or infinite exactly when its exponent bits are all set. */
static int64_t qb_nonfinite_find(const void *p, int64_t n, int elem_size, uint32_t exp_mask) {
    if (elem_size == 4) return qb_nonfinite_find_32(p, n, exp_mask);
    return qb_nonfinite_find_16(p, n, (uint16_t)exp_mask);
}

#endif
