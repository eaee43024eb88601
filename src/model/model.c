/* qb_model_load and the read-only queries on a loaded model. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/stamp.h"
#include "model/linear_format.h"

qb_load_params qb_load_default_params(void) {
    qb_load_params p = {.isa = NULL};
    return p;
}

/* QBERT_ISA=avx512-vnni is the AVX-512 table without AMX tiles: what a CPU
 * with VNNI and no AMX (Zen 4, Ice Lake) runs, on this one. */
static qb_status choose_kernels(qb_model *m, const qb_load_params *p, qb_error *err) {
    const char *name = p && p->isa ? p->isa : getenv("QBERT_ISA");
    const char *from = p && p->isa ? "isa=" : "QBERT_ISA="; /* the caller's, or the environment's */
    bool vnni_only = name && !strcmp(name, "avx512-vnni");
    qb_isa isa = qb_cpu_best_isa();
    if (name && *name) {
        if (!qb_isa_from_name(vnni_only ? "avx512" : name, &isa))
            return qb_fail(err, QB_ERR_ARG,
                           "%s%s: unknown kernel set (scalar, avx2, avx512, avx512-vnni, neon, dotprod, i8mm)", from,
                           name);
        if (!qb_isa_supported(isa)) return qb_fail(err, QB_ERR_UNSUPPORTED, "%s%s: this CPU cannot run it", from, name);
    }
    qb_kernels_select(isa, &m->kern);
    qb_kernels_i8_select(isa, &m->kern_i8);
    qb_kernels_lowbit_select(isa, &m->kern_lowbit);
#if defined(__x86_64__)
    if (vnni_only) qb_kernels_i8_init_avx512_vnni(&m->kern_i8), qb_kernels_lowbit_init_avx512_vnni(&m->kern_lowbit);
#endif
    return QB_OK;
}

/* tokenizer_config.json (path, parsed in j; NULL when absent): absent keys
 * keep HF's defaults. */
static qb_status read_tok_options(const json_t *j, const char *path, qb_tok_options *o, qb_error *err) {
    *o = qb_tok_default_options();
    qb_status st = QB_OK;
    /* a default in place of a 0 or "false" would tokenize otherwise than transformers */
    static const char *const flags[] = {"do_lower_case", "tokenize_chinese_chars", "remove_space", "keep_accents"};
    for (size_t k = 0; !st && k < sizeof flags / sizeof *flags; k++) {
        const json_t *v = json_object_get(j, flags[k]);
        if (v && !json_is_boolean(v) && !json_is_null(v))
            st = qb_fail(err, QB_ERR_FORMAT, "%s: \"%s\" must be true or false", path, flags[k]);
    }
    if (!st && j) {
        o->do_lower_case = qb_json_get_bool(j, "do_lower_case", o->do_lower_case);
        const json_t *sa = json_object_get(j, "strip_accents");
        if (json_is_boolean(sa)) o->strip_accents = qb_json_bool(sa, false);
        o->tokenize_chinese_chars = qb_json_get_bool(j, "tokenize_chinese_chars", o->tokenize_chinese_chars);
        o->remove_space = qb_json_get_bool(j, "remove_space", o->remove_space);
        o->keep_accents = qb_json_get_bool(j, "keep_accents", o->keep_accents);
    }
    return st;
}

static qb_status load_tokenizer_files(qb_model *m, const json_t *config, const char *config_path, qb_error *err) {
    qb_tok_options o;
    qb_status st = read_tok_options(config, config_path, &o, err);
    if (st) return st;
    char path[4096];
    /* as transformers' fast tokenizers: tokenizer.json, when present, wins */
    struct stat sb; /* any tokenizer.json, even a device, is read (and refused by its cap) */
    if (qb_path_join(path, sizeof path, m->dir, "tokenizer.json") && stat(path, &sb) == 0)
        return qb_tokenizer_load_json(path, &m->tok, err);
    bool wp = qb_path_join(path, sizeof path, m->dir, "vocab.txt") && qb_file_exists(path);
    if (!wp && !(qb_path_join(path, sizeof path, m->dir, "spiece.model") && qb_file_exists(path)))
        return qb_fail(err, QB_ERR_IO, "%s: no tokenizer.json, vocab.txt or spiece.model (qbert reads these tokenizer files)", m->dir);
    st = wp ? qb_tokenizer_load_wordpiece(path, &o, &m->tok, err)
            : qb_tokenizer_load_sentencepiece(path, &o, &m->tok, err);
    /* the slow tokenizers' special and added tokens live in other files */
    return st ? st : qb_tokenizer_read_slow_files(m->tok, m->dir, config, o.do_lower_case, err);
}

/* tokenizer_config.json is read once, for the options and the slow
 * tokenizers' special tokens. */
static qb_status load_tokenizer(qb_model *m, qb_error *err) {
    char path[4096];
    json_t *config = NULL;
    qb_status st = QB_OK;
    if (qb_path_join(path, sizeof path, m->dir, "tokenizer_config.json") && qb_file_exists(path))
        st = qb_json_load_object(path, &config, err);
    if (!st) st = load_tokenizer_files(m, config, path, err);
    json_decref(config);
    return st;
}

static qb_status open_weights(qb_model *m, qb_error *err) {
    char path[4096];
    if (!qb_path_join(path, sizeof path, m->dir, "model.safetensors"))
        return qb_fail(err, QB_ERR_ARG, "%s: path too long", m->dir);
    if (!qb_file_exists(path)) {
        char bin[4096];
        if (qb_path_join(bin, sizeof bin, m->dir, "pytorch_model.bin") && qb_file_exists(bin))
            return qb_fail(err, QB_ERR_UNSUPPORTED,
                           "%s: only pytorch_model.bin found; qbert reads model.safetensors "
                           "(convert it: see README, \"Legacy checkpoints\")", m->dir);
        if (qb_path_join(bin, sizeof bin, m->dir, "model.safetensors.index.json") && qb_file_exists(bin))
            return qb_fail(err, QB_ERR_UNSUPPORTED,
                           "%s: the weights are sharded (model.safetensors.index.json); qbert reads one "
                           "model.safetensors", m->dir);
        return qb_fail(err, QB_ERR_IO, "%s: model.safetensors not found", path);
    }
    return qb_safetensors_open(&m->st, path, err);
}

/* The stamp's name; a new version when what the check refuses changes. */
#define QB_STAMP_FINITE "finite1"

/* A NaN or an infinity in any weight turns every logit it reaches into
 * garbage, and the SIMD kernels' max/min make that garbage finite: found
 * here, every float tensor of the file read once, or not at all. */
static qb_status check_finite(qb_model *m, const qb_load_params *p, qb_error *err) {
    if (p && p->allow_nonfinite) return QB_OK;
    const char *cache = p ? p->check_cache : NULL;
    const qb_file_id *id = &m->st.map.id;
    if (cache && qb_stamp_has(cache, QB_STAMP_FINITE, id)) {
        m->nonfinite_checked = true;
        return QB_OK;
    }
    int64_t started = qb_stamp_now_ns();
    qb_status st = qb_model_find_nonfinite(m, err);
    m->nonfinite_checked = !st;
    if (!st && cache) qb_stamp_put(cache, QB_STAMP_FINITE, m->st.path, id, started);
    return st;
}

/* Elements scanned between releases of the mapped pages read: the scan
 * would otherwise leave the whole file resident (bert-mini's FP32 word
 * embeddings, 31 MB, of which a sentence reads a few rows). */
#define QB_NONFINITE_CHUNK (1 << 20)

/* Index of t's first non-finite element, or -1. */
static int64_t tensor_find_nonfinite(const qb_model *m, const qb_st_tensor *t, const qb_dtype_traits *tr) {
    for (int64_t i = 0; i < t->numel; i += QB_NONFINITE_CHUNK) {
        int64_t n = t->numel - i < QB_NONFINITE_CHUNK ? t->numel - i : QB_NONFINITE_CHUNK;
        const char *p = (const char *)t->data + (size_t)i * tr->size;
        int64_t at = m->kern.find_nonfinite(p, n, (int)tr->size, tr->exp_mask);
        qb_file_map_release(&m->st.map, p, (size_t)n * tr->size);
        if (at >= 0) return i + at;
    }
    return -1;
}

qb_status qb_model_find_nonfinite(const qb_model *m, qb_error *err) {
    for (int i = 0; i < m->st.n; i++) {
        const qb_st_tensor *t = &m->st.tensors[i];
        const qb_dtype_traits *tr = qb_dtype_traits_of(t->dtype);
        if (!tr->exp_mask || !t->numel) continue;
        int64_t at = tensor_find_nonfinite(m, t, tr);
        if (at < 0) continue;
        uint32_t w = 0;
        memcpy(&w, (const char *)t->data + (size_t)at * tr->size, tr->size); /* little-endian */
        uint32_t sign = 1u << (8 * tr->size - 1), mantissa = w & ~tr->exp_mask & ~sign;
        char shown[160];
        qb_st_name_shown(t->name, shown, sizeof shown);
        return qb_fail(err, QB_ERR_NUMERIC, "%s: tensor '%s' holds %s at element %lld", m->st.path, shown,
                       mantissa ? "NaN" : w & sign ? "-Inf" : "+Inf", (long long)at);
    }
    return QB_OK;
}

/* Token ids index the embedding tables: a vocabulary larger than the table
 * would read out of bounds at run time, so it is refused here. */
static qb_status check_vocab(const qb_model *m, qb_error *err) {
    int n = qb_tokenizer_vocab_size(m->tok);
    if (n > m->cfg.vocab_size)
        return qb_fail(err, QB_ERR_FORMAT, "%s: tokenizer has %d tokens but config.json vocab_size is %d", m->dir,
                       n, m->cfg.vocab_size);
    return QB_OK;
}

/* Appends to the summary; a text too long is cut, never overrun. */
static void summary_add(qb_model *m, size_t *n, const char *fmt, ...) {
    if (*n >= sizeof m->quant_summary) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(m->quant_summary + *n, sizeof m->quant_summary - *n, fmt, ap);
    va_end(ap);
    if (k > 0) *n += (size_t)k;
}

static int count_format(const qb_model *m, const qb_linear_format *f) {
    int n = 0;
    for (int i = 0; i < m->n_linears; i++) n += m->linears[i]->fmt == f;
    return n;
}

static bool has_integer_lowbit(const qb_model *m) {
    for (int i = 0; i < m->n_linears; i++)
        if (m->linears[i]->fmt->precision == QB_PREC_LOWBIT && m->linears[i]->fmt->integer_inputs) return true;
    return false;
}

static bool has_grouped(const qb_model *m) {
    for (int i = 0; i < m->n_linears; i++)
        if (m->linears[i]->fmt->grouped) return true;
    return false;
}

const qb_st_tensor *qb_model_weight_tensor(const qb_model *m, const char *linear, const char *suffix) {
    char name[320];
    snprintf(name, sizeof name, "%s.weight%s", linear, suffix);
    return qb_safetensors_find(&m->st, name);
}

/* Bytes a linear's weight takes in the file, with what dequantizes it
 * (counted in *extra too). */
static double stored_bytes(const qb_model *m, const qb_linear *l, double *extra) {
    static const char *const parts[] = {"", "_scale", "_zero_point", "_codebook"};
    double bytes = 0;
    for (size_t k = 0; k < sizeof parts / sizeof *parts; k++) {
        const qb_st_tensor *t = qb_model_weight_tensor(m, l->name, parts[k]);
        if (t) bytes += (double)t->nbytes;
        if (t && k) *extra += (double)t->nbytes;
    }
    return bytes;
}

static void summarize_quant(qb_model *m) {
    double bits = 0, weights = 0, extra = 0;
    bool method_static = m->cfg.quant.present && m->cfg.quant.method == QB_QUANT_STATIC;
    for (int i = 0; i < m->n_linears; i++) {
        qb_linear *l = m->linears[i];
        /* the input grid where it is not the method's (a map's int8-dynamic in a static model) */
        if (!l->fmt->integer_inputs || l->static_input == method_static)
            snprintf(l->label, sizeof l->label, "%s", l->fmt->name);
        else snprintf(l->label, sizeof l->label, "%s-%s", l->fmt->name, l->static_input ? "static" : "dynamic");
        bits += 8 * stored_bytes(m, l, &extra);
        weights += (double)l->out * l->in;
    }
    const qb_quant_config *q = &m->cfg.quant;
    size_t n = 0;
    summary_add(m, &n, "%s", q->present ? qb_quant_method_name(q->method) : "fp32");
    if (q->present && (q->method == QB_QUANT_DYNAMIC || q->method == QB_QUANT_STATIC)) {
        /* packed low-bit grids are named by the formats below (bits 2 may be ternary) */
        bool int8 = count_format(m, qb_linear_format_named("int8")) > 0;
        summary_add(m, &n, int8 ? " int8 (" : " (");
        if (int8 && q->bits > 4 && q->bits != 8) summary_add(m, &n, "%d-bit weights, ", q->bits);
        if (int8 && q->weights_per_tensor) summary_add(m, &n, "one weight scale per matrix, ");
        summary_add(m, &n, "activations %s%s%s%s)", q->act_per_token ? "per-token" : "per-tensor",
                    q->act_symmetric ? ", symmetric" : "", q->observer[0] ? ", observer " : "", q->observer);
    }
    summary_add(m, &n, ": %d linears", m->n_linears);
    for (int f = 0; f < qb_linear_format_count(); f++) {
        int c = count_format(m, qb_linear_format_at(f));
        if (c) summary_add(m, &n, ", %d %s", c, qb_linear_format_at(f)->name);
    }
    if (q->group_size && has_grouped(m)) {
        summary_add(m, &n, q->weights_per_tensor ? " (one scale per matrix"
                           : q->group_size == QB_GROUP_ROW ? " (a scale per row" : " (groups of %d", q->group_size);
        summary_add(m, &n, q->zero_points == 1 ? ", zero points)" : ")");
    }
    if (weights > 0)
        summary_add(m, &n, ", %.1f bits per linear weight%s", bits / weights, extra > 0 ? " (scales included)" : "");
    if (q->attention_int8) summary_add(m, &n, "; int8 attention");
    if (m->word_emb_q) summary_add(m, &n, "; int8 word embeddings");
    if (m->word_emb_lowbit) summary_add(m, &n, "; %d-bit word embeddings", q->embedding_bits);
    if (q->present && q->embedding_bits == 16)
        summary_add(m, &n, "; %s embedding tables", q->method == QB_QUANT_BF16 ? "bf16" : "fp16");
    /* which instructions ran matters when speeds are compared across CPUs */
    if (count_format(m, qb_linear_format_named("int8")) && m->kern_i8.amx)
        summary_add(m, &n, "; int8 products on AMX tiles (VNNI for row tails)");
    if (m->n_linears && m->kern_lowbit.amx && has_integer_lowbit(m))
        summary_add(m, &n, "; low-bit products on AMX tiles");
    if (count_format(m, qb_linear_format_named("bf16")) && m->kern.h16_bf16_dot)
        summary_add(m, &n, "; bf16 products with vdpbf16ps up to %d rows", QB_H16_DOT_MAX_ROWS);
}

const char *qb_model_quant_summary(const qb_model *m) { return m->quant_summary; }

const char *qb_model_warning(const qb_model *m) { return m->warning; }

int qb_model_linear_count(const qb_model *m) { return m->n_linears; }

const char *qb_model_linear_name(const qb_model *m, int i) {
    return i >= 0 && i < m->n_linears ? m->linears[i]->name : NULL;
}

const char *qb_model_linear_format(const qb_model *m, int i, double *bits, int *out, int *in) {
    if (i < 0 || i >= m->n_linears) return NULL;
    const qb_linear *l = m->linears[i];
    double extra = 0, bytes = stored_bytes(m, l, &extra);
    if (bits) *bits = bytes > 0 ? 8 * bytes / ((double)l->out * l->in) : l->fmt->bits;
    if (out) *out = l->out;
    if (in) *in = l->in;
    return l->label;
}

/* The files a model directory's loaders read, where they exist. */
static const char *const model_files[] = {
    "config.json",           "model.safetensors",         "vocab.txt",
    "spiece.model",          "tokenizer.json",            "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json",       "modules.json",
    "sentence_bert_config.json", "config_sentence_transformers.json"};
enum { N_MODEL_FILES = sizeof model_files / sizeof *model_files };

qb_status qb_model_check_output(const qb_model *m, const char *path, qb_error *err) {
    char file[4200];
    for (size_t i = 0; i < N_MODEL_FILES; i++)
        if (qb_path_join(file, sizeof file, m->dir, model_files[i]) && qb_same_file(path, file))
            return qb_fail(err, QB_ERR_ARG, "%s: refusing to overwrite the input model's %s", path, model_files[i]);
    return QB_OK;
}

/* They are regular files where they exist: a FIFO would hang the reader,
 * and a directory or device would be reported as missing or misread. */
static qb_status check_files(const char *dir, qb_error *err) {
    char path[4096];
    for (size_t i = 0; i < N_MODEL_FILES; i++) {
        if (!qb_path_join(path, sizeof path, dir, model_files[i]))
            return qb_fail(err, QB_ERR_ARG, "%s: path too long", dir);
        qb_status st = qb_file_check_regular(path, err);
        if (st) return st;
    }
    return QB_OK;
}

qb_status qb_model_load(const char *dir, const qb_load_params *params, qb_model **out, qb_error *err) {
    if (!dir || !out) return qb_fail(err, QB_ERR_ARG, "load: NULL %s", dir ? "model pointer" : "directory");
    if (params && params->n_threads < 0)
        return qb_fail(err, QB_ERR_ARG, "load: %d threads (0: all online cores)", params->n_threads);
    *out = NULL;
    qb_model *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(dir))) {
        free(m);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", dir);
    }
    char path[4096];
    struct stat sb;
    qb_status st = stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode)
                       ? qb_fail(err, QB_ERR_IO, "%s: not a directory (a model is one, with config.json)", dir)
                       : check_files(dir, err);
    if (!st && !qb_path_join(path, sizeof path, dir, "config.json"))
        st = qb_fail(err, QB_ERR_ARG, "%s: path too long", dir);
    char sub[256];
    if (!st && !qb_file_exists(path) && qb_model_transformer_folder(dir, sub, sizeof sub))
        st = qb_fail(err, QB_ERR_UNSUPPORTED, "%s: no config.json; its modules.json keeps the Transformer in \"%s\", "
                     "a sentence-transformers layout qbert does not read: move that folder's files up beside "
                     "modules.json", dir, sub);
    if (!st) st = qb_config_load(path, &m->cfg, err);
    if (!st) st = choose_kernels(m, params, err);
    if (!st) st = load_tokenizer(m, err);
    if (!st) st = qb_model_read_embed_config(m, err); /* after the tokenizer, whose text handling it sets */
    if (!st) st = check_vocab(m, err);
    if (!st) m->mask_id = qb_tokenizer_mask_id(m->tok);
    if (!st) st = open_weights(m, err);
    if (!st) st = check_finite(m, params, err);
    if (!st) st = qb_model_bind_weights(m, params ? params->n_threads : 0, err);
    /* the finite check and the packing read the file, and the kernel mapped
     * each fault's neighbours too: dropped all at once, so what stays mapped
     * is what runs read (the pages remain in the page cache) */
    if (!st) qb_file_map_release(&m->st.map, m->st.map.data, m->st.map.size);
    if (!st) summarize_quant(m);
    if (st) {
        qb_model_free(m);
        return st;
    }
    *out = m;
    return QB_OK;
}

void qb_model_free(qb_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_linears; i++)
        if (m->linears[i]->fmt && m->linears[i]->fmt->release) m->linears[i]->fmt->release(m->linears[i]);
    free(m->linears);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->params);
    free(m->blocks);
    free(m->st_used);
    free(m->st_released);
    free(m->warning);
    qb_safetensors_close(&m->st);
    qb_tokenizer_free(m->tok);
    qb_config_free(&m->cfg);
    qb_prompts_free(&m->prompts);
    free(m->dir);
    free(m);
}

void qb_head_scores(const qb_model *m, const float *logits, int n, float *scores) {
    if (m->cfg.head_function == QB_HEAD_SIGMOID) qb_sigmoid(logits, n, scores);
    else if (m->cfg.head_function == QB_HEAD_SOFTMAX) qb_softmax(logits, n, scores);
    else memmove(scores, logits, (size_t)n * sizeof *scores);
}

const char *qb_head_function_name(int head_function) {
    static const char *const names[] = {"softmax", "sigmoid", "none"};
    return head_function >= 0 && head_function <= QB_HEAD_NONE ? names[head_function] : "unknown";
}

void qb_model_get_info(const qb_model *m, qb_model_info *info) {
    const qb_config *c = &m->cfg;
    memset(info, 0, sizeof *info);
    info->arch = c->arch;
    info->task = c->task;
    info->model_type = c->model_type;
    info->class_name = c->class_name;
    info->hidden_act = c->hidden_act;
    info->tokenizer = qb_tokenizer_describe(m->tok);
    info->isa = m->kern.name;
    info->vocab_size = c->vocab_size;
    info->hidden_size = c->hidden_size;
    info->embedding_size = c->embedding_size;
    info->num_layers = c->num_layers;
    info->num_heads = c->num_heads;
    info->intermediate_size = c->intermediate_size;
    info->max_position = c->max_position;
    info->type_vocab_size = c->type_vocab_size;
    info->num_hidden_groups = c->num_hidden_groups;
    info->inner_group_num = c->inner_group_num;
    info->num_labels = c->num_labels;
    info->mask_token_id = m->mask_id;
    info->head_function = c->head_function;
    info->layer_norm_eps = c->layer_norm_eps;
    for (int i = 0; i < m->n_params; i++) info->n_params += m->params[i].numel;
    info->file_bytes = (int64_t)m->st.map.size;
    info->n_tensors = m->st.n;
}

const char *qb_model_label(const qb_model *m, int id) {
    return id >= 0 && id < m->cfg.num_labels ? m->cfg.labels[id] : NULL;
}

int qb_model_label_id(const qb_model *m, const char *name) {
    for (int i = 0; i < m->cfg.num_labels; i++)
        if (strcmp(m->cfg.labels[i], name) == 0) return i;
    return -1;
}

int qb_model_label_find(const qb_model *m, const char *label) {
    int id = qb_model_label_id(m, label);
    char *end;
    long v = strtol(label, &end, 10);
    /* digits only: strtol would also take " 1", "+1" and "-0" */
    if (id < 0 && *label >= '0' && *label <= '9' && !*end && v >= 0 && v < m->cfg.num_labels) id = (int)v;
    return id;
}

void qb_model_tensor(const qb_model *m, int i, qb_tensor_info *out) {
    memset(out, 0, sizeof *out);
    if (i < 0 || i >= m->st.n) return;
    const qb_st_tensor *t = &m->st.tensors[i];
    out->name = t->name;
    out->dtype = qb_dtype_traits_of(t->dtype)->name;
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof out->shape);
    out->nbytes = t->nbytes;
}

int qb_model_max_length(const qb_model *m, int asked) {
    if (asked > 0) return asked;
    return m->cfg.max_position < 512 ? m->cfg.max_position : 512;
}

qb_status qb_tokenize(const qb_model *m, const char *text, size_t len, const char *pair, size_t pair_len,
                      int max_length, qb_encoding *enc, qb_error *err) {
    if (!enc) return qb_fail(err, QB_ERR_ARG, "tokenize: NULL encoding");
    return qb_tokenizer_encode(m->tok, text, len, pair, pair_len, max_length, enc, err);
}

qb_status qb_tokenize_words(const qb_model *m, const char *const *words, const size_t *lens, int n_words,
                            int max_length, qb_encoding *enc, qb_error *err) {
    if (!enc) return qb_fail(err, QB_ERR_ARG, "tokenize: NULL encoding");
    return qb_tokenizer_encode_words(m->tok, words, lens, n_words, max_length, enc, err);
}

qb_status qb_tokenize_word_pair(const qb_model *m, const qb_words *text, const qb_words *pair, int max_length,
                                qb_encoding *enc, qb_error *err) {
    if (!enc || !text) return qb_fail(err, QB_ERR_ARG, "tokenize: NULL %s", enc ? "words" : "encoding");
    return qb_tokenizer_encode_word_pair(m->tok, text, pair, max_length, enc, err);
}

qb_status qb_split_words(const qb_model *m, const char *text, size_t len, qb_word_span *spans, int *n,
                         qb_error *err) {
    return qb_tokenizer_split_words(m->tok, text, len, spans, n, err);
}

qb_status qb_token_offsets(const qb_model *m, const char *text, size_t len, const char *pair, size_t pair_len,
                           const qb_encoding *e, qb_token_offset *out, qb_error *err) {
    return qb_tokenizer_offsets(m->tok, text, len, pair, pair_len, e, out, err);
}

qb_status qb_detokenize(const qb_model *m, const int32_t *ids, int n, int skip_special, char *text, size_t cap,
                        size_t *len, qb_error *err) {
    qb_bytebuf out = {0};
    qb_status st = n < 0 || (n > 0 && !ids) ? qb_fail(err, QB_ERR_ARG, "decode: bad id list (%d ids)", n)
                                            : qb_tokenizer_decode(m->tok, ids, n, skip_special != 0, &out, err);
    *len = st == QB_OK ? out.n : 0;
    if (st == QB_OK && cap) {
        size_t k = out.n < cap ? out.n : cap - 1;
        memcpy(text, out.v, k);
        text[k] = 0;
    }
    free(out.v);
    return st;
}

const char *qb_token_text(const qb_model *m, int32_t id) { return qb_tokenizer_piece(m->tok, id); }
