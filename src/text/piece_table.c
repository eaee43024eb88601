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
    free(t->longs);
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

/* Records the key of len bytes at pool offset off, whose hash is h, with id;
 * keeps a real id over a prefix-only mark.  *same (in/out) is the offset of
 * an entry known to hold the key's first len - 1 bytes (UINT32_MAX: none):
 * an entry found there needs only its last byte compared, so adding a key
 * whose prefixes another key already put in costs O(1) per prefix instead
 * of O(prefix length). */
static bool ptab_put(qb_ptab *t, uint32_t off, size_t len, uint32_t h, int32_t id, uint32_t *same) {
    /* load factor up to 3/4: the smaller table stays in cache, which
     * matters more here than the longer linear probes */
    if ((size_t)(t->used + 1) * 4 > ((size_t)t->mask + 1) * 3 && !ptab_grow(t)) return false;
    const char *key = t->pool + off;
    uint32_t i = h & t->mask;
    qb_ptab_entry *e;
    for (;; i = (i + 1) & t->mask) {
        e = &t->slots[i];
        if (e->len == UINT32_MAX) break;
        if (e->hash != h || e->len != len) continue;
        bool eq = (*same != UINT32_MAX && e->off == *same)
                      ? t->pool[e->off + len - 1] == key[len - 1]
                      : ptab_key_equal(t->pool + e->off, key, len);
        if (eq) break;
    }
    if (e->len == UINT32_MAX) {
        *e = (qb_ptab_entry){.off = off, .len = (uint32_t)len, .hash = h, .id = id};
        t->used++;
    } else if (id != QB_PTAB_PREFIX_ONLY) {
        e->id = id;
    }
    *same = e->off;
    return true;
}

int64_t qb_ptab_add(qb_ptab *t, const char *key, size_t len, int32_t id, size_t max_prefix) {
    if (len >= UINT32_MAX || !qb_tok_reserve((void **)&t->pool, &t->pool_cap, t->pool_n + len + 1, 1))
        return -1;
    uint32_t off = (uint32_t)t->pool_n;
    memcpy(t->pool + off, key, len);
    t->pool[off + len] = 0;
    t->pool_n += len + 1;
    /* one running hash for all the prefixes: linear in the key's length */
    size_t n_prefix = len - 1 < max_prefix ? len - 1 : max_prefix;
    if (len == 0) n_prefix = 0;
    uint32_t h = QB_PTAB_SEED, same = UINT32_MAX;
    for (size_t k = 1; k <= n_prefix; k++) {
        h = qb_ptab_hash_step(h, (unsigned char)key[k - 1]);
        if (!ptab_put(t, off, k, h, QB_PTAB_PREFIX_ONLY, &same)) return -1;
    }
    if (n_prefix + 1 < len) same = UINT32_MAX; /* the chain stopped short of the key */
    for (size_t k = n_prefix; k < len; k++) h = qb_ptab_hash_step(h, (unsigned char)key[k]);
    if (!ptab_put(t, off, len, h, id, &same)) return -1;
    return off;
}

int64_t qb_ptab_add_scannable(qb_ptab *t, const char *key, size_t len, int32_t id) {
    int64_t off = qb_ptab_add(t, key, len, id, QB_PTAB_HASHED);
    if (off < 0 || len <= QB_PTAB_HASHED) return off;
    if (!qb_tok_reserve((void **)&t->longs, &t->long_cap, t->n_long + 1, sizeof *t->longs)) return -1;
    t->longs[t->n_long++] = (qb_ptab_entry){.off = (uint32_t)off, .len = (uint32_t)len, .id = id};
    return off;
}

typedef struct {
    const char *key;
    qb_ptab_entry e;
} ptab_long_key;

/* By bytes, a key before the keys it is a prefix of; equal keys in the
 * order they were added (their pool offsets grow). */
static int ptab_long_cmp(const void *pa, const void *pb) {
    const ptab_long_key *a = pa, *b = pb;
    int c = memcmp(a->key, b->key, a->e.len < b->e.len ? a->e.len : b->e.len);
    if (c) return c;
    if (a->e.len != b->e.len) return a->e.len < b->e.len ? -1 : 1;
    return a->e.off < b->e.off ? -1 : a->e.off > b->e.off;
}

bool qb_ptab_seal(qb_ptab *t) {
    if (t->n_long < 2) return true;
    ptab_long_key *k = malloc(t->n_long * sizeof *k);
    if (!k) return false;
    for (size_t i = 0; i < t->n_long; i++) k[i] = (ptab_long_key){t->pool + t->longs[i].off, t->longs[i]};
    qsort(k, t->n_long, sizeof *k, ptab_long_cmp);
    size_t m = 0;
    for (size_t i = 0; i < t->n_long; i++) {
        const qb_ptab_entry *last = m ? &t->longs[m - 1] : NULL;
        bool repeat = last && last->len == k[i].e.len && !memcmp(t->pool + last->off, k[i].key, last->len);
        t->longs[repeat ? m - 1 : m++] = k[i].e; /* the later add replaces the earlier */
    }
    t->n_long = m;
    free(k);
    return true;
}

/* Byte p of a long key, -1 past its end: within a range of keys that share
 * their first p bytes this never decreases. */
static int ptab_long_byte(const qb_ptab *t, size_t i, size_t p) {
    const qb_ptab_entry *e = &t->longs[i];
    return p < e->len ? (unsigned char)t->pool[e->off + p] : -1;
}

/* First index in [lo, hi) whose byte p is at least c. */
static size_t ptab_long_bound(const qb_ptab *t, size_t lo, size_t hi, size_t p, int c) {
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ptab_long_byte(t, mid, p) < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void ptab_long_narrow(qb_ptab_scan *sc, size_t p) {
    int c = (unsigned char)sc->s[p];
    sc->lo = ptab_long_bound(sc->t, sc->lo, sc->hi, p, c);
    sc->hi = ptab_long_bound(sc->t, sc->lo, sc->hi, p, c + 1);
}

int32_t qb_ptab_scan_long(qb_ptab_scan *sc, size_t *len) {
    if (sc->len == QB_PTAB_HASHED) /* first call: the hash matched these bytes, the list has not yet */
        for (size_t p = 0; p < QB_PTAB_HASHED && sc->lo < sc->hi; p++) ptab_long_narrow(sc, p);
    while (sc->len < sc->n && sc->lo < sc->hi) {
        ptab_long_narrow(sc, sc->len++);
        /* a key of exactly this length is a prefix of the rest of the range: it sorts first */
        if (sc->lo < sc->hi && sc->t->longs[sc->lo].len == sc->len) {
            *len = sc->len;
            return sc->t->longs[sc->lo].id;
        }
    }
    sc->n = sc->len;
    return -1;
}

const qb_ptab_entry *qb_ptab_find(const qb_ptab *t, const char *key, size_t len, uint32_t hash) {
    const qb_ptab_entry *e = ptab_slot(t, key, len, hash);
    return e->len == UINT32_MAX ? NULL : e;
}

const qb_ptab_entry *qb_ptab_find_next(const qb_ptab *t, const char *key, size_t len, uint32_t hash,
                                       const qb_ptab_entry *prev) {
    size_t known = prev && prev->len <= len ? prev->len : 0; /* bytes prev has verified */
    uint32_t same = known ? prev->off : UINT32_MAX;
    for (uint32_t i = hash & t->mask;; i = (i + 1) & t->mask) {
        const qb_ptab_entry *e = &t->slots[i];
        if (e->len == UINT32_MAX) return NULL;
        if (e->hash != hash || e->len != len) continue;
        size_t from = e->off == same ? known : 0;
        if (ptab_key_equal(t->pool + e->off + from, key + from, len - from)) return e;
    }
}

int32_t qb_ptab_get(const qb_ptab *t, const char *key, size_t len, int32_t missing) {
    const qb_ptab_entry *e = qb_ptab_find(t, key, len, ptab_hash(key, len));
    return (e && e->id != QB_PTAB_PREFIX_ONLY) ? e->id : missing;
}

size_t qb_ptab_longest_prefix(const qb_ptab *t, const char *s, size_t len, int32_t *id) {
    qb_ptab_scan sc;
    qb_ptab_scan_start(&sc, t, s, len);
    size_t best = 0, k;
    for (int32_t found; (found = qb_ptab_scan_next(&sc, &k)) >= 0;) {
        best = k;
        *id = found;
    }
    return best;
}

size_t qb_ptab_bytes(const qb_ptab *t) {
    if (!t->slots) return 0;
    /* the pool's tail is never touched */
    return ((size_t)t->mask + 1) * sizeof *t->slots + t->pool_n + t->n_long * sizeof *t->longs;
}
