/* The integer kernels' table selection, weight packing (the layouts are
 * described in gemm_i8_impl.h) and the multithreaded driver. */
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm_i8_impl.h"

bool qb_kernels_i8_select(qb_isa isa, qb_kernels_i8 *k) {
    if (!qb_isa_supported(isa)) return false;
    switch (isa) {
    case QB_ISA_SCALAR: qb_kernels_i8_init_scalar(k); return true;
#if defined(__x86_64__)
    case QB_ISA_AVX2: qb_kernels_i8_init_avx2(k); return true;
    case QB_ISA_AVX512: qb_kernels_i8_init_avx512(k); return true;
#elif defined(__aarch64__)
    case QB_ISA_NEON: qb_kernels_i8_init_neon(k); return true;
    case QB_ISA_DOTPROD: qb_kernels_i8_init_dotprod(k); return true;
    case QB_ISA_I8MM: qb_kernels_i8_init_i8mm(k); return true;
#endif
    default: return false;
    }
}

int qb_i8_n_block(void) { return QB_I8_N_BLOCK; }

int qb_i8_k_max(void) { return QB_I8_K_MAX; }

/* [N/16][K/group][16][group]: `group` consecutive k of a column side by
 * side.  Whole groups are copied with a constant size: a byte-by-byte
 * loop dividing by the runtime `group` ran at about 2 ns a byte, and
 * static int8 attention repacks K and V per head on every call. */
static void qb_i8_pack_avx2(const int8_t *w, int N, int K, int group, int8_t *out) {
    size_t panel = (size_t)qb_i8_round_up(K, group) * 16;
    for (int n = 0; n < N; n++) {
        int8_t *col = out + (size_t)(n / 16) * panel + (n % 16) * group;
        const int8_t *row = w + (size_t)n * K;
        int k = 0;
        /* group k start at col + 16 * k, for k a multiple of group */
        if (group == 4)
            for (; k + 4 <= K; k += 4) memcpy(col + (size_t)k * 16, row + k, 4);
        else
            for (; k + 2 <= K; k += 2) memcpy(col + (size_t)k * 16, row + k, 2);
        for (; k < K; k++) col[(size_t)(k / group) * 16 * group + k % group] = row[k];
    }
}

/* Scanned in blocks without an early exit inside, so that it vectorizes:
 * reduce-range weights are all narrow, and are read whole. */
static bool qb_i8_all_narrow(const int8_t *w, size_t n) {
    for (size_t i = 0; i < n; i += 4096) {
        size_t end = n - i < 4096 ? n : i + 4096;
        int wide = 0;
        for (size_t j = i; j < end; j++) wide |= w[j] < -64 || w[j] > 64;
        if (wide) return false;
    }
    return true;
}

static void qb_i8_pack_avx512(const int8_t *w, int N, int K, int8_t *out) {
    int K4 = qb_i8_round_up(K, 4) / 4, Npad = qb_i8_round_up(N, 16);
    for (int n = 0; n < N; n++) {
        int block = n / QB_I8_N_BLOCK, first = block * QB_I8_N_BLOCK;
        int width = Npad - first < QB_I8_N_BLOCK ? Npad - first : QB_I8_N_BLOCK;
        int8_t *col = out + (size_t)first * K4 * 4 + (n - first) * 4;
        const int8_t *row = w + (size_t)n * K;
        int k = 0;
        /* a group of 4 k is one 4-byte word of the layout (int8 attention
         * repacks K and V per head, so this runs per call there) */
        for (; k + 4 <= K; k += 4) memcpy(col + (size_t)(k / 4) * width * 4, row + k, 4);
        for (; k < K; k++) col[(size_t)(k / 4) * width * 4 + k % 4] = row[k];
    }
}

static void qb_i8_pack_neon(const int8_t *w, int N, int K, int8_t *out) {
    int K8 = qb_i8_round_up(K, 8);
    for (int n = 0; n < N; n++) {
        int8_t *panel = out + (size_t)(n / 16) * K8 * 16 + n % 16;
        for (int k = 0; k < K; k++) panel[(size_t)k * 16] = w[(size_t)n * K + k];
    }
}

static void qb_i8_pack_i8mm(const int8_t *w, int N, int K, int8_t *out) {
    int K8 = qb_i8_round_up(K, 8);
    for (int n = 0; n < N; n++) {
        int8_t *panel = out + (size_t)(n / 8) * K8 * 8 + (n % 8) * 8;
        const int8_t *row = w + (size_t)n * K;
        for (int k = 0; k < K; k++) panel[(size_t)(k / 8) * 64 + k % 8] = row[k];
    }
}

size_t qb_i8_weights_bytes(const qb_kernels_i8 *k, int N, int K) {
    return (qb_i8_packed_bytes(k->isa, N, K) + 63) / 64 * 64;
}

void qb_i8_weights_fill(const qb_kernels_i8 *k, const int8_t *w, int N, int K, qb_i8_weights *out) {
    size_t bytes = qb_i8_packed_bytes(k->isa, N, K);
    out->narrow = k->isa == QB_ISA_AVX2 && qb_i8_all_narrow(w, (size_t)N * K);
    /* padding must read as zero weights; a layout without any is all
     * written below (int8 attention refills per call: no wasted pass) */
    size_t written = bytes == (size_t)N * K ? bytes : 0;
    memset((char *)out->packed + written, 0, qb_i8_weights_bytes(k, N, K) - written);
    switch (k->isa) {
    case QB_ISA_AVX2: qb_i8_pack_avx2(w, N, K, out->narrow ? 4 : 2, out->packed); break;
    case QB_ISA_AVX512:
    case QB_ISA_DOTPROD: qb_i8_pack_avx512(w, N, K, out->packed); break;
    case QB_ISA_NEON: qb_i8_pack_neon(w, N, K, out->packed); break;
    case QB_ISA_I8MM: qb_i8_pack_i8mm(w, N, K, out->packed); break;
    case QB_ISA_SCALAR:
    default: memcpy(out->packed, w, bytes); break;
    }
    for (int n = 0; n < N; n++) {
        int32_t sum = 0;
        for (int kk = 0; kk < K; kk++) sum += w[(size_t)n * K + kk];
        out->colsum[n] = sum;
        out->colsum_split[n] = qb_i8_colsum_split(sum);
    }
    out->N = N;
    out->K = K;
    out->isa = k->isa;
    out->packed_bytes = bytes;
}

bool qb_i8_weights_alloc(const qb_kernels_i8 *k, const float *scale, int N, int K, void *packed,
                         qb_i8_weights *out) {
    memset(out, 0, sizeof *out);
    if (N <= 0 || K <= 0 || K > QB_I8_K_MAX) return false;
    out->borrowed = packed != NULL;
    out->packed = packed ? packed : aligned_alloc(64, qb_i8_weights_bytes(k, N, K));
    out->colsum = malloc((size_t)N * sizeof *out->colsum);
    out->colsum_split = malloc((size_t)N * sizeof *out->colsum_split);
    out->scale = malloc((size_t)N * sizeof *out->scale);
    if (!out->packed || !out->colsum || !out->colsum_split || !out->scale) {
        qb_i8_weights_free(out);
        return false;
    }
    memcpy(out->scale, scale, (size_t)N * sizeof *scale);
    return true;
}

bool qb_i8_weights_pack(const qb_kernels_i8 *k, const int8_t *w, const float *scale, int N, int K,
                        qb_i8_weights *out) {
    if (!qb_i8_weights_alloc(k, scale, N, K, NULL, out)) return false;
    qb_i8_weights_fill(k, w, N, K, out);
    return true;
}

void qb_i8_weights_repack(const qb_kernels_i8 *k, const int8_t *w, float scale, int N, int K, qb_i8_weights *out) {
    qb_i8_weights_fill(k, w, N, K, out);
    for (int n = 0; n < N; n++) out->scale[n] = scale;
}

void qb_i8_weights_free(qb_i8_weights *w) {
    if (!w->borrowed) free(w->packed);
    free(w->colsum);
    free(w->colsum_split);
    free(w->scale);
    memset(w, 0, sizeof *w);
}

void qb_i8_quantize_s8(const qb_kernels_i8 *k, const float *x, int rows, int cols, int ldx, float scale, uint8_t *tmp,
                       int8_t *out, bool transpose) {
    k->quantize_rows_fixed(x, rows, cols, ldx, scale, 128, tmp, cols);
    size_t n = (size_t)rows * cols;
    if (!transpose)
        for (size_t e = 0; e < n; e++) out[e] = (int8_t)(tmp[e] ^ 0x80);
    else
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) out[(size_t)j * rows + i] = (int8_t)(tmp[(size_t)i * cols + j] ^ 0x80);
}

/* Part t of `team` (qb_gemm_part_block). */
static void qb_gemm_i8_slice(const qb_kernels_i8 *k, const qb_gemm_i8_args *a, int t, int team) {
    int m0, m1, n0, n1;
    if (!qb_gemm_part_block(a->M, a->N, QB_I8_N_BLOCK, t, team, &m0, &m1, &n0, &n1)) return;
    qb_gemm_i8_args part = *a;
    part.M = m1 - m0;
    part.A = a->A + (size_t)m0 * a->lda;
    part.a_scale = a->a_scale + m0;
    part.a_zero = a->a_zero + m0;
    part.C = a->C + (size_t)m0 * a->ldc;
    if (a->residual) part.residual = a->residual + (size_t)m0 * a->ldr;
    k->gemm(&part, n0, n1);
}

typedef struct {
    const qb_kernels_i8 *k;
    const qb_gemm_i8_args *a;
    int parts;
} qb_gemm_i8_job;

static void qb_gemm_i8_task(void *ctx, int p, int t) {
    qb_gemm_i8_job *j = ctx;
    qb_gemm_i8_slice(j->k, j->a, p, j->parts);
}

void qb_gemm_i8(const qb_kernels_i8 *k, const qb_gemm_i8_args *a, qb_pool *pool) {
    /* Another ISA's layout would be misread (and overrun): refuse it. */
    if (a->M <= 0 || a->N <= 0 || a->W->isa != k->isa) return;
    int team = qb_pool_threads(pool);
    if (team <= 1) {
        k->gemm(a, 0, a->N);
        return;
    }
    /* qb_gemm_parts (kernels.h), parts of at least 2 weight blocks */
    int blocks = (a->N + QB_I8_N_BLOCK - 1) / QB_I8_N_BLOCK;
    qb_gemm_i8_job j = {k, a, qb_gemm_parts(blocks / 2, team)};
    qb_pool_run(pool, j.parts, qb_gemm_i8_task, &j);
}
