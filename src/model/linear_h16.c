/* The fp16 and bf16 rows of the linear format table: weights stay 16-bit,
 * widened per cache block inside the GEMM (or, for the BF16 dot path,
 * packed in pairs once at load). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/linear_format.h"
#include "model/session.h"

/* Used in place in the mapping, copied only if the file puts them at an
 * odd offset. */
static size_t h16_scratch(const qb_linear *l) { return qb_gemm_h16_pack_floats(); }

static bool bind_h16(qb_binder *b, qb_linear *l, const qb_st_tensor *t) {
    if (!qb_binder_check_shape(b, t, 2, l->out, l->in)) return false;
    if (l->in > QB_H16_K_MAX) {
        qb_fail(b->err, QB_ERR_UNSUPPORTED, "%s: '%s' has %d inputs; half-precision linears take at most %d",
                b->file, t->name, l->in, QB_H16_K_MAX);
        return false;
    }
    const uint16_t *w = t->data;
    if ((uintptr_t)w & 1) {
        uint16_t *copy = malloc(t->nbytes);
        if (copy) memcpy(copy, t->data, t->nbytes);
        w = qb_binder_own(b, copy, t->nbytes) ? copy : NULL;
    }
    qb_h16_weights *h = calloc(1, sizeof *h);
    qb_h16_type type = t->dtype == QB_BF16 ? QB_H16_BF16 : QB_H16_F16;
    if (!qb_binder_own(b, h, sizeof *h) || !w || !qb_h16_weights_alloc(&b->m->kern, w, type, l->out, l->in, h) ||
        (h->pairs && !qb_binder_own(b, h->pairs, h->pairs_bytes))) {
        qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory binding '%s'", b->file, t->name);
        return false;
    }
    l->packed = h;
    qb_binder_register(b, t, NULL);
    /* where the kernels read only the packed pairs, the rows are released
     * (a later read of them, by training, faults them back in) */
    return !h->pairs || qb_binder_defer_pack(b, l, t, !qb_h16_weights_rows_needed(h));
}

static bool pack_h16(const qb_model *m, qb_linear *l, const qb_st_tensor *t) {
    (void)m, (void)t;
    qb_h16_weights_fill(l->packed);
    return true;
}

static void run_h16(qb_session *s, const qb_linear *l, const qb_linear_io *io) {
    qb_gemm_h16_args g = {
        .M = io->rows, .A = io->x, .lda = l->in, .W = l->packed,
        .C = io->y, .ldc = l->out,
        .bias = l->b, .residual = io->residual, .ldr = l->out, .act = io->act,
    };
    qb_gemm_h16(&s->m->kern, &g, s->pool, s->pack);
}

static bool quantize_f16(const qb_linear_format *self, qb_st_list *out, const qb_linear *l, const qb_st_tensor *t, const qb_linear_recipe *r) {
    (void)self, (void)l, (void)r;
    return qb_st_list_push_half(out, t, QB_F16);
}

static bool quantize_bf16(const qb_linear_format *self, qb_st_list *out, const qb_linear *l, const qb_st_tensor *t, const qb_linear_recipe *r) {
    (void)self, (void)l, (void)r;
    return qb_st_list_push_half(out, t, QB_BF16);
}

const qb_linear_format qb_linear_fp16 = {"fp16", QB_F16, QB_PREC_FP16, 16, false, bind_h16, pack_h16, h16_scratch,
                                         run_h16, NULL, quantize_f16, QB_EXPORT_FLOAT, NULL, false};
const qb_linear_format qb_linear_bf16 = {"bf16", QB_BF16, QB_PREC_BF16, 16, false, bind_h16, pack_h16, h16_scratch,
                                         run_h16, NULL, quantize_bf16, QB_EXPORT_FLOAT, NULL, false};
