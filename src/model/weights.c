/* Binds checkpoint tensors to the graph's structs, by Hugging Face name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/binder.h"
#include "model/linear_format.h"

/* Finds name (with the model prefix, then without: base-model checkpoints
 * omit it).  HF's legacy LayerNorm names (gamma/beta) are accepted too. */
static const qb_st_tensor *find(qb_binder *b, const char *name) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", b->prefix, name);
    const qb_st_tensor *t = qb_safetensors_find(&b->m->st, full);
    if (!t) t = qb_safetensors_find(&b->m->st, name);
    if (!t && strstr(full, "LayerNorm.")) {
        char *w = strstr(full, "LayerNorm.weight"), *bb = strstr(full, "LayerNorm.bias");
        if (w) strcpy(w, "LayerNorm.gamma");
        if (bb) strcpy(bb, "LayerNorm.beta");
        t = qb_safetensors_find(&b->m->st, full);
    }
    if (!t) qb_fail(b->err, QB_ERR_FORMAT, "%s: missing tensor '%s%s'", b->file, b->prefix, name);
    return t;
}

static const float *bind(qb_binder *b, const char *name, int ndim, int64_t d0, int64_t d1) {
    if (b->err->code) return NULL;
    return qb_binder_f32(b, find(b, name), ndim, d0, d1);
}

/* The row a weight binds with: a packed (U8) weight's format is only named
 * in "modules"; every other weight's dtype says it. */
static const qb_linear_format *format_for(qb_binder *b, const qb_linear *l, const qb_st_tensor *t) {
    const char *named = qb_quant_config_module(&b->m->cfg.quant, l->name);
    if (t->dtype != QB_U8) return qb_linear_format_of(t->dtype);
    char inputs;
    const qb_linear_format *f = named ? qb_linear_format_parse(named, &inputs) : NULL;
    if (f && f->dtype == QB_U8) return f;
    qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' is packed (U8) but quantization_config.modules %s%s%s", b->file,
            t->name, named ? "gives the unknown format '" : "does not name its format", named ? named : "",
            named ? "'" : "");
    return NULL;
}

static void bind_linear(qb_binder *b, qb_linear *l, const char *name, int out, int in) {
    char n[200];
    snprintf(n, sizeof n, "%s.weight", name);
    l->out = out;
    l->in = in;
    const qb_st_tensor *t = b->err->code ? NULL : find(b, n);
    if (!t) return;
    snprintf(l->name, sizeof l->name, "%.*s", (int)(strlen(t->name) - strlen(".weight")), t->name);
    l->fmt = format_for(b, l, t);
    if (l->fmt) l->fmt->bind(b, l, t);
    snprintf(n, sizeof n, "%s.bias", name);
    l->b = bind(b, n, 1, out, 0);
    l->id = b->m->n_linears;
    b->m->linears[b->m->n_linears++] = l;
}

static void bind_norm(qb_binder *b, qb_norm *nrm, const char *name, int dim) {
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

/* A calibrated output scale of Q, K or V (int8 attention); zero may be NULL. */
static bool bind_output_scale(qb_binder *b, const qb_linear *l, float *scale, int32_t *zero) {
    const qb_st_tensor *sc = qb_binder_companion(b, l->name, ".output_scale", QB_F32, 1);
    const qb_st_tensor *zp = sc && zero ? qb_binder_companion(b, l->name, ".output_zero_point", QB_I32, 1) : NULL;
    if (!sc || (zero && !zp)) return false;
    memcpy(scale, sc->data, sizeof *scale);
    if (zero) memcpy(zero, zp->data, sizeof *zero);
    if (!(*scale > 0) || !isfinite(*scale) || (zero && (*zero < 0 || *zero > 255))) {
        qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s.output_scale%s' out of range", b->file, l->name,
                zero ? "/zero_point" : "");
        return false;
    }
    return true;
}

static void bind_attention_i8(qb_binder *b, qb_block *blk) {
    qb_attn_i8 *a = &blk->attn_i8;
    if (b->err->code || !b->m->cfg.quant.attention_int8) return;
    a->on = bind_output_scale(b, &blk->q, &a->q_scale, &a->q_zero) &&
            bind_output_scale(b, &blk->k, &a->k_scale, NULL) && bind_output_scale(b, &blk->v, &a->v_scale, NULL);
}

static void bind_block(qb_binder *b, qb_block *blk, const char *at, const block_names *nm) {
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
    bind_attention_i8(b, blk);
#undef SUB
}

static void bind_embeddings(qb_binder *b) {
    qb_model *m = b->m;
    const qb_config *c = &m->cfg;
    int E = c->embedding_size;
    const qb_st_tensor *t = find(b, "embeddings.word_embeddings.weight");
    if (t && t->dtype == QB_I8) {
        const qb_st_tensor *sc = qb_binder_int8_allowed(b, t) && qb_binder_check_shape(b, t, 2, c->vocab_size, E)
                                     ? qb_binder_companion(b, t->name, "_scale", QB_F32, c->vocab_size) : NULL;
        if (sc && qb_binder_positive(b, sc)) {
            m->word_emb_q = t->data;
            m->word_emb_scale = ((uintptr_t)sc->data & 3) ? qb_binder_f32_copy(b, sc) : sc->data;
            if (!m->word_emb_scale) qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory", b->file);
            qb_binder_register(b, t, NULL);
        }
    } else if (t && t->dtype == QB_U8) {
        m->word_emb_lowbit = qb_lowbit_bind_table(b, t, c->quant.embedding_bits, c->vocab_size, E);
    } else {
        m->word_emb = qb_binder_f32(b, t, 2, c->vocab_size, E);
    }
    m->pos_emb = bind(b, "embeddings.position_embeddings.weight", 2, c->max_position, E);
    if (c->arch != QB_ARCH_DISTILBERT)
        m->type_emb = bind(b, "embeddings.token_type_embeddings.weight", 2, c->type_vocab_size, E);
    bind_norm(b, &m->emb_norm, "embeddings.LayerNorm", E);
    if (c->arch == QB_ARCH_ALBERT)
        bind_linear(b, &m->emb_proj, "encoder.embedding_hidden_mapping_in", c->hidden_size, E);
}

static void bind_blocks(qb_binder *b) {
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
static void bind_heads(qb_binder *b) {
    qb_model *m = b->m;
    const qb_config *c = &m->cfg;
    int H = c->hidden_size;
    if (c->task == QB_TASK_NONE) return; /* a bare encoder: pooling is its head */
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
    m->linears = calloc((size_t)m->n_blocks * 6 + 4, sizeof *m->linears);
    if (!m->blocks || !m->params || !m->linears) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", m->st.path);
    err->code = QB_OK;
    qb_binder b = {m, prefixes[c->arch], m->st.path, err};
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

char qb_model_attention_input(const qb_model *m, const qb_linear *l) {
    for (int b = 0; b < m->n_blocks; b++) {
        const qb_block *blk = &m->blocks[b];
        if (l == &blk->q) return 'q';
        if (l == &blk->k) return 'k';
        if (l == &blk->v) return 'v';
    }
    return 0;
}

int qb_model_inner_steps(const qb_model *m) {
    return m->cfg.arch == QB_ARCH_ALBERT ? m->cfg.inner_group_num : 1;
}
