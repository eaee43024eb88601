/* config.json of a Hugging Face checkpoint, normalized across BERT, ALBERT
 * and DistilBERT so the graph reads one set of fields. */
#ifndef QB_IO_CONFIG_H
#define QB_IO_CONFIG_H

#include <stdbool.h>

#include "kernels/kernels.h"
#include "qbert.h"

/* A group_size of "channel": one group spans any row. */
#define QB_GROUP_ROW (1 << 30)

/* config.json's "quantization_config" block, as qbert writes it. */
typedef struct {
    bool present;
    qb_quant_method method;
    int bits;             /* the weights' grid: 8 (or narrower, stored in int8), or 4, 3, 2 packed */
    int group_size;       /* low-bit grids: "weights": {"group_size"} (0 if none; QB_GROUP_ROW: "channel") */
    int zero_points;      /* low-bit grids: "weights": {"zero_points"}: 1, 0, or -1 where not given */
    bool weights_per_tensor; /* "weights": {"granularity": "per-tensor"}: one scale for each matrix */
    char weights_format[24]; /* "weights": {"format"} of packed models ("" if none): the method's default */
    int embedding_bits;   /* word embeddings: 32, 16, 8, 4 or 2 ("embeddings": "int4-rowwise"...) */
    bool act_per_token;   /* dynamic: per-token (else per-tensor) activation scales */
    bool act_symmetric;
    char observer[32];    /* static: how the input ranges were chosen */
    bool attention_int8;  /* static: Q.K^T and P.V in int8 ("attention": "int8") */
    char **modules;       /* "modules": pairs of linear name and format ("int4", "int8-dynamic"...) */
    int n_modules;
} qb_quant_config;

/* The format "modules" gives linear `name`, or NULL. */
const char *qb_quant_config_module(const qb_quant_config *qc, const char *name);
/* True if "modules" declares linear `name` "<format>-dynamic" (in a static model). */
bool qb_quant_config_dynamic(const qb_quant_config *qc, const char *name);

/* What sets a model_type apart (one row of config.c's table); the graph is
 * otherwise BERT's, so a new BERT-shaped family is a row, not a code path. */
typedef struct qb_family {
    const char *model_type;
    qb_arch arch;              /* the block layout and names: BERT's, ALBERT's or DistilBERT's */
    const char *prefix;        /* the base model's tensor prefix: "bert.", "roberta." ... */
    const char *default_class; /* when config.json has no "architectures" */
    const char *seq_dense;     /* the sequence head: this dense + head_act on the first token ... */
    bool seq_dense_in_base;    /* (under the prefix: BERT's and ALBERT's pooler) */
    const char *seq_out;       /* ... then this linear to the labels */
    qb_act head_act;
    const char *emb_proj;      /* the E -> H projection, where embedding_size != hidden_size (ALBERT: always) */
    bool positions_from_pad;   /* RoBERTa: positions count from pad_token_id + 1, pad tokens keep pad_token_id */
    /* the masked-LM head: dense, act, LayerNorm, the decoder (tied to the
     * word embeddings unless stored) + bias; mlm_dense NULL: none qbert reads */
    const char *mlm_dense, *mlm_norm, *mlm_decoder, *mlm_bias;
    bool mlm_gelu;             /* the head's act is exact GELU whatever hidden_act says (RoBERTa) */
} qb_family;

typedef struct {
    qb_arch arch;
    qb_task task;
    const qb_family *family;
    char model_type[16];
    char class_name[64];
    char hidden_act[24];
    qb_act act;
    int vocab_size, hidden_size, embedding_size, num_layers, num_heads;
    int intermediate_size, type_vocab_size;
    int max_position;                        /* positions a text may use: the table's rows less position_offset */
    int num_hidden_groups, inner_group_num; /* ALBERT; 1 otherwise */
    int pad_token_id;
    int position_offset;                     /* first token's position (RoBERTa: pad_token_id + 1) */
    qb_act mlm_act;                          /* QB_TASK_MLM: the head's activation */
    float layer_norm_eps;
    bool sinusoidal_pos;                     /* DistilBERT */
    bool tie_word_embeddings;                /* a masked-LM decoder may be the word table */
    int num_labels;
    char **labels;                           /* id2label, num_labels entries */
    int head_function;                       /* qb_head_function, from problem_type and num_labels */
    float initializer_range;                 /* std of the weights of a fresh head */
    qb_quant_config quant;
} qb_config;


qb_status qb_config_load(const char *path, qb_config *c, qb_error *err);
void qb_config_free(qb_config *c);

#endif
