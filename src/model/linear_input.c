/* The u8 inputs of the rows that run on integer inputs (int8 and the
 * low-bit grids): per call (dynamic, per token or per tensor) or on a grid
 * calibrated at quantization time (static), one quantizer for all. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "model/linear_format.h"
#include "model/session.h"
#include "rounding/affine.h"

/* SmoothQuant's per-channel factors, where the quantizer wrote them. */
static bool bind_smoothing(qb_binder *b, qb_linear *l) {
    char name[256];
    snprintf(name, sizeof name, "%s.input_smooth", l->name);
    if (!qb_binder_find(b, name)) return true;
    const qb_st_tensor *t = qb_binder_companion(b, l->name, ".input_smooth", QB_F32, l->in);
    if (!t || !qb_binder_positive(b, t)) return false;
    /* a copy, not a registered parameter: info counts the model's weights */
    l->in_smooth = qb_binder_f32_copy(b, t);
    if (!l->in_smooth) {
        qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory reading '%s'", b->file, t->name);
        return false;
    }
    qb_binder_release(b, t);
    return true;
}

/* Static models' linears have calibrated inputs unless "modules" lists
 * them int8-dynamic; a dynamic model's linear may carry one too. */
bool qb_linear_bind_input_grid(qb_binder *b, qb_linear *l) {
    const qb_quant_config *qc = &b->m->cfg.quant;
    char iname[256];
    snprintf(iname, sizeof iname, "%s.input_scale", l->name);
    bool static_in = qc->method == QB_QUANT_STATIC ? !qb_quant_config_dynamic(qc, l->name)
                                                   : qb_binder_find(b, iname) != NULL;
    if (!static_in) return true;
    const qb_st_tensor *is = qb_binder_companion(b, l->name, ".input_scale", QB_F32, 1);
    const qb_st_tensor *iz = is ? qb_binder_companion(b, l->name, ".input_zero_point", QB_I32, 1) : NULL;
    if (!iz) return false;
    memcpy(&l->in_scale, is->data, sizeof l->in_scale);
    memcpy(&l->in_zero, iz->data, sizeof l->in_zero);
    qb_binder_release(b, is);
    qb_binder_release(b, iz);
    if (!(l->in_scale > 0) || !isfinite(l->in_scale) || l->in_zero < 0 || l->in_zero > 255) {
        qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s.input_scale/zero_point' out of range", b->file, l->name);
        return false;
    }
    l->static_input = true;
    return bind_smoothing(b, l);
}

bool qb_linear_push_input_grid(qb_st_list *out, const qb_linear *l, const qb_linear_recipe *r) {
    float *is = qb_st_list_alloc(out, sizeof *is);
    int32_t *iz = qb_st_list_alloc(out, sizeof *iz);
    if (!is || !iz) return false;
    *is = r->in_scale;
    *iz = r->in_zero;
    char name[256];
    int64_t one[1] = {1}, in[1] = {l->in};
    snprintf(name, sizeof name, "%s.input_scale", l->name);
    bool ok = qb_st_list_push(out, name, QB_F32, 1, one, is);
    snprintf(name, sizeof name, "%s.input_zero_point", l->name);
    ok = ok && qb_st_list_push(out, name, QB_I32, 1, one, iz);
    snprintf(name, sizeof name, "%s.input_smooth", l->name);
    return ok && (!r->in_smooth || qb_st_list_push(out, name, QB_F32, 1, in, r->in_smooth));
}

/* Two linears read the same quantized input if they quantize it alike. */
static bool same_input_grid(const qb_linear *a, const qb_linear *b) {
    if (a->static_input != b->static_input || a->in != b->in || !a->in_smooth != !b->in_smooth) return false;
    if (a->in_smooth && memcmp(a->in_smooth, b->in_smooth, (size_t)a->in * sizeof *a->in_smooth)) return false;
    return !a->static_input || (a->in_scale == b->in_scale && a->in_zero == b->in_zero);
}

/* x_j * in_smooth[j], a row at a time through thread t's scratch, onto
 * the fixed grid p. */
static void smooth_rows(qb_session *s, const qb_linear *l, int t, const float *x, int rows, qb_qparams p,
                        uint8_t *q) {
    float *row = s->smooth_row + (size_t)t * s->smooth_stride;
    int n = l->in;
    for (int r = 0; r < rows; r++) {
        for (int j = 0; j < n; j++) row[j] = x[(size_t)r * n + j] * l->in_smooth[j];
        s->m->kern_i8.quantize_rows_fixed(row, 1, n, n, p.scale, p.zero_point, q + (size_t)r * n, n);
    }
}

typedef struct {
    qb_session *s;
    const qb_linear *l;
    const float *x;
    bool fixed;    /* one grid, p, for every row */
    qb_qparams p;
} quantize_job;

static void quantize_rows(void *ctx, long r0, long r1, int t) {
    const quantize_job *j = ctx;
    qb_session *s = j->s;
    const qb_kernels_i8 *k = &s->m->kern_i8;
    int n = j->l->in, rows = (int)(r1 - r0);
    const float *xr = j->x + (size_t)r0 * n;
    uint8_t *qr = s->qa + (size_t)r0 * n;
    if (!j->fixed) {
        k->quantize_rows(xr, rows, n, n, qr, n, s->qa_scale + r0, s->qa_zero + r0);
        return;
    }
    if (j->l->in_smooth) smooth_rows(s, j->l, t, xr, rows, j->p, qr);
    else k->quantize_rows_fixed(xr, rows, n, n, j->p.scale, j->p.zero_point, qr, n);
    for (long r = r0; r < r1; r++) {
        s->qa_scale[r] = j->p.scale;
        s->qa_zero[r] = j->p.zero_point;
    }
}

/* Rows go to the threads in runs: quantizing is 7% of an int8 forward
 * pass, and run on one thread it left the other waiting. */
static void quantize_input(qb_session *s, const qb_linear *l, const float *x, int rows) {
    const qb_quant_config *qc = &s->m->cfg.quant;
    quantize_job j = {s, l, x, l->static_input || !qc->act_per_token, {l->in_scale, l->in_zero}};
    if (j.fixed && !l->static_input) j.p = qb_dynamic_tensor_params(x, (size_t)rows * l->in, qc->act_symmetric);
    qb_pool_for(s->pool, rows, 4, quantize_rows, &j);
}

void qb_linear_quantize_input(qb_session *s, const qb_linear *l, const qb_linear_io *io) {
    if (!(io->same_input && s->qa_for && same_input_grid(s->qa_for, l))) quantize_input(s, l, io->x, io->rows);
    s->qa_for = l;
}
