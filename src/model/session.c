/* Sessions: allocation once at creation, input checks and packing per run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/carver.h"
#include "core/error.h"
#include "core/huge.h"
#include "model/linear_format.h"
#include "model/session.h"

qb_session_params qb_session_default_params(void) {
    qb_session_params p = {.max_batch = 8, .max_seq = 128, .n_threads = 0};
    return p;
}

/* Per-thread kernel scratch: what the model's linear formats ask for, and
 * at least the FP32 GEMM's packing buffer, which attention uses. */
static size_t pack_floats(const qb_model *m) {
    size_t n = qb_gemm_f32_pack_floats();
    for (int i = 0; i < m->n_linears; i++) {
        size_t f = m->linears[i]->fmt->scratch_floats(m->linears[i]);
        n = f > n ? f : n;
    }
    return n;
}

static bool has_smoothing(const qb_model *m) {
    for (int i = 0; i < m->n_linears; i++)
        if (m->linears[i]->in_smooth) return true;
    return false;
}

static bool has_integer_inputs(const qb_model *m) {
    for (int i = 0; i < m->n_linears; i++)
        if (m->linears[i]->fmt->integer_inputs) return true;
    return false;
}

static void layout(qb_session *s, qb_carver *c) {
    if (s->tape) return; /* the trainer's arena holds training's activations */
    const qb_config *cfg = &s->m->cfg;
    size_t T = (size_t)s->max_batch * s->max_seq, B = (size_t)s->max_batch;
    size_t H = (size_t)cfg->hidden_size, L = (size_t)cfg->num_labels;
    qb_acts *a = &s->a;
    a->x = qb_carve(c, T * H);
    a->emb = s->m->emb_proj.out ? qb_carve(c, T * (size_t)cfg->embedding_size) : a->x;
    a->q = qb_carve(c, T * H);
    a->k = qb_carve(c, T * H);
    a->v = qb_carve(c, T * H);
    a->ctx = qb_carve(c, T * H);
    a->attn = qb_carve(c, T * H);
    a->ffn = qb_carve(c, T * (size_t)cfg->intermediate_size);
    a->scores = qb_carve(c, (size_t)s->n_threads * s->max_seq * s->max_seq);
    a->cls = qb_carve(c, B * H);
    a->cls2 = qb_carve(c, B * H);
    if (cfg->task == QB_TASK_NONE || cfg->task == QB_TASK_MLM) L = 0;
    a->token_logits = cfg->task == QB_TASK_TOKEN ? qb_carve(c, T * L) : NULL;
    a->logits = qb_carve(c, cfg->task == QB_TASK_TOKEN ? T * L : B * L);
    a->pooled = qb_carve(c, B * H * QB_POOL_MODES);
    a->mlm = cfg->task == QB_TASK_MLM ? qb_carve(c, T * H) : NULL;
    s->pack = qb_carve(c, (size_t)s->n_threads * pack_floats(s->m));
    size_t kmax = H > (size_t)cfg->intermediate_size ? H : (size_t)cfg->intermediate_size;
    if ((size_t)cfg->embedding_size > kmax) kmax = (size_t)cfg->embedding_size;
    /* quantized inputs: only the formats on integer inputs read them */
    bool qa = has_integer_inputs(s->m);
    s->qa = qa ? (uint8_t *)qb_carve(c, (T * kmax + 3) / 4) : NULL;
    s->qa_scale = qa ? qb_carve(c, T) : NULL;
    s->qa_zero = qa ? (int32_t *)qb_carve(c, T) : NULL;
    s->smooth_stride = has_smoothing(s->m) ? (int)kmax : 0;
    s->smooth_row = s->smooth_stride ? qb_carve(c, (size_t)s->n_threads * kmax) : NULL;
    s->word_row = qb_carve(c, (size_t)s->n_threads * (size_t)cfg->embedding_size);
}

static bool has_int8_attention(const qb_model *m) {
    for (int b = 0; b < m->n_blocks; b++)
        if (m->blocks[b].attn_i8.on) return true;
    return false;
}

/* Hands out 64-byte aligned pieces of mem (or, with mem NULL, only counts
 * them) for one thread's int8 attention scratch, sized for max_seq. */
static size_t attn_scratch_layout(const qb_session *s, char *mem, qb_attn_scratch *w) {
    const qb_kernels_i8 *k8 = &s->m->kern_i8;
    size_t S = (size_t)s->max_seq, d = (size_t)(s->m->cfg.hidden_size / s->m->cfg.num_heads), used = 0;
#define PIECE(ptr, bytes) (ptr = (void *)(mem ? mem + used : NULL), used += ((bytes) + 63) / 64 * 64)
    PIECE(w->q, S * d);
    PIECE(w->p, S * S);
    PIECE(w->k, S * d);
    PIECE(w->vt, d * S);
    PIECE(w->a_scale, S * sizeof(float));
    PIECE(w->a_zero, S * sizeof(int32_t));
    PIECE(w->wk.packed, qb_i8_weights_bytes(k8, (int)S, (int)d));
    PIECE(w->wk.colsum, S * sizeof(int32_t));
    PIECE(w->wk.colsum_split, S * sizeof(int32_t));
    PIECE(w->wk.scale, S * sizeof(float));
    PIECE(w->wv.packed, qb_i8_weights_bytes(k8, (int)d, (int)S));
    PIECE(w->wv.colsum, d * sizeof(int32_t));
    PIECE(w->wv.colsum_split, d * sizeof(int32_t));
    PIECE(w->wv.scale, d * sizeof(float));
#undef PIECE
    return used;
}

static bool attn_scratch_create(qb_session *s) {
    if (!has_int8_attention(s->m)) return true;
    qb_attn_scratch probe;
    size_t per_thread = attn_scratch_layout(s, NULL, &probe);
    s->attn_i8 = calloc((size_t)s->n_threads, sizeof *s->attn_i8);
    s->attn_i8_mem = aligned_alloc(64, per_thread * (size_t)s->n_threads);
    if (!s->attn_i8 || !s->attn_i8_mem) return false;
    s->bytes += per_thread * (size_t)s->n_threads;
    for (int t = 0; t < s->n_threads; t++)
        attn_scratch_layout(s, (char *)s->attn_i8_mem + per_thread * (size_t)t, &s->attn_i8[t]);
    return true;
}

static int32_t *alloc_i32(size_t n, bool *ok) {
    int32_t *p = calloc(n ? n : 1, sizeof *p);
    *ok = *ok && p;
    return p;
}

static qb_status create(const qb_model *m, const qb_session_params *p, qb_tape *tape, qb_session **out,
                        qb_error *err) {
    *out = NULL;
    qb_session_params d = qb_session_default_params();
    if (!p) p = &d;
    if (p->max_batch < 1 || p->max_seq < 1 || p->n_threads < 0 || p->n_threads > QB_POOL_MAX_THREADS)
        return qb_fail(err, QB_ERR_ARG, "session: max_batch and max_seq must be >= 1, n_threads in 0..%d",
                       QB_POOL_MAX_THREADS);
    if (p->max_seq > m->cfg.max_position)
        return qb_fail(err, QB_ERR_ARG, "session: max_seq %d exceeds the model's %d positions", p->max_seq,
                       m->cfg.max_position);
    qb_session *s = calloc(1, sizeof *s);
    if (!s) return qb_fail(err, QB_ERR_NOMEM, "session: out of memory");
    s->m = m;
    s->tape = tape;
    s->max_batch = p->max_batch;
    s->max_seq = p->max_seq;
    s->n_threads = p->n_threads ? p->n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (s->n_threads < 1) s->n_threads = 1;
    if (s->n_threads > QB_POOL_MAX_THREADS) s->n_threads = QB_POOL_MAX_THREADS;
    qb_carver c = {NULL, 0};
    layout(s, &c);
    /* Activations of a large batch span thousands of 4 KiB pages, and a
     * GEMM epilogue that writes a 64-column stripe of many rows touches one
     * page per row: on 2 MiB pages those misses in the TLB mostly disappear. */
    c.base = qb_huge_alloc((c.used + 1) * sizeof(float));
    size_t T = (size_t)s->max_batch * s->max_seq;
    bool ok = c.base != NULL;
    s->tok_ids = alloc_i32(T, &ok);
    s->tok_types = alloc_i32(T, &ok);
    s->tok_pos = alloc_i32(T, &ok);
    s->offsets = alloc_i32((size_t)s->max_batch, &ok);
    s->lens = alloc_i32((size_t)s->max_batch, &ok);
    s->pad_ids = alloc_i32(T, &ok);
    s->pad_types = alloc_i32(T, &ok);
    s->pad_lens = alloc_i32((size_t)s->max_batch, &ok);
    s->arena = c.base;
    s->bytes = qb_huge_round((c.used + 1) * sizeof(float)) + (5 * T + 3 * (size_t)s->max_batch) * sizeof(int32_t);
    ok = ok && attn_scratch_create(s);
    qb_status st = ok ? qb_pool_create(s->n_threads, &s->pool, err) : QB_OK;
    if (st) {
        qb_session_free(s);
        return st;
    }
    if (!ok) {
        qb_session_free(s);
        return qb_fail(err, QB_ERR_NOMEM, "session: out of memory for batch %d x seq %d", p->max_batch, p->max_seq);
    }
    c.used = 0;
    layout(s, &c);
    if (m->cfg.task == QB_TASK_NONE && !tape) {
        s->pooling = m->embed.pooling;
        s->normalize = m->embed.normalize;
        s->embed_dim = qb_embed_dim(m, s->pooling);
    }
    *out = s;
    return QB_OK;
}

size_t qb_session_bytes(const qb_session *s) { return s->bytes; }

qb_status qb_session_create(const qb_model *m, const qb_session_params *p, qb_session **out, qb_error *err) {
    return create(m, p, NULL, out, err);
}

qb_status qb_session_create_training(const qb_model *m, const qb_session_params *p, qb_tape *tape,
                                     qb_session **out, qb_error *err) {
    return create(m, p, tape, out, err);
}

void qb_session_free(qb_session *s) {
    if (!s) return;
    qb_pool_free(s->pool);
    free(s->arena);
    free(s->tok_ids);
    free(s->tok_types);
    free(s->tok_pos);
    free(s->offsets);
    free(s->lens);
    free(s->pad_ids);
    free(s->pad_types);
    free(s->pad_lens);
    free(s->attn_i8);
    free(s->attn_i8_mem);
    free(s);
}

qb_status qb_session_pack(qb_session *s, const qb_batch *b, qb_error *err) {
    s->batch = 0; /* a refused batch leaves no half-packed rows to read */
    if (!b || !b->input_ids || !b->lengths)
        return qb_fail(err, QB_ERR_ARG, "session: a batch needs its input_ids and lengths");
    if (b->batch < 1 || b->batch > s->max_batch || b->seq < 1 || b->seq > s->max_seq)
        return qb_fail(err, QB_ERR_ARG, "batch %d x seq %d does not fit the session (%d x %d)", b->batch, b->seq,
                       s->max_batch, s->max_seq);
    const qb_config *c = &s->m->cfg;
    int n = 0;
    for (int r = 0; r < b->batch; r++) {
        int pos = c->position_offset;
        int len = b->lengths[r];
        if (len < 1 || len > b->seq)
            return qb_fail(err, QB_ERR_ARG, "batch row %d: length %d outside [1, %d]", r, len, b->seq);
        s->offsets[r] = n;
        s->lens[r] = len;
        for (int i = 0; i < len; i++, n++) {
            int32_t id = b->input_ids[(size_t)r * b->seq + i];
            /* DistilBERT has no token types: HF ignores them, and so do we. */
            int32_t tt = b->token_type_ids && s->m->type_emb ? b->token_type_ids[(size_t)r * b->seq + i] : 0;
            if (id < 0 || id >= c->vocab_size)
                return qb_fail(err, QB_ERR_ARG, "batch row %d: token id %d outside the vocabulary (%d)", r, id,
                               c->vocab_size);
            if (tt < 0 || (tt > 0 && tt >= c->type_vocab_size))
                return qb_fail(err, QB_ERR_ARG, "batch row %d: token type %d outside [0, %d)", r, tt,
                               c->type_vocab_size > 0 ? c->type_vocab_size : 1);
            s->tok_ids[n] = id;
            s->tok_types[n] = tt;
            /* RoBERTa (fairseq): a pad token keeps pad_token_id, the rest count on */
            s->tok_pos[n] = !c->position_offset ? i : id == c->pad_token_id ? id : pos++;
        }
    }
    s->n_rows = n;
    s->batch = b->batch;
    s->seq = b->seq;
    return QB_OK;
}

qb_status qb_session_set_threads(qb_session *s, int n, qb_error *err) {
    if (n < 1 || n > s->n_threads)
        return qb_fail(err, QB_ERR_ARG, "session: %d threads is not in 1..%d", n, s->n_threads);
    qb_pool_set_team(s->pool, n);
    return QB_OK;
}

int qb_session_threads(const qb_session *s) { return s->n_threads; }

qb_attn_shape qb_session_attn_shape(const qb_session *s) {
    qb_attn_shape a = {s->batch, s->m->cfg.num_heads, s->m->cfg.hidden_size, s->offsets, s->lens,
                       s->tape ? s->tape->prob_offsets : NULL};
    return a;
}

qb_status qb_session_run(qb_session *s, const qb_batch *b, qb_error *err) {
    qb_status st = qb_session_pack(s, b, err);
    if (st) return st;
    qb_forward(s);
    return QB_OK;
}

qb_status qb_session_run_encodings(qb_session *s, const qb_encoding *const *encs, int n, qb_error *err) {
    if (n < 1 || n > s->max_batch)
        return qb_fail(err, QB_ERR_ARG, "%d inputs do not fit the session's batch of %d", n, s->max_batch);
    int seq = 1;
    for (int i = 0; i < n; i++) {
        if (!encs || !encs[i]) return qb_fail(err, QB_ERR_ARG, "input %d: NULL encoding", i);
        if (encs[i]->n < 1 || !encs[i]->input_ids || !encs[i]->token_type_ids)
            return qb_fail(err, QB_ERR_ARG, "input %d: no tokens", i);
        seq = encs[i]->n > seq ? encs[i]->n : seq;
    }
    if (seq > s->max_seq)
        return qb_fail(err, QB_ERR_ARG, "input of %d tokens exceeds the session's %d", seq, s->max_seq);
    for (int i = 0; i < n; i++) {
        size_t at = (size_t)i * seq;
        memcpy(s->pad_ids + at, encs[i]->input_ids, (size_t)encs[i]->n * sizeof(int32_t));
        memcpy(s->pad_types + at, encs[i]->token_type_ids, (size_t)encs[i]->n * sizeof(int32_t));
        s->pad_lens[i] = encs[i]->n;
    }
    qb_batch b = {.batch = n, .seq = seq, .input_ids = s->pad_ids, .token_type_ids = s->pad_types,
                  .lengths = s->pad_lens};
    return qb_session_run(s, &b, err);
}

qb_status qb_session_set_pooling(qb_session *s, const qb_embed_params *p, qb_error *err) {
    if (!p) return qb_fail(err, QB_ERR_ARG, "session: no pooling given");
    if (s->tape) return qb_fail(err, QB_ERR_ARG, "session: a training session does not pool");
    if (!p->pooling || p->pooling >= (1u << QB_POOL_MODES))
        return qb_fail(err, QB_ERR_ARG, "session: unknown pooling modes 0x%x", p->pooling);
    s->pooling = p->pooling;
    s->normalize = p->normalize != 0;
    s->embed_dim = qb_embed_dim(s->m, s->pooling);
    s->batch = 0; /* what the last run left is not pooled */
    return QB_OK;
}

const float *qb_session_embedding(const qb_session *s, int i) {
    if (!s->pooling || s->tape || i < 0 || i >= s->batch) return NULL;
    return s->a.pooled + (size_t)i * s->embed_dim;
}

const float *qb_session_hidden(const qb_session *s, int i, int *n_tokens) {
    if (s->tape || i < 0 || i >= s->batch) return NULL;
    if (n_tokens) *n_tokens = s->lens[i];
    return s->a.x + (size_t)s->offsets[i] * s->m->cfg.hidden_size;
}

const float *qb_session_logits(const qb_session *s, int i) {
    if (i < 0 || i >= s->batch || s->pooling || s->m->cfg.task == QB_TASK_MLM) return NULL;
    size_t L = (size_t)s->m->cfg.num_labels;
    return s->a.logits + (size_t)i * L * (s->m->cfg.task == QB_TASK_TOKEN ? (size_t)s->seq : 1);
}

int qb_session_seq(const qb_session *s) { return s->seq; }

qb_status qb_session_mlm_logits(qb_session *s, int i, int pos, float *out, qb_error *err) {
    if (s->m->cfg.task != QB_TASK_MLM || s->tape)
        return qb_fail(err, QB_ERR_ARG, "%s: %s has no masked-LM head", s->m->dir, s->m->cfg.class_name);
    if (s->pooling) return qb_fail(err, QB_ERR_ARG, "session: a pooling session has no masked-LM logits");
    if (i < 0 || i >= s->batch || pos < 0 || pos >= s->lens[i])
        return qb_fail(err, QB_ERR_ARG, "masked-LM logits: example %d token %d is not in the last run", i, pos);
    qb_forward_mlm_decode(s, s->offsets[i] + pos, out);
    return QB_OK;
}

int qb_argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

void qb_softmax(const float *logits, int n, float *probs) {
    if (n < 1) return;
    float mx = logits[qb_argmax(logits, n)];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    for (int i = 0; i < n; i++) probs[i] = (float)(exp((double)logits[i] - mx) / sum);
}

void qb_sigmoid(const float *logits, int n, float *probs) {
    for (int i = 0; i < n; i++) probs[i] = (float)(1.0 / (1.0 + exp(-(double)logits[i])));
}
