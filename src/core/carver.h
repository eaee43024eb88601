/* Lays out many float buffers in one block: a first pass with base NULL
 * only adds up the size, the caller allocates it, a second pass with base
 * set hands out the same offsets.  Each buffer starts 64-byte aligned. */
#ifndef QB_CORE_CARVER_H
#define QB_CORE_CARVER_H

#include <stddef.h>

typedef struct {
    float *base;
    size_t used; /* floats */
} qb_carver;

static inline float *qb_carve(qb_carver *c, size_t n) {
    float *p = c->base ? c->base + c->used : NULL;
    c->used += (n + 15) & ~(size_t)15;
    return p;
}

#endif
