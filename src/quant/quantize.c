/* qb_quantize: turns a loaded FP32 model into a quantized model directory
 * (config.json with a quantization_config block, model.safetensors with
 * int8 or half weights and their scales, the tokenizer files).  The layout
 * is documented in docs/quantized-format.md. */
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/escape.h"
#include "core/fs.h"
#include "model/linear_format.h"
#include "quant/calibrate.h"
#include "quant/compensate.h"
#include "rounding/lowbit.h"
#include "quant/quantize.h"

qb_quant_params qb_quant_default_params(qb_quant_method method) {
    qb_quant_params p = {
        .method = method, .per_channel = 1, .act_per_token = method == QB_QUANT_DYNAMIC,
        .bits = 8, .calib_n = 512, .observer = "percentile:99.99", .max_length = 0,
        .smooth_alpha = 0.5f, .gptq_damp = 0.01,
    };
    return p;
}

static bool is_int8_method(qb_quant_method m) { return m == QB_QUANT_DYNAMIC || m == QB_QUANT_STATIC; }
static bool is_half_method(qb_quant_method m) { return m == QB_QUANT_FP16 || m == QB_QUANT_BF16; }
/* Packed low-bit weights; QAT's 5..7-bit grids stay int8 (qb_quantize_into). */
static bool is_lowbit(const qb_quant_params *p) { return p->ternary || p->kmeans || p->bits <= 4; }

/* The classifier stays FP32 unless asked: it is tiny, and its logits are
 * what every metric reads.  The pooler is an ordinary linear layer. */
static bool is_classifier(const qb_model *m, const qb_linear *l) { return l == &m->classifier; }

/* What a linear becomes: a row of the format table, and for formats on
 * integer inputs whether those are calibrated (static).  "int8" in a map
 * means the method's own inputs; "int8-dynamic" and "int8-static" mix the
 * two in one model. */
typedef struct {
    const qb_linear_format *fmt;
    bool static_input;
} plan_entry;

/* The row --method and --bits (--ternary, --kmeans) name. */
static plan_entry method_format(const qb_quant_params *p, bool packed) {
    char name[32];
    bool wo = p->method == QB_QUANT_WEIGHT_ONLY;
    if (is_half_method(p->method)) snprintf(name, sizeof name, "%s", p->method == QB_QUANT_FP16 ? "fp16" : "bf16");
    else if (p->kmeans) snprintf(name, sizeof name, "kmeans%d", p->bits);
    else if (p->ternary) snprintf(name, sizeof name, "ternary%s", wo ? "-weight-only" : "");
    else if (packed && is_lowbit(p)) snprintf(name, sizeof name, "int%d%s", p->bits, wo ? "-weight-only" : "");
    else snprintf(name, sizeof name, "int8");
    return (plan_entry){qb_linear_format_named(name), p->method == QB_QUANT_STATIC};
}

static bool parse_plan(const qb_quant_params *p, const char *s, plan_entry *out) {
    char inputs;
    const qb_linear_format *f = qb_linear_format_parse(s, &inputs);
    if (!f) return false;
    bool method_static = p->method == QB_QUANT_STATIC;
    *out = (plan_entry){f, inputs == 's' || (f->integer_inputs && inputs != 'd' && method_static)};
    return true;
}

static const char *plan_name(const qb_quant_params *p, plan_entry e, char *buf, size_t cap) {
    bool own = !e.fmt->integer_inputs || e.static_input == (p->method == QB_QUANT_STATIC);
    snprintf(buf, cap, "%s%s", e.fmt->name, own ? "" : e.static_input ? "-static" : "-dynamic");
    return buf;
}

/* {"<linear name or glob>": "fp32|fp16|bf16|int8|int8-dynamic|int8-static"};
 * every key must match some linear, so a typo cannot silently do nothing. */
static qb_status apply_precision_map(const qb_model *m, const qb_quant_params *p, plan_entry *plan, qb_error *err) {
    const char *path = p->precision_map;
    json_t *j = NULL;
    qb_status st = qb_json_load_object(path, &j, err);
    if (st) return st;
    const char *key;
    const json_t *v;
    json_object_foreach(j, key, v) {
        const char *val = qb_json_str(v, NULL);
        plan_entry fmt = {qb_linear_format_named("fp32"), false};
        int hits = 0;
        if (!val || !parse_plan(p, val, &fmt)) {
            st = qb_fail(err, QB_ERR_FORMAT,
                         "%s: value for '%s' must be a format (fp32, fp16, bf16, int8, int4, int3, int2, ternary, "
                         "kmeans4..2, '-weight-only' variants; '-dynamic'/'-static' for u8 inputs)", path, key);
            break;
        }
        for (int l = 0; l < m->n_linears; l++)
            if (!fnmatch(key, m->linears[l]->name, 0)) plan[l] = fmt, hits++;
        if (!hits) {
            st = qb_fail(err, QB_ERR_FORMAT, "%s: '%s' matches no linear layer of the model", path, key);
            break;
        }
    }
    json_decref(j);
    return st;
}

static bool plan_has_static(const qb_model *m, const plan_entry *plan) {
    for (int i = 0; i < m->n_linears; i++)
        if (plan[i].static_input) return true;
    return false;
}

static qb_status plan_precisions(const qb_model *m, const qb_quant_params *p, bool packed, plan_entry *plan,
                                 qb_error *err) {
    plan_entry base = method_format(p, packed), fp32 = {qb_linear_format_named("fp32"), false};
    if (!base.fmt) return qb_fail(err, QB_ERR_ARG, "no weight format for these options");
    for (int i = 0; i < m->n_linears; i++) {
        const qb_linear *l = m->linears[i];
        plan[i] = base;
        if (!is_half_method(p->method) && is_classifier(m, l) && !p->quantize_head) plan[i] = fp32;
    }
    for (int k = 0; k < p->n_keep; k++) {
        bool hit = false;
        for (int i = 0; i < m->n_linears && !hit; i++) hit = !fnmatch(p->keep[k], m->linears[i]->name, 0);
        if (!hit) return qb_fail(err, QB_ERR_ARG, "--keep '%s' matches no linear layer of the model", p->keep[k]);
    }
    qb_status st = p->precision_map ? apply_precision_map(m, p, plan, err) : QB_OK;
    /* --keep last: a layer the user protects by name is never quantized by a map's wildcard */
    for (int i = 0; i < m->n_linears; i++)
        for (int k = 0; k < p->n_keep; k++)
            if (!fnmatch(p->keep[k], m->linears[i]->name, 0)) plan[i] = fp32;
    for (int i = 0; !st && i < m->n_linears; i++)
        if (plan[i].fmt->integer_inputs && !is_int8_method(p->method))
            st = qb_fail(err, QB_ERR_ARG, "%s%s for '%s' runs on u8 inputs, which --method %s does not quantize: use "
                         "--method dynamic or static (a map's -weight-only formats keep FP32 inputs there)",
                         plan[i].fmt->name, plan[i].static_input ? "-static" : "-dynamic", m->linears[i]->name,
                         qb_quant_method_name(p->method));
    return st;
}

typedef struct {
    const qb_model *m;
    const json_t *config;           /* the config.json to extend; NULL: m->dir's */
    const qb_quant_params *p;
    const plan_entry *plan;
    const qb_calib *calib;
    qb_observer_method observer;
    const qb_qparams *fixed_inputs; /* QAT: each linear's trained input scale (by id) */
    const char *observer_label;     /* what the config names as the observer */
    qb_quant_report *rep;
    bool packed;                    /* low-bit weights packed (not QAT's int8 narrow grids) */
    float **in_smooth;              /* [n_linears]: SmoothQuant's input factors, or NULL */
    float **smoothed;               /* [n_linears]: the weights times 1/in_smooth, or NULL */
    float **bias;                   /* [n_linears]: corrected biases, or NULL */
    bool *done;                     /* [n_linears]: stored by compensation already */
    qb_pool *pool;                  /* threads of the weight quantizers and compensation */
} quant_job;

/* reduce_range drops one bit of an 8-bit grid; a narrower grid is asked for. */
static int weight_bits(const qb_quant_params *p) { return p->reduce_range && p->bits == 8 ? 7 : p->bits; }

/* The input grid of a static linear: trained (QAT) or from calibration. */
static qb_qparams input_grid(const quant_job *q, const qb_linear *l) {
    if (q->fixed_inputs) return q->fixed_inputs[l->id];
    qb_qscheme act = {.is_signed = false, .symmetric = q->p->act_symmetric, .reduce_range = q->p->reduce_range};
    float lo, hi;
    qb_observer_range(&q->calib->stats[l->id], &q->observer, &act, &lo, &hi);
    return qb_qparams_from_range(&act, lo, hi);
}

/* Weight errors of the low-bit linears, summed for the report. */
typedef struct {
    qb_lowbit_error all, codebooks;
    double worst_margin_db;
    int n_below_grid;
} weight_errors;

static void add_error(weight_errors *w, const qb_lowbit_error *e) {
    w->all.err += e->err, w->all.signal += e->signal;
    if (e->grid_err <= 0) return;
    w->codebooks.err += e->err, w->codebooks.signal += e->signal, w->codebooks.grid_err += e->grid_err;
    double margin = qb_lowbit_sqnr_db(e->signal, e->err) - qb_lowbit_sqnr_db(e->signal, e->grid_err);
    if (margin < w->worst_margin_db) w->worst_margin_db = margin;
    w->n_below_grid += e->err > e->grid_err;
}

static int group_size(const qb_quant_params *p, const qb_linear *l) {
    return p->group_size < 0 ? l->in : p->group_size ? p->group_size : 128;
}

/* Stores linear l from weight tensor t, or from w (FP32) where that is
 * not NULL; hessian and dequantized as the recipe has them. */
static bool push_linear(qb_st_list *o, const quant_job *q, const qb_linear *l, const qb_st_tensor *t,
                        const float *w, double *hessian, float *dequantized, weight_errors *we) {
    plan_entry e = q->plan[l->id];
    qb_lowbit_error err = {0};
    qb_linear_recipe r = {.bits = weight_bits(q->p), .per_channel = q->p->per_channel, .static_input = e.static_input,
                          .group = group_size(q->p, l), .zero_point = q->p->weight_zero_point, .error = &err,
                          .in_smooth = q->in_smooth ? q->in_smooth[l->id] : NULL, .hessian = hessian,
                          .gptq_damp = q->p->gptq_damp, .gptq_act_order = q->p->gptq_act_order,
                          .dequantized = dequantized, .n_fallbacks = &q->rep->n_gptq_fallbacks, .pool = q->pool};
    if (e.static_input) {
        qb_qparams g = input_grid(q, l);
        r.in_scale = g.scale;
        r.in_zero = g.zero_point;
    }
    qb_st_tensor tw = *t;
    if (w) tw.data = w, tw.dtype = QB_F32, tw.nbytes = (size_t)t->numel * sizeof *w, tw.aligned = true;
    bool ok = e.fmt->quantize(e.fmt, o, l, &tw, &r);
    if (ok && err.signal > 0) add_error(we, &err);
    return ok;
}

/* Word embeddings: 8 bits unless asked, or the weights' own low bits. */
static int embedding_bits(const qb_quant_params *p, bool packed) {
    if (p->embedding_bits) return p->embedding_bits;
    if (!packed) return 8;
    return p->ternary || p->bits == 2 ? 2 : 4;
}

static bool push_int8_rows(qb_st_list *o, const qb_st_tensor *t) {
    int rows = (int)t->shape[0], cols = (int)t->shape[1];
    float *w = qb_st_list_f32(o, t), *scale = qb_st_list_alloc(o, (size_t)rows * sizeof(float));
    int8_t *qw = qb_st_list_alloc(o, (size_t)t->numel);
    if (!w || !scale || !qw) return false;
    qb_quantize_rows_symmetric_s8(w, rows, cols, qw, scale);
    char name[256];
    int64_t n[1] = {rows};
    snprintf(name, sizeof name, "%s_scale", t->name);
    return qb_st_list_push(o, t->name, QB_I8, 2, t->shape, qw) && qb_st_list_push(o, name, QB_F32, 1, n, scale);
}

/* int8 attention: the calibrated grids of what Q, K and V output (Q on the
 * activations' u8 scheme, K and V symmetric s8), for the q/k/v linear l of
 * a block; other linears write nothing. */
static bool push_attention_scales(qb_st_list *o, const quant_job *q, const qb_linear *l) {
    char role = qb_model_attention_input(q->m, l);
    bool is_kv = role == 'k' || role == 'v';
    if (!role) return true;
    qb_qscheme sch = {.is_signed = is_kv, .symmetric = is_kv || q->p->act_symmetric,
                      .reduce_range = !is_kv && q->p->reduce_range};
    float lo, hi, *scale = qb_st_list_alloc(o, sizeof *scale);
    int32_t *zero = is_kv ? NULL : qb_st_list_alloc(o, sizeof *zero);
    if (!scale || (!is_kv && !zero)) return false;
    qb_observer_range(&q->calib->out_stats[l->id], &q->observer, &sch, &lo, &hi);
    qb_qparams qp = qb_qparams_from_range(&sch, lo, hi);
    *scale = qp.scale;
    char name[256];
    int64_t one[1] = {1};
    snprintf(name, sizeof name, "%s.output_scale", l->name);
    if (!qb_st_list_push(o, name, QB_F32, 1, one, scale)) return false;
    if (is_kv) return true; /* symmetric s8: zero point 0 */
    *zero = qp.zero_point;
    snprintf(name, sizeof name, "%s.output_zero_point", l->name);
    return qb_st_list_push(o, name, QB_I32, 1, one, zero);
}

/* The linear whose tensor `tensor` is: "<linear name><suffix>". */
static const qb_linear *linear_of(const qb_model *m, const char *tensor, const char *suffix) {
    size_t n = strlen(tensor), k = strlen(suffix);
    if (n < k || strcmp(tensor + n - k, suffix)) return NULL;
    for (int i = 0; i < m->n_linears; i++)
        if (strlen(m->linears[i]->name) == n - k && !strncmp(m->linears[i]->name, tensor, n - k)) return m->linears[i];
    return NULL;
}

typedef struct {
    qb_st_list *o;
    quant_job *q;
    weight_errors *we;
} comp_ctx;

static bool push_compensated(void *ctx, const qb_linear *l, const float *w, double *hessian, float *dequantized) {
    comp_ctx *c = ctx;
    char name[128];
    snprintf(name, sizeof name, "%s.weight", l->name);
    const qb_st_tensor *t = qb_safetensors_find(&c->q->m->st, name);
    c->q->done[l->id] = t && push_linear(c->o, c->q, l, t, w, hessian, dequantized, c->we);
    return c->q->done[l->id];
}

/* GPTQ and bias correction store the linears first, in graph order. */
static qb_status compensate(quant_job *q, qb_st_list *o, weight_errors *we, qb_error *err) {
    const qb_model *m = q->m;
    bool *which = calloc((size_t)m->n_linears, sizeof *which);
    if (!which) return qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory");
    for (int i = 0; i < m->n_linears; i++) which[i] = q->plan[i].fmt->precision != QB_PREC_FP32;
    comp_ctx c = {o, q, we};
    qb_comp_job job = {.pool = q->pool, .which = which, .in_smooth = (const float *const *)q->in_smooth,
                       .weights = (const float *const *)q->smoothed, .gptq = q->p->gptq,
                       .bias_correction = q->p->bias_correction, .push = push_compensated, .ctx = &c,
                       .note = q->rep->warning, .note_size = sizeof q->rep->warning,
                       .texts_used = &q->rep->calib_used};
    qb_status st = qb_compensate(m, q->p, &job, q->bias, err);
    free(which);
    return st;
}

/* What the quantizer made is finite: FP16 values, scales and centroids stop
 * at 65504, and a weight past that would be written as an infinity, which
 * no load accepts.  (Tensors passed through were checked at load.) */
static qb_status check_made_finite(const qb_model *m, const qb_st_list *o, qb_error *err) {
    const char *in = (const char *)m->st.map.data, *in_end = in + m->st.map.size;
    for (int k = 0; k < o->n; k++) {
        const qb_st_write_tensor *w = &o->t[k];
        const qb_dtype_traits *tr = qb_dtype_traits_of(w->dtype);
        int64_t n = 1;
        for (int d = 0; d < w->ndim; d++) n *= w->shape[d];
        if (!tr->exp_mask || !n || ((const char *)w->data >= in && (const char *)w->data < in_end)) continue;
        if (m->kern.find_nonfinite(w->data, n, (int)tr->size, tr->exp_mask) >= 0)
            return qb_fail(err, QB_ERR_NUMERIC, "quantize: '%s' would hold an infinity (%s stops at 65504): keep "
                           "that linear in FP32 (--keep) or use bf16", w->name, tr->name);
    }
    return QB_OK;
}

/* What each input tensor becomes. */
static qb_status build_tensors(quant_job *q, qb_st_list *o, qb_error *err) {
    const qb_model *m = q->m;
    const qb_quant_params *p = q->p;
    qb_dtype half = p->method == QB_QUANT_BF16 ? QB_BF16 : QB_F16;
    bool half_method = is_half_method(p->method);
    int emb_bits = embedding_bits(p, q->packed);
    weight_errors we = {.worst_margin_db = INFINITY};
    qb_status st = p->gptq || p->bias_correction ? compensate(q, o, &we, err) : QB_OK;
    for (int i = 0; !st && i < m->st.n; i++) {
        const qb_st_tensor *t = &m->st.tensors[i];
        const qb_linear *l = linear_of(m, t->name, ".weight"), *lb = linear_of(m, t->name, ".bias");
        bool word_emb = strstr(t->name, "word_embeddings.weight") != NULL && t->ndim == 2;
        bool ok;
        if (l && q->done && q->done[l->id]) ok = true;
        else if (l) ok = push_linear(o, q, l, t, q->smoothed ? q->smoothed[l->id] : NULL, NULL, NULL, &we);
        else if (lb && q->bias && q->bias[lb->id]) ok = qb_st_list_push(o, t->name, QB_F32, 1, t->shape, q->bias[lb->id]);
        else if (word_emb && p->quantize_embeddings && !half_method)
            ok = emb_bits == 8 ? push_int8_rows(o, t) : qb_lowbit_push_table(o, t, emb_bits);
        else if (half_method && p->quantize_embeddings && t->ndim == 2 && qb_dtype_traits_of(t->dtype)->is_float)
            ok = qb_st_list_push_half(o, t, half);
        else ok = qb_st_list_push(o, t->name, t->dtype, t->ndim, t->shape, t->data);
        if (ok && l && p->int8_attention) ok = push_attention_scales(o, q, l);
        if (!ok) st = qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory at '%s'", t->name);
    }
    if (!st) st = check_made_finite(m, o, err);
    if (!st && we.all.signal > 0) {
        q->rep->weight_sqnr_db = qb_lowbit_sqnr_db(we.all.signal, we.all.err);
        const qb_lowbit_error *cb = &we.codebooks;
        q->rep->codebook_sqnr_db = cb->signal > 0 ? qb_lowbit_sqnr_db(cb->signal, cb->err) : 0;
        q->rep->grid_sqnr_db = cb->grid_err > 0 ? qb_lowbit_sqnr_db(cb->signal, cb->grid_err) : 0;
        q->rep->min_margin_db = isfinite(we.worst_margin_db) ? we.worst_margin_db : 0;
        q->rep->n_below_grid = we.n_below_grid;
    }
    return st;
}

static int config_bits(const qb_quant_params *p) {
    if (is_half_method(p->method)) return 16;
    return p->ternary ? 2 : weight_bits(p);
}

static bool plan_has_grouped(const quant_job *q) {
    for (int i = 0; i < q->m->n_linears; i++)
        if (q->plan[i].fmt->grouped) return true;
    return false;
}

/* The weights block: int8's scheme, or the low-bit format; the group size
 * whenever some linear has grouped scales (a precision map may mix). */
static json_t *weights_json(const quant_job *q) {
    const qb_quant_params *p = q->p;
    json_t *w = json_object();
    bool ok = w != NULL;
    if (!q->packed)
        ok = ok && qb_json_set(w, "dtype", json_string("int8")) &&
             qb_json_set(w, "granularity", json_string(p->per_channel ? "per-channel" : "per-tensor")) &&
             qb_json_set(w, "symmetric", json_true()) && qb_json_set(w, "reduce_range", json_boolean(p->reduce_range));
    else ok = ok && qb_json_set(w, "format", json_string(method_format(p, true).fmt->name));
    if (p->kmeans) ok = ok && qb_json_set(w, "codebook", json_string("kmeans"));
    if (plan_has_grouped(q)) {
        if (!p->per_channel) ok = ok && qb_json_set(w, "granularity", json_string("per-tensor"));
        json_t *g = p->group_size < 0 || !p->per_channel ? json_string("channel")
                                                         : json_integer(p->group_size ? p->group_size : 128);
        ok = qb_json_set(w, "group_size", g) && ok;
        ok = ok && qb_json_set(w, "zero_points", json_boolean(p->weight_zero_point));
    }
    return qb_json_built(w, ok);
}

static const char *embeddings_name(const quant_job *q) {
    const qb_quant_params *p = q->p;
    if (!p->quantize_embeddings) return "fp32";
    if (is_half_method(p->method)) return p->method == QB_QUANT_BF16 ? "bf16" : "fp16";
    int b = embedding_bits(p, q->packed);
    return b == 8 ? "int8-rowwise" : b == 4 ? "int4-rowwise" : "int2-rowwise";
}

static json_t *activations_json(const quant_job *q) {
    const qb_quant_params *p = q->p;
    char obs[64] = "";
    if (q->observer_label) snprintf(obs, sizeof obs, "%s", q->observer_label);
    else if (plan_has_static(q->m, q->plan)) qb_observer_method_name(&q->observer, obs, sizeof obs);
    json_t *a = json_object();
    bool ok = a && qb_json_set(a, "dtype", json_string("uint8")) &&
              qb_json_set(a, "granularity", json_string(p->act_per_token ? "per-token" : "per-tensor")) &&
              qb_json_set(a, "symmetric", json_boolean(p->act_symmetric)) &&
              qb_json_set(a, "observer", qb_json_strn(obs, strlen(obs)));
    return qb_json_built(a, ok);
}

/* The linears left in fp32, and every linear's format. */
static bool put_modules(json_t *qc, const quant_job *q) {
    const qb_model *m = q->m;
    json_t *excluded = json_array(), *mods = json_object();
    bool ok = excluded && mods;
    for (int i = 0; ok && i < m->n_linears; i++) {
        const char *name = m->linears[i]->name;
        char fmt[48];
        if (q->plan[i].fmt->precision == QB_PREC_FP32) ok = qb_json_push(excluded, qb_json_strn(name, strlen(name)));
        ok = ok && qb_json_set(mods, name, json_string(plan_name(q->p, q->plan[i], fmt, sizeof fmt)));
    }
    ok = qb_json_set(qc, "excluded_modules", excluded) && ok;
    return qb_json_set(qc, "modules", mods) && ok;
}

/* What changed the rounding, so two files from one method can be told
 * apart (readers need nothing of it: the tensors hold the result). */
static json_t *compensation_json(const quant_job *q) {
    const qb_quant_params *p = q->p;
    json_t *c = json_object();
    bool ok = c && qb_json_set(c, "rounding", json_string(p->gptq ? "gptq" : "nearest"));
    if (p->gptq)
        ok = ok && qb_json_set(c, "gptq_damp", json_real(p->gptq_damp)) &&
             qb_json_set(c, "gptq_act_order", json_boolean(p->gptq_act_order));
    ok = ok && qb_json_set(c, "bias_correction", json_boolean(p->bias_correction));
    if (p->smoothquant) ok = ok && qb_json_set(c, "smoothquant_alpha", json_real(p->smooth_alpha));
    ok = ok && qb_json_set(c, "calibration_file", qb_json_strn(p->calib_file, strlen(p->calib_file))) &&
         qb_json_set(c, "calibration_n", json_integer(q->rep->calib_used));
    return qb_json_built(c, ok);
}

static json_t *quant_config_json(const quant_job *q) {
    const qb_quant_params *p = q->p;
    json_t *qc = json_object();
    bool ok = qc && qb_json_set(qc, "quant_method", json_string("qbert")) &&
              qb_json_set(qc, "qbert_version", json_string(QBERT_VERSION)) &&
              qb_json_set(qc, "method", json_string(qb_quant_method_name(p->method))) &&
              qb_json_set(qc, "bits", json_integer(config_bits(p)));
    if (ok && !is_half_method(p->method)) ok = qb_json_set(qc, "weights", weights_json(q));
    if (ok && is_int8_method(p->method)) ok = qb_json_set(qc, "activations", activations_json(q));
    ok = ok && qb_json_set(qc, "embeddings", json_string(embeddings_name(q)));
    if (ok && p->int8_attention) ok = qb_json_set(qc, "attention", json_string("int8"));
    if (ok && plan_has_static(q->m, q->plan) && !q->fixed_inputs) {
        const qb_calib *c = q->calib;
        json_t *cal = json_object();
        ok = cal && qb_json_set(cal, "file", qb_json_strn(c->source, strlen(c->source))) &&
             qb_json_set(cal, "sha256", json_string(c->sha256)) && qb_json_set(cal, "n", json_integer(c->used)) &&
             qb_json_set(cal, "max_length", json_integer(c->max_length));
        ok = qb_json_set(qc, "calibration", cal) && ok;
    }
    if (ok && (p->gptq || p->bias_correction || p->smoothquant)) ok = qb_json_set(qc, "compensation", compensation_json(q));
    ok = ok && put_modules(qc, q);
    return qb_json_built(qc, ok);
}

/* The input config.json with the quantization block set as its last member
 * (replacing one a quantized input had; or the config the caller built),
 * indented like Hugging Face's; its
 * decimals print as they were written (15 digits). */
static qb_status write_config(const quant_job *q, const char *dir, qb_error *err) {
    char src[4200], dst[4200];
    qb_path_join(src, sizeof src, q->m->dir, "config.json");
    qb_path_join(dst, sizeof dst, dir, "config.json");
    json_t *cfg = q->config ? json_deep_copy(q->config) : NULL;
    qb_status st = q->config ? (cfg ? QB_OK : qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", dst))
                             : qb_json_load_object(src, &cfg, err);
    if (st) return st;
    json_object_del(cfg, "quantization_config"); /* so the new block goes last */
    if (qb_json_set(cfg, "quantization_config", quant_config_json(q)))
        st = qb_json_write_file(dst, cfg, QB_JSON_INDENT | QB_JSON_DIGITS15, err);
    else
        st = qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", dst);
    json_decref(cfg);
    return st;
}

static qb_status write_dir(quant_job *q, const char *tmp, qb_quant_report *rep, qb_error *err) {
    qb_st_list o;
    if (!qb_st_list_init(&o, q->m->st.n * 7 + 8)) return qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory");
    char path[4200];
    qb_path_join(path, sizeof path, tmp, "model.safetensors");
    qb_status st = build_tensors(q, &o, err);
    if (!st) st = qb_safetensors_write(path, o.t, o.n, "{\"format\": \"pt\", \"producer\": \"qbert\"}", err);
    qb_st_list_free(&o);
    if (!st) st = write_config(q, tmp, err);
    if (!st) st = qb_tokenizer_copy_files(q->m->dir, tmp, err);
    if (!st) st = qb_embed_copy_files(q->m->dir, tmp, err);
    struct stat sb;
    if (!st && stat(path, &sb) == 0) rep->out_bytes = sb.st_size;
    return st;
}

static void count_plan(const qb_model *m, const plan_entry *plan, qb_quant_report *rep) {
    rep->n_linears = m->n_linears;
    for (int i = 0; i < m->n_linears; i++) {
        qb_precision prec = plan[i].fmt->precision;
        rep->n_fp32 += prec == QB_PREC_FP32;
        rep->n_fp16 += prec == QB_PREC_FP16;
        rep->n_bf16 += prec == QB_PREC_BF16;
        rep->n_int8 += prec == QB_PREC_INT8;
        rep->n_lowbit += prec == QB_PREC_LOWBIT;
    }
}

static qb_status check_compensation(const qb_quant_params *p, qb_error *err) {
    const char *what = p->gptq ? "GPTQ" : p->bias_correction ? "bias correction" : p->smoothquant ? "SmoothQuant" : NULL;
    if (what && !p->calib_file)
        return qb_fail(err, QB_ERR_ARG, "%s needs --calib FILE: it runs the calibration texts (saved --calib-stats "
                       "hold only ranges)", what);
    if (p->gptq && !is_lowbit(p))
        return qb_fail(err, QB_ERR_ARG, "GPTQ rounds low-bit grids: add --bits 4, 3, 2 or ternary");
    if (p->gptq && !(p->gptq_damp > 0 && p->gptq_damp <= 1))
        return qb_fail(err, QB_ERR_ARG, "--gptq-damp %g: a fraction of the mean Hessian diagonal in (0, 1]",
                       p->gptq_damp);
    if (p->smoothquant && p->method != QB_QUANT_STATIC)
        return qb_fail(err, QB_ERR_ARG, "SmoothQuant smooths static input grids: use --method static");
    if (p->smoothquant && !(p->smooth_alpha >= 0 && p->smooth_alpha <= 1))
        return qb_fail(err, QB_ERR_ARG, "--smoothquant %g: alpha is between 0 and 1", p->smooth_alpha);
    return QB_OK;
}

/* A model loaded with allow_nonfinite is checked now: a NaN would be
 * carried into the scales, or on as it is. */
static qb_status check_finite_source(const qb_model *m, qb_error *err) {
    return m->nonfinite_checked ? QB_OK : qb_model_find_nonfinite(m, err);
}

/* Options that would change nothing refused, rather than written into a
 * config that says they took effect.  A precision map may put any linear
 * on any format, so the weight options stand whenever one is given. */
static qb_status check_unused_options(const qb_quant_params *p, qb_error *err) {
    bool half = is_half_method(p->method), map = p->precision_map != NULL;
    if (p->embedding_bits && (!p->quantize_embeddings || half))
        return qb_fail(err, QB_ERR_ARG, "--embedding-bits goes with --quantize-embeddings on an integer method "
                       "(fp16 and bf16 keep the tables in half precision)");
    if (map) return QB_OK;
    if (p->act_symmetric && (p->method == QB_QUANT_WEIGHT_ONLY || half))
        return qb_fail(err, QB_ERR_ARG, "--symmetric: --method %s has no integer activation grid",
                       qb_quant_method_name(p->method));
    if (p->act_symmetric && p->method == QB_QUANT_DYNAMIC && p->act_per_token)
        return qb_fail(err, QB_ERR_ARG, "--symmetric: per-token dynamic inputs take each row's own range "
                       "(asymmetric); add --activations per-tensor for one symmetric grid a call");
    if (half && (p->bits != 8 || p->ternary || p->kmeans || p->group_size || p->weight_zero_point || p->reduce_range))
        return qb_fail(err, QB_ERR_ARG, "--method %s stores 16-bit weights: --bits, --codebook, --group-size, "
                       "--weight-zero-point and --reduce-range do not apply", qb_quant_method_name(p->method));
    const char *what = p->kmeans ? "k-means codebooks (one per row)" : p->ternary ? "ternary weights"
                     : !is_lowbit(p) ? "int8 weights (a scale per row)" : NULL;
    if (p->weight_zero_point && what)
        return qb_fail(err, QB_ERR_ARG, "--weight-zero-point: %s have no zero points", what);
    if (p->group_size && what && !p->ternary)
        return qb_fail(err, QB_ERR_ARG, "--group-size: %s have no groups", what);
    if (p->reduce_range && is_lowbit(p))
        return qb_fail(err, QB_ERR_ARG, "--reduce-range narrows int8 weights; low-bit grids keep their levels");
    if (p->group_size > 0 && !p->per_channel)
        return qb_fail(err, QB_ERR_ARG, "--group-size %d: --granularity per-tensor gives the matrix one scale",
                       p->group_size);
    return QB_OK;
}

static qb_status check_request(const qb_model *m, const qb_quant_params *p, const char *out, qb_error *err) {
    if (!strcmp(qb_quant_method_name(p->method), "?"))
        return qb_fail(err, QB_ERR_ARG, "quantize: unknown method %d", (int)p->method);
    qb_status st = check_finite_source(m, err);
    if (st) return st;
    if (m->cfg.quant.present)
        return qb_fail(err, QB_ERR_ARG, "%s: already quantized (%s); quantize the FP32 model instead", m->dir,
                       qb_model_quant_summary(m));
    const char *read[] = {p->calib_file, p->calib_stats, p->precision_map};
    if ((st = qb_outdir_check_inputs(out, m->dir, read, 3, err))) return st;
    if (p->method == QB_QUANT_STATIC && !p->calib_file && !p->calib_stats)
        return qb_fail(err, QB_ERR_ARG, "static quantization needs --calib FILE (or saved --calib-stats)");
    if (p->method == QB_QUANT_STATIC && p->act_per_token)
        return qb_fail(err, QB_ERR_ARG, "static quantization has per-tensor activation scales, not per-token");
    /* saved statistics are a finished calibration (of unsmoothed inputs) */
    if (p->calib_stats && p->smoothquant)
        return qb_fail(err, QB_ERR_ARG, "SmoothQuant calibrates on the smoothed inputs: --calib, not --calib-stats");
    if (p->calib_stats && p->calib_file && !p->gptq && !p->bias_correction)
        return qb_fail(err, QB_ERR_ARG, "--calib-stats is a finished calibration: --calib would not be read");
    if (!is_half_method(p->method) && !p->ternary && p->bits != 8 && p->bits != 7 && (p->bits < 2 || p->bits > 4))
        return qb_fail(err, QB_ERR_ARG, "--bits %d: weights are 8, 4, 3 or 2 bits (or --bits ternary)", p->bits);
    if (p->kmeans && (p->ternary || p->bits > 4))
        return qb_fail(err, QB_ERR_ARG, "k-means codebooks take --bits 4, 3 or 2");
    if (p->kmeans && p->method != QB_QUANT_WEIGHT_ONLY)
        return qb_fail(err, QB_ERR_ARG, "k-means codebooks run weight-only (centroids are not on a grid the integer "
                       "kernels take): use --method weight-only");
    if (p->method == QB_QUANT_WEIGHT_ONLY && !is_lowbit(p))
        return qb_fail(err, QB_ERR_ARG, "weight-only needs low-bit weights: --bits 4, 3, 2 or ternary");
    if (p->group_size < -1 || p->group_size > 1 << 20)
        return qb_fail(err, QB_ERR_ARG, "--group-size %d: a positive number of input columns, or channel",
                       p->group_size);
    if (p->quantize_embeddings && p->embedding_bits && p->embedding_bits != 8 && p->embedding_bits != 4 &&
        p->embedding_bits != 2)
        return qb_fail(err, QB_ERR_ARG, "--embedding-bits %d: 8, 4 or 2", p->embedding_bits);
    st = check_unused_options(p, err);
    if (st) return st;
    if (p->int8_attention && p->method != QB_QUANT_STATIC)
        return qb_fail(err, QB_ERR_ARG, "int8 attention needs --method static (its scales come from calibration)");
    return check_compensation(p, err);
}

static float **linear_table(const qb_model *m) { return calloc((size_t)m->n_linears, sizeof(float *)); }

static void table_free(const qb_model *m, float **t) {
    for (int i = 0; t && i < m->n_linears; i++) free(t[i]);
    free(t);
}

/* n_threads, or all online cores for 0. */
static int quant_threads(const qb_quant_params *p) {
    long n = p->n_threads > 0 ? p->n_threads : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > QB_POOL_MAX_THREADS ? QB_POOL_MAX_THREADS : (int)n;
}

/* The per-linear arrays compensation and smoothing fill, and the threads. */
static qb_status job_alloc(quant_job *q, qb_error *err) {
    const qb_model *m = q->m;
    bool comp = q->p->gptq || q->p->bias_correction, ok = true;
    if (comp) ok = (q->done = calloc((size_t)m->n_linears, sizeof *q->done)) && (q->bias = linear_table(m));
    if (q->p->smoothquant) ok = ok && (q->in_smooth = linear_table(m)) && (q->smoothed = linear_table(m));
    if (!ok) return qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory");
    return qb_pool_create(quant_threads(q->p), &q->pool, err);
}

static void job_free(quant_job *q) {
    qb_pool_free(q->pool);
    free(q->done);
    table_free(q->m, q->bias);
    table_free(q->m, q->in_smooth);
    table_free(q->m, q->smoothed);
}

/* SmoothQuant on every linear with a static input grid: its factors, and
 * its weights times s (the inverse factors). */
static qb_status smooth_weights(quant_job *q, qb_error *err) {
    const qb_model *m = q->m;
    bool *which = calloc((size_t)m->n_linears, sizeof *which);
    if (!which) return qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory");
    for (int i = 0; i < m->n_linears; i++) which[i] = q->plan[i].static_input;
    qb_status st = qb_smooth_factors(m, q->p, q->p->smooth_alpha, which, q->in_smooth, err);
    free(which);
    for (int i = 0; !st && i < m->n_linears; i++) {
        const qb_linear *l = m->linears[i];
        const float *f = q->in_smooth[i];
        size_t n = (size_t)l->out * l->in;
        if (f && !(q->smoothed[i] = malloc(n * sizeof(float)))) st = qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory");
        for (size_t k = 0; !st && f && k < n; k++) q->smoothed[i][k] = l->w[k] / f[k % (size_t)l->in];
    }
    return st;
}

qb_status qb_quantize(const qb_model *m, const qb_quant_params *p, const char *out_dir, qb_quant_report *rep,
                      qb_error *err) {
    qb_quant_report local;
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    quant_job q = {.m = m, .p = p, .rep = rep, .packed = is_lowbit(p)};
    qb_calib calib = {0};
    plan_entry *plan = calloc((size_t)m->n_linears + 1, sizeof *plan);
    qb_outdir od = {0};
    qb_status st = plan ? check_request(m, p, out_dir, err) : qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory");
    if (!st && !qb_observer_method_parse(p->observer, &q.observer)) {
        char name[128];
        qb_escape_str(name, sizeof name, p->observer);
        if (p->observer && !strncmp(p->observer, "percentile:", 11))
            st = qb_fail(err, QB_ERR_ARG, "observer '%s': the percentile is a plain decimal in (50, 100], e.g. "
                         "percentile:99.99", name);
        else
            st = qb_fail(err, QB_ERR_ARG, "unknown observer '%s' (minmax, percentile:P, mse, entropy)", name);
    }
    if (!st) st = plan_precisions(m, p, q.packed, plan, err);
    if (!st && plan_has_static(m, plan) && !p->calib_file && !p->calib_stats)
        st = qb_fail(err, QB_ERR_ARG, "int8-static linears need --calib FILE (or saved --calib-stats)");
    /* Output problems surface before any long calibration run. */
    if (!st)
        st = qb_outdir_begin(&od, out_dir, (p->force ? QB_OUTDIR_FORCE : 0) | (p->parents ? QB_OUTDIR_PARENTS : 0), err);
    q.plan = plan;
    if (!st) st = job_alloc(&q, err);
    if (!st && p->smoothquant) st = smooth_weights(&q, err);
    if (!st && plan_has_static(m, plan))
        st = p->calib_stats ? qb_calib_load(m, p->calib_stats, &calib, err)
                            : qb_calib_run(m, p, (const float *const *)q.in_smooth, &calib, rep, err);
    if (!st && p->calib_stats) rep->calib_used = calib.used;
    /* the ranges are those of texts cut at the recorded length */
    if (!st && p->calib_stats && p->max_length && p->max_length != calib.max_length)
        st = qb_fail(err, QB_ERR_ARG, "%s: statistics of texts truncated at %d tokens, not the --max-length %d asked "
                     "(leave --max-length out, or run qbert calibrate --max-length %d)", p->calib_stats,
                     calib.max_length, p->max_length, p->max_length);
    /* the compensation's texts are cut where the statistics' were */
    qb_quant_params at_stats_length;
    if (!st && p->calib_stats && !p->max_length) {
        at_stats_length = *p;
        at_stats_length.max_length = calib.max_length;
        q.p = &at_stats_length;
    }
    if (!st && p->int8_attention && !calib.has_outputs)
        st = qb_fail(err, QB_ERR_FORMAT, "%s: no statistics of the attention inputs (saved by an older qbert); "
                     "run qbert calibrate again", p->calib_stats);
    q.calib = &calib;
    if (!st) st = write_dir(&q, od.tmp, rep, err);
    if (!st) st = qb_outdir_commit(&od, err);
    qb_outdir_abort(&od);
    if (!st) count_plan(m, plan, rep);
    rep->in_bytes = (int64_t)m->st.map.size;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    rep->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    qb_calib_free(&calib);
    job_free(&q);
    free(plan);
    return st;
}

qb_status qb_calibrate(const qb_model *m, const qb_quant_params *p, const char *stats_path, qb_quant_report *rep,
                       qb_error *err) {
    qb_calib calib = {0};
    qb_status st = qb_model_check_output(m, stats_path, err);
    if (!st) st = qb_calib_run(m, p, NULL, &calib, rep, err);
    if (!st) st = qb_calib_save(m, &calib, stats_path, err);
    qb_calib_free(&calib);
    return st;
}

qb_status qb_quantize_into(const qb_model *m, const json_t *config, const qb_quant_params *p,
                           const qb_qparams *inputs, const char *observer_label, const char *dir,
                           qb_quant_report *rep, qb_error *err) {
    qb_quant_report local;
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    if (p->method != QB_QUANT_STATIC || p->act_per_token || p->int8_attention || p->kmeans ||
        (!p->ternary && (p->bits < 2 || p->bits > 8)) || p->group_size < -1)
        return qb_fail(err, QB_ERR_ARG, "quantize: trained input scales need static per-tensor inputs, FP32 "
                       "attention, and int8 grids of 5..8 bits or packed 4, 3, 2-bit or ternary grids");
    plan_entry *plan = calloc((size_t)m->n_linears + 1, sizeof *plan);
    if (!plan) return qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory");
    qb_calib none = {0};
    /* 4 bits and fewer pack into the low-bit formats, whose quantizer QAT
     * trained through; 5..7 bits stay int8 values on a narrower grid. */
    quant_job q = {.m = m, .config = config, .p = p, .plan = plan, .calib = &none, .fixed_inputs = inputs, .rep = rep,
                   .observer_label = observer_label, .packed = is_lowbit(p)};
    qb_status st = check_finite_source(m, err);
    if (!st) st = plan_precisions(m, p, q.packed, plan, err);
    if (!st) st = qb_pool_create(quant_threads(p), &q.pool, err);
    if (!st) st = write_dir(&q, dir, rep, err);
    if (!st) count_plan(m, plan, rep);
    rep->in_bytes = (int64_t)m->st.map.size;
    qb_pool_free(q.pool);
    free(plan);
    return st;
}
