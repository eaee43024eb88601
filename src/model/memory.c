/* qb_model_resident: the memory a loaded model keeps while sessions run,
 * counted from what the binders hold and which mapped pages a run reads. */
#include <stdlib.h>
#include <unistd.h>

#include "model/model.h"

/* A read fault on a file mapping also maps the neighbouring pages already
 * in the page cache, fault_around_bytes of them (Linux's default, 64 KiB,
 * aligned): a run that reads a few bytes of a tensor makes that much
 * resident.  Loading read the whole file, so it all is in the cache. */
#define QB_FAULT_AROUND 65536

typedef struct {
    uintptr_t lo, hi;
} qb_span;

/* The fault-around windows [p, p + n) touches, inside the mapping. */
static qb_span window_span(const qb_file_map *map, const void *p, size_t n, uintptr_t w, uintptr_t page) {
    uintptr_t base = (uintptr_t)map->data, end = (base + map->size + page - 1) / page * page;
    uintptr_t lo = (uintptr_t)p / w * w, hi = ((uintptr_t)p + n + w - 1) / w * w;
    return (qb_span){lo < base ? base : lo, hi > end ? end : hi};
}

static int span_cmp(const void *a, const void *b) {
    uintptr_t x = ((const qb_span *)a)->lo, y = ((const qb_span *)b)->lo;
    return (x > y) - (x < y);
}

/* Bytes of the union of n spans (sorts them). */
static size_t union_bytes(qb_span *s, int n) {
    qsort(s, (size_t)n, sizeof *s, span_cmp);
    size_t total = 0;
    uintptr_t at = 0;
    for (int i = 0; i < n; i++) {
        uintptr_t lo = s[i].lo > at ? s[i].lo : at;
        if (s[i].hi > lo) total += s[i].hi - lo;
        if (s[i].hi > at) at = s[i].hi;
    }
    return total;
}

static bool is_word_table(const qb_model *m, const void *p) {
    return p == (const void *)m->word_emb || p == (const void *)m->word_emb_q ||
           (m->word_emb_lowbit && p == (const void *)m->word_emb_lowbit->rows);
}

void qb_model_resident(const qb_model *m, int max_seq, qb_model_memory *out) {
    *out = (qb_model_memory){.held = m->held_bytes, .tokenizer = qb_tokenizer_bytes(m->tok)};
    const qb_file_map *map = &m->st.map;
    qb_span *s = map->mapped ? malloc(((size_t)m->st.n + 1) * sizeof *s) : NULL;
    if (!s) { /* unmapped (empty) file or no memory: what load holds only */
        out->total = out->held + out->tokenizer;
        return;
    }
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), w = QB_FAULT_AROUND > page ? QB_FAULT_AROUND : page;
    int n = 0;
    for (int i = 0; i < m->st.n; i++) {
        const qb_st_tensor *t = &m->st.tensors[i];
        if (!m->st_used[i] || m->st_released[i] || !t->nbytes) continue;
        if (is_word_table(m, t->data)) {
            /* the graph reads its rows with pread (forward.c), mapping none,
             * but an MLM head tied to it reads it whole */
            bool tied = m->cfg.task == QB_TASK_MLM && !m->mlm_decoder;
            if (tied) s[n++] = window_span(map, t->data, t->nbytes, w, page);
        } else if (t->data == (const void *)m->pos_emb && t->shape[0] > 0) {
            /* positions 0..max_seq-1 (after RoBERTa's offset): a prefix */
            int64_t rows = (int64_t)max_seq + m->cfg.position_offset;
            size_t n_rows = (size_t)(rows < t->shape[0] ? rows : t->shape[0]);
            qb_span sp = window_span(map, t->data, t->nbytes / (size_t)t->shape[0] * n_rows, w, page);
            out->embeddings += sp.hi - sp.lo;
        } else {
            s[n++] = window_span(map, t->data, t->nbytes, w, page);
        }
    }
    out->mapped = union_bytes(s, n);
    free(s);
    out->total = out->held + out->mapped + out->embeddings + out->tokenizer;
}
