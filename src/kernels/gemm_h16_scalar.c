/* The half-precision reference: each weight widened exactly (every FP16
 * and BF16 value is an FP32 value), one float dot product per output, the
 * epilogue in the documented order.  The SIMD paths are tested against it. */
#include "core/dtype.h"
#include "kernels/gemm_h16_impl.h"

static float qb_h16_ref_weight(const qb_h16_weights *W, int n, int k) {
    uint16_t h = W->w[(size_t)n * W->K + k];
    return W->type == QB_H16_BF16 ? qb_bf16_to_f32(h) : qb_f16_to_f32(h);
}

/* What the dot path feeds vdpbf16ps: x rounded to BF16, nearest even. */
static float qb_h16_ref_round_bf16(float x) { return qb_bf16_to_f32(qb_f32_to_bf16(x)); }

static void qb_h16_ref_run(const qb_gemm_h16_args *a, int n0, int n1, bool bf16_acts) {
    const qb_h16_weights *W = a->W;
    for (int m = 0; m < a->M; m++) {
        const float *x = a->A + (size_t)m * a->lda;
        for (int n = n0; n < n1; n++) {
            float acc = 0.0f;
            for (int k = 0; k < W->K; k++)
                acc += (bf16_acts ? qb_h16_ref_round_bf16(x[k]) : x[k]) * qb_h16_ref_weight(W, n, k);
            if (a->bias) acc += a->bias[n];
            acc = qb_act_ref(a->act, acc);
            if (a->residual) acc += a->residual[(size_t)m * a->ldr + n];
            a->C[(size_t)m * a->ldc + n] = acc;
        }
    }
}

void qb_gemm_h16_scalar(const qb_gemm_h16_args *a, int n0, int n1, float *pack) {
    (void)pack;
    qb_h16_ref_run(a, n0, n1, false);
}

void qb_gemm_h16_scalar_bf16_acts(const qb_gemm_h16_args *a, int n0, int n1, float *pack) {
    (void)pack;
    qb_h16_ref_run(a, n0, n1, true);
}
