#include "rounding/affine.h"
#include "kernels/gemm_i8_impl.h"

#include <float.h>
#include <math.h>

void qb_qscheme_limits(const qb_qscheme *s, int32_t *qmin, int32_t *qmax) {
    if (s->is_signed) {
        *qmin = s->reduce_range ? -64 : -128;
        *qmax = s->reduce_range ? 63 : 127;
    } else {
        *qmin = 0;
        *qmax = s->reduce_range ? 127 : 255;
    }
}

/* A range so small its step underflows (or an infinite one) would divide
 * by 0 or turn lo / scale into NaN; it is as degenerate as an empty one. */
static float usable_scale(float scale) { return isfinite(scale) && scale >= FLT_MIN ? scale : 1.0f; }

qb_qparams qb_qparams_from_range(const qb_qscheme *s, float lo, float hi) {
    int32_t qmin, qmax;
    qb_qscheme_limits(s, &qmin, &qmax);
    lo = fminf(lo, 0.0f);
    hi = fmaxf(hi, 0.0f);
    qb_qparams p = {1.0f, 0};
    if (!s->is_signed && !s->symmetric && !s->reduce_range) {
        /* the u8 activation grid: the kernels' rule, defined once */
        qb_i8_row_params(lo, hi, &p.scale, &p.zero_point);
        return p;
    }
    if (s->symmetric) {
        p.scale = usable_scale(fmaxf(-lo, hi) / ((float)(qmax - qmin) / 2.0f));
        p.zero_point = s->is_signed ? 0 : (qmin + qmax + 1) / 2;
        return p;
    }
    p.scale = usable_scale((hi - lo) / (float)(qmax - qmin));
    /* Clamped as a float: a range beyond float (scale 1 above) would not
     * fit an int32 before the clamp. */
    float zp = (float)qmin - nearbyintf(lo / p.scale);
    p.zero_point = zp > (float)qmax ? qmax : zp >= (float)qmin ? (int32_t)zp : qmin;
    return p;
}

int32_t qb_quantize_value(float x, qb_qparams p, int32_t qmin, int32_t qmax) {
    float q = nearbyintf(x / p.scale) + (float)p.zero_point;
    /* Written so NaN falls to qmin: converting NaN to an integer is undefined. */
    return q > (float)qmax ? qmax : q >= (float)qmin ? (int32_t)q : qmin;
}

static void row_range(const float *x, size_t n, float *lo, float *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        *lo = fminf(*lo, x[i]);
        *hi = fmaxf(*hi, x[i]);
    }
}

/* qb_qparams_from_range's symmetric scale for the range of x. */
static float symmetric_scale(const float *x, size_t n, float half_span) {
    float lo, hi;
    row_range(x, n, &lo, &hi);
    return usable_scale(fmaxf(-fminf(lo, 0.0f), fmaxf(hi, 0.0f)) / half_span);
}

void qb_quantize_weight_s8(const float *w, int rows, int cols, int bits, bool per_channel, int8_t *q, float *scale) {
    /* bits b: the signed grid [-2^(b-1), 2^(b-1) - 1]; 7 is reduce_range. */
    int32_t qmax = (1 << (bits - 1)) - 1, qmin = -qmax - 1;
    float half_span = (float)(qmax - qmin) / 2.0f;
    float all = 1.0f;
    if (!per_channel) all = symmetric_scale(w, (size_t)rows * cols, half_span);
    for (int r = 0; r < rows; r++) {
        const float *x = w + (size_t)r * cols;
        qb_qparams p = {per_channel ? symmetric_scale(x, (size_t)cols, half_span) : all, 0};
        scale[r] = p.scale;
        for (int c = 0; c < cols; c++) q[(size_t)r * cols + c] = (int8_t)qb_quantize_value(x[c], p, qmin, qmax);
    }
}

void qb_quantize_rows_symmetric_s8(const float *w, int rows, int cols, int8_t *q, float *scale) {
    for (int r = 0; r < rows; r++) {
        const float *x = w + (size_t)r * cols;
        float amax = 0;
        for (int c = 0; c < cols; c++) amax = fmaxf(amax, fabsf(x[c]));
        qb_qparams p = {amax > 0 ? amax / 127.0f : 1.0f, 0};
        scale[r] = p.scale;
        for (int c = 0; c < cols; c++) q[(size_t)r * cols + c] = (int8_t)qb_quantize_value(x[c], p, -127, 127);
    }
}

qb_qparams qb_dynamic_tensor_params(const float *x, size_t n, bool symmetric) {
    float lo, hi;
    row_range(x, n, &lo, &hi);
    qb_qscheme s = {.is_signed = false, .symmetric = symmetric, .reduce_range = false};
    return qb_qparams_from_range(&s, lo, hi);
}
