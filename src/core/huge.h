/* Anonymous memory on 2 MiB pages, for buffers written whole right after
 * they are allocated (packed weights, a session's activations): on 4 KiB
 * pages their faults cost as much as the writing. */
#ifndef QB_CORE_HUGE_H
#define QB_CORE_HUGE_H

#include <stddef.h>

#define QB_HUGE_PAGE ((size_t)2 << 20)

/* bytes rounded up to whole 2 MiB pages. */
size_t qb_huge_round(size_t bytes);
/* qb_huge_round(bytes) on 2 MiB pages (transparent huge pages where the
 * kernel has them), to be freed with free(); NULL when out of memory. */
void *qb_huge_alloc(size_t bytes);

#endif
