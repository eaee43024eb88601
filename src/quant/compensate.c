/* Error compensation (compensate.h). */
#include "quant/compensate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "quant/calibrate.h"

/* Linears [i, i + n) read one input: a block's Q, K and V. */
static int stage_size(const qb_model *m, int i) { return qb_model_attention_input(m, m->linears[i]) == 'q' ? 3 : 1; }

/* Whether a block runs in more than one layer (ALBERT's sharing). */
static bool layers_shared(const qb_model *m) { return m->n_blocks < m->cfg.num_layers * qb_model_inner_steps(m); }

static bool stage_wanted(const qb_model *m, const bool *which, int i) {
    for (int k = 0; k < stage_size(m, i); k++)
        if (which[i + k]) return true;
    return false;
}


/* ---- per-channel input statistics (SmoothQuant, bias correction) ------- */

/* Per input channel statistics of the stages kept, indexed by their first
 * linear: max |x| (SmoothQuant) or the mean of x (bias correction). */
typedef struct {
    bool mean;
    double **stat; /* [n_linears], NULL where not kept */
    long *rows;
} channel_acc;

static bool observe_channels(void *ctx, const qb_linear *l, bool output, const float *x, int rows) {
    channel_acc *c = ctx;
    double *a = output ? NULL : c->stat[l->id];
    for (int r = 0; a && r < rows; r++)
        for (int j = 0; j < l->in; j++) {
            double v = x[(size_t)r * l->in + j];
            a[j] = c->mean ? a[j] + v : fmax(a[j], fabs(v));
        }
    if (a) c->rows[l->id] += rows;
    return false;
}

static void channel_acc_free(const qb_model *m, channel_acc *c) {
    for (int i = 0; c->stat && i < m->n_linears; i++) free(c->stat[i]);
    free(c->stat);
    free(c->rows);
}

/* One pass of m over the calibration texts. */
static qb_status channel_stats(const qb_model *m, const qb_quant_params *p, const bool *which, bool mean,
                               channel_acc *c, int *used, qb_error *err) {
    *c = (channel_acc){mean, calloc((size_t)m->n_linears, sizeof *c->stat), calloc((size_t)m->n_linears, sizeof(long))};
    bool ok = c->stat && c->rows;
    for (int i = 0; ok && i < m->n_linears; i += stage_size(m, i))
        if (stage_wanted(m, which, i)) ok = (c->stat[i] = calloc((size_t)m->linears[i]->in, sizeof(double))) != NULL;
    if (!ok) return qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory");
    qb_status st = qb_calib_pass(m, p, observe_channels, c, mean ? "input means" : "input ranges", used, err);
    for (int i = 0; !st && mean && i < m->n_linears; i++)
        for (int j = 0; c->stat[i] && c->rows[i] && j < m->linears[i]->in; j++) c->stat[i][j] /= (double)c->rows[i];
    return st;
}

/* ---- SmoothQuant ------------------------------------------------------- */

/* s_j for the stage at i, from its inputs' and its wanted weights' ranges;
 * 1 where either is all zero. */
static void stage_factors(const qb_model *m, const bool *which, int i, const double *amax, float alpha, float *out) {
    int K = m->linears[i]->in;
    for (int j = 0; j < K; j++) {
        float wmax = 0;
        for (int k = 0; k < stage_size(m, i); k++) {
            const qb_linear *l = m->linears[i + k];
            for (int r = 0; which[i + k] && r < l->out; r++) wmax = fmaxf(wmax, fabsf(l->w[(size_t)r * K + j]));
        }
        double s = amax[j] > 0 && wmax > 0 ? pow(amax[j], alpha) / pow(wmax, 1.0 - alpha) : 1.0;
        s = s < 1e-5 ? 1e-5 : s > 1e5 ? 1e5 : s;
        out[j] = (float)(1.0 / s);
    }
}

qb_status qb_smooth_factors(const qb_model *m, const qb_quant_params *p, float alpha, const bool *which,
                            float **in_smooth, qb_error *err) {
    channel_acc acc;
    qb_status st = channel_stats(m, p, which, false, &acc, NULL, err);
    for (int i = 0; !st && i < m->n_linears; i += stage_size(m, i)) {
        size_t bytes = (size_t)m->linears[i]->in * sizeof(float);
        const float *first = NULL; /* the stage's factors, computed once */
        for (int k = 0; !st && acc.stat[i] && k < stage_size(m, i); k++) {
            if (!which[i + k]) continue;
            float *f = in_smooth[i + k] = malloc(bytes);
            if (!f) st = qb_fail(err, QB_ERR_NOMEM, "smoothquant: out of memory");
            else if (first) memcpy(f, first, bytes);
            else stage_factors(m, which, i, acc.stat[i], alpha, f), first = f;
        }
    }
    channel_acc_free(m, &acc);
    return st;
}

/* ---- GPTQ and bias correction ------------------------------------------ */

/* What one pass gathers about the input of the stage at `first`: the sum
 * of x x^T over every row. */
typedef struct {
    int first, K;
    double *H;
    long rows;
    float *xt, *hf, *pack; /* scratch: x transposed, one call's x^T x, GEMM packing */
    size_t xt_cap;
    const qb_kernels *kern;
    qb_pool *pool;
    bool nomem;
    bool shared;           /* the linear runs in more than one layer */
} stage_acc;

static void add_gram(stage_acc *a, const float *x, int rows) {
    size_t need = (size_t)rows * a->K;
    if (need > a->xt_cap) {
        free(a->xt);
        a->xt = malloc(need * sizeof *a->xt);
        a->xt_cap = a->xt ? need : 0;
        if (!a->xt) {
            a->nomem = true;
            return;
        }
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < a->K; j++) a->xt[(size_t)j * rows + r] = x[(size_t)r * a->K + j];
    qb_gemm_f32_args g = {.M = a->K, .N = a->K, .K = rows, .A = a->xt, .lda = rows, .B = x, .ldb = a->K,
                          .C = a->hf, .ldc = a->K, .alpha = 1.0f};
    qb_gemm_f32(a->kern, &g, a->pool, a->pack);
    size_t kk = (size_t)a->K * a->K;
    for (size_t i = 0; i < kk; i++) a->H[i] += a->hf[i];
}

/* Layers past the stage's change nothing it gathers, unless its linear
 * runs again further on (ALBERT's shared layer). */
static bool observe_stage(void *ctx, const qb_linear *l, bool output, const float *x, int rows) {
    stage_acc *a = ctx;
    if (output || l->id != a->first || a->nomem) return false;
    add_gram(a, x, rows);
    a->rows += rows;
    return !a->shared;
}

static void stage_acc_free(stage_acc *a) {
    free(a->H);
    free(a->xt);
    free(a->hf);
    free(a->pack);
}

static qb_status stage_acc_init(stage_acc *a, const qb_model *wm, qb_pool *pool, int first, qb_error *err) {
    size_t K = (size_t)wm->linears[first]->in;
    *a = (stage_acc){.first = first, .K = (int)K, .kern = &wm->kern, .pool = pool,
                     .shared = layers_shared(wm)};
    a->H = calloc(K * K, sizeof *a->H);
    a->hf = malloc(K * K * sizeof *a->hf);
    a->pack = aligned_alloc(64, (size_t)qb_pool_threads(pool) * qb_gemm_f32_pack_floats() * sizeof(float));
    if (a->H && a->hf && a->pack) return QB_OK;
    return qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory for the Hessian of '%s' (%zu inputs)",
                   wm->linears[first]->name, K);
}

/* GPTQ overwrites the Hessian it gets: a copy for each linear of a stage,
 * that of the smoothed inputs x_j * f_j where f is given. */
static double *hessian_copy(const double *H, int K, const float *f) {
    double *h = malloc((size_t)K * K * sizeof *h);
    for (size_t i = 0; h && i < (size_t)K; i++)
        for (size_t j = 0; j < (size_t)K; j++) h[i * K + j] = H[i * K + j] * (f ? (double)f[i] * f[j] : 1.0);
    return h;
}

/* b + (W - W^) E[x]: the output shift rounding put into this linear, over
 * the inputs the FP32 model gives it. */
static float *corrected_bias(const qb_linear *l, const float *deq, const double *mean) {
    float *b = malloc((size_t)l->out * sizeof *b);
    for (int r = 0; b && r < l->out; r++) {
        double shift = 0;
        for (int j = 0; j < l->in; j++) {
            size_t i = (size_t)r * l->in + j;
            shift += ((double)l->w[i] - deq[i]) * mean[j];
        }
        b[r] = (float)((l->b ? l->b[r] : 0.0) + shift);
    }
    return b;
}

/* GPTQ's passes start at the input of the block their stage is in, kept
 * per batch by the pass before: the working copy's own activations, bit
 * for bit what a pass from the embeddings computes, since the blocks
 * before hold their final weights.  So a pass runs one block or two, not
 * every block before it.  Not where a linear runs in several layers
 * (ALBERT): its Hessian gathers the input of every layer. */
typedef struct {
    qb_calib_texts texts;
    bool keep;   /* within the memory budget (qb_quant_params.gptq_memory_mb) */
    float **x;   /* [batches]: the input rows of block application `app` */
    int app;     /* -1: nothing kept, passes start at the embeddings */
    int next_id; /* the linear (a Q) whose input this pass keeps, or -1 */
    int batch;   /* the batch running */
    bool nomem;
} block_inputs;

/* What compensation keeps while it runs: the FP32 model's input means
 * (bias correction), and for GPTQ a working copy of the model whose
 * linears compute with what was stored. */
typedef struct {
    const qb_model *m;
    const qb_comp_job *job;
    channel_acc means;
    qb_model *wm;
    block_inputs *inputs; /* GPTQ, but for shared layers */
    float **keep;  /* [n_linears]: decoded weights the working copy points at */
    float **bias;
} comp_run;

static void block_inputs_free(block_inputs *bi) {
    if (!bi) return;
    for (int b = 0; bi->x && b < bi->texts.batches; b++) free(bi->x[b]);
    free(bi->x);
    qb_calib_texts_close(&bi->texts);
    free(bi);
}

/* Whether the texts' block inputs, one block's at a time, fit the budget;
 * if not, says so in the job's note. */
static bool block_inputs_fit(const qb_model *wm, const qb_quant_params *p, const qb_calib_texts *t,
                             const qb_comp_job *job) {
    size_t tokens = 0;
    for (int i = 0; i < t->ds.n; i++) tokens += (size_t)t->enc[i].n;
    double need = (double)tokens * wm->cfg.hidden_size * sizeof(float);
    double budget = p->gptq_memory_mb > 0 ? p->gptq_memory_mb * 1048576.0
                                          : (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / 4;
    if (need <= budget) return true;
    if (job->note && !job->note[0])
        snprintf(job->note, job->note_size,
                 "GPTQ: the calibration's block inputs (%.0f MB) exceed %.0f MB, so every pass runs from the "
                 "embeddings (slower, same result; see --gptq-memory)",
                 need / 1048576, budget / 1048576);
    return false;
}

static qb_status block_inputs_open(const qb_model *wm, const qb_quant_params *p, const qb_comp_job *job,
                                   block_inputs **out, qb_error *err) {
    block_inputs *bi = calloc(1, sizeof *bi);
    if (!bi) return qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory");
    bi->app = bi->next_id = -1;
    *out = bi;
    qb_status st = qb_calib_texts_open(wm, p, &bi->texts, err);
    if (!st && job->texts_used) *job->texts_used = bi->texts.ds.n;
    if (!st) bi->keep = block_inputs_fit(wm, p, &bi->texts, job);
    if (!st && !(bi->x = calloc((size_t)bi->texts.batches + 1, sizeof *bi->x)))
        st = qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory");
    return st;
}

typedef struct {
    stage_acc *acc;
    block_inputs *bi;
} stage_pass;

static bool observe_pass(void *ctx, const qb_linear *l, bool output, const float *x, int rows) {
    stage_pass *sp = ctx;
    block_inputs *bi = sp->bi;
    if (!output && l->id == bi->next_id && !bi->nomem) {
        size_t n = (size_t)rows * l->in;
        if (!bi->x[bi->batch]) bi->x[bi->batch] = malloc(n * sizeof(float));
        if (bi->x[bi->batch]) memcpy(bi->x[bi->batch], x, n * sizeof(float));
        else bi->nomem = true;
    }
    return observe_stage(sp->acc, l, output, x, rows);
}

/* A pass that gathers a stage's Hessian into a, from the kept block input
 * where there is one, keeping the input of the stage's block on the way. */
static qb_status gather(comp_run *c, const qb_quant_params *p, stage_acc *a, qb_error *err) {
    block_inputs *bi = c->inputs;
    if (!bi) return qb_calib_pass(c->wm, p, observe_stage, a, NULL, NULL, err);
    /* without a shared layer, block i is application i */
    int app = qb_model_block_of(c->wm, c->wm->linears[a->first]);
    bool keep = bi->keep && app > bi->app;
    bi->next_id = keep ? c->wm->blocks[app].q.id : -1;
    stage_pass sp = {a, bi};
    qb_status st = QB_OK;
    for (int b = 0; !st && b < bi->texts.batches; b++) {
        bi->batch = b;
        st = qb_calib_texts_run(&bi->texts, b, observe_pass, &sp, bi->app >= 0 ? bi->x[b] : NULL, bi->app, err);
    }
    if (!st && bi->nomem)
        st = qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory for the calibration's block inputs (try a smaller "
                                        "--calib-n)");
    if (!st && keep) bi->app = app;
    return st;
}

/* Stores linear i (GPTQ against H, where given) and corrects its bias. */
static qb_status quantize_one(comp_run *c, int i, int stage, const double *H, qb_error *err) {
    const qb_linear *l = c->m->linears[i];
    const qb_comp_job *job = c->job;
    const float *w = job->weights && job->weights[i] ? job->weights[i] : l->w;
    const float *f = job->in_smooth ? job->in_smooth[i] : NULL;
    size_t n = (size_t)l->out * l->in;
    float *deq = malloc(n * sizeof *deq);
    double *h = H ? hessian_copy(H, l->in, f) : NULL;
    bool ok = deq && (!H || h);
    if (ok) memcpy(deq, w, n * sizeof *deq);
    ok = ok && job->push(job->ctx, l, w, h, deq);
    free(h);
    for (size_t k = 0; ok && f && k < n; k++) deq[k] *= f[k % (size_t)l->in];
    if (ok && job->bias_correction) ok = (c->bias[i] = corrected_bias(l, deq, c->means.stat[stage])) != NULL;
    if (!ok) {
        free(deq);
        return qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory at '%s'", l->name);
    }
    c->keep[i] = deq;
    if (c->wm) c->wm->linears[i]->w = deq;
    if (c->wm && c->bias[i]) c->wm->linears[i]->b = c->bias[i];
    return QB_OK;
}

/* A stage's linears; with GPTQ, after a pass of the working copy gathers
 * their input's Hessian. */
static qb_status run_stage(comp_run *c, const qb_quant_params *p, int i, qb_error *err) {
    stage_acc a = {0};
    qb_status st = c->wm ? stage_acc_init(&a, c->wm, c->job->pool, i, err) : QB_OK;
    if (!st && c->wm) st = gather(c, p, &a, err);
    if (!st && a.nomem) st = qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory at '%s'", c->m->linears[i]->name);
    if (!st && c->wm && a.rows == 0) st = qb_fail(err, QB_ERR_FORMAT, "%s: no calibration rows reached", p->calib_file);
    for (int k = 0; !st && k < stage_size(c->m, i); k++)
        if (c->job->which[i + k]) st = quantize_one(c, i + k, i, a.H, err);
    stage_acc_free(&a);
    return st;
}

qb_status qb_compensate(const qb_model *m, const qb_quant_params *p, const qb_comp_job *job, float **bias,
                        qb_error *err) {
    comp_run c = {.m = m, .job = job, .bias = bias, .keep = calloc((size_t)m->n_linears, sizeof(float *))};
    qb_status st = c.keep ? QB_OK : qb_fail(err, QB_ERR_NOMEM, "quantize: out of memory");
    if (!st && job->bias_correction) st = channel_stats(m, p, job->which, true, &c.means, job->texts_used, err);
    qb_load_params lp = qb_load_default_params();
    lp.n_threads = p->n_threads;
    if (!st && job->gptq) st = qb_model_load(m->dir, &lp, &c.wm, err);
    if (!st && c.wm && !layers_shared(c.wm)) st = block_inputs_open(c.wm, p, job, &c.inputs, err);
    int stages = 0, done = 0;
    for (int i = 0; i < m->n_linears; i += stage_size(m, i)) stages += stage_wanted(m, job->which, i);
    for (int i = 0; !st && i < m->n_linears; i += stage_size(m, i)) {
        if (!stage_wanted(m, job->which, i)) continue;
        st = run_stage(&c, p, i, err);
        if (p->progress) p->progress(p->progress_ctx, job->gptq ? "gptq" : "bias correction", ++done, stages);
    }
    block_inputs_free(c.inputs);
    qb_model_free(c.wm);
    channel_acc_free(m, &c.means);
    for (int i = 0; c.keep && i < m->n_linears; i++) free(c.keep[i]);
    free(c.keep);
    return st;
}
