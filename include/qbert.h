/* qbert: load, tokenize, run and measure BERT-family encoders in C.
 *
 * The flow is one way: qb_model_load() maps a Hugging Face checkpoint
 * directory, qb_tokenize() turns text into ids, a qb_session runs the graph
 * with the kernels chosen for this CPU, and the caller reads the logits.
 *
 * Every function that can fail returns a qb_status and fills a caller-owned
 * qb_error with a one-line message naming the file and the problem.  Nothing
 * here keeps global state; a model is read-only once loaded and can be shared
 * by several sessions, one session per thread of the caller.
 */
#ifndef QBERT_H
#define QBERT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden: what is declared here is
 * all that libqbert.so exports. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define QBERT_VERSION "0.1.0"

typedef enum qb_status {
    QB_OK = 0,
    QB_ERR_IO,          /* a file is missing, unreadable or unwritable */
    QB_ERR_FORMAT,      /* a file is malformed: header, JSON, protobuf, dataset */
    QB_ERR_UNSUPPORTED, /* valid but not handled: model_type, activation, dtype */
    QB_ERR_NOMEM,
    QB_ERR_ARG,         /* the caller passed something out of range */
    QB_ERR_UTF8,        /* text is not valid UTF-8 */
    QB_ERR_NUMERIC      /* a NaN or infinity where a finite value is required */
} qb_status;

typedef struct qb_error {
    qb_status code;
    char msg[512];
} qb_error;

const char *qb_status_name(qb_status s);

/* ---- model ------------------------------------------------------------ */

typedef struct qb_model qb_model;

typedef enum qb_arch { QB_ARCH_BERT, QB_ARCH_ALBERT, QB_ARCH_DISTILBERT } qb_arch;
/* QB_TASK_NONE: a bare encoder (BertModel...), no head: embeddings only.
 * QB_TASK_MLM: a masked-LM head (BertForMaskedLM, RobertaForMaskedLM):
 * qb_session_mlm_logits; embeddings too. */
typedef enum qb_task { QB_TASK_SEQUENCE, QB_TASK_TOKEN, QB_TASK_NONE, QB_TASK_MLM } qb_task;

typedef struct qb_load_params {
    /* Kernel set: NULL means the best this CPU has, or $QBERT_ISA if set.
     * Accepted: "scalar", "avx2", "avx512", "avx512-vnni" on x86-64;
     * "scalar", "neon", "dotprod", "i8mm" on AArch64. */
    const char *isa;
    /* Nonzero: skip the check that refuses a checkpoint holding a NaN or an
     * infinity in any float tensor (weights, scales, SmoothQuant factors).
     * Such a model computes garbage; this is for inspecting one.  The
     * quantizer refuses it whatever this says. */
    int allow_nonfinite;
    /* A directory where that check leaves a stamp for each weights file it
     * read and found finite (named by device, inode, size and file times),
     * so that loading the file again skips the read: NULL reads it every
     * time.  Any write to the file changes its change time and so misses
     * the stamp; a file changed in the 10 s before the check is not stamped.
     * The CLI uses $QBERT_CACHE_DIR/checked. */
    const char *check_cache;
    /* Threads that pack the weights, one linear at a time: 0 means all
     * online cores.  What they pack does not depend on the count. */
    int n_threads;
} qb_load_params;

qb_load_params qb_load_default_params(void);

/* dir holds config.json, model.safetensors and vocab.txt or spiece.model
 * (tokenizer_config.json is optional).  Weights are mmapped; those the
 * kernels read packed (int8, low-bit, and FP32 where the CPU's kernels take
 * prepacked panels: AVX2) are packed here once and their mapped pages
 * dropped. */
qb_status qb_model_load(const char *dir, const qb_load_params *params,
                        qb_model **out, qb_error *err);
void qb_model_free(qb_model *m);
/* Refuses (QB_ERR_ARG) an output path that is one of the files m was
 * loaded from, which writing it would destroy; QB_OK for any other. */
qb_status qb_model_check_output(const qb_model *m, const char *path, qb_error *err);
/* A one-line note about a model that loaded, for the caller to show, or
 * NULL: tensors of the checkpoint the model does not use ("DIR/
 * model.safetensors: 7 tensors unused: cls.predictions.bias, ..."). */
const char *qb_model_warning(const qb_model *m);

/* What a sequence head's scores are, named as the pipeline's
 * function_to_apply: "softmax", "sigmoid", "none" (qb_head_function_name). */
typedef enum { QB_HEAD_SOFTMAX, QB_HEAD_SIGMOID, QB_HEAD_NONE } qb_head_function;
const char *qb_head_function_name(int head_function);

typedef struct qb_model_info {
    qb_arch arch;
    qb_task task;
    const char *model_type;   /* "bert", "albert", "distilbert", "roberta", "xlm-roberta", "camembert", "electra" */
    const char *class_name;   /* e.g. "BertForSequenceClassification" */
    const char *hidden_act;   /* "gelu", "gelu_new", "relu" */
    const char *tokenizer;    /* "wordpiece", "sentencepiece" or "tokenizer.json: MODEL, N tokens" */
    const char *isa;          /* kernel set in use */
    int vocab_size, hidden_size, embedding_size, num_layers, num_heads;
    int intermediate_size, max_position, type_vocab_size;
    int num_hidden_groups, inner_group_num;
    int num_labels;
    int mask_token_id;        /* the tokenizer's [MASK] or <mask>, -1 if it has none */
    /* Scores as Hugging Face's text-classification pipeline reads the
     * logits (qb_head_function): the logits as they are for problem_type
     * regression; a sigmoid per label for multi_label_classification or
     * one label (a cross-encoder's score); else a softmax over the labels. */
    int head_function;
    float layer_norm_eps;
    int64_t n_params;         /* distinct parameters (ALBERT's shared layer once) */
    int64_t file_bytes;       /* size of model.safetensors */
    int n_tensors;
} qb_model_info;

void qb_model_get_info(const qb_model *m, qb_model_info *info);
const char *qb_model_label(const qb_model *m, int id); /* id2label, or NULL */
int qb_model_label_id(const qb_model *m, const char *name); /* -1 if unknown */
/* A dataset's label: a name of id2label, or an integer id in range; -1 if neither. */
int qb_model_label_find(const qb_model *m, const char *label);

typedef struct qb_tensor_info {
    const char *name;
    const char *dtype;        /* safetensors name: "F32", "I8", ... */
    int ndim;
    int64_t shape[4];
    size_t nbytes;
} qb_tensor_info;

void qb_model_tensor(const qb_model *m, int i, qb_tensor_info *out);

/* The memory a loaded model keeps resident while a session of max_batch
 * rows of up to max_seq tokens runs (qbert info).  Bytes. */
typedef struct qb_model_memory {
    /* heap the load made for weights: FP32, int8 and low-bit weights
     * packed for the kernels, converted (F16/BF16 to FP32) and realigned
     * tensors */
    size_t held;
    /* pages of model.safetensors every run reads whole (biases, norms,
     * scales, FP32 linears the kernels read as stored), in Linux's 64 KiB
     * fault-around windows; the mapped bytes a copy replaced are released
     * and not counted */
    size_t mapped;
    /* pages of the first max_seq position rows, and of the word table
     * where a tied MLM head reads it whole; the graph reads the word
     * table's rows with pread, which maps none of them, so the estimate
     * does not depend on the batch */
    size_t embeddings;
    size_t tokenizer;         /* its vocabulary tables */
    size_t total;             /* held + mapped + embeddings + tokenizer */
} qb_model_memory;

/* Not counted: the session (qb_session_bytes), code, libc and thread
 * stacks: the process's own baseline. */
void qb_model_resident(const qb_model *m, int max_seq, qb_model_memory *out);

/* ---- tokenizer -------------------------------------------------------- */

/* One tokenized input.  Start from a zeroed struct and reuse it: buffers grow
 * to the largest input seen and are freed by qb_encoding_free(). */
typedef struct qb_encoding {
    int32_t *input_ids;
    int32_t *token_type_ids;
    int32_t *word_ids;        /* word index per token, -1 for [CLS]/[SEP] */
    int n;                    /* tokens, [CLS]/[SEP] included */
    int n_truncated;          /* tokens dropped to fit max_length */
    int cap;
    void *work;               /* tokenizer scratch, reused between calls */
} qb_encoding;

void qb_encoding_free(qb_encoding *e);

/* Texts are (pointer, length): an embedded NUL is data.  pair may be NULL.
 * Truncation is Hugging Face's "longest_first", to max_length tokens, which
 * must leave room for the special tokens (0 is refused here: pass
 * qb_model_max_length(m, 0) for the model's own). */
qb_status qb_tokenize(const qb_model *m, const char *text, size_t len,
                      const char *pair, size_t pair_len, int max_length,
                      qb_encoding *enc, qb_error *err);

/* Pre-split words (CoNLL), as transformers' is_split_into_words reads them
 * (a byte-level BPE's each after a space, as add_prefix_space asks):
 * word_ids tells which word each token came from. */
qb_status qb_tokenize_words(const qb_model *m, const char *const *words,
                            const size_t *lens, int n_words, int max_length,
                            qb_encoding *enc, qb_error *err);

/* A list of words, for qb_tokenize_word_pair. */
typedef struct qb_words {
    const char *const *words;
    const size_t *lens;
    int n;
} qb_words;

/* A pair of pre-split texts (a token-classification model given a
 * text_pair): truncated as qb_tokenize() truncates a pair; word_ids number
 * the pair's words after the text's (text->n + i). */
qb_status qb_tokenize_word_pair(const qb_model *m, const qb_words *text, const qb_words *pair, int max_length,
                                qb_encoding *enc, qb_error *err);

/* A word of a text: its bytes [start, end), and the bytes it is tokenized
 * from, [tok_start, tok_end): the same, except for byte-level BPE
 * (RoBERTa), whose tokens carry whitespace ("Ġworld"): there a word takes
 * the whitespace before it, and the last word the whitespace after it. */
typedef struct qb_word_span {
    size_t start, end, tok_start, tok_end;
} qb_word_span;

/* An entity found by qb_entities_simple: the type is the label's name
 * after its "B-"/"I-" prefix, qb_model_label(m, label) + type_offset. */
typedef struct qb_entity {
    int label;          /* the label of its first token */
    int type_offset;    /* 2 after "B-" or "I-", else 0 */
    int segment;        /* 0: the text, 1: the pair */
    size_t start, end;  /* bytes of its segment */
    double score;       /* the mean of its tokens' probabilities */
} qb_entity;

/* The entities of a token-classification model's output, as Hugging Face's
 * aggregation_strategy="simple" groups them: every sub-token tagged by its
 * argmax, runs of one type grouped (a B- tag starts a new group), "O"
 * dropped.  e was made by qb_tokenize_word_pair from the n_words words
 * with byte spans `spans` (the text's n_text first, then the pair's);
 * logits are e's token logits, [e->n, num_labels].  out has room for e->n
 * entries; returns how many it holds. */
int qb_entities_simple(const qb_model *m, const qb_encoding *e, const float *logits, const qb_word_span *spans,
                       int n_text, int n_words, qb_entity *out);

/* The words of a text as the model's pre-tokenizer splits them, so that
 * tokenizing them one by one (qb_tokenize_words) gives qb_tokenize()'s ids:
 * WordPiece (BERT's BasicTokenizer, BertPreTokenizer) splits at whitespace
 * and around every punctuation mark and CJK ideograph ("York." is two
 * words); a byte-level BPE (RoBERTa) at whitespace and where GPT-2's
 * pattern cuts ("York.", "it's": two words each); SentencePiece and the
 * others at whitespace.  A special token
 * written in the text is one word.  spans has room for len entries; *n
 * gets the count.  Invalid UTF-8 is QB_ERR_UTF8. */
qb_status qb_split_words(const qb_model *m, const char *text, size_t len, qb_word_span *spans, int *n,
                         qb_error *err);

/* Where a token came from, as Hugging Face's tokenizers gives offsets (its
 * Rust encode(): bytes, trim_offsets applied): bytes [start, end) of its
 * segment's text.  The template's special tokens ([CLS], [SEP]) have
 * special = 1, segment -1 and start = end = 0. */
typedef struct qb_token_offset {
    size_t start, end;
    int segment; /* 0: the text, 1: the pair */
    int special; /* 1 for the template's special tokens */
} qb_token_offset;

/* The offsets of e's tokens (out has room for e->n); e was made by
 * qb_tokenize from the same text and pair, at any max_length.  A normalized
 * character points back at the character it came from, as in tokenizers
 * ("가" under an uncased BERT is two tokens on the same three bytes; a
 * replaced "``" at its second byte).  Where a normalizer joins characters
 * otherwise (NFC composing an accent typed apart), a token that does not
 * spell its text takes what its neighbours leave, and a word whose tokens
 * cannot be laid puts each on the whole word.  QB_ERR_ARG when e's tokens
 * are not this text's. */
qb_status qb_token_offsets(const qb_model *m, const char *text, size_t len, const char *pair, size_t pair_len,
                           const qb_encoding *e, qb_token_offset *out, qb_error *err);

/* Token ids back to text, as Hugging Face's tokenizers decodes them (with
 * tokenizer.json's decoder: WordPiece, ByteLevel, Metaspace, or the tokens
 * joined by spaces; vocab.txt as WordPiece, spiece.model as Metaspace);
 * skip_special leaves the special tokens out.  Writes at most cap bytes,
 * NUL included, into text (NULL when cap is 0); *len gets the full length
 * (call again with more room when *len >= cap).  QB_ERR_ARG for an id past
 * the vocabulary; QB_ERR_UNSUPPORTED for a decoder qbert does not know. */
qb_status qb_detokenize(const qb_model *m, const int32_t *ids, int n, int skip_special, char *text, size_t cap,
                        size_t *len, qb_error *err);

/* The truncation length every command uses unless told otherwise: the
 * model's max_position_embeddings, at most 512 (Hugging Face's
 * model_max_length for BERT-family tokenizers).  tokenizer.json's own
 * truncation block is not read: transformers, sentence-transformers and
 * text-embeddings-inference each set theirs over it.  asked > 0 is
 * returned as is (a sentence-transformers model asks its max_seq_length);
 * every max_length parameter below that is 0 means this. */
int qb_model_max_length(const qb_model *m, int asked);

/* Token id to its vocabulary string (for display), or NULL. */
const char *qb_token_text(const qb_model *m, int32_t id);

/* ---- inference -------------------------------------------------------- */

typedef struct qb_session qb_session;

typedef struct qb_session_params {
    int max_batch;            /* largest batch run() will get */
    int max_seq;              /* longest padded row run() will get */
    int n_threads;            /* 0: all online cores */
} qb_session_params;

qb_session_params qb_session_default_params(void);

/* All working memory is allocated here, once; run() allocates nothing. */
qb_status qb_session_create(const qb_model *m, const qb_session_params *p,
                            qb_session **out, qb_error *err);
void qb_session_free(qb_session *s);
/* Bytes of working memory the session allocated for its max_batch x max_seq
 * (activations, per-thread kernel scratch, token buffers): what a run at
 * that size touches, on top of the model's own. */
size_t qb_session_bytes(const qb_session *s);
/* How many of the session's threads run its next runs: 1 to its n_threads
 * (all at creation).  Outputs do not change, since the work is still cut
 * for all of them: a server running two batches at once on two sessions
 * gives each half the cores. */
qb_status qb_session_set_threads(qb_session *s, int n, qb_error *err);
/* The threads the session was created with. */
int qb_session_threads(const qb_session *s);

/* A padded batch: row b holds lengths[b] real tokens then padding. */
typedef struct qb_batch {
    int batch, seq;
    const int32_t *input_ids;      /* [batch * seq] */
    const int32_t *token_type_ids; /* [batch * seq], or NULL for zeros */
    const int32_t *lengths;        /* [batch] */
} qb_batch;

/* A failed run leaves nothing to read: the accessors below return NULL
 * (or fail) until a run succeeds. */
qb_status qb_session_run(qb_session *s, const qb_batch *b, qb_error *err);

/* Pads encs into the session's own buffers, then runs them as one batch. */
qb_status qb_session_run_encodings(qb_session *s, const qb_encoding *const *encs,
                                   int n, qb_error *err);

/* Logits of example i of the last run: num_labels floats for sequence
 * classification, seq * num_labels (row per token) for token classification;
 * NULL for a masked-LM model (qb_session_mlm_logits) and a pooling session. */
const float *qb_session_logits(const qb_session *s, int i);
int qb_session_seq(const qb_session *s); /* padded length of the last run */

/* A masked-LM model's vocabulary logits (vocab_size floats into out) at
 * token pos of example i of the last run: the decoder runs here, for the
 * positions asked, not for every token. */
qb_status qb_session_mlm_logits(qb_session *s, int i, int pos, float *out, qb_error *err);

/* ---- sentence embeddings --------------------------------------------- */

/* Pooling modes (sentence-transformers'); several concatenate in this
 * order, each hidden_size wide. */
enum {
    QB_POOL_CLS = 1,           /* the [CLS] row */
    QB_POOL_MAX = 2,           /* per dimension, the max over the real tokens */
    QB_POOL_MEAN = 4,          /* the mean over the real tokens */
    QB_POOL_MEAN_SQRT_LEN = 8, /* their sum / sqrt(count) */
    QB_POOL_WEIGHTED_MEAN = 16, /* weights 1..n by position */
    QB_POOL_LAST_TOKEN = 32,   /* the last real token */
    QB_POOL_MODES = 6          /* how many there are */
};

typedef struct qb_embed_params {
    unsigned pooling;         /* QB_POOL_* bits */
    int normalize;            /* L2-normalize the pooled vector */
    int max_length;           /* truncation (0: qb_model_max_length) */
} qb_embed_params;

/* What the model directory asks for: sentence-transformers' modules.json,
 * 1_Pooling/config.json, a Normalize module, sentence_bert_config.json's
 * max_seq_length; without them mean pooling, no normalization, 0. */
qb_embed_params qb_model_embed_params(const qb_model *m);
/* sentence-transformers' prompts (config_sentence_transformers.json): the
 * text put before each input for a task, "query" -> "query: ", as
 * SentenceTransformer.encode(prompt_name=name) does.  name NULL: the
 * file's default_prompt_name's text, else *prompt = NULL (no prompt).  A
 * name the model lacks is QB_ERR_ARG naming the ones it has; a prompt
 * that the Pooling module leaves out (include_prompt false) is
 * QB_ERR_UNSUPPORTED.  The text lives as long as the model. */
qb_status qb_model_prompt(const qb_model *m, const char *name, const char **prompt, qb_error *err);
/* Prompt i of the model, in the file's order: its name (NULL past the
 * last), its text in *text, and whether it is default_prompt_name's. */
const char *qb_model_prompt_at(const qb_model *m, int i, const char **text, int *is_default);
/* Parses "cls", "mean", "max", "mean_sqrt_len", "weightedmean",
 * "lasttoken" or a '+'/','-separated combination into QB_POOL_* bits; 0 if
 * a name is unknown, repeated or empty ("mean+"). */
unsigned qb_pooling_parse(const char *names);
/* QB_POOL_* bits as qb_pooling_parse reads them, "cls+mean", into buf
 * (cut to cap); returns buf. */
const char *qb_pooling_format(unsigned pooling, char *buf, size_t cap);
/* The width of a pooled vector: hidden_size per mode. */
int qb_embed_dim(const qb_model *m, unsigned pooling);

/* From now on the session's runs end in pooling instead of the model's
 * head (a classifier's logits are then not computed).  A session of a bare
 * encoder starts with qb_model_embed_params(). */
qb_status qb_session_set_pooling(qb_session *s, const qb_embed_params *p, qb_error *err);
/* Example i's pooled (and, if asked, normalized) vector of the last run,
 * qb_embed_dim() floats, or NULL. */
const float *qb_session_embedding(const qb_session *s, int i);
/* Example i's last hidden state of the last run: *n_tokens rows of
 * hidden_size floats, or NULL (after any inference run, pooled or not). */
const float *qb_session_hidden(const qb_session *s, int i, int *n_tokens);

/* Index of the largest of n values (the first on ties): the predicted label. */
int qb_argmax(const float *v, int n);

/* Scores as Hugging Face's pipelines read n logits, summed in double so
 * every client (CLI, server, Python) prints the same numbers: a softmax,
 * or a sigmoid of each logit.  qb_head_scores applies the one m's head
 * uses (qb_model_info.head_function), or copies them for a regression. */
void qb_softmax(const float *logits, int n, float *probs);
void qb_sigmoid(const float *logits, int n, float *probs);
void qb_head_scores(const qb_model *m, const float *logits, int n, float *scores);

/* ---- evaluation and benchmarking ------------------------------------- */

typedef void (*qb_progress_fn)(void *ctx, const char *stage, long done, long total);

#define QB_COLUMN_AUTO (-2)

typedef struct qb_eval_params {
    const char *data;         /* dataset file */
    const char *task;         /* "auto" (default), "sst2", "imdb", "conll", "tsv", "jsonl" */
    /* TSV columns (0-based; pair and label -1: none), header 1/0/-1 auto.
     * All QB_COLUMN_AUTO with header -1 (the default): a header naming them
     * (sentence/text/sentence1, sentence2/text_pair, label) picks them, else
     * text 0 and label 1; one chosen: the others default to 0, none, 1. */
    int text_col, pair_col, label_col, header;
    int limit;                /* first N examples (0: all) */
    int max_length;           /* truncation, [CLS]/[SEP] included (0: qb_model_max_length) */
    int batch;                /* examples run together (default 16) */
    int n_threads;            /* 0: all cores */
    const qb_model *reference; /* optional: report agreement with its predictions */
    qb_progress_fn progress;
    void *progress_ctx;
} qb_eval_params;

qb_eval_params qb_eval_default_params(void);

typedef struct qb_eval_result {
    char task[16];            /* the dataset format read */
    int n;                    /* examples (sentences for NER) */
    int token_task;           /* NER: word-level scores and entity F1 */
    double accuracy, macro_f1;
    long long correct, total; /* examples, or scored words for NER */
    double entity_f1, entity_precision, entity_recall;
    long long entity_gold, entity_pred, entity_tp;
    /* NER: the same per entity type (PER, ORG...), sorted by name; types
     * past the 32nd count only in the totals */
    int n_entity_types;
    struct qb_entity_score {
        char type[24];
        double f1, precision, recall;
        long long gold, pred, tp;
    } entity_types[32];
    int words_unscored;       /* NER words not scored: beyond max_length, or ... */
    int words_tokenless;      /* ... of them, words the tokenizer gives no token (a lone soft hyphen) */
    int max_length;           /* the truncation length used */
    int n_truncated;          /* examples that lost tokens to it */
    double agreement;         /* with params.reference (NaN without one) */
    long long agreement_n;
    double sqnr_db;           /* logits vs the reference's: 10 log10(sum r^2 / sum (r - q)^2) */
    double kl;                /* mean KL(softmax(reference) || softmax(model)) per prediction */
    double cosine;            /* mean cosine of the logits to the reference's, per prediction */
    int n_classes;            /* per-class scores, class = model label id */
    double *precision, *recall, *f1;
    long long *support;
    double seconds;
} qb_eval_result;

qb_status qb_evaluate(const qb_model *m, const qb_eval_params *p, qb_eval_result *r, qb_error *err);
void qb_eval_result_free(qb_eval_result *r);

typedef struct qb_latency {
    int seq, batch;
    double p50_ms, p90_ms, p99_ms, mean_ms, min_ms, max_ms;
    double p25_ms, p75_ms;    /* quartiles, for the spread */
} qb_latency;

/* Times forward passes of random token ids for each (seq, batch) in out[]
 * (filled in by the caller), interleaving the shapes round by round so
 * background load hits them alike. */
qb_status qb_bench_synthetic(const qb_model *m, qb_latency *out, int n, int runs, int warmup, int n_threads,
                             qb_error *err);
/* The token ids qb_bench_synthetic runs: a fixed sequence of n ids from the
 * model's vocabulary (past its first 1000, the special and rare tokens, in
 * a WordPiece vocabulary), so that other benchmarks can run the same. */
void qb_bench_random_ids(const qb_model *m, int32_t *ids, size_t n);

/* Runs a dataset's texts end to end, tokenization included, each batch
 * padded only to its longest text: an untimed pass over the first 16
 * batches (caches, page-ins, the tokenizer's buffers), then one timed pass
 * over all of them. */
typedef struct qb_bench_data_params {
    const char *data;         /* dataset file */
    const char *task;         /* its format, as in qb_eval_params (NULL: "auto") */
    int limit;                /* first N examples (0: all) */
    int max_length;           /* truncation (0: qb_model_max_length) */
    int batch;                /* texts per forward pass (0: 1) */
    int n_threads;            /* 0: all cores */
    qb_progress_fn progress;  /* the timed pass, stage "bench" */
    void *progress_ctx;
} qb_bench_data_params;

typedef struct qb_bench_data_result {
    int n;                    /* texts (sentences for NER) */
    int max_length;           /* the truncation length used */
    long long tokens;         /* tokens run, [CLS] and [SEP] included */
    double tokenize_s, model_s; /* the timed pass: tokenization and forward passes */
    qb_latency batch;         /* per batch, tokenization included (seq 0) */
} qb_bench_data_result;

qb_status qb_bench_data(const qb_model *m, const qb_bench_data_params *p, qb_bench_data_result *r, qb_error *err);

/* p25/p50/p75/p90/p99/mean/min/max of n samples (sorts ms in place; all
 * zero for none); seq and batch are left as they are.  Any positive
 * quantity summarizes the same way. */
void qb_latency_summarize(double *ms, int n, qb_latency *out);

/* Peak resident set of this process so far, in MB (10^6 bytes). */
double qb_peak_rss_mb(void);

/* ---- quantization ----------------------------------------------------- */

typedef enum qb_quant_method {
    QB_QUANT_DYNAMIC,   /* int8 weights, activations quantized at run time */
    QB_QUANT_STATIC,    /* int8 weights, activation scales from calibration */
    QB_QUANT_FP16,
    QB_QUANT_BF16,      /* where the CPU has AVX512_BF16, GEMMs of up to 64 rows multiply BF16
                         * activations, longer ones FP32: a text's logits move (~1e-3) with
                         * its batch's total tokens */
    QB_QUANT_WEIGHT_ONLY /* low-bit weights, FP32 activations (dequantized inside the GEMM; on
                          * AVX-512 up to 144 rows multiply from the codes, so outputs move in
                          * the last bits, ~1e-6, with the batch's total tokens) */
} qb_quant_method;

/* Per-linear precision, for --keep and precision maps. */
typedef enum qb_precision { QB_PREC_FP32, QB_PREC_FP16, QB_PREC_BF16, QB_PREC_INT8, QB_PREC_LOWBIT } qb_precision;

typedef struct qb_quant_params {
    qb_quant_method method;
    int per_channel;          /* weights: per output channel (1) or per tensor (0) */
    int act_per_token;        /* dynamic: per token (1) or per tensor (0) */
    int act_symmetric;        /* activations symmetric (zero point 128 in u8) */
    int reduce_range;         /* 7-bit ranges, for CPUs whose dot products saturate */
    int bits;                 /* weights: 8 (int8), or 4, 3, 2 packed (and 7: int8 reduce_range) */
    int ternary;              /* weights {-a, 0, a}, five per byte (bits ignored) */
    int kmeans;               /* weights: a k-means codebook of 2^bits FP16 centroids per row (weight-only) */
    int group_size;           /* low-bit grids: input columns per FP16 scale (0: 128; -1: one per row) */
    int weight_zero_point;    /* low-bit grids: asymmetric, a zero point per group */
    int quantize_embeddings;  /* word embeddings with row-wise scales */
    int embedding_bits;       /* 8, 4 or 2 (0: 8, or the weights' bits when those are low) */
    int quantize_head;        /* also the final classifier (kept FP32 by default) */
    const char *const *keep;  /* glob patterns of linear names kept in FP32 */
    int n_keep;
    const char *precision_map; /* JSON file {"<linear name or glob>": "<format>"}, e.g. fp32, int8, int4 */
    /* static only */
    const char *calib_file;   /* dataset of calibration texts (as eval reads them) */
    const char *calib_stats;  /* or statistics qb_calibrate() saved for this model (not with
                               * calib_file unless gptq or bias_correction reads it) */
    int calib_n;              /* texts to use (default 512) */
    const char *observer;     /* "minmax", "percentile:99.99", "mse", "entropy" */
    int int8_attention;       /* also Q.K^T and P.V in int8, Q/K/V scales calibrated */
    int smoothquant;          /* static: migrate input outliers into the weights (needs calib_file) */
    float smooth_alpha;       /* its migration strength, 0..1 (default 0.5) */
    /* error compensation, from calib_file's texts (any method) */
    int gptq;                 /* low-bit grids rounded by GPTQ against each linear's input Hessian */
    double gptq_damp;         /* GPTQ: fraction of the mean Hessian diagonal added to it (default 0.01) */
    int gptq_act_order;       /* GPTQ: columns in order of decreasing Hessian diagonal */
    int gptq_memory_mb;       /* GPTQ: memory for the calibration's block inputs kept
                               * between passes (0: a quarter of RAM); beyond it each
                               * pass starts at the embeddings, slower, same result */
    int bias_correction;      /* each bias absorbs the mean output shift rounding caused */
    int max_length;           /* calibration truncation (0: qb_model_max_length; with
                               * calib_stats, 0 or the length they recorded) */
    int n_threads;
    int force;                /* replace an existing output directory */
    int parents;              /* create the output directory's missing parents */
    qb_progress_fn progress;  /* long steps report here (may be NULL) */
    void *progress_ctx;
} qb_quant_params;

qb_quant_params qb_quant_default_params(qb_quant_method method);
const char *qb_quant_method_name(qb_quant_method m);
int qb_quant_method_parse(const char *name, qb_quant_method *out); /* 1 if known */

typedef struct qb_quant_report {
    int n_linears, n_int8, n_fp16, n_bf16, n_fp32, n_lowbit;
    int calib_used;           /* calibration texts actually used */
    int64_t in_bytes, out_bytes; /* model.safetensors sizes */
    /* low-bit weights: SQNR (dB) of all low-bit linear weights against
     * FP32; k-means: the codebook linears' SQNR, that of the per-row uniform
     * grids they started from, the linears where the codebook did worse
     * (0 by construction) and the smallest per-linear margin over the grid */
    double weight_sqnr_db, codebook_sqnr_db, grid_sqnr_db, min_margin_db;
    int n_below_grid;
    int n_gptq_fallbacks;     /* linears GPTQ could not factor: rounded to nearest instead */
    double seconds;
    char warning[256];        /* e.g. fewer calibration rows than asked */
} qb_quant_report;

/* Writes a quantized model directory to out_dir (through a temporary
 * directory renamed when complete).  It refuses an out_dir that is or
 * holds m's directory or a file it reads, and an existing out_dir unless
 * params->force. */
qb_status qb_quantize(const qb_model *m, const qb_quant_params *params, const char *out_dir,
                      qb_quant_report *report, qb_error *err);

/* Runs calibration texts through m and saves every linear input's
 * statistics (JSON) for later qb_quantize() runs with any observer; the
 * file records the sha256 of m's model.safetensors and the truncation
 * length, and qb_quantize() refuses it for another model or length. */
qb_status qb_calibrate(const qb_model *m, const qb_quant_params *params, const char *stats_path,
                       qb_quant_report *report, qb_error *err);

/* Human-readable summary of how a loaded model is quantized ("fp32" for a
 * plain checkpoint), e.g. "dynamic int8: 72 linears int8, 2 fp32". */
const char *qb_model_quant_summary(const qb_model *m);
int qb_model_linear_count(const qb_model *m);
const char *qb_model_linear_name(const qb_model *m, int i); /* e.g. "bert.encoder.layer.0.output.dense" */
/* Linear i's weight format ("fp32", "int8", "int4", "kmeans2"...; "int8-dynamic" or
 * "int4-static" where its input grid is not the method's), the
 * bits its weight takes in the file per weight (scales, zero points and
 * codebooks included) and its [out, in] shape. */
const char *qb_model_linear_format(const qb_model *m, int i, double *bits, int *out, int *in);


/* ---- export -------------------------------------------------------------- */

typedef struct qb_export_params {
    int opset;                /* ONNX opset, 17 (the default) to 21 */
} qb_export_params;

qb_export_params qb_export_default_params(void);

/* Writes m to path (through a temporary name and a rename) as an ONNX model
 * with inputs input_ids, attention_mask and token_type_ids (int64 [batch,
 * sequence]) and output logits, or for a bare encoder last_hidden_state and
 * sentence_embedding.  Each linear keeps its format: FP32 and FP16/BF16
 * weights under MatMul, dynamic int8 as ONNX Runtime's DynamicQuantizeLinear
 * + MatMulInteger (inputs per tensor), static int8 as QDQ pairs on the
 * calibrated grids, int4 grids as com.microsoft MatMulNBits.  Static int8
 * attention is written in FP32.  A format ONNX cannot express (3- and 2-bit,
 * ternary, k-means, packed embedding tables) is QB_ERR_UNSUPPORTED naming
 * the layer and the reason. */
qb_status qb_export_onnx(const qb_model *m, const char *path, const qb_export_params *p, qb_error *err);

/* ---- training ---------------------------------------------------------- */

/* token_task of qb_train_progress and qb_train_report: 0 for a sequence
 * head, else the DEV score that picks the best epoch (true either way for a
 * token task): entity F1, or word accuracy when DEV has no entities (POS). */
enum { QB_TRAIN_TOKEN_ENTITIES = 1, QB_TRAIN_TOKEN_WORDS = 2 };

/* What the trainer reports while it runs: after every optimizer step
 * (phase "train"), while it evaluates on DEV ("eval") and once an epoch's
 * checkpoint is scored ("epoch", dev_metric filled in). */
typedef struct qb_train_progress {
    const char *phase;
    int epoch, epochs;        /* 1-based */
    long step, steps;         /* optimizer steps in this epoch */
    long examples, total_examples; /* examples seen in this epoch */
    double loss;              /* running mean of this epoch's training loss */
    double lr;
    double seconds;           /* since the epoch started */
    double dev_metric;        /* "epoch": accuracy, or token_task's score; masked LM: the
                                 held-out loss (also in phase "baseline", before any update) */
    int token_task;
    int best;                 /* "epoch": this checkpoint is the best so far */
    int mlm;                  /* masked-LM pre-training (task "mlm") */
} qb_train_progress;

typedef void (*qb_train_progress_fn)(void *ctx, const qb_train_progress *p);

typedef struct qb_train_params {
    const char *data;         /* training set */
    const char *eval_data;    /* DEV set, scored after every epoch (required) */
    const char *task;         /* dataset format: "auto" (default), "sst2", "imdb", "conll", "tsv", "jsonl";
                                 or "mlm": masked-LM pre-training on texts, one a line (*.tsv, *.jsonl: the
                                 dataset readers' text column) */
    int limit, eval_limit;    /* first N examples (0: all) */
    int epochs;               /* default 3 */
    float lr;                 /* peak learning rate (default 5e-5) */
    int batch;                /* examples a step (default 16) */
    int max_length;           /* truncation, [CLS]/[SEP] included (0: qb_model_max_length) */
    uint64_t seed;            /* initialization, dropout and batch order */
    float warmup_ratio;       /* share of the steps with linear warm-up (default 0.1) */
    float weight_decay;       /* decoupled (default 0.01) */
    float max_grad_norm;      /* global-norm clipping, <= 0: none (default 1) */
    int n_threads;            /* 0: all cores; results are reproducible per count */
    int new_head;             /* always start a fresh classifier */
    int force;                /* replace an existing output directory */
    int parents;              /* create the output directory's missing parents */
    /* quantization-aware training (qbert qat): OUT_DIR is a static model,
     * int8 weights for 5..8 bits, the packed low-bit formats (int4, int3,
     * int2, ternary) for 4 bits and fewer */
    int qat;
    int qat_bits;             /* weight grid bits, 2..8 (default 8) */
    int qat_ternary;          /* weights {-a, 0, a} per group (qat_bits ignored) */
    int qat_group_size;       /* 4 bits and fewer: input columns per FP16 scale (0: 128; -1: one per row) */
    int qat_weight_zero_point; /* 4 bits and fewer: asymmetric grids, a zero point per group */
    /* knowledge distillation: loss = CE + T^2 KL(softmax(teacher/T) || softmax(student/T))
     * (+ the MSE of every block's output with distill_hidden) */
    int distill;
    const char *teacher;      /* FP32 teacher directory with the student's labels and tokenizer (NULL: the input model) */
    int distill_hidden;       /* add the hidden-state MSE (TernaryBERT) */
    float temperature;        /* T > 0 (default 1) */
    const char *act_observer; /* input scales: "ema" (default) or "lsq" */
    long freeze_observers_after; /* scales stop moving after this many updates (0: never) */
    int calib_batches;        /* batches that set the first scales (default 16) */
    /* training state, for --resume */
    const char *resume;       /* a state file of an interrupted run with the same settings */
    const char *state_path;   /* where the state is kept (default OUT_DIR.state); removed when the run ends */
    int save_every;           /* updates between state saves (default 200; every epoch end too) */
    qb_train_progress_fn progress;
    void *progress_ctx;
    /* task "mlm": Hugging Face's DataCollatorForLanguageModeling masking, drawn anew every epoch;
     * DEV's masks are fixed (the same every epoch and run) so its loss compares */
    float mlm_probability;    /* share of tokens to predict (default 0.15) */
    int whole_word_mask;      /* choose whole words (DataCollatorForWholeWordMask) */
} qb_train_params;

qb_train_params qb_train_default_params(void);

typedef struct qb_train_report {
    int n_train, n_eval;      /* examples (sentences for NER) */
    int num_labels;
    int new_head;             /* the classifier was started fresh */
    int token_task;
    int epochs_run, best_epoch;
    double best_metric;       /* dev accuracy, or entity F1 for NER, of the saved checkpoint; masked LM:
                                 its held-out loss (the lowest) */
    double final_loss;        /* mean training loss of the last epoch */
    long steps;
    double examples_per_s;    /* training throughput, evaluation excluded */
    double epoch_seconds;     /* training seconds per epoch (teacher included; conversion and DEV scoring excluded) */
    double epoch_total_seconds; /* the same with each epoch's conversion and DEV scoring */
    double seconds;
    int mlm;                  /* masked-LM pre-training */
    double mlm_loss_before;   /* its held-out loss before the first update (0 when resumed) */
    long mlm_eval_tokens;     /* masked DEV tokens the loss averages */
} qb_train_report;

/* Fine-tunes the FP32 checkpoint in model_dir on p->data and writes the
 * best epoch (by DEV score) to out_dir, replaced atomically whenever a later
 * epoch beats it.  With p->qat the linears train through fake quantization
 * and out_dir is the static int8 or packed low-bit model, scored with the
 * integer kernels.  With p->distill a teacher runs beside the student.
 * Labels come from the training data: when they are not the checkpoint's
 * own (or the task differs) a fresh head is trained.  A
 * non-finite loss stops with QB_ERR_NUMERIC and leaves the last good
 * checkpoint in place.  An out_dir that is or holds model_dir, the data
 * or the teacher is refused. */
qb_status qb_train(const char *model_dir, const qb_train_params *p, const char *out_dir,
                   qb_train_report *rep, qb_error *err);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif
