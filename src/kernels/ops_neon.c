/* Row operations with NEON and the AArch64 kernel table (every level: the
 * float kernels need nothing past ARMv8.0).  Tails go through the same
 * vector code on a zero-padded (or -inf-padded) copy. */
#include <arm_neon.h>
#include <math.h>

#include "kernels/kernels_impl.h"
#include "kernels/nonfinite_impl.h"
#include "kernels/vec_neon.h"

/* Lanes past the end read as `fill`. */
static inline float32x4_t qb_ops_neon_load(const float *p, int count, float fill) {
    if (count >= 4) return vld1q_f32(p);
    float tmp[4] = {fill, fill, fill, fill};
    for (int i = 0; i < count; i++) tmp[i] = p[i];
    return vld1q_f32(tmp);
}

static void qb_act_f32_neon(qb_act act, float *x, int n) {
    if (act == QB_ACT_NONE) return;
    for (int i = 0; i < n; i += 4) qb_v4_store_part(x + i, n - i, qb_v4_act(act, qb_ops_neon_load(x + i, n - i, 0.0f)));
}

/* Two-pass mean and variance, as in the reference. */
static void qb_layernorm_f32_neon(const float *x, const float *gamma, const float *beta, float eps, int n, float *y) {
    float32x4_t sum = vdupq_n_f32(0.0f);
    for (int i = 0; i < n; i += 4) sum = vaddq_f32(sum, qb_ops_neon_load(x + i, n - i, 0.0f));
    float mean_s = vaddvq_f32(sum) / (float)n;
    float32x4_t mean = vdupq_n_f32(mean_s), sq = vdupq_n_f32(0.0f);
    for (int i = 0; i < n; i += 4) {
        float32x4_t d = vsubq_f32(qb_ops_neon_load(x + i, n - i, mean_s), mean);
        sq = vfmaq_f32(sq, d, d);
    }
    float32x4_t rstd = vdupq_n_f32(1.0f / sqrtf(vaddvq_f32(sq) / (float)n + eps));
    for (int i = 0; i < n; i += 4) {
        float32x4_t d = vmulq_f32(vsubq_f32(qb_ops_neon_load(x + i, n - i, 0.0f), mean), rstd);
        float32x4_t out = vfmaq_f32(qb_ops_neon_load(beta + i, n - i, 0.0f), d, qb_ops_neon_load(gamma + i, n - i, 0.0f));
        qb_v4_store_part(y + i, n - i, out);
    }
}

static void qb_softmax_f32_neon(float *x, int n) {
    float32x4_t max = vdupq_n_f32(-INFINITY);
    for (int i = 0; i < n; i += 4) max = vmaxq_f32(max, qb_ops_neon_load(x + i, n - i, -INFINITY));
    float32x4_t vmax = vdupq_n_f32(vmaxvq_f32(max));
    float32x4_t sum = vdupq_n_f32(0.0f);
    for (int i = 0; i < n; i += 4) {
        /* -inf past the end makes exp give 0 there. */
        float32x4_t e = qb_v4_exp(vsubq_f32(qb_ops_neon_load(x + i, n - i, -INFINITY), vmax));
        sum = vaddq_f32(sum, e);
        qb_v4_store_part(x + i, n - i, e);
    }
    float32x4_t inv = vdupq_n_f32(1.0f / vaddvq_f32(sum));
    for (int i = 0; i < n; i += 4) qb_v4_store_part(x + i, n - i, vmulq_f32(qb_ops_neon_load(x + i, n - i, 0.0f), inv));
}

void qb_kernels_init_neon(qb_isa isa, qb_kernels *k) {
    k->isa = isa;
    k->name = qb_isa_name(isa);
    k->gemm_f32 = qb_gemm_f32_neon;
    k->gemm_f32_part = qb_gemm_f32_neon_part;
    k->layernorm_f32 = qb_layernorm_f32_neon;
    k->softmax_f32 = qb_softmax_f32_neon;
    k->act_f32 = qb_act_f32_neon;
    k->find_nonfinite = qb_nonfinite_find;
}
