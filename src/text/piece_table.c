#include "text/piece_table.h"

#include <stdlib.h>
#include <string.h>

#include "text/tok_work.h"

static uint32_t ptab_hash(const char *s, size_t len) {
    uint32_t h = QB_PTAB_SEED;
    for (size_t i = 0; i < len; i++) h = qb_ptab_hash_step(h, (unsigned char)s[i]);
    return h;
}

static bool ptab_alloc_slots(qb_ptab *t, size_t n_slots) {
    t->slots = malloc(n_slots * sizeof *t->slots);
    if (!t->slots) return false;
    for (size_t i = 0; i < n_slots; i++) t->slots[i].len = UINT32_MAX;
    t->mask = (uint32_t)(n_slots - 1);
    return true;
}

bool qb_ptab_init(qb_ptab *t, size_t expected_keys) {
    memset(t, 0, sizeof *t);
    size_t n = 1024;
    while (n * 3 < expected_keys * 4) n *= 2;
    return ptab_alloc_slots(t, n);
}

void qb_ptab_free(qb_ptab *t) {
    free(t->slots);
    free(t->pool);
    memset(t, 0, sizeof *t);
}

/* Keys are a few bytes long: a plain loop beats a call to memcmp. */
static inline bool ptab_key_equal(const char *a, const char *b, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (a[i] != b[i]) return false;
    return true;
}

/* Slot holding key, or the empty slot where it belongs. */
static qb_ptab_entry *ptab_slot(const qb_ptab *t, const char *key, size_t len, uint32_t hash) {
    uint32_t i = hash & t->mask;
    for (;;) {
        qb_ptab_entry *e = &t->slots[i];
        if (e->len == UINT32_MAX) return e;
        if (e->hash == hash && e->len == len && ptab_key_equal(t->pool + e->off, key, len)) return e;
        i = (i + 1) & t->mask;
    }
}

static bool ptab_grow(qb_ptab *t) {
    qb_ptab_entry *old = t->slots;
    size_t n_old = (size_t)t->mask + 1;
    if (!ptab_alloc_slots(t, n_old * 2)) {
        t->slots = old;
        return false;
    }
    for (size_t i = 0; i < n_old; i++) {
        if (old[i].len == UINT32_MAX) continue;
        uint32_t j = old[i].hash & t->mask;
        while (t->slots[j].len != UINT32_MAX) j = (j + 1) & t->mask;
        t->slots[j] = old[i];
    }
    free(old);
    return true;
}

/* Records key (bytes at pool offset off) with id; keeps a real id over a
 * prefix-only mark. */
static bool ptab_put(qb_ptab *t, uint32_t off, size_t len, int32_t id) {
    /* load factor up to 3/4: the smaller table stays in cache, which
     * matters more here than the longer linear probes */
    if ((size_t)(t->used + 1) * 4 > ((size_t)t->mask + 1) * 3 && !ptab_grow(t)) return false;
    const char *key = t->pool + off;
    uint32_t h = ptab_hash(key, len);
    qb_ptab_entry *e = ptab_slot(t, key, len, h);
    if (e->len == UINT32_MAX) {
        *e = (qb_ptab_entry){.off = off, .len = (uint32_t)len, .hash = h, .id = id};
        t->used++;
    } else if (id != QB_PTAB_PREFIX_ONLY) {
        e->id = id;
    }
    return true;
}

int64_t qb_ptab_add(qb_ptab *t, const char *key, size_t len, int32_t id, bool with_prefixes) {
    if (len >= UINT32_MAX || !qb_tok_reserve((void **)&t->pool, &t->pool_cap, t->pool_n + len + 1, 1))
        return -1;
    uint32_t off = (uint32_t)t->pool_n;
    memcpy(t->pool + off, key, len);
    t->pool[off + len] = 0;
    t->pool_n += len + 1;
    if (with_prefixes)
        for (size_t k = 1; k < len; k++)
            if (!ptab_put(t, off, k, QB_PTAB_PREFIX_ONLY)) return -1;
    if (!ptab_put(t, off, len, id)) return -1;
    return off;
}

const qb_ptab_entry *qb_ptab_find(const qb_ptab *t, const char *key, size_t len, uint32_t hash) {
    const qb_ptab_entry *e = ptab_slot(t, key, len, hash);
    return e->len == UINT32_MAX ? NULL : e;
}

int32_t qb_ptab_get(const qb_ptab *t, const char *key, size_t len, int32_t missing) {
    const qb_ptab_entry *e = qb_ptab_find(t, key, len, ptab_hash(key, len));
    return (e && e->id != QB_PTAB_PREFIX_ONLY) ? e->id : missing;
}

size_t qb_ptab_longest_prefix(const qb_ptab *t, const char *s, size_t len, int32_t *id) {
    uint32_t h = QB_PTAB_SEED;
    size_t best = 0;
    for (size_t k = 0; k < len; k++) {
        h = qb_ptab_hash_step(h, (unsigned char)s[k]);
        const qb_ptab_entry *e = qb_ptab_find(t, s, k + 1, h);
        if (!e) break;
        if (e->id != QB_PTAB_PREFIX_ONLY) {
            best = k + 1;
            *id = e->id;
        }
    }
    return best;
}
