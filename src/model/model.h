/* The loaded model: config, mmapped weights bound into typed structs, the
 * tokenizer and the kernels chosen for this CPU.  Every parameter is also in
 * one registry (name, shape, data) so that tools that walk all weights
 * (info, quantizers, the optimizer) need not know the architecture. */
#ifndef QB_MODEL_MODEL_H
#define QB_MODEL_MODEL_H

#include <stdint.h>

#include "io/config.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "kernels/kernels_h16.h"
#include "kernels/kernels_i8.h"
#include "kernels/kernels_lowbit.h"
#include "qbert.h"
#include "text/tokenizer.h"

typedef struct {
    const char *name;       /* the checkpoint's tensor name */
    int ndim;
    int64_t shape[QB_MAX_DIMS];
    int64_t numel;
    const float *data;      /* into the mapping, or an owned converted copy */
} qb_param;

struct qb_linear_format;

/* A linear layer y = x.W^T + b, in the format its weight was stored in. */
typedef struct {
    const struct qb_linear_format *fmt; /* its row of the format table */
    const float *w, *b;     /* w: FP32 weights [out, in] as PyTorch stores them (fmt fp32), else NULL */
    void *packed;           /* the weights as their row binds them (fp32: the kernels' panels, or NULL) */
    int out, in;
    int id;                 /* index in qb_model.linears */
    char name[96];          /* module name, e.g. "bert.encoder.layer.0.attention.self.query" */
    char label[32];         /* its format as info shows it: the row's name, "-dynamic" or "-static" where
                             * its input grid is not the method's */
    bool static_input;      /* int8 static: the input has a calibrated scale */
    float in_scale;
    int32_t in_zero;
    const float *in_smooth; /* static: x_j * in_smooth[j] is what the grid quantizes (SmoothQuant), or NULL */
} qb_linear;

typedef struct {
    const float *gamma, *beta;
} qb_norm;

/* Static int8 attention (quantization_config "attention": "int8"): Q on
 * a u8 grid with a zero point, K and V symmetric s8, one calibrated scale
 * each (stored as "<q|k|v module>.output_scale", Q's zero point as
 * "<q module>.output_zero_point"); the probabilities quantized per row at
 * run time. */
typedef struct {
    bool on;
    float q_scale, k_scale, v_scale;
    int32_t q_zero;
} qb_attn_i8;

/* One transformer block.  BERT, ALBERT and DistilBERT compute the same
 * thing under different names: post-LN attention, then a post-LN FFN. */
typedef struct {
    qb_linear q, k, v, o;
    qb_norm attn_norm;
    qb_linear ffn_in, ffn_out;
    qb_norm ffn_norm;
    qb_attn_i8 attn_i8;
} qb_block;

/* sentence-transformers' prompts (config_sentence_transformers.json). */
typedef struct {
    char **names, **texts;
    int n;
    int default_index; /* default_prompt_name's, or -1 */
    bool exclude;      /* 1_Pooling/config.json: include_prompt false */
} qb_prompts;

struct qb_model {
    char *dir;
    qb_config cfg;
    qb_safetensors st;
    qb_tokenizer *tok;
    int32_t mask_id;        /* the tokenizer's mask token, or -1 */
    qb_kernels kern;

    qb_param *params;
    int n_params;
    void **owned;           /* converted copies (F16/BF16 or misaligned F32), packed half weights */
    int n_owned;

    qb_kernels_i8 kern_i8;
    qb_kernels_lowbit kern_lowbit;

    const float *word_emb, *pos_emb, *type_emb; /* type_emb NULL for DistilBERT */
    const int8_t *word_emb_q;   /* int8 word embeddings (then word_emb is NULL) */
    const float *word_emb_scale; /* their row scales [vocab] */
    qb_lowbit_weights *word_emb_lowbit; /* 4- or 2-bit word embeddings (then word_emb is NULL) */
    qb_norm emb_norm;
    qb_linear emb_proj;     /* ALBERT's and ELECTRA's E -> H; out == 0 otherwise */
    qb_block *blocks;       /* BERT/DistilBERT: one per layer; ALBERT: groups * inner */
    int n_blocks;
    qb_linear pooler;       /* sequence heads' dense: BERT/ALBERT's pooler, RoBERTa/ELECTRA's classifier.dense */
    qb_linear pre_classifier; /* DistilBERT */
    qb_linear classifier;
    qb_linear mlm_dense;    /* QB_TASK_MLM: dense, act, LayerNorm, then the decoder */
    qb_norm mlm_norm;
    const float *mlm_decoder; /* [vocab, H] when stored apart; NULL: tied to the word embeddings */
    const float *mlm_bias;

    qb_embed_params embed;  /* the directory's sentence-transformers settings (embed_config.c) */
    qb_prompts prompts;     /* and its prompts */

    qb_linear **linears;    /* every linear, in graph order: observers, quantizers */
    int n_linears;
    char quant_summary[384];
    bool nonfinite_checked; /* every float tensor was found finite at load */
    bool *st_used;          /* [st.n]: the binder looked the tensor up */
    bool *st_released;      /* [st.n]: its mapped bytes were dropped, a copy replaced them */
    size_t held_bytes;      /* heap the binders allocated for weights: qb_model_resident */
    char *warning;          /* one line about the checkpoint (unused tensors), or NULL */
};

/* Which stored block runs at position `layer` (0..num_layers-1), inner step
 * `inner`: ALBERT maps layers onto its shared groups. */
const qb_block *qb_model_block(const qb_model *m, int layer, int inner);
/* The file's tensor "<linear>.weight<suffix>" ("", "_scale"...), or NULL. */
const qb_st_tensor *qb_model_weight_tensor(const qb_model *m, const char *linear, const char *suffix);
int qb_model_inner_steps(const qb_model *m);

/* 'q', 'k' or 'v' if l is a block's query, key or value linear (what
 * attention reads), else 0. */
char qb_model_attention_input(const qb_model *m, const qb_linear *l);
/* The index in m->blocks of the block holding l, or -1 (a head's linear,
 * ALBERT's embedding projection). */
int qb_model_block_of(const qb_model *m, const qb_linear *l);

/* Reads modules.json and what it points at into m->embed (and sets the
 * loaded tokenizer's sentence-transformers text handling), and
 * config_sentence_transformers.json's prompts into m->prompts (defaults
 * without them). */
qb_status qb_model_read_embed_config(qb_model *m, qb_error *err);
void qb_prompts_free(qb_prompts *p);
/* The folder modules.json in dir gives its Transformer module, escaped
 * into sub, if not dir itself: the layout of sentence-transformers before
 * 2.0, which keeps config.json and the weights there. */
bool qb_model_transformer_folder(const char *dir, char *sub, size_t cap);
/* Copies the sentence-transformers files (modules.json, its modules'
 * folders, sentence_bert_config.json) of from into to, where present:
 * a quantized copy embeds as its source did. */
qb_status qb_embed_copy_files(const char *from, const char *to, qb_error *err);

/* Binds every weight of the architecture; fills m->params and the
 * structs, and packs what the kernels read packed on n_threads threads
 * (0: all online cores). */
qb_status qb_model_bind_weights(qb_model *m, int n_threads, qb_error *err);
/* QB_ERR_NUMERIC naming the first float tensor of the file that holds a
 * NaN or an infinity, and where; QB_OK if none does. */
qb_status qb_model_find_nonfinite(const qb_model *m, qb_error *err);

#endif
