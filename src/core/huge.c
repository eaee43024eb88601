#include "core/huge.h"

#include <stdlib.h>
#include <sys/mman.h>

size_t qb_huge_round(size_t bytes) { return (bytes + QB_HUGE_PAGE - 1) / QB_HUGE_PAGE * QB_HUGE_PAGE; }

void *qb_huge_alloc(size_t bytes) {
    bytes = qb_huge_round(bytes);
    void *p = aligned_alloc(QB_HUGE_PAGE, bytes);
    if (p) madvise(p, bytes, MADV_HUGEPAGE); /* advice: 4 KiB pages still work */
    return p;
}
