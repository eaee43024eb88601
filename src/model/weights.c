/* Binds checkpoint tensors to the graph's structs, by Hugging Face name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"

typedef struct {
    qb_model *m;
    const char *prefix;   /* "bert.", "albert.", "distilbert." or "" */
    const char *file;
    qb_error *err;
} binder;

static const float *own_as_f32(binder *b, const qb_st_tensor *t) {
    const qb_dtype_traits *tr = qb_dtype_traits_of(t->dtype);
    float *f = malloc((size_t)t->numel * sizeof *f + 1);
    float **list = realloc(b->m->owned, (size_t)(b->m->n_owned + 1) * sizeof *list);
    if (!f || !list) {
        free(f);
        if (list) b->m->owned = list;
        return NULL;
    }
    b->m->owned = list;
    b->m->owned[b->m->n_owned++] = f;
    if (t->dtype == QB_F32) memcpy(f, t->data, t->nbytes);
    else tr->to_f32(t->data, f, (size_t)t->numel);
    return f;
}

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Finds name (with the model prefix, then without: base-model checkpoints
 * omit it), checks its shape, registers it and returns FP32 data.  HF's
 * legacy LayerNorm names (gamma/beta) are accepted too. */
static const float *bind(binder *b, const char *name, int ndim, int64_t d0, int64_t d1) {
    if (b->err->code) return NULL;
    char full[256], legacy[256];
    snprintf(full, sizeof full, "%s%s", b->prefix, name);
    const qb_st_tensor *t = qb_safetensors_find(&b->m->st, full);
    if (!t) t = qb_safetensors_find(&b->m->st, name);
    if (!t && strstr(name, "LayerNorm.")) {
        snprintf(legacy, sizeof legacy, "%s%s", b->prefix, name);
        char *w = strstr(legacy, "LayerNorm.weight"), *bb = strstr(legacy, "LayerNorm.bias");
        if (w) strcpy(w, "LayerNorm.gamma");
        if (bb) strcpy(bb, "LayerNorm.beta");
        t = qb_safetensors_find(&b->m->st, legacy);
    }
    if (!t) {
        qb_fail(b->err, QB_ERR_FORMAT, "%s: missing tensor '%s'", b->file, full);
        return NULL;
    }
    const qb_dtype_traits *tr = qb_dtype_traits_of(t->dtype);
    if (!tr->is_float) {
        qb_fail(b->err, QB_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, expected a float type", b->file,
                t->name, tr->name);
        return NULL;
    }
    int64_t want[2] = {d0, d1};
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == want[i];
    if (!ok) {
        char got[80], exp[80];
        format_shape(got, sizeof got, t->ndim, t->shape);
        format_shape(exp, sizeof exp, ndim, want);
        qb_fail(b->err, QB_ERR_FORMAT, "%s: tensor '%s' has shape %s, config.json implies %s", b->file,
                t->name, got, exp);
        return NULL;
    }
    const float *data = t->data;
    if (t->dtype != QB_F32 || ((uintptr_t)data & 3)) data = own_as_f32(b, t);
    if (!data) {
        qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory converting '%s'", b->file, t->name);
        return NULL;
    }
    qb_param *p = &b->m->params[b->m->n_params++];
    p->name = t->name;
    p->ndim = t->ndim;
    memcpy(p->shape, t->shape, sizeof p->shape);
    p->numel = t->numel;
    p->data = data;
    return data;
}

static void bind_linear(binder *b, qb_linear *l, const char *name, int out, int in) {
    char n[200];
    snprintf(n, sizeof n, "%s.weight", name);
    l->w = bind(b, n, 2, out, in);
    snprintf(n, sizeof n, "%s.bias", name);
    l->b = bind(b, n, 1, out, 0);
    l->out = out;
    l->in = in;
}

static void bind_norm(binder *b, qb_norm *nrm, const char *name, int dim) {
    char n[200];
    snprintf(n, sizeof n, "%s.weight", name);
    nrm->gamma = bind(b, n, 1, dim, 0);
    snprintf(n, sizeof n, "%s.bias", name);
    nrm->beta = bind(b, n, 1, dim, 0);
}

/* The per-architecture names of a block's eight sub-modules. */
typedef struct {
    const char *q, *k, *v, *o, *attn_norm, *ffn_in, *ffn_out, *ffn_norm;
} block_names;

static const block_names names_bert = {
    "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
    "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"};
static const block_names names_albert = {
    "attention.query", "attention.key", "attention.value", "attention.dense",
    "attention.LayerNorm", "ffn", "ffn_output", "full_layer_layer_norm"};
static const block_names names_distil = {
    "attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin",
    "sa_layer_norm", "ffn.lin1", "ffn.lin2", "output_layer_norm"};

static void bind_block(binder *b, qb_block *blk, const char *at, const block_names *nm) {
    const qb_config *c = &b->m->cfg;
    int H = c->hidden_size, I = c->intermediate_size;
    char n[200];
#define SUB(field) (snprintf(n, sizeof n, "%s.%s", at, nm->field), n)
    bind_linear(b, &blk->q, SUB(q), H, H);
    bind_linear(b, &blk->k, SUB(k), H, H);
    bind_linear(b, &blk->v, SUB(v), H, H);
    bind_linear(b, &blk->o, SUB(o), H, H);
    bind_norm(b, &blk->attn_norm, SUB(attn_norm), H);
    bind_linear(b, &blk->ffn_in, SUB(ffn_in), I, H);
    bind_linear(b, &blk->ffn_out, SUB(ffn_out), H, I);
    bind_norm(b, &blk->ffn_norm, SUB(ffn_norm), H);
#undef SUB
}

static void bind_embeddings(binder *b) {
    qb_model *m = b->m;
    const qb_config *c = &m->cfg;
    int E = c->embedding_size;
    m->word_emb = bind(b, "embeddings.word_embeddings.weight", 2, c->vocab_size, E);
    m->pos_emb = bind(b, "embeddings.position_embeddings.weight", 2, c->max_position, E);
    if (c->arch != QB_ARCH_DISTILBERT)
        m->type_emb = bind(b, "embeddings.token_type_embeddings.weight", 2, c->type_vocab_size, E);
    bind_norm(b, &m->emb_norm, "embeddings.LayerNorm", E);
    if (c->arch == QB_ARCH_ALBERT)
        bind_linear(b, &m->emb_proj, "encoder.embedding_hidden_mapping_in", c->hidden_size, E);
}

static void bind_blocks(binder *b) {
    qb_model *m = b->m;
    const qb_config *c = &m->cfg;
    char at[128];
    for (int i = 0; i < m->n_blocks; i++) {
        if (c->arch == QB_ARCH_ALBERT)
            snprintf(at, sizeof at, "encoder.albert_layer_groups.%d.albert_layers.%d", i / c->inner_group_num,
                     i % c->inner_group_num);
        else if (c->arch == QB_ARCH_DISTILBERT)
            snprintf(at, sizeof at, "transformer.layer.%d", i);
        else
            snprintf(at, sizeof at, "encoder.layer.%d", i);
        bind_block(b, &m->blocks[i], at,
                   c->arch == QB_ARCH_ALBERT ? &names_albert
                   : c->arch == QB_ARCH_DISTILBERT ? &names_distil : &names_bert);
    }
}

/* Heads live outside the base model's prefix (HF: "classifier.weight"). */
static void bind_heads(binder *b) {
    qb_model *m = b->m;
    const qb_config *c = &m->cfg;
    int H = c->hidden_size;
    if (c->task == QB_TASK_SEQUENCE) {
        if (c->arch == QB_ARCH_BERT) bind_linear(b, &m->pooler, "pooler.dense", H, H);
        else if (c->arch == QB_ARCH_ALBERT) bind_linear(b, &m->pooler, "pooler", H, H);
    }
    const char *saved = b->prefix;
    b->prefix = "";
    if (c->arch == QB_ARCH_DISTILBERT && c->task == QB_TASK_SEQUENCE)
        bind_linear(b, &m->pre_classifier, "pre_classifier", H, H);
    bind_linear(b, &m->classifier, "classifier", c->num_labels, H);
    b->prefix = saved;
}

qb_status qb_model_bind_weights(qb_model *m, qb_error *err) {
    const qb_config *c = &m->cfg;
    static const char *prefixes[] = {"bert.", "albert.", "distilbert."};
    m->n_blocks = c->arch == QB_ARCH_ALBERT ? c->num_hidden_groups * c->inner_group_num : c->num_layers;
    m->blocks = calloc((size_t)m->n_blocks, sizeof *m->blocks);
    m->params = calloc((size_t)m->st.n + 1, sizeof *m->params);
    if (!m->blocks || !m->params) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", m->st.path);
    err->code = QB_OK;
    binder b = {m, prefixes[c->arch], m->st.path, err};
    bind_embeddings(&b);
    bind_blocks(&b);
    bind_heads(&b);
    return err->code;
}

const qb_block *qb_model_block(const qb_model *m, int layer, int inner) {
    const qb_config *c = &m->cfg;
    if (c->arch != QB_ARCH_ALBERT) return &m->blocks[layer];
    /* HF: group = int(layer / (num_layers / num_groups)) */
    int group = (int)(layer / ((double)c->num_layers / c->num_hidden_groups));
    return &m->blocks[group * c->inner_group_num + inner];
}

int qb_model_inner_steps(const qb_model *m) {
    return m->cfg.arch == QB_ARCH_ALBERT ? m->cfg.inner_group_num : 1;
}
