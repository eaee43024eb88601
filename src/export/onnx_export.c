/* qb_export_onnx: the forward graph of forward.c, written as ONNX
 * (opset 17+: LayerNormalization) for ONNX Runtime and other engines.
 * Inputs input_ids, attention_mask and token_type_ids [batch, sequence]
 * (int64); the output is the head's logits (a masked-LM head's over the
 * vocabulary, for every token), or for a bare encoder its
 * last_hidden_state and the pooled sentence_embedding its directory asks
 * for.  Padding is masked additively (-1e9), which softmax turns into the
 * zeros qbert gets by leaving padded keys out. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "export/export.h"
#include "model/linear_format.h"

enum { OPSET_MIN = 17, OPSET_MAX = 21 };

/* Shapes of graph inputs and outputs: symbolic batch and sequence, then a
 * fixed width. */
static const char *const BS[3] = {"batch", "sequence", NULL};

const char *qb_export_floats(qb_export *e, const float *data, int ndim, const int64_t *dims) {
    for (int i = 0; i < e->n_seen; i++)
        if (e->seen[i].data == data) return e->seen[i].name;
    if (e->n_seen == e->cap_seen) {
        int cap = e->cap_seen ? 2 * e->cap_seen : 64;
        qb_export_seen *s = qb_onnx_alloc(e->g, cap * sizeof *s);
        if (!s) return "";
        if (e->n_seen) memcpy(s, e->seen, e->n_seen * sizeof *s);
        e->seen = s, e->cap_seen = cap;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    const char *name = qb_onnx_str(e->g, "float_%d", e->n_seen);
    e->seen[e->n_seen++] = (qb_export_seen){data, name};
    return qb_onnx_initializer(e->g, name, QB_ONNX_FLOAT, ndim, dims, data, (size_t)n * sizeof *data);
}

static const char *layer_norm(qb_export *e, const qb_norm *n, const char *x, int dim) {
    int64_t d[1] = {dim};
    const char *y = QB_ONNX_OP(e->g, "LayerNormalization", x, qb_export_floats(e, n->gamma, 1, d),
                               qb_export_floats(e, n->beta, 1, d));
    Onnx__NodeProto *node = qb_onnx_last(e->g);
    qb_onnx_attr_int(e->g, node, "axis", -1);
    qb_onnx_attr_float(e->g, node, "epsilon", e->m->cfg.layer_norm_eps);
    return y;
}

static const char *unsqueeze(qb_export *e, const char *x, int n, const int64_t *axes) {
    return QB_ONNX_OP(e->g, "Unsqueeze", x, qb_onnx_const_i64s(e->g, n, axes));
}

/* The int8 word table [vocab, E] (written once). */
static const char *word_table_int8(qb_export *e) {
    const qb_model *m = e->m;
    const char *name = "word_embeddings.int8";
    if (qb_onnx_has_initializer(e->g, name)) return name;
    int64_t dims[2] = {m->cfg.vocab_size, m->cfg.embedding_size};
    return qb_onnx_initializer(e->g, name, QB_ONNX_INT8, 2, dims, m->word_emb_q, (size_t)dims[0] * dims[1]);
}

/* Word rows: FP32, or int8 rows times their row scales. */
static const char *word_embeddings(qb_export *e, const char *ids) {
    const qb_model *m = e->m;
    int64_t dims[2] = {m->cfg.vocab_size, m->cfg.embedding_size};
    if (m->word_emb) return QB_ONNX_OP(e->g, "Gather", qb_export_floats(e, m->word_emb, 2, dims), ids);
    const char *q = word_table_int8(e);
    const char *scale = QB_ONNX_OP(e->g, "Gather", qb_export_floats(e, m->word_emb_scale, 1, dims), ids);
    int64_t last[1] = {-1};
    const char *rows = qb_onnx_cast(e->g, QB_ONNX_OP(e->g, "Gather", q, ids), QB_ONNX_FLOAT);
    return QB_ONNX_OP(e->g, "Mul", rows, unsqueeze(e, scale, 1, last));
}

/* [B, S] rows of the position table, as qb_session_pack numbers them.
 * BERT: 0.. along the sequence.  RoBERTa (fairseq, HF's
 * create_position_ids_from_input_ids): the table's first rows are
 * pad_token_id + 1 that no text uses; real tokens count on from
 * pad_token_id + 1, and pad tokens (and padding past the mask) take row
 * pad_token_id. */
static const char *position_rows(qb_export *e) {
    const qb_config *c = &e->m->cfg;
    int64_t pos[2] = {c->max_position + c->position_offset, c->embedding_size}, zero[1] = {0};
    const char *table = qb_export_floats(e, e->m->pos_emb, 2, pos);
    if (!c->position_offset) {
        const char *seq = QB_ONNX_OP(e->g, "Shape", "input_ids");
        Onnx__NodeProto *n = qb_onnx_last(e->g);
        qb_onnx_attr_int(e->g, n, "start", 1);
        qb_onnx_attr_int(e->g, n, "end", 2);
        const char *z = qb_onnx_const_i64s(e->g, 1, zero);
        return QB_ONNX_OP(e->g, "Slice", table, z, seq, z);
    }
    const char *pad = qb_onnx_const_i64(e->g, c->pad_token_id);
    const char *real = qb_onnx_cast(e->g, QB_ONNX_OP(e->g, "Not", QB_ONNX_OP(e->g, "Equal", "input_ids", pad)),
                                    QB_ONNX_INT64);
    const char *keep = QB_ONNX_OP(e->g, "Mul", real, "attention_mask");
    const char *count = QB_ONNX_OP(e->g, "CumSum", keep, qb_onnx_const_i64(e->g, 1));
    return QB_ONNX_OP(e->g, "Gather", table, QB_ONNX_OP(e->g, "Add", QB_ONNX_OP(e->g, "Mul", count, keep), pad));
}

static const char *embeddings(qb_export *e) {
    const qb_model *m = e->m;
    int E = m->cfg.embedding_size;
    int64_t types[2] = {m->cfg.type_vocab_size, E};
    const char *x = word_embeddings(e, "input_ids");
    x = QB_ONNX_OP(e->g, "Add", x, position_rows(e));
    if (m->type_emb)
        x = QB_ONNX_OP(e->g, "Add", x, QB_ONNX_OP(e->g, "Gather", qb_export_floats(e, m->type_emb, 2, types),
                                                  "token_type_ids"));
    x = layer_norm(e, &m->emb_norm, x, E);
    return m->emb_proj.out ? qb_export_linear(e, &m->emb_proj, x) : x;
}

/* [B, 1, 1, S]: 0 on real tokens, -1e9 on padding. */
static const char *mask_bias(qb_export *e) {
    int64_t axes[2] = {1, 2};
    const char *m = unsqueeze(e, qb_onnx_cast(e->g, "attention_mask", QB_ONNX_FLOAT), 2, axes);
    return QB_ONNX_OP(e->g, "Mul", QB_ONNX_OP(e->g, "Sub", m, qb_onnx_const_f(e->g, 1.0f)),
                      qb_onnx_const_f(e->g, 1e9f));
}

/* [B, S, H] into heads [B, nh, S, d] (perm 0 2 1 3) or, for K, [B, nh, d, S]. */
static const char *heads(qb_export *e, const char *x, bool key) {
    int nh = e->m->cfg.num_heads;
    int64_t shape[4] = {0, 0, nh, e->m->cfg.hidden_size / nh}, perm[4] = {0, 2, key ? 3 : 1, key ? 1 : 3};
    const char *y = QB_ONNX_OP(e->g, "Transpose", QB_ONNX_OP(e->g, "Reshape", x, qb_onnx_const_i64s(e->g, 4, shape)));
    qb_onnx_attr_ints(e->g, qb_onnx_last(e->g), "perm", 4, perm);
    return y;
}

static const char *attention(qb_export *e, const qb_block *blk, const char *x, const char *mask) {
    int H = e->m->cfg.hidden_size;
    float scale = 1.0f / sqrtf((float)(H / e->m->cfg.num_heads));
    const char *q = heads(e, qb_export_linear(e, &blk->q, x), false);
    const char *k = heads(e, qb_export_linear(e, &blk->k, x), true);
    const char *v = heads(e, qb_export_linear(e, &blk->v, x), false);
    const char *s = QB_ONNX_OP(e->g, "Mul", QB_ONNX_OP(e->g, "MatMul", q, k), qb_onnx_const_f(e->g, scale));
    const char *p = QB_ONNX_OP(e->g, "Softmax", QB_ONNX_OP(e->g, "Add", s, mask));
    qb_onnx_attr_int(e->g, qb_onnx_last(e->g), "axis", -1);
    int64_t perm[4] = {0, 2, 1, 3}, shape[3] = {0, 0, H};
    const char *ctx = QB_ONNX_OP(e->g, "Transpose", QB_ONNX_OP(e->g, "MatMul", p, v));
    qb_onnx_attr_ints(e->g, qb_onnx_last(e->g), "perm", 4, perm);
    return QB_ONNX_OP(e->g, "Reshape", ctx, qb_onnx_const_i64s(e->g, 3, shape));
}

/* forward.c's activations: exact GELU, HF's tanh GELU, ReLU, tanh. */
static const char *activation(qb_export *e, qb_act act, const char *x) {
    qb_onnx *g = e->g;
    if (act == QB_ACT_RELU) return QB_ONNX_OP(g, "Relu", x);
    if (act == QB_ACT_TANH) return QB_ONNX_OP(g, "Tanh", x);
    /* in PyTorch's export order, which ONNX Runtime fuses into Gelu */
    const char *inner;
    if (act == QB_ACT_GELU) {
        inner = QB_ONNX_OP(g, "Erf", QB_ONNX_OP(g, "Div", x, qb_onnx_const_f(g, (float)M_SQRT2)));
    } else {
        const char *cube = QB_ONNX_OP(g, "Mul", x, QB_ONNX_OP(g, "Mul", x, x));
        const char *u = QB_ONNX_OP(g, "Add", x, QB_ONNX_OP(g, "Mul", cube, qb_onnx_const_f(g, 0.044715f)));
        inner = QB_ONNX_OP(g, "Tanh", QB_ONNX_OP(g, "Mul", u, qb_onnx_const_f(g, (float)sqrt(2.0 / M_PI))));
    }
    const char *y = QB_ONNX_OP(g, "Mul", x, QB_ONNX_OP(g, "Add", inner, qb_onnx_const_f(g, 1.0f)));
    return QB_ONNX_OP(g, "Mul", y, qb_onnx_const_f(g, 0.5f));
}

static const char *block(qb_export *e, const qb_block *blk, const char *x, const char *mask) {
    int H = e->m->cfg.hidden_size;
    const char *a = QB_ONNX_OP(e->g, "Add", qb_export_linear(e, &blk->o, attention(e, blk, x, mask)), x);
    a = layer_norm(e, &blk->attn_norm, a, H);
    const char *f = activation(e, e->m->cfg.act, qb_export_linear(e, &blk->ffn_in, a));
    return layer_norm(e, &blk->ffn_norm, QB_ONNX_OP(e->g, "Add", qb_export_linear(e, &blk->ffn_out, f), a), H);
}

/* [B, H]: each example's first row. */
static const char *cls_row(qb_export *e, const char *h) {
    const char *x = QB_ONNX_OP(e->g, "Gather", h, qb_onnx_const_i64(e->g, 0));
    qb_onnx_attr_int(e->g, qb_onnx_last(e->g), "axis", 1);
    return x;
}

/* Sequence heads read [CLS] through a dense and the family's act, as
 * forward.c's head(): BERT/ALBERT's pooler and RoBERTa's classifier.dense
 * tanh, DistilBERT's pre_classifier ReLU, ELECTRA's classifier.dense exact
 * GELU. */
static void head(qb_export *e, const char *h) {
    const qb_model *m = e->m;
    int64_t L[3] = {0, 0, m->cfg.num_labels};
    if (m->cfg.task == QB_TASK_TOKEN) {
        qb_onnx_output(e->g, qb_export_linear(e, &m->classifier, h), "logits", QB_ONNX_FLOAT, 3, BS, L);
        return;
    }
    const char *x = cls_row(e, h);
    bool pooler = m->pooler.out;
    const qb_linear *pre = pooler ? &m->pooler : &m->pre_classifier;
    x = activation(e, m->cfg.family->head_act, qb_export_linear(e, pre, x));
    const char *dims[2] = {"batch", NULL};
    qb_onnx_output(e->g, qb_export_linear(e, &m->classifier, x), "logits", QB_ONNX_FLOAT, 2, dims, L + 1);
}

/* The masked-LM head on every row, as forward.c's head() and
 * qb_forward_mlm_decode: dense, act, LayerNorm, then the decoder (stored
 * apart, or tied to the word table, int8 rows dequantized) and its bias:
 * logits [B, S, vocab]. */
static void mlm_head(qb_export *e, const char *h) {
    const qb_model *m = e->m;
    int H = m->cfg.hidden_size;
    int64_t V = m->cfg.vocab_size, dims[2] = {V, H}, last[1] = {-1}, L[3] = {0, 0, V};
    const char *x = activation(e, m->cfg.mlm_act, qb_export_linear(e, &m->mlm_dense, h));
    x = layer_norm(e, &m->mlm_norm, x, H);
    const char *table;
    if (m->mlm_decoder || m->word_emb) {
        table = qb_export_floats(e, m->mlm_decoder ? m->mlm_decoder : m->word_emb, 2, dims);
    } else {
        const char *scale = unsqueeze(e, qb_export_floats(e, m->word_emb_scale, 1, dims), 1, last);
        table = QB_ONNX_OP(e->g, "Mul", qb_onnx_cast(e->g, word_table_int8(e), QB_ONNX_FLOAT), scale);
    }
    const char *y = QB_ONNX_OP(e->g, "MatMul", x, QB_ONNX_OP(e->g, "Transpose", table));
    y = QB_ONNX_OP(e->g, "Add", y, qb_export_floats(e, m->mlm_bias, 1, &V));
    qb_onnx_output(e->g, y, "logits", QB_ONNX_FLOAT, 3, BS, L);
}

static const char *reduce_sum(qb_export *e, const char *x, int64_t axis) {
    const char *y = QB_ONNX_OP(e->g, "ReduceSum", x, qb_onnx_const_i64s(e->g, 1, &axis));
    qb_onnx_attr_int(e->g, qb_onnx_last(e->g), "keepdims", 0);
    return y;
}

/* A bare encoder: last_hidden_state, and sentence_embedding pooled as
 * qb_model_embed_params() says (cls, mean, mean_sqrt_len). */
static void embedding_outputs(qb_export *e, const char *h) {
    const qb_model *m = e->m;
    qb_embed_params p = qb_model_embed_params(m);
    int64_t dims[3] = {0, 0, m->cfg.hidden_size}, last[1] = {-1};
    qb_onnx_output(e->g, h, "last_hidden_state", QB_ONNX_FLOAT, 3, BS, dims);
    const char *mask = unsqueeze(e, qb_onnx_cast(e->g, "attention_mask", QB_ONNX_FLOAT), 1, last);
    const char *sum = reduce_sum(e, QB_ONNX_OP(e->g, "Mul", h, mask), 1), *count = reduce_sum(e, mask, 1);
    const char *parts[3];
    int n = 0;
    if (p.pooling & QB_POOL_CLS) parts[n++] = cls_row(e, h);
    if (p.pooling & QB_POOL_MEAN) parts[n++] = QB_ONNX_OP(e->g, "Div", sum, count);
    if (p.pooling & QB_POOL_MEAN_SQRT_LEN) parts[n++] = QB_ONNX_OP(e->g, "Div", sum, QB_ONNX_OP(e->g, "Sqrt", count));
    const char *v = parts[0];
    if (n > 1) {
        qb_onnx_node(e->g, "Concat", NULL, n, parts, 1, &v);
        qb_onnx_attr_int(e->g, qb_onnx_last(e->g), "axis", -1);
    }
    if (p.normalize) {
        const char *norm = QB_ONNX_OP(e->g, "Sqrt", QB_ONNX_OP(e->g, "ReduceSum", QB_ONNX_OP(e->g, "Mul", v, v),
                                                               qb_onnx_const_i64s(e->g, 1, last)));
        v = QB_ONNX_OP(e->g, "Div", v, QB_ONNX_OP(e->g, "Max", norm, qb_onnx_const_f(e->g, 1e-12f)));
    }
    const char *out[2] = {"batch", NULL};
    int64_t width[2] = {0, (int64_t)n * m->cfg.hidden_size};
    qb_onnx_output(e->g, v, "sentence_embedding", QB_ONNX_FLOAT, 2, out, width);
}

/* Everything ONNX cannot say, refused before anything is built, naming the
 * model: the output is not at fault. */
static qb_status check(qb_export *e, qb_error *err) {
    const qb_model *m = e->m;
    if (m->word_emb_lowbit)
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: layer 'embeddings.word_embeddings' is a %d-bit row-wise table: "
                       "ONNX has no Gather on packed codes", m->dir, m->cfg.quant.embedding_bits);
    unsigned supported = QB_POOL_CLS | QB_POOL_MEAN | QB_POOL_MEAN_SQRT_LEN;
    if (m->cfg.task == QB_TASK_NONE && (qb_model_embed_params(m).pooling & ~supported))
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: the model's pooling (modules.json) is not cls, mean or "
                       "mean_sqrt_len, the modes the export writes", m->dir);
    for (int i = 0; i < m->n_linears; i++) {
        qb_status st = qb_export_linear_check(e, m->linears[i], err);
        if (st) return st;
    }
    return QB_OK;
}

static void graph(qb_export *e) {
    const qb_model *m = e->m;
    static const char *const inputs[] = {"input_ids", "attention_mask", "token_type_ids"};
    for (int i = 0; i < 3; i++) qb_onnx_input(e->g, inputs[i], QB_ONNX_INT64, 2, BS, NULL);
    const char *h = embeddings(e), *mask = mask_bias(e);
    int inner = qb_model_inner_steps(m);
    for (int l = 0; l < m->cfg.num_layers; l++)
        for (int i = 0; i < inner; i++) h = block(e, qb_model_block(m, l, i), h, mask);
    if (m->cfg.task == QB_TASK_NONE) embedding_outputs(e, h);
    else if (m->cfg.task == QB_TASK_MLM) mlm_head(e, h);
    else head(e, h);
}

qb_export_params qb_export_default_params(void) { return (qb_export_params){.opset = OPSET_MIN}; }

qb_status qb_export_onnx(const qb_model *m, const char *path, const qb_export_params *p, qb_error *err) {
    qb_export_params def = qb_export_default_params();
    if (!p) p = &def;
    if (p->opset < OPSET_MIN || p->opset > OPSET_MAX)
        return qb_fail(err, QB_ERR_ARG, "opset %d: the export writes opsets %d to %d (LayerNormalization is 17)",
                       p->opset, OPSET_MIN, OPSET_MAX);
    /* before the work: the rename would put a file in place of a device */
    qb_status st = qb_file_check_regular(path, err);
    if (!st) st = qb_model_check_output(m, path, err);
    if (st) return st;
    qb_export e = {.m = m, .path = path};
    if ((st = check(&e, err))) return st;
    e.g = qb_onnx_new(p->opset);
    if (!e.g) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    graph(&e);
    st = qb_onnx_write(e.g, path, err);
    qb_onnx_free(e.g);
    return st;
}
