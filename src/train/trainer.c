/* The trainer: parameters copied from a loaded model, the engine's graph
 * run in training mode over them (src/model/forward.c), backward in exact
 * reverse order, AdamW.  Read forward.c's block() and block_backward()
 * side by side: each backward line undoes the forward line it mirrors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/carver.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "model/linear_format.h"
#include "train/trainer.h"

qb_trainer_params qb_trainer_default_params(void) {
    qb_trainer_params p = {.task = QB_TASK_SEQUENCE, .num_labels = 0, .new_head = false,
                           .hidden_dropout = -1, .attn_dropout = -1, .classifier_dropout = -1,
                           .seed = 42, .n_threads = 0};
    return p;
}

qb_adamw_params qb_adamw_default_params(void) {
    qb_adamw_params p = {.lr = 5e-5f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f,
                         .max_grad_norm = 1.0f, .warmup_steps = 0, .total_steps = 0};
    return p;
}

/* ---- construction ----------------------------------------------------- */

/* Masked LM: decoder rows a chunk ([chunk, vocab] logits and probabilities). */
enum { MLM_CHUNK = 512 };

/* HF's dropout defaults per architecture, overridden by config.json. */
static qb_status read_dropouts(qb_trainer *t, const qb_trainer_params *p, qb_error *err) {
    typedef struct { const char *hidden, *attn, *cls; float dh, da, dc; } dropout_keys;
    static const dropout_keys keys[] = {
        [QB_ARCH_BERT] = {"hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout", 0.1f, 0.1f, -1},
        [QB_ARCH_ALBERT] = {"hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout_prob", 0, 0, 0.1f},
        [QB_ARCH_DISTILBERT] = {"dropout", "attention_dropout", "seq_classif_dropout", 0.1f, 0.1f, 0.2f},
    };
    const dropout_keys *k = &keys[t->m->cfg.arch];
    char path[4096];
    json_t *j = NULL;
    if (!qb_path_join(path, sizeof path, t->m->dir, "config.json"))
        return qb_fail(err, QB_ERR_ARG, "%s: path too long", t->m->dir);
    qb_status st = qb_json_load_object(path, &j, err);
    if (!st) {
        t->p_hidden = (float)qb_json_get_number(j, k->hidden, k->dh);
        t->p_attn = (float)qb_json_get_number(j, k->attn, k->da);
        t->p_classifier = (float)qb_json_get_number(j, k->cls, k->dc);
        if (t->p_classifier < 0) t->p_classifier = t->p_hidden; /* BERT: null means hidden_dropout_prob */
    }
    json_decref(j);
    if (p->hidden_dropout >= 0) t->p_hidden = p->hidden_dropout;
    if (p->attn_dropout >= 0) t->p_attn = p->attn_dropout;
    if (p->classifier_dropout >= 0) t->p_classifier = p->classifier_dropout;
    if (!st && (t->p_hidden >= 1 || t->p_attn >= 1 || t->p_classifier >= 1))
        return qb_fail(err, QB_ERR_ARG, "%s: dropout probabilities must be below 1", path);
    return st;
}

/* Normal(0, std) from a hash of (seed, index): Box-Muller on two draws. */
static float normal_at(uint64_t seed, uint64_t i, float std) {
    uint64_t a = seed * 0x9e3779b97f4a7c15ull + 2 * i + 1, b = a + 1;
    a ^= a >> 31; a *= 0xbf58476d1ce4e5b9ull; a ^= a >> 29; a *= 0x94d049bb133111ebull; a ^= a >> 32;
    b ^= b >> 31; b *= 0xbf58476d1ce4e5b9ull; b ^= b >> 29; b *= 0x94d049bb133111ebull; b ^= b >> 32;
    double u1 = ((a >> 11) + 1.0) / 9007199254740993.0, u2 = (b >> 11) / 9007199254740992.0;
    return (float)(std * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

/* The registry is built in two passes: counting (storage NULL), then
 * filling; src pairs each entry with the model tensor it came from. */
typedef struct {
    qb_trainer *t;
    const float **src;
    int64_t used;           /* floats of one of w/g/m/v */
    int64_t total;
} builder;

static qb_tparam *add_param(builder *b, const char *name, int ndim, int64_t d0, int64_t d1, const float *src) {
    qb_trainer *t = b->t;
    int64_t numel = ndim == 1 ? d0 : d0 * d1;
    int i = t->n_params++;
    int64_t at = b->used;
    b->used += (numel + 15) & ~(int64_t)15;
    if (!t->storage) return NULL;
    qb_tparam *p = &t->params[i];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim == 2 ? d1 : 0;
    p->numel = numel;
    p->w = t->storage + at;
    p->g = t->storage + b->total + at;
    p->m = t->storage + 2 * b->total + at;
    p->v = t->storage + 3 * b->total + at;
    p->decay = ndim == 2;
    b->src[i] = src;
    if (src) memcpy(p->w, src, (size_t)numel * sizeof(float));
    else if (ndim == 2) /* a fresh weight: HF's normal(0, initializer_range), its draws keyed by its offset */
        for (int64_t j = 0; j < numel; j++) p->w[j] = normal_at(t->seed, (uint64_t)(at + j), t->init_std);
    return p;
}

static qb_tparam *add_model_param(builder *b, const float *data) {
    const qb_model *m = b->t->m;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].data == data) {
            const qb_param *mp = &m->params[i];
            return add_param(b, mp->name, mp->ndim, mp->shape[0], mp->ndim > 1 ? mp->shape[1] : 0, data);
        }
    return NULL;
}

static void bind_tlinear(builder *b, qb_tlinear *l, const qb_linear *ml) {
    qb_tparam *w = add_model_param(b, ml->w), *bias = add_model_param(b, ml->b);
    l->in = ml->in;
    l->out = ml->out;
    l->name = ml->name;
    if (!w) return;
    l->w = w->w;
    l->dw = w->g;
    l->b = bias->w;
    l->db = bias->g;
}

static void bind_tnorm(builder *b, qb_tnorm *n, const qb_norm *mn) {
    qb_tparam *g = add_model_param(b, mn->gamma), *beta = add_model_param(b, mn->beta);
    if (!g) return;
    n->gamma = g->w;
    n->dgamma = g->g;
    n->beta = beta->w;
    n->dbeta = beta->g;
}

/* The checkpoint's float tensor `name` of numel values that the model did
 * not bind (a bare encoder's pooler), or NULL. */
static const qb_st_tensor *unbound_tensor(const qb_model *m, const char *name, int64_t numel) {
    const qb_st_tensor *ct = qb_safetensors_find(&m->st, name);
    return ct && ct->numel == numel && qb_dtype_traits_of(ct->dtype)->is_float ? ct : NULL;
}

/* A head linear the model did not bind: the checkpoint's tensors when
 * asked and there (a BertModel's pooler), else as HF's _init_weights starts
 * one: weight normal(0, initializer_range), bias 0. */
static void add_head_linear(builder *b, qb_tlinear *l, const char *name, int out, bool from_checkpoint) {
    qb_trainer *t = b->t;
    char wn[160], bn[160];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(bn, sizeof bn, "%s.bias", name);
    qb_tparam *w = add_param(b, wn, 2, out, t->H, NULL), *bias = add_param(b, bn, 1, out, 0, NULL);
    *l = (qb_tlinear){.in = t->H, .out = out, .name = name};
    if (!w) return;
    l->w = w->w, l->dw = w->g;
    l->b = bias->w, l->db = bias->g;
    memset(bias->w, 0, (size_t)out * sizeof(float));
    if (!from_checkpoint) return;
    const qb_st_tensor *cw = unbound_tensor(t->m, wn, w->numel), *cb = unbound_tensor(t->m, bn, out);
    if (!cw || !cb) return;
    qb_safetensors_to_f32(cw, w->w);
    qb_safetensors_to_f32(cb, bias->w);
}

/* A LayerNorm the model did not bind: the checkpoint's tensors when there,
 * else as HF's _init_weights starts one: weight 1, bias 0. */
static void add_head_norm(builder *b, qb_tnorm *n, const char *name) {
    qb_trainer *t = b->t;
    char wn[160], bn[160];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(bn, sizeof bn, "%s.bias", name);
    qb_tparam *g = add_param(b, wn, 1, t->H, 0, NULL), *beta = add_param(b, bn, 1, t->H, 0, NULL);
    if (!g) return;
    *n = (qb_tnorm){.gamma = g->w, .beta = beta->w, .dgamma = g->g, .dbeta = beta->g};
    for (int i = 0; i < t->H; i++) g->w[i] = 1.0f, beta->w[i] = 0.0f;
    const qb_st_tensor *cw = unbound_tensor(t->m, wn, t->H), *cb = unbound_tensor(t->m, bn, t->H);
    if (!cw || !cb) return;
    qb_safetensors_to_f32(cw, g->w);
    qb_safetensors_to_f32(cb, beta->w);
}

/* The masked-LM head: the checkpoint's (a *ForMaskedLM model binds it),
 * else fresh as BertForMaskedLM starts it (dense normal(0, std), LayerNorm
 * 1 and 0, decoder bias 0), under the family's names.  The decoder is the
 * word-embedding table itself, so it adds no parameter. */
static void bind_mlm_head(builder *b) {
    qb_trainer *t = b->t;
    const qb_model *m = t->m;
    const qb_family *f = m->cfg.family;
    int V = m->cfg.vocab_size;
    if (m->mlm_dense.w) {
        bind_tlinear(b, &t->mlm_dense, &m->mlm_dense);
    } else {
        snprintf(t->mlm_fresh, sizeof t->mlm_fresh, "%s", f->mlm_dense);
        add_head_linear(b, &t->mlm_dense, t->mlm_fresh, t->H, true);
    }
    if (m->mlm_norm.gamma) bind_tnorm(b, &t->mlm_norm, &m->mlm_norm);
    else add_head_norm(b, &t->mlm_norm, f->mlm_norm);
    qb_tparam *p = m->mlm_bias ? add_model_param(b, m->mlm_bias) : add_param(b, f->mlm_bias, 1, V, 0, NULL);
    if (!p) return;
    t->mlm_bias = p->w;
    t->dmlm_bias = p->g;
    if (m->mlm_bias) return;
    memset(p->w, 0, (size_t)V * sizeof(float));
    const qb_st_tensor *ct = unbound_tensor(m, f->mlm_bias, V);
    if (ct) qb_safetensors_to_f32(ct, p->w);
}

/* A body without the sequence head's dense (BertModel, BertForMaskedLM,
 * a token classifier) gets the one its family's sequence class has: a
 * pooler under the checkpoint's own prefix ("bert." or none), or a head
 * linear of its own (DistilBERT's pre_classifier, RoBERTa's and
 * ELECTRA's classifier.dense). */
static const char *pooler_name(qb_trainer *t) {
    const qb_model *m = t->m;
    const qb_family *f = m->cfg.family;
    const char *emb = NULL;
    for (int i = 0; i < m->n_params && !emb; i++)
        if (m->params[i].data == m->word_emb) emb = m->params[i].name;
    const char *at = emb ? strstr(emb, "embeddings.") : NULL;
    int prefix = at && f->seq_dense_in_base ? (int)(at - emb) : 0;
    snprintf(t->head_pooler, sizeof t->head_pooler, "%.*s%s", prefix, emb ? emb : "", f->seq_dense);
    return t->head_pooler;
}

static void bind_all(builder *b, bool fresh_head) {
    qb_trainer *t = b->t;
    const qb_model *m = t->m;
    t->n_params = 0;
    qb_tparam *p = add_model_param(b, m->word_emb);
    if (p) t->word_emb = p->w, t->dword_emb = p->g;
    p = add_model_param(b, m->pos_emb);
    if (p) t->pos_emb = p->w, t->dpos_emb = p->g;
    if (m->type_emb && (p = add_model_param(b, m->type_emb))) t->type_emb = p->w, t->dtype_emb = p->g;
    bind_tnorm(b, &t->emb_norm, &m->emb_norm);
    if (m->emb_proj.w) bind_tlinear(b, &t->emb_proj, &m->emb_proj);
    for (int i = 0; i < m->n_blocks; i++) {
        const qb_block *mb = &m->blocks[i];
        qb_tblock *tb = &t->blocks[i];
        bind_tlinear(b, &tb->q, &mb->q);
        bind_tlinear(b, &tb->k, &mb->k);
        bind_tlinear(b, &tb->v, &mb->v);
        bind_tlinear(b, &tb->o, &mb->o);
        bind_tnorm(b, &tb->attn_norm, &mb->attn_norm);
        bind_tlinear(b, &tb->ffn_in, &mb->ffn_in);
        bind_tlinear(b, &tb->ffn_out, &mb->ffn_out);
        bind_tnorm(b, &tb->ffn_norm, &mb->ffn_norm);
    }
    if (t->view.cfg.task == QB_TASK_MLM) {
        bind_mlm_head(b);
        return;
    }
    const qb_linear *pool = m->pooler.w ? &m->pooler : m->pre_classifier.w ? &m->pre_classifier : NULL;
    if (t->view.cfg.task == QB_TASK_SEQUENCE && pool) bind_tlinear(b, &t->pooler, pool);
    else if (t->view.cfg.task == QB_TASK_SEQUENCE) add_head_linear(b, &t->pooler, pooler_name(t), t->H, true);
    if (fresh_head) {
        bool seq = t->view.cfg.task == QB_TASK_SEQUENCE;
        snprintf(t->head_classifier, sizeof t->head_classifier, "%s", seq ? m->cfg.family->seq_out : "classifier");
        add_head_linear(b, &t->classifier, t->head_classifier, t->L, false);
    } else bind_tlinear(b, &t->classifier, &m->classifier);
}

/* Where the view keeps the linear that ml is in the model. */
static qb_linear *view_linear(qb_trainer *t, const qb_linear *ml) {
    const qb_model *m = t->m;
    qb_model *v = &t->view;
    const char *p = (const char *)ml, *blocks = (const char *)m->blocks;
    if (p >= blocks && p < blocks + (size_t)m->n_blocks * sizeof *m->blocks)
        return (qb_linear *)((char *)v->blocks + (p - blocks));
    /* the trained head's linears only: a masked-LM model fine-tuned for
     * classification drops its transform, a classifier trained as a masked
     * LM its pooler and classifier, one trained on tags its pooler (as
     * transformers' token heads build no pooling layer) */
    bool mlm = v->cfg.task == QB_TASK_MLM, seq = v->cfg.task == QB_TASK_SEQUENCE;
    const qb_linear *own[] = {&m->emb_proj, &m->pooler, &m->pre_classifier, &m->classifier, &m->mlm_dense};
    qb_linear *views[] = {&v->emb_proj, seq ? &v->pooler : NULL, seq ? &v->pre_classifier : NULL,
                          mlm ? NULL : &v->classifier, mlm ? &v->mlm_dense : NULL};
    for (int i = 0; i < 5; i++)
        if (ml == own[i]) return views[i];
    return NULL;
}

static void view_bind(qb_trainer *t, qb_linear *vl, qb_tlinear *tl) {
    if (!tl->w) return;
    vl->w = tl->w;
    vl->b = tl->b;
    t->by_id[vl->id] = tl;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const qb_st_tensor *)a)->name, ((const qb_st_tensor *)b)->name);
}

/* The view's tensor table: the parameters, sorted by name as a loaded
 * file's are, which is what the quantizer reads (QAT's export). */
static bool view_tensors(qb_trainer *t) {
    qb_st_tensor *ts = calloc((size_t)t->n_params + 1, sizeof *ts);
    size_t bytes = 0;
    for (int i = 0; ts && i < t->n_params; i++) {
        const qb_tparam *p = &t->params[i];
        ts[i] = (qb_st_tensor){.name = (char *)p->name, .dtype = QB_F32, .ndim = p->ndim, .numel = p->numel,
                               .nbytes = (size_t)p->numel * sizeof(float), .data = p->w, .aligned = true};
        memcpy(ts[i].shape, p->shape, sizeof p->shape);
        bytes += ts[i].nbytes;
    }
    if (ts) qsort(ts, (size_t)t->n_params, sizeof *ts, by_name);
    t->view.st = (qb_safetensors){.path = t->m->st.path, .tensors = ts, .n = t->n_params};
    t->view.st.map.size = bytes;
    return ts != NULL;
}

/* The model the graph runs: m's config with this trainer's head, every
 * weight the trainer's parameter, all in the FP32 format. */
static qb_status build_view(qb_trainer *t, qb_error *err) {
    const qb_model *m = t->m;
    qb_model *v = &t->view;
    qb_config cfg = v->cfg; /* set first: bind_all reads the task */
    *v = *m;
    v->cfg = cfg;
    if (cfg.task != QB_TASK_SEQUENCE) v->pooler = v->pre_classifier = (qb_linear){0}; /* see view_linear */
    v->st = (qb_safetensors){0}; /* view_tensors() makes the view's own */
    v->blocks = malloc((size_t)m->n_blocks * sizeof *v->blocks);
    v->linears = malloc(((size_t)m->n_linears + 2) * sizeof *v->linears);
    t->by_id = calloc((size_t)m->n_linears + 2, sizeof *t->by_id);
    if (!v->blocks || !v->linears || !t->by_id) return qb_fail(err, QB_ERR_NOMEM, "trainer: out of memory");
    memcpy(v->blocks, m->blocks, (size_t)m->n_blocks * sizeof *v->blocks);
    v->n_linears = 0;
    for (int i = 0; i < m->n_linears; i++) {
        qb_linear *vl = view_linear(t, m->linears[i]);
        if (vl) v->linears[v->n_linears++] = vl;
    }
    if (t->head_pooler[0]) { /* a pooler the model did not bind joins the list */
        qb_linear *vp = m->cfg.arch == QB_ARCH_DISTILBERT ? &v->pre_classifier : &v->pooler;
        *vp = (qb_linear){.fmt = qb_linear_format_named("fp32"), .out = t->H, .in = t->H};
        snprintf(vp->name, sizeof vp->name, "%s", t->head_pooler);
        v->linears[v->n_linears++] = vp;
    }
    if (t->mlm_fresh[0]) { /* a fresh masked-LM transform joins the list */
        v->mlm_dense = (qb_linear){.fmt = qb_linear_format_named("fp32"), .out = t->H, .in = t->H};
        snprintf(v->mlm_dense.name, sizeof v->mlm_dense.name, "%s", t->mlm_fresh);
        v->linears[v->n_linears++] = &v->mlm_dense;
    }
    if (t->head_classifier[0]) { /* fresh, under its family's name; one the model had not joins the list */
        v->classifier = (qb_linear){.fmt = qb_linear_format_named("fp32")};
        snprintf(v->classifier.name, sizeof v->classifier.name, "%s", t->head_classifier);
        if (!m->classifier.out) v->linears[v->n_linears++] = &v->classifier;
    }
    /* ids index per-linear arrays (plans, scratch): none past the list */
    for (int i = 0; i < v->n_linears; i++) v->linears[i]->id = i;
    v->classifier.out = t->L;
    v->classifier.in = t->H;
    v->word_emb = t->word_emb;
    v->pos_emb = t->pos_emb;
    v->type_emb = t->type_emb;
    v->emb_norm = (qb_norm){t->emb_norm.gamma, t->emb_norm.beta};
    for (int i = 0; i < m->n_blocks; i++) {
        qb_block *vb = &v->blocks[i];
        qb_tblock *tb = &t->blocks[i];
        qb_linear *vls[] = {&vb->q, &vb->k, &vb->v, &vb->o, &vb->ffn_in, &vb->ffn_out};
        qb_tlinear *tls[] = {&tb->q, &tb->k, &tb->v, &tb->o, &tb->ffn_in, &tb->ffn_out};
        for (int j = 0; j < 6; j++) view_bind(t, vls[j], tls[j]);
        vb->attn_norm = (qb_norm){tb->attn_norm.gamma, tb->attn_norm.beta};
        vb->ffn_norm = (qb_norm){tb->ffn_norm.gamma, tb->ffn_norm.beta};
    }
    view_bind(t, &v->emb_proj, &t->emb_proj);
    view_bind(t, v->pooler.out ? &v->pooler : &v->pre_classifier, &t->pooler);
    view_bind(t, &v->classifier, &t->classifier);
    view_bind(t, &v->mlm_dense, &t->mlm_dense);
    v->mlm_norm = (qb_norm){t->mlm_norm.gamma, t->mlm_norm.beta};
    v->mlm_bias = t->mlm_bias;
    v->mlm_decoder = NULL; /* tied: the trainer's word embeddings */
    return view_tensors(t) ? QB_OK : qb_fail(err, QB_ERR_NOMEM, "trainer: out of memory");
}

static qb_status check_model(const qb_model *m, const qb_trainer_params *p, qb_error *err) {
    if (!m->word_emb) return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: training needs FP32 word embeddings", m->dir);
    for (int i = 0; i < m->n_linears; i++)
        if (!m->linears[i]->w)
            return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: '%s' is %s; training needs an FP32 checkpoint", m->dir,
                           m->linears[i]->name, m->linears[i]->fmt->name);
    if (p->num_labels < 0) return qb_fail(err, QB_ERR_ARG, "trainer: num_labels %d < 0", p->num_labels);
    if (p->task == QB_TASK_SEQUENCE && !p->new_head && m->cfg.head_function != QB_HEAD_SOFTMAX)
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: its head is read as %s (problem_type, or one label); training "
                       "fits a softmax over classes: give --new-head", m->dir,
                       m->cfg.head_function == QB_HEAD_SIGMOID ? "sigmoids" : "regression outputs");
    if (p->task == QB_TASK_MLM && !m->cfg.family->mlm_dense)
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: qbert has no masked-LM head for model_type \"%s\" (bert, "
                       "roberta, xlm-roberta, camembert)", m->dir, m->cfg.model_type);
    if (p->task == QB_TASK_MLM && m->cfg.embedding_size != m->cfg.hidden_size) /* the tied decoder reads H */
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: masked-LM training needs embedding_size == hidden_size", m->dir);
    return QB_OK;
}

qb_status qb_trainer_create(const qb_model *m, const qb_trainer_params *p, qb_trainer **out, qb_error *err) {
    *out = NULL;
    qb_trainer_params d = qb_trainer_default_params();
    if (!p) p = &d;
    qb_status st = check_model(m, p, err);
    if (st) return st;
    qb_trainer *t = calloc(1, sizeof *t);
    if (!t) return qb_fail(err, QB_ERR_NOMEM, "trainer: out of memory");
    const qb_config *c = &m->cfg;
    t->m = m;
    t->H = c->hidden_size;
    t->E = c->embedding_size;
    t->I = c->intermediate_size;
    bool mlm = p->task == QB_TASK_MLM;
    t->L = mlm ? c->vocab_size : p->num_labels ? p->num_labels : c->num_labels;
    t->view.cfg = *c;
    t->view.cfg.task = p->task;
    t->view.cfg.num_labels = mlm ? c->num_labels : t->L;
    t->heads = c->num_heads;
    t->act = c->act;
    t->eps = c->layer_norm_eps;
    t->seed = p->seed;
    t->init_std = c->initializer_range;
    t->mlm_chunk_cap = p->mlm_chunk > 0 ? p->mlm_chunk : MLM_CHUNK;
    t->n_threads = p->n_threads ? p->n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (t->n_threads < 1) t->n_threads = 1;
    bool fresh = p->new_head || t->L != c->num_labels || p->task != c->task;
    int inner = qb_model_inner_steps(m);
    t->n_apps = c->num_layers * inner;
    t->n_blocks = m->n_blocks;
    t->blocks = calloc((size_t)m->n_blocks, sizeof *t->blocks);
    t->app_block = calloc((size_t)t->n_apps, sizeof *t->app_block);
    /* + a fresh pooler and classifier, or a fresh masked-LM head */
    t->params = calloc((size_t)m->n_params + 6, sizeof *t->params);
    builder b = {t, calloc((size_t)m->n_params + 6, sizeof(float *)), 0, 0};
    if (!t->blocks || !t->app_block || !t->params || !b.src) {
        free(b.src);
        qb_trainer_free(t);
        return qb_fail(err, QB_ERR_NOMEM, "trainer: out of memory");
    }
    for (int l = 0; l < c->num_layers; l++)
        for (int i = 0; i < inner; i++) t->app_block[l * inner + i] = (int)(qb_model_block(m, l, i) - m->blocks);
    bind_all(&b, fresh); /* counts */
    b.total = b.used;
    b.used = 0;
    t->storage = calloc((size_t)(4 * b.total + 1), sizeof(float));
    if (t->storage) bind_all(&b, fresh);
    free(b.src);
    if (!t->storage) {
        qb_trainer_free(t);
        return qb_fail(err, QB_ERR_NOMEM, "trainer: out of memory for %lld parameters", (long long)b.total);
    }
    st = build_view(t, err);
    if (!st) st = read_dropouts(t, p, err);
    if (st) {
        qb_trainer_free(t);
        return st;
    }
    *out = t;
    return QB_OK;
}

void qb_trainer_free(qb_trainer *t) {
    if (!t) return;
    free(t->storage);
    free(t->params);
    free(t->blocks);
    free(t->app_block);
    free(t->view.blocks);
    free(t->view.linears);
    free(t->view.st.tensors);
    free(t->by_id);
    qb_session_free(t->s);
    free(t->tape.layers);
    free(t->tape.prob_offsets);
    free(t->arena);
    free(t->labels);
    free(t->mlm_rows);
    free(t->mlm_labels);
    if (t->qat) {
        free(t->qat->sites);
        free(t->qat->wq);
        free(t->qat->q);
        free(t->qat->q_scale);
        free(t->qat->codes);
        free(t->qat->lb_scale);
        free(t->qat->lb_zero);
        free(t->qat);
    }
    free(t);
}

qb_tparam *qb_trainer_param(qb_trainer *t, const char *name) {
    for (int i = 0; i < t->n_params; i++)
        if (strcmp(t->params[i].name, name) == 0) return &t->params[i];
    return NULL;
}

/* ---- the arena -------------------------------------------------------- */

static size_t max3(size_t a, size_t b, size_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

static void layout(qb_trainer *t, qb_carver *c) {
    size_t T = (size_t)t->max_batch * t->max_seq, H = (size_t)t->H, E = (size_t)t->E, I = (size_t)t->I;
    bool mlm = t->view.cfg.task == QB_TASK_MLM;
    size_t L = mlm ? 1 : (size_t)t->L, P = (size_t)t->max_batch * t->heads * t->max_seq * t->max_seq;
    bool qat = t->qat != NULL;
    qb_tape *tp = &t->tape;
    tp->emb = (qb_tape_embed){.sum = qb_carve(c, T * E), .mean = qb_carve(c, T), .rstd = qb_carve(c, T),
                              .ln = qb_carve(c, T * E), .drop = qb_carve(c, T * E), .q = qat ? qb_carve(c, T * E) : NULL};
    for (int a = 0; a < t->n_apps; a++) {
        qb_tape_layer *l = &tp->layers[a];
        l->x = a == 0 && !t->emb_proj.w ? tp->emb.drop : qb_carve(c, T * H);
        float **th[] = {&l->q, &l->k, &l->v, &l->ctx, &l->attn_sum, &l->attn, &l->out_sum};
        for (size_t i = 0; i < sizeof th / sizeof *th; i++) *th[i] = qb_carve(c, T * H);
        l->probs = qb_carve(c, P);
        float **rows[] = {&l->attn_mean, &l->attn_rstd, &l->out_mean, &l->out_rstd};
        for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) *rows[i] = qb_carve(c, T);
        l->ffn_pre = qb_carve(c, T * I);
        l->ffn_act = qb_carve(c, T * I);
        l->x_q = qat ? qb_carve(c, T * H) : NULL;
        l->ctx_q = qat ? qb_carve(c, T * H) : NULL;
        l->attn_q = qat ? qb_carve(c, T * H) : NULL;
        l->ffn_act_q = qat ? qb_carve(c, T * I) : NULL;
        if (a > 0) tp->layers[a - 1].out = l->x;
    }
    tp->layers[t->n_apps - 1].out = qb_carve(c, T * H);
    tp->head = (qb_tape_head){.in = qb_carve(c, T * H), .in_q = qat ? qb_carve(c, T * H) : NULL,
                              .pre = qb_carve(c, T * H), .act = qb_carve(c, T * H), .drop = qb_carve(c, T * H),
                              .logits = qb_carve(c, T * L)};
    if (mlm) {
        size_t C = T < (size_t)t->mlm_chunk_cap ? T : (size_t)t->mlm_chunk_cap, V = (size_t)t->L;
        t->mlm_chunk = (int)C;
        tp->head.ln = qb_carve(c, T * H);
        tp->head.mean = qb_carve(c, T);
        tp->head.rstd = qb_carve(c, T);
        t->mlm_x = qb_carve(c, C * H);
        t->mlm_dx = qb_carve(c, C * H);
        t->mlm_logits = qb_carve(c, C * V);
        t->mlm_probs = qb_carve(c, C * V);
    }
    tp->tmp = qb_carve(c, T * H);
    t->probs = qb_carve(c, T * L);
    t->g_logits = qb_carve(c, T * L);
    t->kd_student = qb_carve(c, T * L);
    t->kd_teacher = qb_carve(c, T * L);
    float **g[] = {&t->g_out, &t->g_in, &t->g_sum, &t->g_attn, &t->g_tmp, &t->g_ctx, &t->g_q, &t->g_k, &t->g_v};
    for (size_t i = 0; i < sizeof g / sizeof *g; i++) *g[i] = qb_carve(c, T * H);
    t->g_ffn_act = qb_carve(c, T * I);
    t->g_ffn_pre = qb_carve(c, T * I);
    t->g_emb0 = qb_carve(c, T * E);
    t->g_emb1 = qb_carve(c, T * E);
    t->g_xq = qat ? qb_carve(c, T * max3(H, E, I)) : NULL;
    t->ops.pack = qb_carve(c, (size_t)t->n_threads * qb_gemm_f32_pack_floats());
    size_t widest = max3(H, E, I) > L ? max3(H, E, I) : L;
    size_t scratch = qb_op_linear_scratch_floats((int)T, (int)widest, (int)widest);
    if (mlm && qb_op_linear_scratch_floats(t->mlm_chunk, t->H, t->L) > scratch)
        scratch = qb_op_linear_scratch_floats(t->mlm_chunk, t->H, t->L);
    t->ops.scratch = qb_carve(c, scratch);
    t->ops.attn_work = qb_carve(c, (size_t)t->n_threads * qb_op_attention_work_floats(t->max_seq, t->H));
}

static const float *train_weight(void *ctx, const qb_linear *l);
static const float *train_input(void *ctx, const qb_linear *l, const float *x, float *xq, int rows);

/* The session packs batches and runs the graph in training mode onto the tape. */
static qb_status reserve_session(qb_trainer *t, qb_error *err) {
    qb_session_params sp = {.max_batch = t->max_batch, .max_seq = t->max_seq, .n_threads = t->n_threads};
    qb_tape *tp = &t->tape;
    tp->ops = &t->ops;
    tp->seed = t->seed;
    tp->hooks = t->qat ? (qb_tape_hooks){train_weight, train_input, t} : (qb_tape_hooks){0};
    return qb_session_create_training(&t->view, &sp, tp, &t->s, err);
}

qb_status qb_trainer_reserve(qb_trainer *t, int max_batch, int max_seq, qb_error *err) {
    if (max_batch < 1 || max_seq < 1 || max_seq > t->m->cfg.max_position)
        return qb_fail(err, QB_ERR_ARG, "trainer: batch %d x seq %d out of range (seq <= %d)", max_batch, max_seq,
                       t->m->cfg.max_position);
    if (max_batch <= t->max_batch && max_seq <= t->max_seq) return QB_OK;
    free(t->arena);
    free(t->labels);
    free(t->tape.prob_offsets);
    free(t->mlm_rows);
    free(t->mlm_labels);
    qb_session_free(t->s);
    t->arena = NULL;
    t->labels = NULL;
    t->mlm_rows = t->mlm_labels = NULL;
    t->s = NULL;
    if (!t->tape.layers) t->tape.layers = calloc((size_t)t->n_apps, sizeof *t->tape.layers);
    t->max_batch = max_batch;
    t->max_seq = max_seq;
    qb_carver c = {NULL, 0};
    if (t->tape.layers) layout(t, &c);
    t->arena = t->tape.layers ? aligned_alloc(64, (c.used + 16) * sizeof(float)) : NULL;
    t->labels = calloc((size_t)max_batch * max_seq, sizeof *t->labels);
    t->tape.prob_offsets = calloc((size_t)max_batch, sizeof *t->tape.prob_offsets);
    t->mlm_rows = calloc((size_t)max_batch * max_seq, sizeof *t->mlm_rows);
    t->mlm_labels = calloc((size_t)max_batch * max_seq, sizeof *t->mlm_labels);
    if (!t->arena || !t->labels || !t->tape.prob_offsets || !t->mlm_rows || !t->mlm_labels) {
        t->max_batch = t->max_seq = 0;
        return qb_fail(err, QB_ERR_NOMEM, "trainer: out of memory for activations of batch %d x seq %d", max_batch,
                       max_seq);
    }
    c.base = t->arena;
    c.used = 0;
    layout(t, &c);
    t->ops.k = &t->m->kern;
    t->ops.max_seq = max_seq;
    t->ops.hidden = t->H;
    qb_status st = reserve_session(t, err);
    if (st) t->max_batch = t->max_seq = 0;
    t->ops.pool = st ? NULL : t->s->pool; /* the session's threads run the trainer's ops too */
    return st;
}

/* ---- input packing ---------------------------------------------------- */

static qb_status check_label(const qb_trainer *t, int32_t y, int row, qb_error *err) {
    if (y == QB_IGNORE_INDEX || (y >= 0 && y < t->L)) return QB_OK;
    return qb_fail(err, QB_ERR_ARG, "batch row %d: label %d outside [0, %d)", row, y, t->L);
}

/* The session has packed and checked the tokens; labels follow its rows. */
static qb_status pack_labels(qb_trainer *t, const qb_batch *b, const int32_t *labels, qb_error *err) {
    const qb_session *s = t->s;
    bool token = t->view.cfg.task == QB_TASK_TOKEN || t->view.cfg.task == QB_TASK_MLM;
    for (int r = 0; r < s->batch; r++) {
        if (!token) {
            t->labels[r] = labels ? labels[r] : QB_IGNORE_INDEX;
            if (check_label(t, t->labels[r], r, err)) return err->code;
            continue;
        }
        for (int i = 0; i < s->lens[r]; i++) {
            int32_t *y = &t->labels[s->offsets[r] + i];
            *y = labels ? labels[(size_t)r * b->seq + i] : QB_IGNORE_INDEX;
            if (check_label(t, *y, r, err)) return err->code;
        }
    }
    return QB_OK;
}

/* ---- QAT: what each linear computes with ------------------------------- */

static bool fake_quantized(const qb_trainer *t, const qb_tlinear *l) {
    return t->qat && !t->qat->calibrating && l->wq;
}

static const float *weight_of(const qb_trainer *t, const qb_tlinear *l) { return fake_quantized(t, l) ? l->wq : l->w; }

/* The input linear l reads: x, or x fake-quantized into xq.  Calibration
 * forwards only record x's range. */
static const float *input_of(qb_trainer *t, const qb_tlinear *l, const float *x, float *xq, int rows) {
    if (!t->qat || !l->wq) return x;
    qb_fq_site *s = &t->qat->sites[l->site];
    if (t->qat->calibrating) {
        qb_fq_observe(s, x, (size_t)rows * l->in);
        return x;
    }
    qb_fq_input_forward(s, xq, x, (size_t)rows * l->in, t->ops.pool);
    return xq;
}

/* Every linear of the trainer, the classifier last. */
static int all_linears(qb_trainer *t, qb_tlinear **out) {
    int n = 0;
    for (int i = 0; i < t->n_blocks; i++) {
        qb_tblock *b = &t->blocks[i];
        qb_tlinear *ls[] = {&b->q, &b->k, &b->v, &b->o, &b->ffn_in, &b->ffn_out};
        for (int j = 0; j < 6; j++) out[n++] = ls[j];
    }
    if (t->emb_proj.w) out[n++] = &t->emb_proj;
    if (t->pooler.w) out[n++] = &t->pooler;
    out[n++] = &t->classifier;
    return n;
}

static int max_linears(const qb_trainer *t) { return 6 * t->n_blocks + 3; }

/* The low-bit format's quantizer spec for a linear of `in` columns, as
 * qb_quantize writes it (group 0 means 128, -1 one group per row). */
static qb_lowbit_spec lowbit_spec(const qb_qat_params *p, int in) {
    int group = p->group_size < 0 ? in : p->group_size ? p->group_size : 128;
    if (p->ternary) return (qb_lowbit_spec){.kind = QB_LOWBIT_TERNARY, .bits = 2, .group = group};
    return (qb_lowbit_spec){.kind = QB_LOWBIT_GRID, .bits = p->bits, .group = group, .zero_point = p->zero_point};
}

/* The weights moved since the last forward: quantize them again. */
static qb_status refresh_fake_weights(qb_trainer *t, qb_tlinear **ls, qb_error *err) {
    qb_qat *q = t->qat;
    int n = all_linears(t, ls);
    for (int i = 0; i < n; i++) {
        qb_tlinear *l = ls[i];
        if (!l->wq) continue;
        if (!q->lowbit) {
            qb_fq_weight(l->w, l->out, l->in, q->p.bits, l->wq, q->q, q->q_scale);
            continue;
        }
        qb_lowbit_spec sp = lowbit_spec(&q->p, l->in);
        if (!qb_fq_weight_lowbit(l->w, l->out, l->in, &sp, l->wq, q->codes, q->lb_scale, q->lb_zero))
            return qb_fail(err, QB_ERR_NOMEM, "QAT: out of memory quantizing '%s'", l->name);
    }
    return QB_OK;
}

/* The graph's training linears: QAT's fake-quantized weight and input. */
static const float *train_weight(void *ctx, const qb_linear *l) {
    const qb_trainer *t = ctx;
    return weight_of(t, t->by_id[l->id]);
}

static const float *train_input(void *ctx, const qb_linear *l, const float *x, float *xq, int rows) {
    qb_trainer *t = ctx;
    return input_of(t, t->by_id[l->id], x, xq, rows);
}

/* ---- the masked-LM decoder ------------------------------------------- */

static int mlm_chunks(const qb_trainer *t) { return (t->n_mlm_rows + t->mlm_chunk - 1) / t->mlm_chunk; }

/* logits = x E^T + bias on chunk c of the labelled rows (E: the word
 * embeddings); returns its row count. */
static int mlm_decode(qb_trainer *t, int c) {
    int H = t->H, r0 = c * t->mlm_chunk, n = t->n_mlm_rows - r0 < t->mlm_chunk ? t->n_mlm_rows - r0 : t->mlm_chunk;
    for (int i = 0; i < n; i++)
        memcpy(t->mlm_x + (size_t)i * H, t->tape.head.ln + (size_t)t->mlm_rows[r0 + i] * H, (size_t)H * sizeof(float));
    qb_op_linear_forward(&t->ops, t->mlm_logits, t->mlm_x, t->word_emb, t->mlm_bias, n, H, t->L);
    return n;
}

/* Mean cross-entropy over the rows with a label, chunk by chunk; the
 * softmax of the last chunk stays for backward. */
static float mlm_loss(qb_trainer *t) {
    int n = 0;
    for (int r = 0; r < t->n_rows; r++)
        if (t->labels[r] != QB_IGNORE_INDEX) t->mlm_rows[n] = r, t->mlm_labels[n++] = t->labels[r];
    t->n_mlm_rows = t->n_used = n;
    double total = 0;
    for (int c = 0; c < mlm_chunks(t); c++) {
        int rows = mlm_decode(t, c), used = 0;
        float mean = qb_op_cross_entropy_forward(t->mlm_probs, t->mlm_logits, t->mlm_labels + (size_t)c * t->mlm_chunk,
                                                 rows, t->L, &used);
        total += (double)mean * used;
        t->mlm_probs_of = c;
    }
    return n ? (float)(total / n) : 0.0f;
}

qb_status qb_trainer_forward(qb_trainer *t, const qb_batch *b, const int32_t *labels, bool training, float *loss,
                             qb_error *err) {
    if (!t->s) return qb_fail(err, QB_ERR_ARG, "trainer: qb_trainer_reserve must come before a forward");
    qb_status st = qb_session_pack(t->s, b, err);
    if (!st) st = pack_labels(t, b, labels, err);
    if (st) return st;
    t->batch = b->batch;
    t->n_rows = t->s->n_rows;
    t->teacher = NULL;
    qb_tape *tp = &t->tape;
    if (training) tp->step = (uint64_t)t->n_forward++;
    tp->p_hidden = training ? t->p_hidden : 0;
    tp->p_attn = training ? t->p_attn : 0;
    tp->p_classifier = training ? t->p_classifier : 0;
    if (t->qat && !t->qat->calibrating) {
        qb_tlinear *ls[max_linears(t)];
        st = refresh_fake_weights(t, ls, err);
        if (st) return st;
    }
    qb_forward(t->s);
    t->n_label_rows = t->view.cfg.task == QB_TASK_SEQUENCE ? t->batch : t->n_rows;
    if (t->view.cfg.task == QB_TASK_MLM) t->loss = mlm_loss(t);
    else t->loss = qb_op_cross_entropy_forward(t->probs, tp->head.logits, t->labels, t->n_label_rows, t->L,
                                               &t->n_used);
    if (loss) *loss = t->loss;
    if (t->qat && t->qat->calibrating) {
        t->qat->n_calibrated++;
        for (int i = 0; i < t->qat->n_sites; i++) qb_fq_site_average(&t->qat->sites[i], t->qat->n_calibrated);
    }
    return QB_OK;
}

const float *qb_trainer_logits(const qb_trainer *t) {
    return t->view.cfg.task == QB_TASK_MLM ? NULL : t->tape.head.logits;
}

const float *qb_trainer_block_output(const qb_trainer *t, int app) { return t->tape.layers[app].out; }

/* ---- distillation ----------------------------------------------------- */

static qb_status check_teacher(const qb_trainer *t, const qb_trainer *teacher, const qb_distill_params *p,
                               qb_error *err) {
    if (!(p->temperature > 0) || !isfinite(p->temperature))
        return qb_fail(err, QB_ERR_ARG, "distill: temperature %g is not > 0", (double)p->temperature);
    if (t->view.cfg.task == QB_TASK_MLM)
        return qb_fail(err, QB_ERR_UNSUPPORTED, "distill: masked-LM training does not distil");
    if (teacher->L != t->L || teacher->view.cfg.task != t->view.cfg.task)
        return qb_fail(err, QB_ERR_ARG, "%s: the teacher's head (%d labels) is not the student's (%d labels)",
                       teacher->m->dir, teacher->L, t->L);
    if (teacher->batch != t->batch || teacher->n_rows != t->n_rows)
        return qb_fail(err, QB_ERR_ARG, "distill: the teacher's last batch (%d rows, %d tokens) is not the "
                       "student's (%d, %d)", teacher->batch, teacher->n_rows, t->batch, t->n_rows);
    if (p->hidden && (teacher->n_apps != t->n_apps || teacher->H != t->H))
        return qb_fail(err, QB_ERR_ARG, "%s: hidden-state distillation needs the student's %d layers of %d; the "
                       "teacher has %d of %d", teacher->m->dir, t->n_apps, t->H, teacher->n_apps, teacher->H);
    return QB_OK;
}

qb_status qb_trainer_distill(qb_trainer *t, const qb_trainer *teacher, const qb_distill_params *p, float *loss,
                             qb_error *err) {
    qb_status st = check_teacher(t, teacher, p, err);
    if (st) return st;
    t->kd_loss = qb_op_kd_forward(t->kd_student, t->kd_teacher, qb_trainer_logits(t), qb_trainer_logits(teacher),
                                  t->labels,
                                  t->n_label_rows, t->L, p->temperature, &t->n_distill_rows);
    t->hidden_loss = 0;
    for (int a = 0; p->hidden && a < t->n_apps; a++)
        t->hidden_loss += qb_op_mse_forward(qb_trainer_block_output(t, a), qb_trainer_block_output(teacher, a),
                                            (size_t)t->n_rows * t->H);
    t->teacher = teacher;
    t->distill = *p;
    t->loss += t->kd_loss + t->hidden_loss;
    if (loss) *loss = t->loss;
    return QB_OK;
}

/* ---- backward --------------------------------------------------------- */

static float *zeroed(float *p, size_t n) {
    memset(p, 0, n * sizeof *p);
    return p;
}

/* Backward of the n linears that read one input x (Q, K and V; or one
 * alone), through its fake quantization when the forward had it. */
static void linears_backward(qb_trainer *t, const qb_tlinear *const *ls, const float *const *dys, int n, float *dx,
                             const float *x, const float *xq, int rows) {
    const qb_tlinear *l = ls[0];
    bool fq = fake_quantized(t, l);
    float *din = fq ? zeroed(t->g_xq, (size_t)rows * l->in) : dx;
    for (int i = 0; i < n; i++)
        qb_op_linear_backward(&t->ops, din, ls[i]->dw, ls[i]->db, dys[i], fq ? xq : x, weight_of(t, ls[i]), rows,
                              ls[i]->in, ls[i]->out);
    if (fq)
        qb_fq_input_backward(&t->qat->sites[l->site], dx, din, x, (size_t)rows * l->in,
                             t->qat->p.observer == QB_FQ_LSQ, t->ops.pool);
}

static void linear_backward(qb_trainer *t, const qb_tlinear *l, float *dx, const float *dy, const float *x,
                            const float *xq, int rows) {
    linears_backward(t, &l, &dy, 1, dx, x, xq, rows);
}

/* The masked-LM head, forward.c's head() read bottom up: the decoder
 * (logits = ln E^T + bias, chunk by chunk from the last, whose softmax the
 * forward kept), then ln = LN(act(x Wd + bd)).  The decoder's weight
 * gradient adds into the word embeddings' (embed_backward adds the input
 * side later). */
static void mlm_head_backward(qb_trainer *t) {
    int H = t->H, T = t->n_rows, V = t->L, C = t->mlm_chunk;
    size_t TH = (size_t)T * H;
    const qb_tape_head *a = &t->tape.head;
    float *dln = zeroed(t->g_tmp, TH), *dact = zeroed(t->g_sum, TH), *dpre = zeroed(t->g_attn, TH);
    for (int c = mlm_chunks(t) - 1; c >= 0; c--) {
        const int32_t *labels = t->mlm_labels + (size_t)c * C;
        int rows = t->n_mlm_rows - c * C < C ? t->n_mlm_rows - c * C : C, used;
        if (t->mlm_probs_of != c) {
            mlm_decode(t, c);
            qb_op_cross_entropy_forward(t->mlm_probs, t->mlm_logits, labels, rows, V, &used);
            t->mlm_probs_of = c;
        }
        float *dlogits = zeroed(t->mlm_logits, (size_t)rows * V), *dx = zeroed(t->mlm_dx, (size_t)rows * H);
        qb_op_cross_entropy_backward(dlogits, t->mlm_probs, labels, rows, V, t->n_used);
        qb_op_linear_backward(&t->ops, dx, t->dword_emb, t->dmlm_bias, dlogits, t->mlm_x, t->word_emb, rows, H, V);
        for (int i = 0; i < rows; i++) {
            float *d = dln + (size_t)t->mlm_rows[c * C + i] * H;
            for (int j = 0; j < H; j++) d[j] += dx[(size_t)i * H + j];
        }
    }
    float *dout = zeroed(t->g_out, TH);
    qb_op_layernorm_backward(&t->ops, dact, t->mlm_norm.dgamma, t->mlm_norm.dbeta, dln, a->act, a->mean, a->rstd,
                             t->mlm_norm.gamma, T, H);
    qb_op_act_backward(&t->ops, t->view.cfg.mlm_act, dpre, dact, a->pre, TH);
    linear_backward(t, &t->mlm_dense, dout, dpre, t->tape.layers[t->n_apps - 1].out, NULL, T);
}

/* Leaves d(loss)/d(enc_out) in t->g_out. */
static void head_backward(qb_trainer *t) {
    if (t->view.cfg.task == QB_TASK_MLM) {
        mlm_head_backward(t);
        return;
    }
    int H = t->H, L = t->L, B = t->batch, T = t->n_rows;
    const qb_tape *tp = &t->tape;
    const int32_t *offsets = t->s->offsets;
    qb_dropout d = qb_tape_dropout(tp, QB_SITE_HEAD, tp->p_classifier);
    float *dlogits = zeroed(t->g_logits, (size_t)t->n_label_rows * L);
    qb_op_cross_entropy_backward(dlogits, t->probs, t->labels, t->n_label_rows, L, t->n_used);
    if (t->teacher)
        qb_op_kd_backward(dlogits, t->kd_student, t->kd_teacher, t->labels, t->n_label_rows, L,
                          t->distill.temperature, t->n_distill_rows);
    float *dout = zeroed(t->g_out, (size_t)T * H);
    if (t->view.cfg.task == QB_TASK_TOKEN) {
        float *ddrop = zeroed(t->g_tmp, (size_t)T * H);
        qb_op_linear_backward(&t->ops, ddrop, t->classifier.dw, t->classifier.db, dlogits, tp->head.drop,
                              t->classifier.w, T, H, L);
        qb_op_dropout_backward(&d, dout, ddrop, (size_t)T * H);
        return;
    }
    float *ddrop = zeroed(t->g_tmp, (size_t)B * H), *dact = zeroed(t->g_sum, (size_t)B * H);
    float *dpre = zeroed(t->g_attn, (size_t)B * H), *din = zeroed(t->g_ctx, (size_t)B * H);
    qb_act act = t->view.cfg.family->head_act;
    qb_op_linear_backward(&t->ops, ddrop, t->classifier.dw, t->classifier.db, dlogits, tp->head.drop,
                          t->classifier.w, B, H, L);
    qb_op_dropout_backward(&d, dact, ddrop, (size_t)B * H);
    qb_op_act_backward(&t->ops, act, dpre, dact, tp->head.pre, (size_t)B * H);
    linear_backward(t, &t->pooler, din, dpre, tp->head.in, tp->head.in_q, B);
    for (int b = 0; b < B; b++) memcpy(dout + (size_t)offsets[b] * H, din + (size_t)b * H, (size_t)H * sizeof(float));
}

/* dout: d(loss)/d(block output); leaves d(loss)/d(block input) in dx. */
static void block_backward(qb_trainer *t, int app, const float *dout, float *dx) {
    const qb_tblock *b = &t->blocks[t->app_block[app]];
    const qb_tape *tp = &t->tape;
    const qb_tape_layer *a = &tp->layers[app];
    int T = t->n_rows, H = t->H, I = t->I;
    size_t TH = (size_t)T * H, TI = (size_t)T * I;
    qb_attn_shape shape = qb_session_attn_shape(t->s);
    qb_dropout d_probs = qb_tape_dropout(tp, qb_tape_site(app, 0), tp->p_attn);
    qb_dropout d_attn = qb_tape_dropout(tp, qb_tape_site(app, 1), tp->p_hidden);
    qb_dropout d_ffn = qb_tape_dropout(tp, qb_tape_site(app, 2), tp->p_hidden);
    float *dsum = zeroed(t->g_sum, TH), *dattn = zeroed(t->g_attn, TH), *dtmp = zeroed(t->g_tmp, TH);
    float *dffn_act = zeroed(t->g_ffn_act, TI), *dffn_pre = zeroed(t->g_ffn_pre, TI);
    /* out = LN(attn + drop(ffn_act Wout)) */
    qb_op_layernorm_backward(&t->ops, dsum, b->ffn_norm.dgamma, b->ffn_norm.dbeta, dout, a->out_sum, a->out_mean,
                             a->out_rstd, b->ffn_norm.gamma, T, H);
    float *ddrop = zeroed(t->g_q, TH);
    qb_op_residual_backward(dattn, ddrop, dsum, TH);
    qb_op_dropout_backward(&d_ffn, dtmp, ddrop, TH);
    linear_backward(t, &b->ffn_out, dffn_act, dtmp, a->ffn_act, a->ffn_act_q, T);
    qb_op_act_backward(&t->ops, t->act, dffn_pre, dffn_act, a->ffn_pre, TI);
    linear_backward(t, &b->ffn_in, dattn, dffn_pre, a->attn, a->attn_q, T);
    /* attn = LN(x + drop(ctx Wo)) */
    zeroed(dsum, TH);
    qb_op_layernorm_backward(&t->ops, dsum, b->attn_norm.dgamma, b->attn_norm.dbeta, dattn, a->attn_sum,
                             a->attn_mean, a->attn_rstd, b->attn_norm.gamma, T, H);
    zeroed(dx, TH);
    zeroed(ddrop, TH);
    zeroed(dtmp, TH);
    qb_op_residual_backward(dx, ddrop, dsum, TH);
    qb_op_dropout_backward(&d_attn, dtmp, ddrop, TH);
    float *dctx = zeroed(t->g_ctx, TH), *dq = zeroed(t->g_q, TH), *dk = zeroed(t->g_k, TH), *dv = zeroed(t->g_v, TH);
    linear_backward(t, &b->o, dctx, dtmp, a->ctx, a->ctx_q, T);
    qb_op_attention_backward(&t->ops, &shape, &d_probs, dq, dk, dv, dctx, a->probs, a->q, a->k, a->v);
    const qb_tlinear *qkv[] = {&b->q, &b->k, &b->v};
    const float *dqkv[] = {dq, dk, dv};
    linears_backward(t, qkv, dqkv, 3, dx, a->x, a->x_q, T);
}

static void embed_backward(qb_trainer *t, const float *dx) {
    int T = t->n_rows, E = t->E;
    size_t TE = (size_t)T * E;
    const qb_tape_embed *e = &t->tape.emb;
    const qb_session *s = t->s;
    qb_dropout d = qb_tape_dropout(&t->tape, QB_SITE_EMB, t->tape.p_hidden);
    const float *ddrop = dx;
    if (t->emb_proj.w) {
        float *g = zeroed(t->g_emb1, TE);
        linear_backward(t, &t->emb_proj, g, dx, e->drop, e->q, T);
        ddrop = g;
    }
    float *dln = zeroed(t->g_emb0, TE);
    qb_op_dropout_backward(&d, dln, ddrop, TE);
    float *dsum = zeroed(t->g_emb1, TE); /* ddrop (in g_emb1) is consumed above */
    qb_op_layernorm_backward(&t->ops, dsum, t->emb_norm.dgamma, t->emb_norm.dbeta, dln, e->sum, e->mean, e->rstd,
                             t->emb_norm.gamma, T, E);
    qb_op_embed_backward(t->dword_emb, t->dtype_emb, t->dpos_emb, dsum, s->tok_ids, s->tok_types, s->tok_pos, T, E);
}

void qb_trainer_backward(qb_trainer *t) {
    head_backward(t);
    float *dout = t->g_out, *dx = t->g_in;
    for (int a = t->n_apps - 1; a >= 0; a--) {
        if (t->teacher && t->distill.hidden)
            qb_op_mse_backward(dout, qb_trainer_block_output(t, a), qb_trainer_block_output(t->teacher, a),
                               (size_t)t->n_rows * t->H);
        block_backward(t, a, dout, dx);
        float *swap = dout;
        dout = dx;
        dx = swap;
    }
    embed_backward(t, dout);
}

void qb_trainer_zero_grad(qb_trainer *t) {
    for (int i = 0; i < t->n_params; i++) memset(t->params[i].g, 0, (size_t)t->params[i].numel * sizeof(float));
}

/* ---- optimizer -------------------------------------------------------- */

float qb_adamw_lr_at(const qb_adamw_params *p, long step) {
    if (step < p->warmup_steps) return p->lr * (float)step / (float)p->warmup_steps;
    if (p->total_steps <= 0) return p->lr;
    double left = (double)(p->total_steps - step) / (double)(p->total_steps - p->warmup_steps > 0
                                                                 ? p->total_steps - p->warmup_steps : 1);
    return left > 0 ? (float)(p->lr * left) : 0.0f;
}

/* After an update: EMA scales follow the step's ranges, LSQ scales take
 * an Adam step of their own; both stop once frozen. */
static void update_scales(qb_trainer *t, const qb_adamw_params *p, float lr) {
    qb_qat *q = t->qat;
    bool frozen = q->p.freeze_after > 0 && t->n_updates > q->p.freeze_after;
    for (int i = 0; i < q->n_sites; i++) {
        qb_fq_site *s = &q->sites[i];
        if (frozen) {
            s->seen = false;
            s->grad = 0;
        } else if (q->p.observer == QB_FQ_LSQ) {
            s->seen = false;
            qb_fq_site_lsq_step(s, lr, p->beta1, p->beta2, p->eps, t->n_updates);
        } else {
            qb_fq_site_update(s, q->p.observer, q->p.momentum);
        }
    }
}

/* Summed per parameter in a fixed order of fixed chunks, so the norm (and
 * the clipping it decides) does not depend on the thread count. */
enum { NORM_CHUNK = 1 << 16 };

typedef struct {
    const float *g;
    int64_t n;
    double *part;
} norm_job;

static void norm_chunks(void *ctx, long c0, long c1, int thread) {
    const norm_job *j = ctx;
    for (long c = c0; c < c1; c++) {
        double s = 0;
        for (int64_t i = c * (int64_t)NORM_CHUNK; i < j->n && i < (c + 1) * (int64_t)NORM_CHUNK; i++)
            s += (double)j->g[i] * j->g[i];
        j->part[c] = s;
    }
}

static double grad_norm(const qb_trainer *t) {
    double sq = 0;
    for (int i = 0; i < t->n_params; i++) {
        int64_t n = t->params[i].numel, chunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
        double part[chunks];
        norm_job j = {t->params[i].g, n, part};
        qb_pool_for(t->ops.pool, (long)chunks, 1, norm_chunks, &j);
        for (int64_t c = 0; c < chunks; c++) sq += part[c];
    }
    return sqrt(sq);
}

typedef struct {
    const qb_tparam *q;
    const qb_adamw_params *p;
    float clip, lr, decay, bc1, bc2;
} adamw_job;

static void adamw_run(void *ctx, long j0, long j1, int thread) {
    const adamw_job *a = ctx;
    const qb_tparam *q = a->q;
    const qb_adamw_params *p = a->p;
    for (long j = j0; j < j1; j++) {
        float g = q->g[j] * a->clip;
        q->m[j] = p->beta1 * q->m[j] + (1.0f - p->beta1) * g;
        q->v[j] = p->beta2 * q->v[j] + (1.0f - p->beta2) * g * g;
        float mhat = q->m[j] / a->bc1, vhat = q->v[j] / a->bc2;
        q->w[j] = q->w[j] * a->decay - a->lr * mhat / (sqrtf(vhat) + p->eps);
    }
}

qb_status qb_trainer_step(qb_trainer *t, const qb_adamw_params *p, float *norm_out, qb_error *err) {
    double norm = grad_norm(t);
    if (norm_out) *norm_out = (float)norm;
    if (!isfinite(norm))
        return qb_fail(err, QB_ERR_NUMERIC, "trainer: non-finite gradient norm at update %ld (parameters unchanged)",
                       t->n_updates);
    float clip = p->max_grad_norm > 0 && norm > p->max_grad_norm ? (float)(p->max_grad_norm / (norm + 1e-6)) : 1.0f;
    float lr = qb_adamw_lr_at(p, t->n_updates);
    long step = ++t->n_updates;
    float bc1 = 1.0f - powf(p->beta1, (float)step), bc2 = 1.0f - powf(p->beta2, (float)step);
    for (int i = 0; i < t->n_params; i++) {
        const qb_tparam *q = &t->params[i];
        adamw_job a = {q, p, clip, lr, q->decay ? 1.0f - lr * p->weight_decay : 1.0f, bc1, bc2};
        qb_pool_for(t->ops.pool, (long)q->numel, 32768, adamw_run, &a);
    }
    if (t->qat) update_scales(t, p, lr);
    return QB_OK;
}

/* ---- QAT setup -------------------------------------------------------- */

/* Q, K and V share their input's site; every other linear has its own. */
static void assign_sites(qb_trainer *t) {
    qb_qat *q = t->qat;
    float *wq = q->wq;
    for (int i = 0; i < t->n_blocks; i++) {
        qb_tblock *b = &t->blocks[i];
        qb_tlinear *ls[] = {&b->q, &b->k, &b->v, &b->o, &b->ffn_in, &b->ffn_out};
        static const int site[] = {0, 0, 0, 1, 2, 3};
        for (int j = 0; j < 6; j++) ls[j]->site = 4 * i + site[j];
    }
    t->emb_proj.site = 4 * t->n_blocks;
    t->pooler.site = 4 * t->n_blocks + 1;
    qb_tlinear *ls[max_linears(t)];
    int n = all_linears(t, ls);
    for (int i = 0; i < n - 1; i++) { /* the classifier stays FP32 */
        ls[i]->wq = wq;
        wq += (size_t)ls[i]->in * ls[i]->out;
    }
}

qb_status qb_trainer_enable_qat(qb_trainer *t, const qb_qat_params *p, qb_error *err) {
    if (t->qat || t->max_batch) return qb_fail(err, QB_ERR_ARG, "trainer: enable QAT once, before reserving");
    if (!p->ternary && (p->bits < 2 || p->bits > 8))
        return qb_fail(err, QB_ERR_ARG, "QAT: --bits %d is not in 2..8", p->bits);
    if (p->group_size < -1 || p->group_size > 1 << 20)
        return qb_fail(err, QB_ERR_ARG, "QAT: group size %d is not a number of input columns (or -1: a row)",
                       p->group_size);
    if (!(p->momentum > 0 && p->momentum <= 1)) return qb_fail(err, QB_ERR_ARG, "QAT: EMA momentum not in (0, 1]");
    qb_tlinear *ls[max_linears(t)];
    int n = all_linears(t, ls);
    bool lowbit = p->ternary || p->bits <= 4;
    size_t total = 0, widest = 0, rows = 0, groups = 0;
    for (int i = 0; i < n - 1; i++) {
        size_t numel = (size_t)ls[i]->in * ls[i]->out;
        qb_lowbit_spec sp = lowbit_spec(p, ls[i]->in);
        size_t g = (size_t)ls[i]->out * (size_t)qb_lowbit_groups(&sp, ls[i]->in);
        total += numel;
        widest = numel > widest ? numel : widest;
        rows = (size_t)ls[i]->out > rows ? (size_t)ls[i]->out : rows;
        groups = g > groups ? g : groups;
    }
    qb_qat *q = calloc(1, sizeof *q);
    if (q) {
        q->p = *p;
        q->n_sites = 4 * t->n_blocks + 2;
        q->sites = calloc((size_t)q->n_sites, sizeof *q->sites);
        q->wq = malloc((total + 1) * sizeof *q->wq);
        q->q = malloc(widest + 1);
        q->q_scale = malloc((rows + 1) * sizeof *q->q_scale);
        q->lowbit = lowbit;
        if (lowbit) {
            q->codes = malloc(widest + 1);
            q->lb_scale = malloc((groups + 1) * sizeof *q->lb_scale);
            q->lb_zero = malloc(groups + 1);
        }
    }
    t->qat = q;
    if (!q || !q->sites || !q->wq || !q->q || !q->q_scale || (lowbit && (!q->codes || !q->lb_scale || !q->lb_zero)))
        return qb_fail(err, QB_ERR_NOMEM, "QAT: out of memory");
    assign_sites(t);
    return QB_OK;
}

void qb_trainer_qat_calibrate_begin(qb_trainer *t) {
    t->qat->calibrating = true;
    t->qat->n_calibrated = 0;
    memset(t->qat->sites, 0, (size_t)t->qat->n_sites * sizeof *t->qat->sites);
}

void qb_trainer_qat_calibrate_end(qb_trainer *t) {
    t->qat->calibrating = false;
    for (int i = 0; i < t->qat->n_sites; i++) qb_fq_site_start(&t->qat->sites[i]);
}

bool qb_trainer_qat_input(const qb_trainer *t, const char *name, float *scale, int32_t *zero) {
    if (!t->qat) return false;
    qb_tlinear *ls[max_linears(t)];
    int n = all_linears((qb_trainer *)t, ls);
    for (int i = 0; i < n; i++)
        if (ls[i]->wq && !strcmp(ls[i]->name, name)) {
            *scale = t->qat->sites[ls[i]->site].scale;
            *zero = t->qat->sites[ls[i]->site].zero;
            return true;
        }
    return false;
}
