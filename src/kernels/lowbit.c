/* Low-bit weights: the code encodings (kernels_lowbit.h), the definition of
 * the weights (dequantize), zsum, the scratch plan of the W.A8 kernels, the
 * generic chunk decoder their SIMD paths fall back on, and the two
 * multithreaded drivers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels_lowbit.h"

#define QB_LOWBIT_UNPACK_RUN 256 /* codes unpacked at a time into a stack buffer */

static size_t qb_lowbit_align64(size_t x) { return (x + 63) / 64 * 64; }

size_t qb_code_row_bytes(qb_code c, int K) {
    size_t k = (size_t)K;
    switch (c) {
    case QB_CODE_U4: return (k + 1) / 2;
    case QB_CODE_U3: return (k + 3) / 4 + (k + 7) / 8;
    case QB_CODE_U2: return (k + 3) / 4;
    case QB_CODE_T5: return (k + 4) / 5;
    default: return 0;
    }
}

void qb_code_pack_row(qb_code c, const uint8_t *codes, int K, uint8_t *row) {
    memset(row, 0, qb_code_row_bytes(c, K));
    uint8_t *high = row + qb_code_row_bytes(QB_CODE_U2, K); /* U3's bit plane, after its U2 plane */
    for (int k = 0; k < K; k++) {
        unsigned v = codes[k];
        switch (c) {
        case QB_CODE_U4: row[k / 2] |= (uint8_t)((v & 15) << 4 * (k % 2)); break;
        case QB_CODE_U2: row[k / 4] |= (uint8_t)((v & 3) << 2 * (k % 4)); break;
        case QB_CODE_U3:
            row[k / 4] |= (uint8_t)((v & 3) << 2 * (k % 4));
            high[k / 8] |= (uint8_t)((v >> 2 & 1) << k % 8);
            break;
        case QB_CODE_T5: {
            static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
            row[k / 5] = (uint8_t)(row[k / 5] + (v % 3) * pow3[k % 5]);
            break;
        }
        }
    }
}

/* The U2 plane's codes [k0, k0 + n), a byte (four codes) at a time. */
static void qb_code_unpack_u2(const uint8_t *row, int k0, int n, uint8_t *codes) {
    for (int i = 0; i < n;) {
        int k = k0 + i, j = k & 3;
        unsigned v = row[k >> 2] >> 2 * j;
        for (; j < 4 && i < n; j++, i++, v >>= 2) codes[i] = (uint8_t)(v & 3);
    }
}

/* The five trits of every byte (those past 242, which no valid row holds,
 * read as their digits mod 3), padded to 8 for whole-word stores; built
 * by the compiler. */
#define QB_T5(v) {(v) % 3, (v) / 3 % 3, (v) / 9 % 3, (v) / 27 % 3, (v) / 81 % 3}
#define QB_T5_3(v) QB_T5(v), QB_T5((v) + 1), QB_T5((v) + 2)
#define QB_T5_9(v) QB_T5_3(v), QB_T5_3((v) + 3), QB_T5_3((v) + 6)
#define QB_T5_27(v) QB_T5_9(v), QB_T5_9((v) + 9), QB_T5_9((v) + 18)
#define QB_T5_81(v) QB_T5_27(v), QB_T5_27((v) + 27), QB_T5_27((v) + 54)
static const uint8_t qb_t5_trits[256][8] = {QB_T5_81(0), QB_T5_81(81), QB_T5_81(162), QB_T5_9(243), QB_T5_3(252),
                                            QB_T5(255)};

/* Whole bytes by table, each an 8-byte store that the next overwrites
 * past its five codes: dividing by pow3[k % 5] for every code was most of
 * a ternary model's run. */
static void qb_code_unpack_t5(const uint8_t *row, int k0, int n, uint8_t *codes) {
#define QB_T5_CODE(k) qb_t5_trits[row[(k) / 5]][(k) % 5]
    int i = 0;
    for (; i < n && (k0 + i) % 5; i++) codes[i] = QB_T5_CODE(k0 + i);
    for (const uint8_t *p = row + (k0 + i) / 5; n - i >= 8; i += 5) memcpy(codes + i, qb_t5_trits[*p++], 8);
    for (; i < n; i++) codes[i] = QB_T5_CODE(k0 + i);
#undef QB_T5_CODE
}

/* A loop per code, byte by byte where bytes hold several codes. */
void qb_code_unpack_row(qb_code c, const uint8_t *row, int K, int k0, int n, uint8_t *codes) {
    const uint8_t *high = row + qb_code_row_bytes(QB_CODE_U2, K);
    switch (c) {
    case QB_CODE_U4: {
        int i = 0;
        if (k0 & 1 && n > 0) codes[i++] = (uint8_t)(row[k0 >> 1] >> 4);
        const uint8_t *p = row + ((k0 + i) >> 1);
        for (; i + 1 < n; i += 2, p++) {
            codes[i] = (uint8_t)(*p & 15);
            codes[i + 1] = (uint8_t)(*p >> 4);
        }
        if (i < n) codes[i] = (uint8_t)(*p & 15);
        break;
    }
    case QB_CODE_U2: qb_code_unpack_u2(row, k0, n, codes); break;
    case QB_CODE_U3: /* the U2 plane's low bits, then the high plane's bit 2 */
        qb_code_unpack_u2(row, k0, n, codes);
        for (int i = 0; i < n;) {
            int k = k0 + i, j = k & 7;
            unsigned v = high[k >> 3] >> j;
            for (; j < 8 && i < n; j++, i++, v >>= 1) codes[i] |= (uint8_t)((v & 1) << 2);
        }
        break;
    case QB_CODE_T5: qb_code_unpack_t5(row, k0, n, codes); break;
    default: memset(codes, 0, (size_t)(n > 0 ? n : 0)); break;
    }
}

static const uint8_t *qb_lowbit_row(const qb_lowbit_weights *w, int n) { return w->rows + (size_t)n * w->row_bytes; }

/* scale * (code - zero), one rounding, or the codebook's entry: the loops
 * run over one group at a time so they vectorize. */
void qb_lowbit_dequantize(const qb_lowbit_weights *w, int n, int k0, int count, float *out) {
    uint8_t codes[QB_LOWBIT_UNPACK_RUN];
    int levels = qb_code_levels(w->code);
    for (int done = 0; done < count;) {
        int k = k0 + done, g = k / w->group, end = (g + 1) * w->group;
        int len = count - done < QB_LOWBIT_UNPACK_RUN ? count - done : QB_LOWBIT_UNPACK_RUN;
        if (!w->codebook && k + len > end) len = end - k;
        qb_code_unpack_row(w->code, qb_lowbit_row(w, n), w->K, k, len, codes);
        float *dst = out + done;
        if (w->codebook) {
            const float *book = w->codebook + (size_t)n * levels;
            for (int i = 0; i < len; i++) dst[i] = book[codes[i]];
        } else {
            float s = w->scale[(size_t)n * w->G + g];
            int z = qb_lowbit_zero_point(w, n, g);
            for (int i = 0; i < len; i++) dst[i] = s * (float)((int)codes[i] - z);
        }
        done += len;
    }
}

void qb_lowbit_dequantize_panel(qb_lowbit_decode_fn decode, const qb_lowbit_weights *w, int n0, int cols, int nr,
                                int k0, int k1, float *panel) {
    float run[QB_LOWBIT_UNPACK_RUN];
    for (int k = k0; k < k1; k += QB_LOWBIT_UNPACK_RUN) {
        int len = k1 - k < QB_LOWBIT_UNPACK_RUN ? k1 - k : QB_LOWBIT_UNPACK_RUN;
        for (int j = 0; j < nr; j++) {
            if (j < cols) decode(w, n0 + j, k, len, run);
            for (int i = 0; i < len; i++) panel[(size_t)(k + i) * nr + j] = j < cols ? run[i] : 0.0f;
        }
    }
}

void qb_lowbit_decode_s8(const qb_lowbit_weights *w, int n, int k0, int count, int pad, int8_t *out) {
    uint8_t *codes = (uint8_t *)out;
    int z = qb_lowbit_zero_point(w, n, k0 / w->group);
    qb_code_unpack_row(w->code, qb_lowbit_row(w, n), w->K, k0, count, codes);
    for (int i = 0; i < count; i++) out[i] = (int8_t)((int)codes[i] - z);
    if (pad > count) memset(out + count, 0, (size_t)(pad - count));
}

void qb_lowbit_stage_transpose(const int8_t *stage, int ld, int count, int c0, int8_t *out) {
    int steps = (count + 3) / 4;
    for (int c = 0; c < 16; c++)
        for (int s = 0; s < steps; s++) memcpy(out + (size_t)s * 256 + (c0 + c) * 4, stage + (size_t)c * ld + 4 * s, 4);
}

bool qb_lowbit_panels_fit(const qb_lowbit_weights *w) {
    return (QB_LOWBIT_PANELS_ALL >> w->code & 1) && !w->codebook && (w->G == 1 || w->group % 4 == 0);
}

size_t qb_lowbit_panels_bytes(const qb_lowbit_weights *w) {
    size_t groups = (size_t)w->G * QB_LOWBIT_N_BLOCK, zeros = w->zero ? groups : 0;
    return qb_lowbit_panel_blocks(w) * (qb_lowbit_panel_code_bytes(w) + groups * sizeof(float) + zeros);
}

/* Group g's scales of the block at column n, 0 past N. */
static void qb_lowbit_group_scales(const qb_lowbit_weights *w, int n, int g, float out[QB_LOWBIT_N_BLOCK]) {
    for (int j = 0; j < QB_LOWBIT_N_BLOCK; j++) out[j] = n + j < w->N ? w->scale[(size_t)(n + j) * w->G + g] : 0.0f;
}

const float *qb_lowbit_chunk_scales(const qb_lowbit_weights *w, int n, const qb_lowbit_segment *seg, int count,
                                    float *out) {
    if (w->panels) return qb_lowbit_panel_scales(w, (size_t)n / QB_LOWBIT_N_BLOCK, seg[0].g);
    for (int s = 0; s < count; s++) qb_lowbit_group_scales(w, n, seg[s].g, out + s * QB_LOWBIT_N_BLOCK);
    return out;
}

/* zsum of a row from its codes, in the float order of kernels_lowbit.h. */
static float qb_lowbit_row_zsum(const qb_lowbit_weights *w, int n, const uint8_t *codes) {
    float zs = 0.0f;
    for (int g = 0; g < w->G; g++) {
        int k0 = g * w->group, k1 = k0 + w->group < w->K ? k0 + w->group : w->K;
        int z = qb_lowbit_zero_point(w, n, g);
        int32_t isum = 0;
        for (int k = k0; k < k1; k++) isum += (int)codes[k] - z;
        zs = fmaf(w->scale[(size_t)n * w->G + g], (float)isum, zs);
    }
    return zs;
}

/* A block's codes [64][ld] as U4 panels (kernels_lowbit.h): 4 k of two
 * columns at once, codes being < 16. */
static void qb_lowbit_panel_codes_u4(const uint8_t *codes, int ld, int steps, uint8_t *out) {
    for (int h = 0; h < 2; h++)
        for (int c = 0; c < 16; c++) {
            const uint8_t *lo = codes + (size_t)(32 * h + c) * ld, *hi = lo + (size_t)16 * ld;
            for (int s = 0; s < steps; s++) {
                uint32_t l, u;
                memcpy(&l, lo + 4 * s, 4);
                memcpy(&u, hi + 4 * s, 4);
                l |= (u ^ 0x08080808u) << 4;
                memcpy(out + (size_t)s * 128 + 64 * h + 4 * c, &l, 4);
            }
        }
}

/* ... and as 2-bit panels (the low two bits), 4 k of four columns at once. */
static void qb_lowbit_panel_codes_u2(const uint8_t *codes, int ld, int steps, uint8_t *out) {
    for (int c = 0; c < 16; c++)
        for (int s = 0; s < steps; s++) {
            uint32_t word = 0;
            for (int f = 0; f < 4; f++) {
                uint32_t v;
                memcpy(&v, codes + (size_t)(16 * f + c) * ld + 4 * s, 4);
                word |= (v & 0x03030303u) << 2 * f;
            }
            memcpy(out + (size_t)s * 64 + 4 * c, &word, 4);
        }
}

/* ... and U3's bit 2, a 64-bit word per 16 columns and step. */
static void qb_lowbit_panel_codes_bit2(const uint8_t *codes, int ld, int steps, uint8_t *out) {
    for (int s = 0; s < steps; s++)
        for (int f = 0; f < 4; f++) {
            uint64_t word = 0;
            for (int c = 0; c < 16; c++)
                for (int j = 0; j < 4; j++)
                    word |= (uint64_t)(codes[(size_t)(16 * f + c) * ld + 4 * s + j] >> 2 & 1) << (4 * c + j);
            memcpy(out + (size_t)s * 32 + 8 * f, &word, 8);
        }
}

/* Block b's codes [64][ld] (ld = 4 ceil(K / 4)) into its panels and zero
 * points: k past K holds the last group's zero point, columns past N a
 * symmetric grid's (levels / 2) or, with zero points, 0 and zero point 0,
 * so both decode to 0. */
static void qb_lowbit_panel_block(qb_lowbit_weights *w, int b, uint8_t *codes, int ld) {
    int steps = ld / 4;
    for (int c = 0; c < QB_LOWBIT_N_BLOCK; c++) {
        int n = b * QB_LOWBIT_N_BLOCK + c;
        uint8_t *row = codes + (size_t)c * ld;
        if (n < w->N) memset(row + w->K, qb_lowbit_zero_point(w, n, w->G - 1), (size_t)(ld - w->K));
        else memset(row, w->zero ? 0 : qb_code_levels(w->code) / 2, (size_t)ld);
    }
    uint8_t *out = qb_lowbit_panel_codes(w, (size_t)b);
    if (w->code == QB_CODE_U4) qb_lowbit_panel_codes_u4(codes, ld, steps, out);
    else qb_lowbit_panel_codes_u2(codes, ld, steps, out);
    if (w->code == QB_CODE_U3) qb_lowbit_panel_codes_bit2(codes, ld, steps, qb_lowbit_panel_bit2(w, (size_t)b));
    for (int g = 0; g < w->G; g++)
        qb_lowbit_group_scales(w, b * QB_LOWBIT_N_BLOCK, g, qb_lowbit_panel_scales(w, (size_t)b, g));
    if (!w->zero) return;
    uint8_t *zero = qb_lowbit_panel_zeros(w, (size_t)b, 0);
    for (int g = 0; g < w->G; g++)
        for (int c = 0; c < QB_LOWBIT_N_BLOCK; c++) {
            int n = b * QB_LOWBIT_N_BLOCK + c;
            *zero++ = (uint8_t)(n < w->N ? qb_lowbit_zero_point(w, n, g) : 0);
        }
}

size_t qb_lowbit_panels_wanted(const qb_lowbit_weights *w, unsigned codes) {
    bool want = (codes >> w->code & 1) && qb_lowbit_panel_blocks(w) > 0 && qb_lowbit_panels_fit(w);
    return want ? qb_lowbit_panels_bytes(w) : 0;
}

bool qb_lowbit_weights_alloc(qb_lowbit_weights *w, unsigned codes, uint8_t *panels_at) {
    qb_lowbit_weights_free(w);
    if (w->codebook) return true; /* W.A8 takes integer grids only */
    w->plan = qb_lowbit_scratch_plan(w->K, w->group);
    w->zsum = malloc(sizeof(float) * (size_t)(w->N > 0 ? w->N : 1));
    size_t want = qb_lowbit_panels_wanted(w, codes);
    w->borrowed = want && panels_at;
    if (want) w->panels = panels_at ? panels_at : aligned_alloc(64, want);
    return w->zsum && (w->panels || !want);
}

/* Each row unpacked once, 64 at a time: its zsum, and the block's panels
 * where they are wanted. */
bool qb_lowbit_weights_fill(qb_lowbit_weights *w) {
    if (!w->zsum) return true; /* a codebook: nothing to fill */
    int ld = (w->K + 3) / 4 * 4, blocks = (int)qb_lowbit_panel_blocks(w);
    uint8_t *codes = malloc((size_t)QB_LOWBIT_N_BLOCK * ld);
    if (!codes) return false;
    for (int b = 0; b < blocks; b++) {
        for (int c = 0; c < QB_LOWBIT_N_BLOCK && b * QB_LOWBIT_N_BLOCK + c < w->N; c++) {
            int n = b * QB_LOWBIT_N_BLOCK + c;
            qb_code_unpack_row(w->code, qb_lowbit_row(w, n), w->K, 0, w->K, codes + (size_t)c * ld);
            w->zsum[n] = qb_lowbit_row_zsum(w, n, codes + (size_t)c * ld);
        }
        if (w->panels) qb_lowbit_panel_block(w, b, codes, ld);
    }
    free(codes);
    return true;
}

bool qb_lowbit_weights_prepare(qb_lowbit_weights *w, unsigned codes) {
    return qb_lowbit_weights_alloc(w, codes, NULL) && qb_lowbit_weights_fill(w);
}

void qb_lowbit_weights_free(qb_lowbit_weights *w) {
    free(w->zsum);
    if (!w->borrowed) free(w->panels);
    w->zsum = NULL;
    w->panels = NULL;
    w->borrowed = false;
}

/* Steps of 4 k that all of K decodes to, chunk by chunk (each group's
 * segments padded to whole steps). */
static int qb_lowbit_total_steps(int K, int group, int chunk_groups) {
    qb_lowbit_weights w = {.K = K, .group = group, .G = (K + group - 1) / group};
    qb_lowbit_segment seg[QB_LOWBIT_KC];
    int total = 0;
    for (int k0 = 0; k0 < K;) {
        int steps, count = qb_lowbit_chunk(&w, k0, chunk_groups, seg, &steps);
        total += steps;
        k0 = seg[count - 1].k0 + seg[count - 1].len;
    }
    return total;
}

qb_lowbit_scratch_layout qb_lowbit_scratch_plan(int K, int group) {
    qb_lowbit_scratch_layout p;
    if (K < 1) K = 1;
    if (group < 1) group = 1;
    if (group > K) group = K;
    int G = (K + group - 1) / group;
    int seg = group < QB_LOWBIT_KC ? group : QB_LOWBIT_KC;
    p.chunk_groups = group < QB_LOWBIT_KC ? QB_LOWBIT_KC / group : 1;
    if (p.chunk_groups > G) p.chunk_groups = G;
    p.chunk_steps = p.chunk_groups * ((seg + 3) / 4);
    /* a span holds all of K up to QB_LOWBIT_KD k (64 KiB of decoded weights
     * per 1024 k), never less than one chunk */
    int total = qb_lowbit_total_steps(K, group, p.chunk_groups);
    p.span_steps = total < QB_LOWBIT_KD / 4 ? total : QB_LOWBIT_KD / 4;
    if (p.span_steps < p.chunk_steps) p.span_steps = p.chunk_steps;
    size_t at = 0;
    p.decoded = at;
    at += qb_lowbit_align64((size_t)p.span_steps * 256);
    p.stage = at;
    /* + 64: the AVX2 decoder stores whole vectors past a row's last step */
    at += qb_lowbit_align64((size_t)16 * qb_lowbit_align64((size_t)p.chunk_steps * 4)) + 64;
    p.scales = at;
    at += 3 * qb_lowbit_align64((size_t)p.chunk_groups * 64 * sizeof(float));
    p.asum = at;
    at += qb_lowbit_align64((size_t)QB_LOWBIT_FUSED_ROWS_MAX * G * sizeof(int32_t));
    p.ipart = at;
    at += (size_t)QB_LOWBIT_MC * 64 * sizeof(int32_t);
    p.fpart = at;
    at += (size_t)QB_LOWBIT_MC * 64 * sizeof(float);
    p.apart = at;
    at += (size_t)3 * QB_LOWBIT_AMX_ROWS * 64 * sizeof(int32_t);
    p.bytes = at;
    return p;
}

size_t qb_lowbit_scratch_bytes(int K, int group) { return qb_lowbit_scratch_plan(K, group).bytes; }

size_t qb_lowbit_f32_scratch_floats(int K) {
    size_t decoded = qb_lowbit_align64((size_t)QB_LOWBIT_N_BLOCK * (size_t)K * sizeof(float)) / sizeof(float) +
                     qb_lowbit_align64(qb_gemm_f32_pack_floats() * sizeof(float)) / sizeof(float);
    return decoded > QB_LOWBIT_FEW_FLOATS(K) ? decoded : QB_LOWBIT_FEW_FLOATS(K);
}

bool qb_kernels_lowbit_select(qb_isa isa, qb_kernels_lowbit *k) {
    if (!qb_isa_supported(isa)) return false;
    switch (isa) {
    case QB_ISA_SCALAR: qb_kernels_lowbit_init_scalar(k); return true;
#if defined(__x86_64__)
    case QB_ISA_AVX2: qb_kernels_lowbit_init_avx2(k); return true;
    case QB_ISA_AVX512: qb_kernels_lowbit_init_avx512(k); return true;
#elif defined(__aarch64__)
    case QB_ISA_NEON: qb_kernels_lowbit_init_neon(k); return true;
    case QB_ISA_DOTPROD:
    case QB_ISA_I8MM: qb_kernels_lowbit_init_dotprod(isa, k); return true;
#endif
    default: return false;
    }
}

/* Part t of `team` (qb_gemm_part_block), as qb_gemm_i8 cuts, with k's
 * fused_rows. */
static void qb_lowbit_a8_slice(const qb_kernels_lowbit *k, const qb_lowbit_a8_args *a, int t, int team,
                               void *scratch) {
    int m0, m1, n0, n1;
    if (!qb_gemm_part_block(a->M, a->W->N, QB_LOWBIT_N_BLOCK, t, team, &m0, &m1, &n0, &n1)) return;
    qb_lowbit_a8_args part = *a;
    part.M = m1 - m0;
    part.A = a->A + (size_t)m0 * a->lda;
    part.a_scale = a->a_scale + m0;
    part.a_zero = a->a_zero + m0;
    part.C = a->C + (size_t)m0 * a->ldc;
    if (a->residual) part.residual = a->residual + (size_t)m0 * a->ldr;
    part.fused_rows = k->fused_rows;
    k->gemm_a8(&part, n0, n1, scratch);
}

typedef struct {
    const qb_kernels_lowbit *k;
    const qb_kernels *kf;
    const void *a; /* qb_lowbit_a8_args or qb_lowbit_f32_args */
    void *scratch;
    size_t slice;  /* bytes of one thread's scratch */
    int parts;
    bool *x_packed; /* weight-only: per thread, x packed by gemm_f32_few */
} qb_lowbit_job;

static void qb_lowbit_a8_task(void *ctx, int p, int t) {
    qb_lowbit_job *j = ctx;
    qb_lowbit_a8_slice(j->k, j->a, p, j->parts, (char *)j->scratch + j->slice * (size_t)t);
}

void qb_lowbit_gemm_a8(const qb_kernels_lowbit *k, const qb_lowbit_a8_args *a, qb_pool *pool, void *scratch) {
    const qb_lowbit_weights *W = a->W;
    if (a->M <= 0 || W->N <= 0 || W->codebook || !W->zsum) return;
    int team = qb_pool_threads(pool);
    if (team <= 1) {
        qb_lowbit_a8_slice(k, a, 0, 1, scratch);
        return;
    }
    int blocks = (W->N + QB_LOWBIT_N_BLOCK - 1) / QB_LOWBIT_N_BLOCK;
    qb_lowbit_job j = {.k = k, .a = a, .scratch = scratch, .slice = W->plan.bytes,
                       .parts = qb_gemm_parts(blocks / 2, team)};
    qb_pool_run(pool, j.parts, qb_lowbit_a8_task, &j);
}

/* Columns [n0, n0 + cols) of the weight-only GEMM: straight from the
 * codes where k's gemm_f32_few takes the shapes, else the block decoded
 * to FP32, as kf's panels where it reads them, else as rows (Linear
 * layout, so b_trans) that it packs. */
static void qb_lowbit_f32_block(const qb_kernels_lowbit *k, const qb_kernels *kf, const qb_lowbit_f32_args *a, int n0,
                                float *scratch, bool *x_packed) {
    const qb_lowbit_weights *W = a->W;
    int cols = W->N - n0 < QB_LOWBIT_N_BLOCK ? W->N - n0 : QB_LOWBIT_N_BLOCK;
    if (k->gemm_f32_few && k->gemm_f32_few(a, n0, cols, scratch, *x_packed)) {
        *x_packed = true;
        return;
    }
    int nr = kf->gemm_f32_pack_panels && k->dequantize_panel ? kf->gemm_f32_panel : 0;
    float *block = scratch;
    float *pack = scratch + qb_lowbit_align64((size_t)QB_LOWBIT_N_BLOCK * W->K * sizeof(float)) / sizeof(float);
    if (nr)
        for (int j = 0; j < cols; j += nr)
            k->dequantize_panel(W, n0 + j, cols - j < nr ? cols - j : nr, nr, block + (size_t)j * W->K);
    else
        for (int j = 0; j < cols; j++) k->dequantize(W, n0 + j, 0, W->K, block + (size_t)j * W->K);
    qb_gemm_f32_args g = {.M = a->M, .N = cols, .K = W->K, .A = a->x, .lda = a->lda, .B = nr ? NULL : block,
                          .ldb = W->K, .b_trans = true, .C = a->C + n0, .ldc = a->ldc,
                          .bias = a->bias ? a->bias + n0 : NULL, .residual = a->residual ? a->residual + n0 : NULL,
                          .ldr = a->ldr, .alpha = 1.0f, .act = a->act, .B_panels = nr ? block : NULL};
    kf->gemm_f32(&g, pack);
}

static void qb_lowbit_f32_task(void *ctx, int b, int t) {
    qb_lowbit_job *j = ctx;
    qb_lowbit_f32_block(j->k, j->kf, j->a, b * QB_LOWBIT_N_BLOCK, (float *)((char *)j->scratch + j->slice * (size_t)t),
                        &j->x_packed[t]);
}

void qb_lowbit_gemm_f32(const qb_kernels_lowbit *k, const qb_kernels *kf, const qb_lowbit_f32_args *a, qb_pool *pool,
                        float *scratch) {
    const qb_lowbit_weights *W = a->W;
    if (a->M <= 0 || W->N <= 0) return;
    bool x_packed[QB_POOL_MAX_THREADS] = {false};
    qb_lowbit_job j = {.k = k, .kf = kf, .a = a, .scratch = scratch,
                       .slice = qb_lowbit_f32_scratch_floats(W->K) * sizeof(float),
                       .parts = (W->N + QB_LOWBIT_N_BLOCK - 1) / QB_LOWBIT_N_BLOCK, .x_packed = x_packed};
    qb_pool_run(pool, j.parts, qb_lowbit_f32_task, &j);
}
