/* A hash set of vocabulary strings that also holds every prefix of them, so
 * a longest-match scan can extend one byte at a time and stop as soon as no
 * piece can match: a trie's early exit without a trie's memory layout.
 * Prefixes past QB_PTAB_HASHED bytes stay out of the hash: a single huge
 * piece would otherwise put one slot per byte in it, and the table's cache
 * misses, not its arithmetic, would set the load time.  The few longer keys
 * sit in a sorted list that a scan narrows one byte at a time. */
#ifndef QB_TEXT_PIECE_TABLE_H
#define QB_TEXT_PIECE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QB_PTAB_PREFIX_ONLY (-1)

typedef struct {
    uint32_t off, len; /* key bytes in the pool; len == UINT32_MAX marks an empty slot */
    uint32_t hash;
    int32_t id;        /* QB_PTAB_PREFIX_ONLY when only a prefix of some key */
} qb_ptab_entry;

typedef struct {
    qb_ptab_entry *slots;
    uint32_t mask, used;
    char *pool; /* keys, each followed by a NUL */
    size_t pool_n, pool_cap;
    qb_ptab_entry *longs; /* keys longer than QB_PTAB_HASHED, sorted by qb_ptab_seal */
    size_t n_long, long_cap;
} qb_ptab;

/* Longest prefix a scannable key keeps in the hash; vocabulary pieces are
 * shorter (SentencePiece caps them at 16 characters). */
#define QB_PTAB_HASHED 64

#define QB_PTAB_SEED 2166136261u

/* FNV-1a, one byte at a time so callers can hash while they extend a match. */
static inline uint32_t qb_ptab_hash_step(uint32_t h, unsigned char c) {
    return (h ^ c) * 16777619u;
}

bool qb_ptab_init(qb_ptab *t, size_t expected_keys);
void qb_ptab_free(qb_ptab *t);
/* Heap bytes t holds (slots, key pool, long keys). */
size_t qb_ptab_bytes(const qb_ptab *t);

/* Adds key -> id (a later add of the same key wins, like a Python dict) and
 * its proper prefixes up to max_prefix bytes long (0: none) as prefix-only
 * entries.  A scan that never extends a match past max_prefix bytes finds
 * every key it could reach; a longer key is still found whole by
 * qb_ptab_get.  Time is linear in len (one running hash).  Returns the
 * key's NUL-terminated copy's offset in the pool, or -1 when out of
 * memory.  The pool moves while keys are added: resolve offsets afterwards. */
int64_t qb_ptab_add(qb_ptab *t, const char *key, size_t len, int32_t id, size_t max_prefix);

/* qb_ptab_add for a table that qb_ptab_scan walks: every prefix of key is
 * found by the scan, however long key is.  Call qb_ptab_seal after the last
 * add. */
int64_t qb_ptab_add_scannable(qb_ptab *t, const char *key, size_t len, int32_t id);

/* Sorts the long keys (a later add of the same key wins); false when out of
 * memory. */
bool qb_ptab_seal(qb_ptab *t);

/* The entry for key (whose hash the caller has computed), or NULL. */
const qb_ptab_entry *qb_ptab_find(const qb_ptab *t, const char *key, size_t len, uint32_t hash);

/* qb_ptab_find for a scan that extends a match: prev is the entry found for
 * a shorter prefix of key (or NULL).  An entry sharing prev's pool bytes
 * has only its new bytes compared, so walking along one long key costs
 * O(1) a byte instead of O(length). */
const qb_ptab_entry *qb_ptab_find_next(const qb_ptab *t, const char *key, size_t len, uint32_t hash,
                                       const qb_ptab_entry *prev);

/* id of key, or `missing`. */
int32_t qb_ptab_get(const qb_ptab *t, const char *key, size_t len, int32_t missing);

/* Every key that is a prefix of s[0..n), shortest first, in a sealed
 * table whose keys went in by qb_ptab_add_scannable. */
typedef struct {
    const qb_ptab *t;
    const char *s;
    size_t n, len; /* len: bytes walked so far */
    uint32_t h;
    const qb_ptab_entry *e;
    size_t lo, hi; /* long keys still matching, once len reaches QB_PTAB_HASHED */
} qb_ptab_scan;

static inline void qb_ptab_scan_start(qb_ptab_scan *sc, const qb_ptab *t, const char *s, size_t n) {
    *sc = (qb_ptab_scan){.t = t, .s = s, .n = n, .h = QB_PTAB_SEED, .hi = t->n_long};
}

int32_t qb_ptab_scan_long(qb_ptab_scan *sc, size_t *len);

/* The next key's id, its length in *len; -1 when no longer key matches. */
static inline int32_t qb_ptab_scan_next(qb_ptab_scan *sc, size_t *len) {
    while (sc->len < sc->n) {
        if (sc->len >= QB_PTAB_HASHED) return qb_ptab_scan_long(sc, len);
        sc->h = qb_ptab_hash_step(sc->h, (unsigned char)sc->s[sc->len++]);
        sc->e = qb_ptab_find_next(sc->t, sc->s, sc->len, sc->h, sc->e);
        if (!sc->e) break;
        if (sc->e->id != QB_PTAB_PREFIX_ONLY) {
            *len = sc->len;
            return sc->e->id;
        }
    }
    sc->n = sc->len;
    return -1;
}

/* Length of the longest key that is a prefix of s[0..len) (0 if none); its
 * id goes to *id.  The table is one qb_ptab_scan walks. */
size_t qb_ptab_longest_prefix(const qb_ptab *t, const char *s, size_t len, int32_t *id);

static inline const char *qb_ptab_key(const qb_ptab *t, int64_t off) { return t->pool + off; }

#endif
