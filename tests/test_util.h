/* Minimal test harness: CHECK records a failure and goes on, so one run
 * shows every broken case; tests end with qb_test_done(). */
#ifndef QB_TEST_UTIL_H
#define QB_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/pool.h"

/* Deterministic test data: xorshift64, one sequence per seed in *state. */
static inline float qb_test_uniform(uint64_t *state, float lo, float hi) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return lo + (hi - lo) * (float)((*state >> 40) * (1.0 / 16777216.0));
}

/* A whole number in [0, n) from the same sequence. */
static inline uint32_t qb_test_below(uint64_t *state, uint32_t n) {
    uint32_t v = (uint32_t)qb_test_uniform(state, 0.0f, (float)n);
    return v < n ? v : n - 1; /* a float product can round up to n */
}

static inline float *qb_test_uniform_array(uint64_t *state, size_t n, float lo, float hi) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = qb_test_uniform(state, lo, hi);
    return p;
}

/* A pool of n threads (NULL for 1), or exit: the GEMM drivers' argument. */
static inline struct qb_pool *qb_test_pool(int n) {
    struct qb_pool *p = NULL;
    if (n > 1 && qb_pool_create(n, &p, NULL)) {
        fprintf(stderr, "cannot start %d threads\n", n);
        exit(1);
    }
    return p;
}

/* The *_amx_emu builds (tests/amx_emu.h) run the AVX-512 kernels around
 * the emulated tiles: without AVX-512 they have nothing to check. */
#define QB_TEST_SKIP_AMX_EMU_WITHOUT_AVX512()                                    \
    do {                                                                         \
        if (!qb_isa_supported(QB_ISA_AVX512)) {                                  \
            printf("skipped: the AMX emulation runs around AVX-512 kernels\n");  \
            return 77;                                                           \
        }                                                                        \
    } while (0)

/* Whether a suite leaves out the kernel set named: with QBERT_ISA set
 * (make test-arm64 runs each emulated CPU level so) only that set is
 * checked, against the scalar reference, which under emulation is most of
 * the time saved. */
static inline bool qb_test_isa_left_out(const char *name) {
    const char *want = getenv("QBERT_ISA");
    return want && *want && strcasecmp(name, want) != 0;
}

static int qb_test_failures = 0;
static int qb_test_checks = 0;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        qb_test_checks++;                                                       \
        if (!(cond)) {                                                          \
            qb_test_failures++;                                                 \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

static inline int qb_test_done(const char *name) {
    printf("%s: %d checks, %d failed\n", name, qb_test_checks, qb_test_failures);
    return qb_test_failures ? 1 : 0;
}

/* The ../shared folder, or NULL.  Without it a test skips (exit 77), except
 * under CI=true where ../shared is always present and its absence fails. */
/* The golden README's known difference in pair truncation: the reference
 * truncates as the slow tokenizers do, where tokenizer.json's Rust code
 * gives an odd budget's last token to the second segment, not the first
 * (tests/data/tokenizer_json/truncation.jsonl checks qbert against Rust).
 * True when got (ids, types) is want with the first segment's last token
 * dropped and one more at the second's end: want = X a S B T, got = X S B b T. */
static inline bool qb_test_one_token_moved(const int32_t *got, const int32_t *gt, const int32_t *want,
                                           const int32_t *wt, int n) {
    int p = 0;
    while (p < n && got[p] == want[p] && gt[p] == wt[p]) p++;
    for (int q = p + 1; q < n - 1; q++) { /* got[q]: the second segment's extra token */
        bool ok = true;
        for (int k = p; ok && k < q; k++) ok = got[k] == want[k + 1] && gt[k] == wt[k + 1];
        for (int k = q + 1; ok && k < n; k++) ok = got[k] == want[k] && gt[k] == wt[k];
        if (ok) return true;
    }
    return false;
}

static inline const char *qb_test_shared_dir(void) {
    const char *d = getenv("QB_SHARED_DIR");
    struct stat st;
    if (d && stat(d, &st) == 0 && S_ISDIR(st.st_mode)) return d;
    return NULL;
}

static inline void qb_test_need_shared(const char *path_in_shared) {
    const char *d = qb_test_shared_dir();
    char p[4096];
    struct stat st;
    if (d) {
        snprintf(p, sizeof p, "%s/%s", d, path_in_shared);
        if (stat(p, &st) == 0) return;
    }
    const char *ci = getenv("CI");
    if (ci && strcmp(ci, "true") == 0) {
        fprintf(stderr, "FAILED: ../shared/%s not found (CI=true requires it)\n", path_in_shared);
        exit(1);
    }
    printf("skipped: ../shared not found (%s)\n", path_in_shared);
    exit(77);
}

static inline const char *qb_test_shared_path(char *buf, size_t cap, const char *rel) {
    qb_test_need_shared(rel);
    snprintf(buf, cap, "%s/%s", qb_test_shared_dir(), rel);
    return buf;
}

/* A random-weight checkpoint of ../shared/tools/make_random_checkpoint.py
 * (seed 0, plus extra arguments), made once into the cache every build
 * shares, in a folder called name (a preset with another head is another
 * model); the golden tests check its weights' sha256, which catches a
 * stale or damaged copy.  False when it cannot be made (no numpy). */
static inline bool qb_test_random_model_named(const char *shared, const char *name, const char *preset,
                                              const char *extra, char *dir, size_t cap) {
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (cache && *cache) snprintf(dir, cap, "%s/qbert/random-models/%s", cache, name);
    else snprintf(dir, cap, "%s/.cache/qbert/random-models/%s", home ? home : "/tmp", name);
    char probe[4300];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/model.safetensors", dir);
    if (stat(probe, &st) == 0) return true;
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) return false;
    char cmd[8192];
    if (snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tools/make_random_checkpoint.py %s %s --seed 0 %s >/dev/null",
                 shared, preset, dir, extra) >= (int)sizeof cmd)
        return false;
    printf("  generating %s: %s\n", preset, cmd);
    fflush(stdout);
    return system(cmd) == 0;
}

static inline bool qb_test_random_model(const char *shared, const char *preset, const char *extra, char *dir,
                                        size_t cap) {
    return qb_test_random_model_named(shared, preset, preset, extra, dir, cap);
}

#endif
