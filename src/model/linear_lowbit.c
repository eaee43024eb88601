/* The low-bit rows of the linear format table: INT4, INT3 and INT2 grids
 * and ternary weights, on u8 inputs (the integer kernels) or weight-only
 * (FP32 inputs), and k-means codebooks (weight-only: centroids are not on
 * a grid).  On disk (docs/quantized-format.md): the weight as U8 rows of
 * packed codes [out, row bytes] (kernels_lowbit.h), "<weight>_scale" FP16
 * [out, groups], "<weight>_zero_point" U8 [out, groups] for asymmetric
 * grids, "<weight>_codebook" FP16 [out, levels] for k-means. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/linear_format.h"
#include "model/session.h"
#include "rounding/gptq.h"
#include "rounding/lowbit.h"

typedef struct {
    qb_linear_format row; /* first: a row pointer is a lowbit_row pointer */
    qb_code code;
    qb_lowbit_kind kind;
    int bits;             /* grid and k-means: 2^bits levels */
} lowbit_row;

static const lowbit_row *lowbit_of(const qb_linear_format *f) { return (const lowbit_row *)f; }

static qb_lowbit_spec spec_of(const lowbit_row *r, int group, bool zero_point) {
    return (qb_lowbit_spec){r->kind, r->bits, group, zero_point, false};
}

static float half_at(const qb_st_tensor *t, int64_t i) {
    uint16_t h;
    memcpy(&h, (const char *)t->data + 2 * i, 2);
    return qb_f16_to_f32(h);
}

/* FP16 values of a companion: all finite, and positive where scales. */
static bool halves_valid(qb_binder *b, const qb_st_tensor *t, bool positive) {
    for (int64_t i = 0; i < t->numel; i++) {
        float f = half_at(t, i);
        if (!isfinite(f) || (positive && !(f > 0))) {
            qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' holds a %s value at %lld", b->file, t->name,
                    positive ? "non-positive or non-finite" : "non-finite", (long long)i);
            return false;
        }
    }
    return true;
}

static float *halves_to_floats(const qb_st_tensor *t) {
    float *f = malloc((size_t)t->numel * sizeof *f);
    for (int64_t i = 0; f && i < t->numel; i++) f[i] = half_at(t, i);
    return f;
}

/* ... as FP32 the model owns. */
static float *bind_halves(qb_binder *b, const qb_st_tensor *t, bool positive) {
    if (!halves_valid(b, t, positive)) return NULL;
    float *f = halves_to_floats(t);
    if (!qb_binder_own(b, f, (size_t)t->numel * sizeof *f)) {
        qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory binding '%s'", b->file, t->name);
        return NULL;
    }
    qb_binder_release(b, t); /* copied: runs never read the mapped bytes */
    return f;
}

/* Whether a grid has zero points as quantization_config says (where it
 * says: older files do not): decoding without them, or with stray ones,
 * would run other weights than were written. */
static bool zero_points_agree(qb_binder *b, const lowbit_row *r, const char *name, bool stored) {
    int said = b->m->cfg.quant.zero_points;
    if (r->kind != QB_LOWBIT_GRID && stored)
        return !qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' gives zero points to %s weights, which have none",
                        b->file, name, r->row.name);
    if (r->kind != QB_LOWBIT_GRID || said < 0 || said == stored) return true;
    return !qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' is %s but quantization_config.weights.zero_points is %s",
                    b->file, name, stored ? "stored" : "missing", said ? "true" : "false");
}

/* Zero points as stored (each a code of the grid), or NULL for
 * symmetric weights, whose zero is the grid's middle (qb_lowbit_zero_point);
 * a linear's row r checks them against the config (tables pass NULL). */
static bool bind_zero(qb_binder *b, const lowbit_row *r, const qb_st_tensor *t, int levels, int64_t n,
                      const uint8_t **out) {
    char name[256];
    snprintf(name, sizeof name, "%s_zero_point", t->name);
    *out = NULL;
    bool present = qb_binder_find(b, name) != NULL;
    if (r && !zero_points_agree(b, r, name, present)) return false;
    if (!present) return true;
    const qb_st_tensor *zp = qb_binder_companion(b, t->name, "_zero_point", QB_U8, n);
    if (!zp) return false;
    const uint8_t *stored = zp->data;
    for (int64_t i = 0; i < n; i++)
        if (stored[i] >= levels) {
            qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' holds zero point %d beyond the grid's %d levels", b->file,
                    name, stored[i], levels);
            return false;
        }
    uint8_t *z = malloc((size_t)n);
    if (!qb_binder_own(b, z, (size_t)n)) {
        qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory binding '%s'", b->file, name);
        return false;
    }
    memcpy(z, stored, (size_t)n);
    qb_binder_release(b, zp);
    *out = z;
    return true;
}

/* Five trits fill 243 of a byte's 256 values: the rest decode to no code. */
static bool trits_valid(qb_binder *b, const qb_st_tensor *t) {
    const uint8_t *p = t->data;
    for (size_t i = 0; i < t->nbytes; i++)
        if (p[i] >= 243) {
            qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' byte %zu (%d) is not five ternary codes", b->file, t->name, i,
                    p[i]);
            return false;
        }
    return true;
}

/* In the registry with its logical [rows, cols] shape: parameters count
 * weights, not bytes. */
static void register_codes(qb_binder *b, const qb_st_tensor *t, int rows, int cols) {
    qb_binder_register(b, t, NULL);
    qb_param *p = &b->m->params[b->m->n_params - 1];
    p->shape[1] = cols;
    p->numel = (int64_t)rows * cols;
}

static bool bind_grid(qb_binder *b, const lowbit_row *r, qb_linear *l, const qb_st_tensor *t, qb_lowbit_weights *w) {
    int group = b->m->cfg.quant.group_size;
    if (group <= 0) {
        qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' is %s but quantization_config.weights.group_size is missing",
                b->file, t->name, r->row.name);
        return false;
    }
    w->group = group < l->in ? group : l->in;
    w->G = (l->in + w->group - 1) / w->group;
    int64_t want = (int64_t)l->out * w->G;
    char name[256];
    snprintf(name, sizeof name, "%s_scale", t->name);
    const qb_st_tensor *sc = qb_binder_find(b, name);
    if (sc && sc->numel != want) {
        qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' holds %lld scales; %d rows in groups of %d inputs (group_size) "
                "need %lld", b->file, name, (long long)sc->numel, l->out, w->group, (long long)want);
        return false;
    }
    sc = qb_binder_companion(b, t->name, "_scale", QB_F16, want);
    if (!sc) return false;
    if (r->row.integer_inputs) { /* read by pack_lowbit */
        if (!halves_valid(b, sc, true)) return false;
        qb_binder_release(b, sc);
    } else if (!(w->scale = bind_halves(b, sc, true))) {
        return false;
    }
    return bind_zero(b, r, t, qb_code_levels(r->code), (int64_t)l->out * w->G, &w->zero);
}

static bool bind_codebook(qb_binder *b, const lowbit_row *r, qb_linear *l, const qb_st_tensor *t,
                          qb_lowbit_weights *w) {
    w->group = l->in;
    w->G = 1;
    const qb_st_tensor *cb = qb_binder_companion(b, t->name, "_codebook", QB_F16, (int64_t)l->out << r->bits);
    w->codebook = cb ? bind_halves(b, cb, false) : NULL;
    return w->codebook != NULL;
}

static bool method_allows(qb_binder *b, const lowbit_row *r, const qb_st_tensor *t) {
    const qb_quant_config *q = &b->m->cfg.quant;
    bool int_inputs = q->method == QB_QUANT_DYNAMIC || q->method == QB_QUANT_STATIC;
    if (q->present && (int_inputs || (!r->row.integer_inputs && q->method == QB_QUANT_WEIGHT_ONLY))) return true;
    qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' is %s, which quantization_config (method %s) cannot run", b->file,
            t->name, r->row.name, q->present ? qb_quant_method_name(q->method) : "none");
    return false;
}

/* W.A8's zsum and plan, and its panels on the model's huge pages. */
static bool alloc_a8(qb_binder *b, const qb_st_tensor *t, qb_lowbit_weights *w) {
    size_t want = qb_lowbit_panels_wanted(w, b->m->kern_lowbit.panel_codes);
    uint8_t *at = want ? qb_binder_alloc_packed(b, want, t->name) : NULL;
    if (want && !at) return false;
    if (qb_lowbit_weights_alloc(w, b->m->kern_lowbit.panel_codes, at)) return true;
    return !qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory binding '%s'", b->file, t->name);
}

static void release_lowbit(qb_linear *l) {
    qb_lowbit_weights *w = l->packed;
    if (!w) return;
    qb_lowbit_weights_free(w);
    if (lowbit_of(l->fmt)->row.integer_inputs) free((float *)w->scale); /* pack_lowbit's */
    free(w);
    l->packed = NULL;
}

static bool bind_lowbit(qb_binder *b, qb_linear *l, const qb_st_tensor *t) {
    const lowbit_row *r = lowbit_of(l->fmt);
    size_t row_bytes = qb_code_row_bytes(r->code, l->in);
    if (!method_allows(b, r, t) || !qb_binder_check_shape(b, t, 2, l->out, (int64_t)row_bytes) ||
        (r->code == QB_CODE_T5 && !trits_valid(b, t)))
        return false;
    qb_lowbit_weights *w = calloc(1, sizeof *w);
    if (!w) {
        qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory binding '%s'", b->file, t->name);
        return false;
    }
    *w = (qb_lowbit_weights){.code = r->code, .N = l->out, .K = l->in, .rows = t->data, .row_bytes = row_bytes};
    bool ok = r->kind == QB_LOWBIT_KMEANS ? bind_codebook(b, r, l, t, w) : bind_grid(b, r, l, t, w);
    if (ok && r->row.integer_inputs) ok = qb_linear_bind_input_grid(b, l) && alloc_a8(b, t, w);
    l->packed = w;
    if (!ok) {
        release_lowbit(l);
        return false;
    }
    /* W.A8: zsum, and the scales where no panels hold them (pack_lowbit) */
    if (r->row.integer_inputs) b->m->held_bytes += (size_t)l->out * (1 + (w->panels ? 0 : w->G)) * sizeof(float);
    b->m->held_bytes += sizeof *w;
    register_codes(b, t, l->out, l->in);
    if (!r->row.integer_inputs) return true;
    /* panels are what the kernels read: the mapped codes need not stay resident */
    return qb_binder_defer_pack(b, l, t, w->panels != NULL);
}

/* W.A8 grids (the only rows packed): their scales are read from the file
 * only now, and dropped once the panels hold them; a copy made at bind
 * would stay on the heap. */
static bool pack_lowbit(const qb_model *m, qb_linear *l, const qb_st_tensor *t) {
    qb_lowbit_weights *w = l->packed;
    char name[256];
    snprintf(name, sizeof name, "%s_scale", t->name);
    w->scale = halves_to_floats(qb_safetensors_find(&m->st, name));
    if (!w->scale) return false;
    bool ok = qb_lowbit_weights_fill(w);
    if (w->panels) {
        free((float *)w->scale);
        w->scale = NULL;
    }
    return ok;
}

static size_t scratch_a8(const qb_linear *l) {
    const qb_lowbit_weights *w = l->packed;
    return (qb_lowbit_scratch_bytes(l->in, w ? w->group : l->in) + 3) / 4;
}

static size_t scratch_f32(const qb_linear *l) { return qb_lowbit_f32_scratch_floats(l->in); }

static void run_a8(qb_session *s, const qb_linear *l, const qb_linear_io *io) {
    qb_linear_quantize_input(s, l, io);
    qb_lowbit_a8_args g = {
        .M = io->rows, .A = s->qa, .lda = l->in, .a_scale = s->qa_scale, .a_zero = s->qa_zero,
        .W = l->packed, .C = io->y, .ldc = l->out,
        .bias = l->b, .residual = io->residual, .ldr = l->out, .act = io->act,
    };
    qb_lowbit_gemm_a8(&s->m->kern_lowbit, &g, s->pool, s->pack);
}

static void run_f32(qb_session *s, const qb_linear *l, const qb_linear_io *io) {
    qb_lowbit_f32_args g = {
        .M = io->rows, .x = io->x, .lda = l->in, .W = l->packed, .C = io->y, .ldc = l->out,
        .bias = l->b, .residual = io->residual, .ldr = l->out, .act = io->act,
    };
    qb_lowbit_gemm_f32(&s->m->kern_lowbit, &s->m->kern, &g, s->pool, s->pack);
}

/* GPTQ where the recipe brings a Hessian that factors, else round to
 * nearest; either way the same arrays. */
static bool choose_codes(const float *w, int N, int K, const qb_lowbit_spec *sp, const qb_linear_recipe *r,
                         uint8_t *codes, uint16_t *scale, uint8_t *zero, uint16_t *codebook, qb_lowbit_error *e) {
    if (r && r->hessian) {
        qb_gptq_params gp = {.damp = r->gptq_damp, .act_order = r->gptq_act_order, .pool = r->pool};
        int dead;
        const char *why;
        if (qb_gptq_quantize(w, N, K, r->hessian, sp, &gp, codes, scale, zero, codebook, e, &dead, &why))
            return true;
        if (r->n_fallbacks) (*r->n_fallbacks)++;
    }
    return qb_lowbit_quantize(w, N, K, sp, codes, scale, zero, codebook, e, r ? r->pool : NULL);
}

/* t [N, K] quantized as sp (and r, for a linear) says and packed as code:
 * pushes the codes [N, row bytes], the scales (or centroids) as a table of
 * `companion_dims` dimensions ([N] or [N, groups]) and the zero points
 * when sp has them; *e gets the squared errors. */
static bool push_codes(qb_st_list *out, const qb_st_tensor *t, int N, int K, qb_code code, const qb_lowbit_spec *sp,
                       const qb_linear_recipe *r, int companion_dims, qb_lowbit_error *e) {
    bool km = sp->kind == QB_LOWBIT_KMEANS;
    int G = qb_lowbit_groups(sp, K), per_row = km ? qb_lowbit_levels(sp) : G;
    size_t rb = qb_code_row_bytes(code, K);
    float *w = qb_st_list_f32(out, t);
    uint8_t *codes = malloc((size_t)N * K), *packed = qb_st_list_alloc(out, (size_t)N * rb);
    uint8_t *zero = qb_st_list_alloc(out, (size_t)N * G);
    uint16_t *scale = qb_st_list_alloc(out, (size_t)N * per_row * 2);
    bool ok = w && codes && packed && zero && scale &&
              choose_codes(w, N, K, sp, r, codes, km ? NULL : scale, zero, km ? scale : NULL, e);
    for (int n = 0; ok && n < N; n++) qb_code_pack_row(code, codes + (size_t)n * K, K, packed + (size_t)n * rb);
    if (ok && r && r->dequantized) qb_lowbit_decode(codes, N, K, sp, scale, zero, scale, r->dequantized);
    free(codes);
    char name[256];
    int64_t shape[2] = {N, (int64_t)rb}, table[2] = {N, per_row};
    ok = ok && qb_st_list_push(out, t->name, QB_U8, 2, shape, packed);
    snprintf(name, sizeof name, "%s%s", t->name, km ? "_codebook" : "_scale");
    ok = ok && qb_st_list_push(out, name, QB_F16, companion_dims, table, scale);
    snprintf(name, sizeof name, "%s_zero_point", t->name);
    return ok && (!sp->zero_point || qb_st_list_push(out, name, QB_U8, companion_dims, table, zero));
}

/* Weights as the codes' tensors and their companions, from FP32. */
static bool quantize_lowbit(const qb_linear_format *self, qb_st_list *out, const qb_linear *l,
                            const qb_st_tensor *t, const qb_linear_recipe *r) {
    const lowbit_row *row = lowbit_of(self);
    qb_lowbit_spec sp = spec_of(row, r->group, r->zero_point && row->kind == QB_LOWBIT_GRID);
    sp.per_tensor = !r->per_channel;
    qb_lowbit_error e;
    bool ok = push_codes(out, t, l->out, l->in, row->code, &sp, r, 2, &e);
    if (ok && r->error) r->error->err += e.err, r->error->signal += e.signal, r->error->grid_err += e.grid_err;
    return ok && (!r->static_input || qb_linear_push_input_grid(out, l, r));
}

/* Embedding tables at 4 or 2 bits: each row its own FP16 scale on the
 * symmetric grid, bound and written as a linear's weight with one group
 * per row would be. */
static qb_code table_code(int bits) { return bits == 4 ? QB_CODE_U4 : QB_CODE_U2; }

qb_lowbit_weights *qb_lowbit_bind_table(qb_binder *b, const qb_st_tensor *t, int bits, int rows, int cols) {
    if (bits != 4 && bits != 2) {
        qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' is packed (U8) but quantization_config.embeddings is not "
                "int4-rowwise or int2-rowwise", b->file, t->name);
        return NULL;
    }
    qb_code code = table_code(bits);
    size_t rb = qb_code_row_bytes(code, cols);
    const qb_st_tensor *sc = qb_binder_check_shape(b, t, 2, rows, (int64_t)rb)
                                 ? qb_binder_companion(b, t->name, "_scale", QB_F16, rows) : NULL;
    const float *scale = sc ? bind_halves(b, sc, true) : NULL;
    const uint8_t *zero = NULL;
    if (!scale || !bind_zero(b, NULL, t, qb_code_levels(code), rows, &zero)) return NULL;
    qb_lowbit_weights *w = malloc(sizeof *w);
    if (!qb_binder_own(b, w, sizeof *w)) {
        qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory", b->file);
        return NULL;
    }
    *w = (qb_lowbit_weights){.code = code, .N = rows, .K = cols, .group = cols, .G = 1, .rows = t->data,
                             .row_bytes = rb, .scale = scale, .zero = zero};
    register_codes(b, t, rows, cols);
    return w;
}

bool qb_lowbit_push_table(qb_st_list *out, const qb_st_tensor *t, int bits) {
    int K = (int)t->shape[1];
    qb_lowbit_spec sp = {QB_LOWBIT_GRID, bits, K, false, false};
    qb_lowbit_error e;
    return push_codes(out, t, (int)t->shape[0], K, table_code(bits), &sp, NULL, 1, &e);
}

#define LOWBIT_ROW(id, nm, bits_on_disk, ints, scratch, runner, cd, kd, b, ...) /* ...: onnx, onnx_refusal */    \
    static const lowbit_row id = {{nm, QB_U8, QB_PREC_LOWBIT, bits_on_disk, ints, bind_lowbit, pack_lowbit,      \
                                   scratch, runner, release_lowbit, quantize_lowbit, __VA_ARGS__,                   \
                                   (kd) != QB_LOWBIT_KMEANS},                                                       \
                                  cd, kd, b}

/* ONNX Runtime's MatMulNBits takes 4-bit grids; nothing in ONNX takes the others. */
#define NO_OP(what) QB_EXPORT_NONE, what " weights have no ONNX operator (MatMulNBits takes 4-bit grids)"
#define KMEANS QB_EXPORT_NONE, "k-means codebooks are not on a grid, and ONNX operators take grids"

LOWBIT_ROW(int4, "int4", 4, true, scratch_a8, run_a8, QB_CODE_U4, QB_LOWBIT_GRID, 4, QB_EXPORT_NBITS, NULL);
LOWBIT_ROW(int3, "int3", 3, true, scratch_a8, run_a8, QB_CODE_U3, QB_LOWBIT_GRID, 3, NO_OP("3-bit"));
LOWBIT_ROW(int2, "int2", 2, true, scratch_a8, run_a8, QB_CODE_U2, QB_LOWBIT_GRID, 2, NO_OP("2-bit"));
LOWBIT_ROW(ternary, "ternary", 1.6f, true, scratch_a8, run_a8, QB_CODE_T5, QB_LOWBIT_TERNARY, 2, NO_OP("ternary"));
LOWBIT_ROW(int4_wo, "int4-weight-only", 4, false, scratch_f32, run_f32, QB_CODE_U4, QB_LOWBIT_GRID, 4, QB_EXPORT_NBITS,
           NULL);
LOWBIT_ROW(int3_wo, "int3-weight-only", 3, false, scratch_f32, run_f32, QB_CODE_U3, QB_LOWBIT_GRID, 3,
           NO_OP("3-bit"));
LOWBIT_ROW(int2_wo, "int2-weight-only", 2, false, scratch_f32, run_f32, QB_CODE_U2, QB_LOWBIT_GRID, 2,
           NO_OP("2-bit"));
LOWBIT_ROW(ternary_wo, "ternary-weight-only", 1.6f, false, scratch_f32, run_f32, QB_CODE_T5, QB_LOWBIT_TERNARY, 2,
           NO_OP("ternary"));
LOWBIT_ROW(kmeans4, "kmeans4", 4, false, scratch_f32, run_f32, QB_CODE_U4, QB_LOWBIT_KMEANS, 4, KMEANS);
LOWBIT_ROW(kmeans3, "kmeans3", 3, false, scratch_f32, run_f32, QB_CODE_U3, QB_LOWBIT_KMEANS, 3, KMEANS);
LOWBIT_ROW(kmeans2, "kmeans2", 2, false, scratch_f32, run_f32, QB_CODE_U2, QB_LOWBIT_KMEANS, 2, KMEANS);

const qb_linear_format *const qb_linear_lowbit_rows[] = {
    &int4.row, &int3.row, &int2.row, &ternary.row, &int4_wo.row, &int3_wo.row,
    &int2_wo.row, &ternary_wo.row, &kmeans4.row, &kmeans3.row, &kmeans2.row,
};
const int qb_linear_lowbit_count = sizeof qb_linear_lowbit_rows / sizeof *qb_linear_lowbit_rows;
