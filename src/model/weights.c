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
    const qb_st_tensor *t = qb_binder_find(b, full);
    if (!t) t = qb_binder_find(b, name);
    if (!t && strstr(full, "LayerNorm.")) {
        char *w = strstr(full, "LayerNorm.weight"), *bb = strstr(full, "LayerNorm.bias");
        if (w) strcpy(w, "LayerNorm.gamma");
        if (bb) strcpy(bb, "LayerNorm.beta");
        t = qb_binder_find(b, full);
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
    if (f)
        qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' is packed (U8) but quantization_config.modules gives '%s', a "
                "format stored as %s", b->file, t->name, named, qb_dtype_traits_of(f->dtype)->name);
    else
        qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' is packed (U8) but quantization_config.modules %s%s%s", b->file,
                t->name, named ? "gives the unknown format '" : "does not name its format", named ? named : "",
                named ? "'" : "");
    return NULL;
}

/* Whether a linear stored as f fits a quantization_config of that method
 * whose "modules" does not name it (FP32: an excluded module). */
static bool method_makes(const qb_quant_config *q, const qb_linear_format *f) {
    if (f->precision == QB_PREC_FP32) return true;
    if (q->method == QB_QUANT_DYNAMIC || q->method == QB_QUANT_STATIC) return f->integer_inputs;
    if (q->method == QB_QUANT_WEIGHT_ONLY) return f->precision == QB_PREC_LOWBIT && !f->integer_inputs;
    return f->precision == (q->method == QB_QUANT_FP16 ? QB_PREC_FP16 : QB_PREC_BF16);
}

/* A quantization_config that contradicts the tensors (a dynamic config over
 * FP32 weights, FP16 weights under an int8 one) describes some other model:
 * its "modules" entry, or else its method, must match the weight bound. */
static void check_agrees(qb_binder *b, const qb_linear *l, const qb_st_tensor *t) {
    const qb_quant_config *q = &b->m->cfg.quant;
    if (!q->present || !l->fmt || b->err->code) return;
    const char *named = qb_quant_config_module(q, l->name);
    char inputs;
    const qb_linear_format *f = named ? qb_linear_format_parse(named, &inputs) : NULL;
    const char *dtype = qb_dtype_traits_of(t->dtype)->name;
    if (named && f != l->fmt)
        qb_fail(b->err, QB_ERR_FORMAT, "%s/config.json: quantization_config.modules gives '%s' format '%s', but "
                "model.safetensors stores '%s' as %s (%s)", b->m->dir, l->name, named, t->name, dtype, l->fmt->name);
    else if (!named && !method_makes(q, l->fmt))
        qb_fail(b->err, QB_ERR_FORMAT, "%s/config.json: quantization_config method %s contradicts '%s', stored as "
                "%s (%s)", b->m->dir, qb_quant_method_name(q->method), t->name, dtype, l->fmt->name);
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
    check_agrees(b, l, t);
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
    qb_binder_release(b, sc);
    if (zero) {
        memcpy(zero, zp->data, sizeof *zero);
        qb_binder_release(b, zp);
    }
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

/* quantization_config.embeddings against the word embeddings' dtype
 * (U8 tables are checked as they bind: their bits decide the layout). */
static void check_embedding_agrees(qb_binder *b, const qb_st_tensor *t) {
    const qb_quant_config *q = &b->m->cfg.quant;
    if (!t || !q->present || b->err->code || t->dtype == QB_U8) return;
    int bits = q->embedding_bits;
    bool ok = t->dtype == QB_I8 ? bits == 8 : bits == 32 || (bits == 16 && t->dtype != QB_F32);
    if (!ok)
        qb_fail(b->err, QB_ERR_FORMAT, "%s/config.json: quantization_config.embeddings is %s, but model.safetensors "
                "stores '%s' as %s", b->m->dir, bits == 32 ? "fp32" : bits == 16 ? "fp16/bf16" : bits == 8
                ? "int8-rowwise" : bits == 4 ? "int4-rowwise" : "int2-rowwise", t->name,
                qb_dtype_traits_of(t->dtype)->name);
}

/* A lookup, not a product: any quantized model may hold an int8 table
 * (weight-only ones too); check_embedding_agrees checks its config. */
static bool int8_table_allowed(qb_binder *b, const qb_st_tensor *t) {
    if (b->m->cfg.quant.present) return true;
    return !qb_fail(b->err, QB_ERR_FORMAT, "%s: tensor '%s' is I8 but config.json has no quantization_config",
                    b->file, t->name);
}

static void bind_embeddings(qb_binder *b) {
    qb_model *m = b->m;
    const qb_config *c = &m->cfg;
    int E = c->embedding_size;
    const qb_st_tensor *t = find(b, "embeddings.word_embeddings.weight");
    if (t && t->dtype == QB_I8) {
        const qb_st_tensor *sc = int8_table_allowed(b, t) && qb_binder_check_shape(b, t, 2, c->vocab_size, E)
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
    check_embedding_agrees(b, t);
    m->pos_emb = bind(b, "embeddings.position_embeddings.weight", 2, c->max_position + c->position_offset, E);
    if (c->arch != QB_ARCH_DISTILBERT)
        m->type_emb = bind(b, "embeddings.token_type_embeddings.weight", 2, c->type_vocab_size, E);
    bind_norm(b, &m->emb_norm, "embeddings.LayerNorm", E);
    if (c->family->emb_proj && (E != c->hidden_size || c->arch == QB_ARCH_ALBERT))
        bind_linear(b, &m->emb_proj, c->family->emb_proj, c->hidden_size, E);
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

/* dense, act, LayerNorm, then a decoder tied to the word embeddings (or
 * stored beside them) plus a bias; HF's decoder.bias is that bias again. */
static void bind_mlm(qb_binder *b) {
    qb_model *m = b->m;
    const qb_config *c = &m->cfg;
    const qb_family *f = c->family;
    int H = c->hidden_size;
    char n[200];
    bind_linear(b, &m->mlm_dense, f->mlm_dense, H, H);
    bind_norm(b, &m->mlm_norm, f->mlm_norm, H);
    m->mlm_bias = bind(b, f->mlm_bias, 1, c->vocab_size, 0);
    snprintf(n, sizeof n, "%s.weight", f->mlm_decoder);
    if (qb_binder_find(b, n)) m->mlm_decoder = bind(b, n, 2, c->vocab_size, H);
    else if (!c->tie_word_embeddings && !b->err->code) /* transformers would start one at random */
        qb_fail(b->err, QB_ERR_FORMAT, "%s: tie_word_embeddings is false but there is no '%s%s' to decode with",
                b->file, b->prefix, n);
    snprintf(n, sizeof n, "%s.bias", f->mlm_decoder);
    qb_binder_find(b, n);
}

/* Heads live outside the base model's prefix (HF: "classifier.weight"). */
static void bind_heads(qb_binder *b) {
    qb_model *m = b->m;
    const qb_config *c = &m->cfg;
    const qb_family *f = c->family;
    int H = c->hidden_size;
    if (c->task == QB_TASK_NONE) return; /* a bare encoder: pooling is its head */
    const char *saved = b->prefix;
    if (c->task == QB_TASK_SEQUENCE) {
        b->prefix = f->seq_dense_in_base ? saved : "";
        bind_linear(b, c->arch == QB_ARCH_DISTILBERT ? &m->pre_classifier : &m->pooler, f->seq_dense, H, H);
    }
    b->prefix = "";
    if (c->task == QB_TASK_MLM) bind_mlm(b);
    else bind_linear(b, &m->classifier, c->task == QB_TASK_SEQUENCE ? f->seq_out : "classifier", c->num_labels, H);
    b->prefix = saved;
}

/* Whether tensor `name` is for a layer (or ALBERT group, or inner layer)
 * that config.json does not have: *layer, the key and its value bound it. */
static bool beyond_config(const char *name, const qb_config *c, int *layer, int *limit, const char **key) {
    static const struct {
        const char *infix;
        int field; /* 0 num_layers, 1 num_hidden_groups, 2 inner_group_num */
    } kinds[] = {{"encoder.layer.", 0}, {"transformer.layer.", 0}, {"albert_layer_groups.", 1}, {"albert_layers.", 2}};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        const char *at = strstr(name, kinds[k].infix);
        if (!at || at[strlen(kinds[k].infix)] < '0' || at[strlen(kinds[k].infix)] > '9') continue;
        int f = kinds[k].field;
        long v = strtol(at + strlen(kinds[k].infix), NULL, 10);
        *limit = f == 0 ? c->num_layers : f == 1 ? c->num_hidden_groups : c->inner_group_num;
        *key = f == 1 ? "num_hidden_groups" : f == 2 ? "inner_group_num"
               : c->arch == QB_ARCH_DISTILBERT ? "n_layers" : "num_hidden_layers";
        *layer = v > 1 << 20 ? 1 << 20 : (int)v;
        if (*layer >= *limit) return true;
    }
    return false;
}

/* What Hugging Face loads without a word: the position_ids and
 * token_type_ids buffers older checkpoints saved, and a pooler no head
 * reads: under a token, masked-LM or RoBERTa/ELECTRA sequence head (their
 * _keys_to_ignore_on_load_unexpected) or a bare encoder (BertModel loads
 * it; qbert embed pools the hidden states).  A pooler a head reads is bound. */
static bool ignored_quietly(const char *name) {
    size_t n = strlen(name);
    static const char *buffers[] = {"embeddings.position_ids", "embeddings.token_type_ids"};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++) {
        size_t k = strlen(buffers[i]);
        if (n >= k && !strcmp(name + n - k, buffers[i])) return true;
    }
    return strstr(name, "pooler") != NULL;
}

#define QB_UNUSED_LISTED 4

/* Appends one unused name to the warning being built (the first few only). */
static void note_unused(char *buf, size_t cap, int k, const char *name) {
    size_t n = strlen(buf);
    if (k < QB_UNUSED_LISTED) snprintf(buf + n, cap - n, "%s%s", k ? ", " : "", name);
}

/* Every tensor of the checkpoint is bound, or named: tensors of layers the
 * config does not have are an error (a config with fewer layers than the
 * checkpoint would silently run a truncated model); other leftovers (an
 * MLM head, a pooler a head does not use) are a warning. */
static qb_status check_unused(qb_model *m, qb_error *err) {
    const qb_config *c = &m->cfg;
    char names[1024] = "";
    int n_unused = 0;
    for (int i = 0; i < m->st.n; i++) {
        const char *name = m->st.tensors[i].name, *key = NULL;
        int layer = 0, limit = 0;
        char shown[96];
        if (m->st_used[i] || ignored_quietly(name)) continue;
        qb_st_name_shown(name, shown, sizeof shown);
        if (beyond_config(name, c, &layer, &limit, &key))
            return qb_fail(err, QB_ERR_FORMAT, "%s: tensor '%s' is for layer %d, but config.json has %s %d",
                           m->st.path, shown, layer, key, limit);
        note_unused(names, sizeof names, n_unused++, shown);
    }
    if (!n_unused) return QB_OK;
    size_t cap = strlen(m->st.path) + sizeof names + 96;
    m->warning = malloc(cap);
    if (!m->warning) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", m->st.path);
    snprintf(m->warning, cap, "%s: %d tensor%s unused: %s%s", m->st.path, n_unused, n_unused > 1 ? "s" : "", names,
             n_unused > QB_UNUSED_LISTED ? ", ..." : "");
    return QB_OK;
}

/* A quantization_config without "modules" over a checkpoint with nothing
 * quantized in it (the FP32 model's tensors under a copied config). */
static void check_something_quantized(qb_binder *b) {
    const qb_model *m = b->m;
    const qb_quant_config *q = &m->cfg.quant;
    if (!q->present || q->n_modules || m->word_emb_q || m->word_emb_lowbit) return;
    for (int i = 0; i < m->n_linears; i++)
        if (m->linears[i]->fmt->precision != QB_PREC_FP32) return;
    qb_fail(b->err, QB_ERR_FORMAT, "%s/config.json: quantization_config says method %s, but every linear weight in "
            "model.safetensors is unquantized (fp32)", m->dir, qb_quant_method_name(q->method));
}

/* Every "modules" entry names a weight of this checkpoint (one the graph
 * may not run: a token model's pooler): another would be a config written
 * for some other model. */
static void check_modules_known(qb_binder *b) {
    const qb_model *m = b->m;
    const qb_quant_config *q = &m->cfg.quant;
    for (int i = 0; !b->err->code && i < q->n_modules; i++) {
        if (!qb_model_weight_tensor(m, q->modules[2 * i], ""))
            qb_fail(b->err, QB_ERR_FORMAT, "%s/config.json: quantization_config.modules names '%s', whose weight "
                    "model.safetensors does not hold", m->dir, q->modules[2 * i]);
    }
}

/* quantization_config.weights.format, the method's format ("modules"
 * names each linear's): a row the method makes, with its bits. */
static void check_weights_format(qb_binder *b) {
    const qb_quant_config *q = &b->m->cfg.quant;
    if (!q->present || !q->weights_format[0]) return;
    char inputs;
    const qb_linear_format *f = qb_linear_format_parse(q->weights_format, &inputs);
    int bits = f && f->precision == QB_PREC_LOWBIT ? (int)ceilf(f->bits) : q->bits;
    if (!f)
        qb_fail(b->err, QB_ERR_FORMAT, "%s/config.json: quantization_config.weights.format '%s' is not a format "
                "qbert knows", b->m->dir, q->weights_format);
    else if (f->precision == QB_PREC_FP32 || !method_makes(q, f))
        qb_fail(b->err, QB_ERR_FORMAT, "%s/config.json: quantization_config.weights.format '%s' is not one method "
                "%s makes", b->m->dir, q->weights_format, qb_quant_method_name(q->method));
    else if (bits != q->bits)
        qb_fail(b->err, QB_ERR_FORMAT, "%s/config.json: quantization_config.bits is %d, but weights.format '%s' "
                "has %d", b->m->dir, q->bits, q->weights_format, bits);
}

qb_status qb_model_bind_weights(qb_model *m, int n_threads, qb_error *err) {
    const qb_config *c = &m->cfg;
    m->n_blocks = c->arch == QB_ARCH_ALBERT ? c->num_hidden_groups * c->inner_group_num : c->num_layers;
    m->blocks = calloc((size_t)m->n_blocks, sizeof *m->blocks);
    m->params = calloc((size_t)m->st.n + 1, sizeof *m->params);
    m->linears = calloc((size_t)m->n_blocks * 6 + 5, sizeof *m->linears);
    m->st_used = calloc((size_t)m->st.n + 1, sizeof *m->st_used);
    m->st_released = calloc((size_t)m->st.n + 1, sizeof *m->st_released);
    if (!m->blocks || !m->params || !m->linears || !m->st_used || !m->st_released) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", m->st.path);
    err->code = QB_OK;
    qb_binder b = {.m = m, .prefix = c->family->prefix, .file = m->st.path, .err = err};
    check_weights_format(&b);
    bind_embeddings(&b);
    bind_blocks(&b);
    bind_heads(&b);
    if (!err->code) check_something_quantized(&b);
    check_modules_known(&b);
    qb_binder_run_packs(&b, n_threads);
    return err->code ? err->code : check_unused(m, err);
}

const qb_block *qb_model_block(const qb_model *m, int layer, int inner) {
    const qb_config *c = &m->cfg;
    if (c->arch != QB_ARCH_ALBERT) return &m->blocks[layer];
    /* HF: group = int(layer / (num_layers / num_groups)) */
    int group = (int)(layer / ((double)c->num_layers / c->num_hidden_groups));
    return &m->blocks[group * c->inner_group_num + inner];
}

int qb_model_block_of(const qb_model *m, const qb_linear *l) {
    for (int b = 0; b < m->n_blocks; b++) {
        const qb_block *k = &m->blocks[b];
        if (l == &k->q || l == &k->k || l == &k->v || l == &k->o || l == &k->ffn_in || l == &k->ffn_out) return b;
    }
    return -1;
}

char qb_model_attention_input(const qb_model *m, const qb_linear *l) {
    int b = qb_model_block_of(m, l);
    if (b < 0) return 0;
    const qb_block *k = &m->blocks[b];
    return l == &k->q ? 'q' : l == &k->k ? 'k' : l == &k->v ? 'v' : 0;
}

int qb_model_inner_steps(const qb_model *m) {
    return m->cfg.arch == QB_ARCH_ALBERT ? m->cfg.inner_group_num : 1;
}
