/* The int8 row of the linear format table: per-channel symmetric int8
 * weights packed for the kernel set at load; u8 inputs quantized per call
 * (per token or per tensor) or on a calibrated grid (static); the GEMM
 * dequantizes, adds the bias, the activation and the residual in its
 * epilogue. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/linear_format.h"
#include "model/session.h"
#include "rounding/affine.h"

static bool zero_points_zero(qb_binder *b, const qb_linear *l, const qb_st_tensor *t) {
    char zname[256];
    snprintf(zname, sizeof zname, "%s_zero_point", t->name);
    const qb_st_tensor *zp = qb_binder_find(b, zname);
    bool zero = !zp || (zp->dtype == QB_I8 && zp->numel == l->out);
    for (int64_t i = 0; zp && zero && i < zp->numel; i++) zero = ((const int8_t *)zp->data)[i] == 0;
    if (!zero) qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' must be I8 zeros: int8 weights are symmetric", b->file, zname);
    else if (zp) qb_binder_release(b, zp); /* checked, never read again */
    return zero;
}

/* quantization_config.bits b < 8: int8 values on the b-bit grid
 * [-2^(b-1), 2^(b-1) - 1]; a value outside it means the config describes
 * other weights. */
static bool on_config_grid(qb_binder *b, const qb_st_tensor *t) {
    int bits = b->m->cfg.quant.bits;
    if (bits >= 8) return true;
    const int8_t *w = t->data;
    int lo = 0, hi = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        lo = w[i] < lo ? w[i] : lo;
        hi = w[i] > hi ? w[i] : hi;
    }
    int qmax = (1 << (bits - 1)) - 1;
    if (lo >= -qmax - 1 && hi <= qmax) return true;
    qb_fail(b->err, QB_ERR_FORMAT, "%s/config.json: quantization_config.bits is %d, but '%s' holds int8 value %d "
            "(a %d-bit grid is %d..%d)", b->m->dir, bits, t->name, lo < -qmax - 1 ? lo : hi, bits, -qmax - 1, qmax);
    return false;
}

/* Scales beside the weights; packed for the kernels now so nothing is
 * converted per call. */
static bool bind_int8(qb_binder *b, qb_linear *l, const qb_st_tensor *t) {
    if (!qb_binder_check_shape(b, t, 2, l->out, l->in) || !qb_binder_int8_allowed(b, t) || !on_config_grid(b, t))
        return false;
    const qb_st_tensor *sc = qb_binder_companion(b, t->name, "_scale", QB_F32, l->out);
    if (!sc || !qb_binder_positive(b, sc) || !zero_points_zero(b, l, t) ||
        !qb_linear_bind_input_grid(b, l))
        return false;
    if (l->in > qb_i8_k_max()) {
        qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' has %d inputs; int8 layers take at most %d", b->file, t->name,
                l->in, qb_i8_k_max());
        return false;
    }
    void *packed = qb_binder_alloc_packed(b, qb_i8_weights_bytes(&b->m->kern_i8, l->out, l->in), t->name);
    if (!packed) return false;
    qb_i8_weights *q = calloc(1, sizeof *q);
    float *scale = malloc((size_t)l->out * sizeof *scale);
    if (scale) memcpy(scale, sc->data, (size_t)l->out * sizeof *scale);
    bool ok = q && scale && qb_i8_weights_alloc(&b->m->kern_i8, scale, l->out, l->in, packed, q);
    free(scale);
    qb_binder_release(b, sc); /* copied into q */
    if (!ok) {
        free(q);
        qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory packing '%s'", b->file, t->name);
        return false;
    }
    l->packed = q;
    b->m->held_bytes += sizeof *q + (size_t)l->out * 12; /* colsums, scales */
    qb_binder_register(b, t, NULL);
    /* the packed copy is all the kernels read: the mapped bytes need not stay resident */
    return qb_binder_defer_pack(b, l, t, true);
}

static bool pack_int8(const qb_model *m, qb_linear *l, const qb_st_tensor *t) {
    qb_i8_weights_fill(&m->kern_i8, t->data, l->out, l->in, l->packed);
    return true;
}

static void release_int8(qb_linear *l) {
    if (!l->packed) return; /* its bind failed */
    qb_i8_weights_free(l->packed);
    free(l->packed);
    l->packed = NULL;
}

static void run_int8(qb_session *s, const qb_linear *l, const qb_linear_io *io) {
    qb_linear_quantize_input(s, l, io);
    qb_gemm_i8_args g = {
        .M = io->rows, .N = l->out, .K = l->in,
        .A = s->qa, .lda = l->in, .a_scale = s->qa_scale, .a_zero = s->qa_zero,
        .W = l->packed, .C = io->y, .ldc = l->out,
        .bias = l->b, .residual = io->residual, .ldr = l->out, .act = io->act,
    };
    qb_gemm_i8(&s->m->kern_i8, &g, s->pool);
}

static size_t no_scratch(const qb_linear *l) { return 0; }

/* Symmetric weights on a grid of r->bits (stored in int8), their scales, an
 * all-zero zero point (for readers that expect one), and the input grid of a
 * static linear. */
static bool quantize_int8(const qb_linear_format *self, qb_st_list *out, const qb_linear *l, const qb_st_tensor *t, const qb_linear_recipe *r) {
    float *w = qb_st_list_f32(out, t), *scale = qb_st_list_alloc(out, (size_t)l->out * sizeof(float));
    int8_t *qw = qb_st_list_alloc(out, (size_t)t->numel), *zero = qb_st_list_alloc(out, (size_t)l->out);
    if (!w || !scale || !qw || !zero) return false;
    qb_quantize_weight_s8(w, l->out, l->in, r->bits, r->per_channel, qw, scale);
    memset(zero, 0, (size_t)l->out);
    for (size_t i = 0; r->dequantized && i < (size_t)t->numel; i++) r->dequantized[i] = qw[i] * scale[i / l->in];
    char name[256];
    int64_t n[1] = {l->out};
    bool ok = qb_st_list_push(out, t->name, QB_I8, 2, t->shape, qw);
    snprintf(name, sizeof name, "%s_scale", t->name);
    ok = ok && qb_st_list_push(out, name, QB_F32, 1, n, scale);
    snprintf(name, sizeof name, "%s_zero_point", t->name);
    ok = ok && qb_st_list_push(out, name, QB_I8, 1, n, zero);
    return ok && (!r->static_input || qb_linear_push_input_grid(out, l, r));
}

const qb_linear_format qb_linear_int8 = {"int8", QB_I8, QB_PREC_INT8, 8, true, bind_int8, pack_int8, no_scratch,
                                         run_int8, release_int8, quantize_int8, QB_EXPORT_INT8, NULL, false};
