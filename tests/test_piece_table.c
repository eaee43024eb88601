/* The piece table's scan against a brute-force one: keys over a two-letter
 * alphabet, many longer than QB_PTAB_HASHED so the sorted long-key list is
 * walked, with shared prefixes, keys that are prefixes of other keys, and
 * repeated keys whose later id must win. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "text/piece_table.h"

#define N_KEYS 400
#define MAX_KEY (3 * QB_PTAB_HASHED)

typedef struct {
    char s[MAX_KEY + 1];
    size_t len;
} key;

/* Mostly 'a's, so random texts share long prefixes with many keys. */
static void random_bytes(uint64_t *state, char *s, size_t n) {
    for (size_t i = 0; i < n; i++) s[i] = qb_test_below(state, 8) ? 'a' : 'b';
}

/* id of the last key equal to s[0..len), or -1. */
static int32_t brute_id(const key *keys, int n, const char *s, size_t len) {
    int32_t id = -1;
    for (int i = 0; i < n; i++)
        if (keys[i].len == len && !memcmp(keys[i].s, s, len)) id = i;
    return id;
}

static void check_text(const qb_ptab *t, const key *keys, const char *s, size_t n) {
    qb_ptab_scan sc;
    qb_ptab_scan_start(&sc, t, s, n);
    size_t len = 0, want_len = 0;
    int32_t id = qb_ptab_scan_next(&sc, &len);
    for (size_t k = 1; k <= n; k++) {
        int32_t want = brute_id(keys, N_KEYS, s, k);
        if (want < 0) continue;
        CHECK(id == want && len == k, "scan of %zu bytes: key of %zu bytes id %d, got id %d at %zu", n, k, want, id,
              len);
        if (id != want || len != k) return;
        want_len = k;
        id = qb_ptab_scan_next(&sc, &len);
    }
    CHECK(id == -1, "scan of %zu bytes: id %d at %zu past the last key", n, id, len);
    int32_t lp_id = -1;
    size_t lp = qb_ptab_longest_prefix(t, s, n, &lp_id);
    CHECK(lp == want_len, "longest prefix %zu, want %zu", lp, want_len);
}

int main(void) {
    uint64_t state = 0x9E3779B97F4A7C15ull;
    static key keys[N_KEYS];
    qb_ptab t;
    CHECK(qb_ptab_init(&t, 16), "init");
    for (int i = 0; i < N_KEYS; i++) {
        if (i % 10 == 9) { /* a repeat of an earlier key */
            keys[i] = keys[qb_test_below(&state, (uint32_t)i)];
        } else {
            keys[i].len = 1 + qb_test_below(&state, MAX_KEY);
            random_bytes(&state, keys[i].s, keys[i].len);
        }
        CHECK(qb_ptab_add_scannable(&t, keys[i].s, keys[i].len, i) >= 0, "add %d", i);
    }
    CHECK(qb_ptab_seal(&t), "seal");
    size_t n_long = 0;
    for (int i = 0; i < N_KEYS; i++) {
        n_long += keys[i].len > QB_PTAB_HASHED;
        int32_t want = brute_id(keys, N_KEYS, keys[i].s, keys[i].len);
        CHECK(qb_ptab_get(&t, keys[i].s, keys[i].len, -1) == want, "get key %d", i);
    }
    CHECK(n_long > N_KEYS / 2, "only %zu long keys", n_long);
    char text[2 * MAX_KEY];
    for (int i = 0; i < 1000; i++) {
        size_t n = qb_test_below(&state, sizeof text);
        if (i % 2) { /* start from a key, so long matches are common */
            const key *k = &keys[qb_test_below(&state, N_KEYS)];
            if (n < k->len) n = k->len;
            memcpy(text, k->s, k->len);
            random_bytes(&state, text + k->len, n - k->len);
        } else {
            random_bytes(&state, text, n);
        }
        check_text(&t, keys, text, n);
    }
    qb_ptab_free(&t);
    return qb_test_done("test_piece_table");
}
