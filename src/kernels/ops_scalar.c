/* Reference row operations (libm-accurate) and the scalar kernel table. */
#include <math.h>

#include "kernels/kernels_impl.h"
#include "kernels/nonfinite_impl.h"

float qb_act_ref(qb_act act, float x) {
    switch (act) {
    case QB_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case QB_ACT_GELU_TANH: {
        float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.0f + tanhf(u));
    }
    case QB_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case QB_ACT_TANH: return tanhf(x);
    case QB_ACT_NONE:
    default: return x;
    }
}

static void qb_act_f32_scalar(qb_act act, float *x, int n) {
    for (int i = 0; i < n; i++) x[i] = qb_act_ref(act, x[i]);
}

/* Two passes (mean, then the mean of squared deviations) like PyTorch, so
 * large offsets do not cancel the variance away. */
static void qb_layernorm_f32_scalar(const float *x, const float *gamma, const float *beta, float eps, int n, float *y) {
    float sum = 0.0f;
    for (int i = 0; i < n; i++) sum += x[i];
    float mean = sum / (float)n;
    float sq = 0.0f;
    for (int i = 0; i < n; i++) sq += (x[i] - mean) * (x[i] - mean);
    float rstd = 1.0f / sqrtf(sq / (float)n + eps);
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * rstd * gamma[i] + beta[i];
}

/* Subtracting the maximum keeps exp from overflowing; it cancels out. */
static void qb_softmax_f32_scalar(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void qb_kernels_init_scalar(qb_kernels *k) {
    k->isa = QB_ISA_SCALAR;
    k->name = "scalar";
    k->gemm_f32 = qb_gemm_f32_scalar;
    k->layernorm_f32 = qb_layernorm_f32_scalar;
    k->softmax_f32 = qb_softmax_f32_scalar;
    k->act_f32 = qb_act_f32_scalar;
    k->find_nonfinite = qb_nonfinite_find;
}
