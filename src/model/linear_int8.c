/* The int8 row of the linear format table: per-channel symmetric int8
 * weights packed for the kernel set at load; u8 inputs quantized per call
 * (per token or per tensor) or on a calibrated grid (static); the GEMM
 * dequantizes, adds the bias, the activation and the residual in its
 * epilogue. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/linear_format.h"
#include "model/session.h"
#include "quant/affine.h"

static bool zero_points_zero(qb_binder *b, const qb_linear *l, const qb_st_tensor *t) {
    char zname[256];
    snprintf(zname, sizeof zname, "%s_zero_point", t->name);
    const qb_st_tensor *zp = qb_safetensors_find(&b->m->st, zname);
    bool zero = !zp || (zp->dtype == QB_I8 && zp->numel == l->out);
    for (int64_t i = 0; zp && zero && i < zp->numel; i++) zero = ((const int8_t *)zp->data)[i] == 0;
    if (!zero) qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' must be I8 zeros: int8 weights are symmetric", b->file, zname);
    return zero;
}

/* Static models' linears have calibrated inputs unless "modules" lists
 * them int8-dynamic; a dynamic model's linear may carry one too. */
static bool bind_input_grid(qb_binder *b, qb_linear *l) {
    const qb_quant_config *qc = &b->m->cfg.quant;
    char iname[256];
    snprintf(iname, sizeof iname, "%s.input_scale", l->name);
    bool static_in = qc->method == QB_QUANT_STATIC ? !qb_quant_config_dynamic(qc, l->name)
                                                   : qb_safetensors_find(&b->m->st, iname) != NULL;
    if (!static_in) return true;
    const qb_st_tensor *is = qb_binder_companion(b, l->name, ".input_scale", QB_F32, 1);
    const qb_st_tensor *iz = is ? qb_binder_companion(b, l->name, ".input_zero_point", QB_I32, 1) : NULL;
    if (!iz) return false;
    memcpy(&l->in_scale, is->data, sizeof l->in_scale);
    memcpy(&l->in_zero, iz->data, sizeof l->in_zero);
    if (!(l->in_scale > 0) || !isfinite(l->in_scale) || l->in_zero < 0 || l->in_zero > 255) {
        qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s.input_scale/zero_point' out of range", b->file, l->name);
        return false;
    }
    l->static_input = true;
    return true;
}

/* Scales beside the weights; packed for the kernels now so nothing is
 * converted per call. */
static bool bind_int8(qb_binder *b, qb_linear *l, const qb_st_tensor *t) {
    if (!qb_binder_int8_allowed(b, t)) return false;
    const qb_st_tensor *sc = qb_binder_companion(b, t->name, "_scale", QB_F32, l->out);
    if (!sc || !qb_binder_scales_valid(b, t, sc->data, l->out) || !zero_points_zero(b, l, t) ||
        !bind_input_grid(b, l))
        return false;
    if (l->in > qb_i8_k_max()) {
        qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' has %d inputs; int8 layers take at most %d", b->file, t->name,
                l->in, qb_i8_k_max());
        return false;
    }
    qb_i8_weights *q = calloc(1, sizeof *q);
    float *scale = malloc((size_t)l->out * sizeof *scale);
    if (scale) memcpy(scale, sc->data, (size_t)l->out * sizeof *scale);
    bool ok = q && scale && qb_i8_weights_pack(&b->m->kern_i8, t->data, scale, l->out, l->in, q);
    free(scale);
    if (!ok) {
        free(q);
        qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory packing '%s'", b->file, t->name);
        return false;
    }
    l->packed = q;
    /* the packed copy is all the kernels read: the mapped bytes need not stay resident */
    qb_file_map_release(&b->m->st.map, t->data, t->nbytes);
    qb_binder_register(b, t, NULL);
    return true;
}

static void release_int8(qb_linear *l) {
    if (!l->packed) return; /* its bind failed */
    qb_i8_weights_free(l->packed);
    free(l->packed);
    l->packed = NULL;
}

/* Two linears read the same quantized input if they quantize it alike. */
static bool same_input_grid(const qb_linear *a, const qb_linear *b) {
    if (a->static_input != b->static_input || a->in != b->in) return false;
    return !a->static_input || (a->in_scale == b->in_scale && a->in_zero == b->in_zero);
}

/* Rows go to the threads in equal runs: quantizing is 7% of an int8
 * forward pass, and run on one thread it left the other spinning. */
static void quantize_input(qb_session *s, const qb_linear *l, const float *x, int rows) {
    const qb_kernels_i8 *k = &s->m->kern_i8;
    const qb_quant_config *qc = &s->m->cfg.quant;
    bool fixed = l->static_input || !qc->act_per_token;
    qb_qparams p = {l->in_scale, l->in_zero};
    if (fixed && !l->static_input) p = qb_dynamic_tensor_params(x, (size_t)rows * l->in, qc->act_symmetric);
    int n = l->in, team = rows >= 8 ? s->n_threads : 1;
#pragma omp parallel num_threads(team)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int r0 = (int)((long)rows * t / nt), r1 = (int)((long)rows * (t + 1) / nt);
        const float *xr = x + (size_t)r0 * n;
        uint8_t *qr = s->qa + (size_t)r0 * n;
        if (!fixed) {
            k->quantize_rows(xr, r1 - r0, n, n, qr, n, s->qa_scale + r0, s->qa_zero + r0);
        } else {
            k->quantize_rows_fixed(xr, r1 - r0, n, n, p.scale, p.zero_point, qr, n);
            for (int r = r0; r < r1; r++) {
                s->qa_scale[r] = p.scale;
                s->qa_zero[r] = p.zero_point;
            }
        }
    }
}

static void run_int8(qb_session *s, const qb_linear *l, const qb_linear_io *io) {
    if (!(io->same_input && s->qa_for && same_input_grid(s->qa_for, l))) quantize_input(s, l, io->x, io->rows);
    s->qa_for = l;
    qb_gemm_i8_args g = {
        .M = io->rows, .N = l->out, .K = l->in,
        .A = s->qa, .lda = l->in, .a_scale = s->qa_scale, .a_zero = s->qa_zero,
        .W = l->packed, .C = io->y, .ldc = l->out,
        .bias = l->b, .residual = io->residual, .ldr = l->out, .act = io->act,
    };
    qb_gemm_i8(&s->m->kern_i8, &g, s->n_threads);
}

static size_t no_scratch(void) { return 0; }

static bool push_input_grid(qb_st_list *out, const qb_linear *l, const qb_linear_recipe *r) {
    float *is = qb_st_list_alloc(out, sizeof *is);
    int32_t *iz = qb_st_list_alloc(out, sizeof *iz);
    if (!is || !iz) return false;
    *is = r->in_scale;
    *iz = r->in_zero;
    char name[256];
    int64_t one[1] = {1};
    snprintf(name, sizeof name, "%s.input_scale", l->name);
    bool ok = qb_st_list_push(out, name, QB_F32, 1, one, is);
    snprintf(name, sizeof name, "%s.input_zero_point", l->name);
    return ok && qb_st_list_push(out, name, QB_I32, 1, one, iz);
}

/* Symmetric weights on a grid of r->bits (stored in int8), their scales, an
 * all-zero zero point (for readers that expect one), and the input grid of a
 * static linear. */
static bool quantize_int8(qb_st_list *out, const qb_linear *l, const qb_st_tensor *t, const qb_linear_recipe *r) {
    float *w = qb_st_list_f32(out, t), *scale = qb_st_list_alloc(out, (size_t)l->out * sizeof(float));
    int8_t *qw = qb_st_list_alloc(out, (size_t)t->numel), *zero = qb_st_list_alloc(out, (size_t)l->out);
    if (!w || !scale || !qw || !zero) return false;
    qb_quantize_weight_s8(w, l->out, l->in, r->bits, r->per_channel, qw, scale);
    memset(zero, 0, (size_t)l->out);
    char name[256];
    int64_t n[1] = {l->out};
    bool ok = qb_st_list_push(out, t->name, QB_I8, 2, t->shape, qw);
    snprintf(name, sizeof name, "%s_scale", t->name);
    ok = ok && qb_st_list_push(out, name, QB_F32, 1, n, scale);
    snprintf(name, sizeof name, "%s_zero_point", t->name);
    ok = ok && qb_st_list_push(out, name, QB_I8, 1, n, zero);
    return ok && (!r->static_input || push_input_grid(out, l, r));
}

const qb_linear_format qb_linear_int8 = {"int8", QB_I8, QB_PREC_INT8, 8, true, bind_int8, no_scratch, run_int8,
                                         release_int8, quantize_int8};
