/* The fp32 row of the linear format table: weights used in place in the
 * mapping (converted once if stored in another float type or misaligned),
 * and where the kernels read prepacked panels, packed once at load. */
#include "model/linear_format.h"
#include "model/session.h"

static size_t fp32_scratch(const qb_linear *l) { return qb_gemm_f32_pack_floats(); }

/* Weights read in place from the mapping are packed into the kernels'
 * panels, which spares every call packing them (at 25 rows that was a
 * third of the GEMM's time); the mapped bytes then need not stay resident.
 * A converted copy is left as it is rather than held twice. */
static bool bind_fp32(qb_binder *b, qb_linear *l, const qb_st_tensor *t) {
    l->w = qb_binder_f32(b, t, 2, l->out, l->in);
    if (!l->w) return false;
    size_t bytes = qb_gemm_f32_panels_floats(&b->m->kern, l->out, l->in) * sizeof(float);
    if (!bytes || l->w != t->data) return true;
    l->packed = qb_binder_alloc_packed(b, bytes, t->name);
    return l->packed && qb_binder_defer_pack(b, l, t, true);
}

static bool pack_fp32(const qb_model *m, qb_linear *l, const qb_st_tensor *t) {
    (void)t;
    m->kern.gemm_f32_pack_panels(l->w, l->out, l->in, l->packed);
    return true;
}

static void run_fp32(qb_session *s, const qb_linear *l, const qb_linear_io *io) {
    qb_gemm_f32_args g = {
        .M = io->rows, .N = l->out, .K = l->in,
        .A = io->x, .lda = l->in,
        .B = l->w, .ldb = l->in, .b_trans = true,
        .C = io->y, .ldc = l->out,
        .bias = l->b, .residual = io->residual, .ldr = l->out,
        .alpha = 1.0f, .act = io->act, .B_panels = l->packed,
    };
    qb_gemm_f32(&s->m->kern, &g, s->pool, s->pack);
}

/* Written as the input stores it (any float type). */
static bool quantize_fp32(const qb_linear_format *self, qb_st_list *out, const qb_linear *l, const qb_st_tensor *t, const qb_linear_recipe *r) {
    (void)self, (void)l, (void)r;
    return qb_st_list_push(out, t->name, t->dtype, t->ndim, t->shape, t->data);
}

const qb_linear_format qb_linear_fp32 = {"fp32", QB_F32, QB_PREC_FP32, 32, false, bind_fp32, pack_fp32,
                                         fp32_scratch, run_fp32, NULL, quantize_fp32, QB_EXPORT_FLOAT, NULL, false};
