/* A hash set of vocabulary strings that also holds every prefix of them, so
 * a longest-match scan can extend one byte at a time and stop as soon as no
 * piece can match: a trie's early exit without a trie's memory layout. */
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
} qb_ptab;

#define QB_PTAB_SEED 2166136261u

/* FNV-1a, one byte at a time so callers can hash while they extend a match. */
static inline uint32_t qb_ptab_hash_step(uint32_t h, unsigned char c) {
    return (h ^ c) * 16777619u;
}

bool qb_ptab_init(qb_ptab *t, size_t expected_keys);
void qb_ptab_free(qb_ptab *t);
/* Heap bytes t holds (slots and key pool). */
size_t qb_ptab_bytes(const qb_ptab *t);

/* max_prefix of qb_ptab_add: index every proper prefix. */
#define QB_PTAB_ALL_PREFIXES SIZE_MAX

/* Adds key -> id (a later add of the same key wins, like a Python dict) and
 * its proper prefixes up to max_prefix bytes long (0: none) as prefix-only
 * entries.  A scan that never extends a match past max_prefix bytes finds
 * every key it could reach; a longer key is still found whole by
 * qb_ptab_get.  Time is linear in len (one running hash).  Returns the
 * key's NUL-terminated copy's offset in the pool, or -1 when out of
 * memory.  The pool moves while keys are added: resolve offsets afterwards. */
int64_t qb_ptab_add(qb_ptab *t, const char *key, size_t len, int32_t id, size_t max_prefix);

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

/* Length of the longest key that is a prefix of s[0..len) (0 if none); its
 * id goes to *id. */
size_t qb_ptab_longest_prefix(const qb_ptab *t, const char *s, size_t len, int32_t *id);

static inline const char *qb_ptab_key(const qb_ptab *t, int64_t off) { return t->pool + off; }

#endif
