#include "io/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"

/* Reads an integer field; a present but non-integral or out-of-range value
 * is an error rather than a silent default. */
static qb_status get_int(const json_t *j, const char *key, int fallback, int lo, int hi,
                         int *out, const char *path, qb_error *err) {
    const json_t *t = json_object_get(j, key);
    if (!t || json_is_null(t)) {
        if (fallback < lo) return qb_fail(err, QB_ERR_FORMAT, "%s: missing \"%s\"", path, key);
        *out = fallback;
        return QB_OK;
    }
    int64_t v;
    if (!qb_json_int(t, &v) || v < lo || v > hi)
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"%s\" must be an integer in [%d, %d]", path, key, lo, hi);
    *out = (int)v;
    return QB_OK;
}

static qb_status parse_act(qb_config *c, const char *path, qb_error *err) {
    static const struct { const char *name; qb_act act; } acts[] = {
        {"gelu", QB_ACT_GELU}, {"gelu_new", QB_ACT_GELU_TANH}, {"gelu_pytorch_tanh", QB_ACT_GELU_TANH},
        {"gelu_fast", QB_ACT_GELU_TANH}, {"relu", QB_ACT_RELU},
    };
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (strcmp(c->hidden_act, acts[i].name) == 0) {
            c->act = acts[i].act;
            return QB_OK;
        }
    }
    return qb_fail(err, QB_ERR_UNSUPPORTED,
                   "%s: hidden_act \"%s\" is not supported (gelu, gelu_new, relu)", path, c->hidden_act);
}

static qb_status copy_string(const json_t *j, const char *key, const char *fallback, char *dst,
                             size_t cap, const char *path, qb_error *err) {
    const json_t *t = json_object_get(j, key);
    if (!t) {
        snprintf(dst, cap, "%s", fallback);
        return QB_OK;
    }
    size_t n;
    char *s = qb_json_strdup(t, &n);
    if (!s || n >= cap || strlen(s) != n) {
        free(s);
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"%s\" must be a short string", path, key);
    }
    memcpy(dst, s, n + 1);
    free(s);
    return QB_OK;
}

/* RoBERTa numbers positions from pad_token_id + 1 (fairseq): those rows
 * of the table come first, and a text has the rest. */
static qb_status parse_positions(qb_config *c, const char *path, qb_error *err) {
    if (!c->family->positions_from_pad) return QB_OK;
    c->position_offset = c->pad_token_id + 1;
    if (c->max_position <= c->position_offset)
        return qb_fail(err, QB_ERR_FORMAT, "%s: max_position_embeddings %d leaves no position after pad_token_id %d",
                       path, c->max_position, c->pad_token_id);
    c->max_position -= c->position_offset;
    return QB_OK;
}

/* The field names differ per architecture; DistilBERT's are mapped onto
 * BERT's so the graph has one vocabulary. */
static qb_status parse_shapes(const json_t *j, qb_config *c, const char *path, qb_error *err) {
    qb_status st;
    bool distil = c->arch == QB_ARCH_DISTILBERT;
    const int BIG = 1 << 20;
    if ((st = get_int(j, "vocab_size", -1, 1, 1 << 24, &c->vocab_size, path, err))) return st;
    if ((st = get_int(j, distil ? "dim" : "hidden_size", -1, 1, 65536, &c->hidden_size, path, err))) return st;
    if ((st = get_int(j, distil ? "n_layers" : "num_hidden_layers", -1, 1, 1024, &c->num_layers, path, err))) return st;
    if ((st = get_int(j, distil ? "n_heads" : "num_attention_heads", -1, 1, 1024, &c->num_heads, path, err))) return st;
    if ((st = get_int(j, distil ? "hidden_dim" : "intermediate_size", -1, 1, BIG, &c->intermediate_size, path, err))) return st;
    if ((st = get_int(j, "max_position_embeddings", 512, 1, BIG, &c->max_position, path, err))) return st;
    if ((st = get_int(j, "type_vocab_size", distil ? 0 : 2, 0, 1024, &c->type_vocab_size, path, err))) return st;
    int pad = c->family->positions_from_pad ? 1 : 0; /* RobertaConfig's default is 1 */
    if ((st = get_int(j, "pad_token_id", pad, 0, 1 << 24, &c->pad_token_id, path, err))) return st;
    c->embedding_size = c->hidden_size;
    c->num_hidden_groups = c->inner_group_num = 1;
    /* ALBERT's and ELECTRA's configs default embedding_size to 128 */
    if (c->family->emb_proj && (st = get_int(j, "embedding_size", 128, 1, 65536, &c->embedding_size, path, err)))
        return st;
    if ((st = parse_positions(c, path, err))) return st;
    if (c->arch == QB_ARCH_ALBERT) {
        if ((st = get_int(j, "num_hidden_groups", 1, 1, c->num_layers, &c->num_hidden_groups, path, err))) return st;
        if ((st = get_int(j, "inner_group_num", 1, 1, 1024, &c->inner_group_num, path, err))) return st;
    }
    if (c->hidden_size % c->num_heads)
        return qb_fail(err, QB_ERR_FORMAT, "%s: hidden size %d is not a multiple of %d heads", path,
                       c->hidden_size, c->num_heads);
    const json_t *e = json_object_get(j, "layer_norm_eps");
    if (e && !json_is_number(e)) /* a default in its place would change every output unseen */
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"layer_norm_eps\" must be a number", path);
    double eps = qb_json_get_number(j, "layer_norm_eps", 1e-12);
    if (!(eps > 0 && eps < 1)) return qb_fail(err, QB_ERR_FORMAT, "%s: layer_norm_eps out of range", path);
    c->layer_norm_eps = distil ? 1e-12f : (float)eps; /* DistilBERT hard-codes it */
    c->sinusoidal_pos = qb_json_get_bool(j, "sinusoidal_pos_embds", false);
    c->tie_word_embeddings = qb_json_get_bool(j, "tie_word_embeddings", true);
    double init = qb_json_get_number(j, "initializer_range", 0.02);
    if (!(init > 0 && init < 1)) return qb_fail(err, QB_ERR_FORMAT, "%s: initializer_range out of range", path);
    c->initializer_range = (float)init;
    return QB_OK;
}

/* A body without a head qbert runs: the base model, or a pre-training
 * checkpoint whose LM head is ignored (feature extraction, embeddings). */
static bool bare_encoder(const char *cls) {
    static const char *suffixes[] = {"Model", "ForMaskedLM", "ForPreTraining"};
    size_t n = strlen(cls);
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t k = strlen(suffixes[i]);
        if (n > k && !strcmp(cls + n - k, suffixes[i])) return true;
    }
    return false;
}

/* BERT-shaped families differ in names, positions and heads, not in the
 * graph: each is a row here.  XLM-R and CamemBERT are RoBERTa's code. */
#define QB_ROBERTA_ROW(type, cls)                                                                       \
    {type, QB_ARCH_BERT, "roberta.", cls, "classifier.dense", false, "classifier.out_proj", QB_ACT_TANH, \
     NULL, true, "lm_head.dense", "lm_head.layer_norm", "lm_head.decoder", "lm_head.bias", true}
static const qb_family families[] = {
    {"bert", QB_ARCH_BERT, "bert.", "BertForSequenceClassification", "pooler.dense", true, "classifier",
     QB_ACT_TANH, NULL, false, "cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
     "cls.predictions.decoder", "cls.predictions.bias", false},
    {"albert", QB_ARCH_ALBERT, "albert.", "AlbertForSequenceClassification", "pooler", true, "classifier",
     QB_ACT_TANH, "encoder.embedding_hidden_mapping_in", false, NULL, NULL, NULL, NULL, false},
    {"distilbert", QB_ARCH_DISTILBERT, "distilbert.", "DistilBertForSequenceClassification", "pre_classifier",
     false, "classifier", QB_ACT_RELU, NULL, false, NULL, NULL, NULL, NULL, false},
    QB_ROBERTA_ROW("roberta", "RobertaForSequenceClassification"),
    QB_ROBERTA_ROW("xlm-roberta", "XLMRobertaForSequenceClassification"),
    QB_ROBERTA_ROW("camembert", "CamembertForSequenceClassification"),
    /* the discriminator; its head's GELU is exact whatever hidden_act says */
    {"electra", QB_ARCH_BERT, "electra.", "ElectraForSequenceClassification", "classifier.dense", false,
     "classifier.out_proj", QB_ACT_GELU, "embeddings_project", false, NULL, NULL, NULL, NULL, false},
};
#undef QB_ROBERTA_ROW

static qb_status find_family(qb_config *c, const char *path, qb_error *err) {
    for (size_t i = 0; i < sizeof families / sizeof *families; i++)
        if (!strcmp(c->model_type, families[i].model_type)) {
            c->family = &families[i];
            c->arch = families[i].arch;
            return QB_OK;
        }
    if (!c->model_type[0]) return qb_fail(err, QB_ERR_FORMAT, "%s: missing \"model_type\"", path);
    return qb_fail(err, QB_ERR_UNSUPPORTED,
                   "%s: model_type \"%s\" is not supported (bert, albert, distilbert, roberta, xlm-roberta, "
                   "camembert, electra)", path, c->model_type);
}

/* Relative position embeddings (distance_embedding in each layer's
 * attention) change every score: run as absolute ones they would give
 * wrong outputs without a word. */
static qb_status check_positions(const json_t *j, const char *path, qb_error *err) {
    const json_t *v = json_object_get(j, "position_embedding_type");
    if (!v || json_is_null(v) || qb_json_str_eq(v, "absolute")) return QB_OK;
    const char *s = qb_json_str(v, NULL);
    return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: position_embedding_type \"%s\" is not supported (absolute)", path,
                   s ? s : "(not a string)");
}

static qb_status parse_arch(const json_t *j, qb_config *c, const char *path, qb_error *err) {
    qb_status st = copy_string(j, "model_type", "", c->model_type, sizeof c->model_type, path, err);
    if (!st) st = find_family(c, path, err);
    if (st) return st;
    const json_t *a = json_array_get(json_object_get(j, "architectures"), 0);
    const char *cls = qb_json_str(a, NULL);
    snprintf(c->class_name, sizeof c->class_name, "%s", cls ? cls : c->family->default_class);
    if (strstr(c->class_name, "ForTokenClassification")) c->task = QB_TASK_TOKEN;
    else if (strstr(c->class_name, "ForSequenceClassification")) c->task = QB_TASK_SEQUENCE;
    else if (strstr(c->class_name, "ForMaskedLM") && c->family->mlm_dense) c->task = QB_TASK_MLM;
    else if (bare_encoder(c->class_name)) c->task = QB_TASK_NONE;
    else
        return qb_fail(err, QB_ERR_UNSUPPORTED,
                       "%s: architecture \"%s\" has no head qbert reads (need *ForSequenceClassification, "
                       "*ForTokenClassification, *ForMaskedLM, or a bare *Model encoder)", path, c->class_name);
    st = copy_string(j, c->arch == QB_ARCH_DISTILBERT ? "activation" : "hidden_act",
                     c->arch == QB_ARCH_ALBERT ? "gelu_new" : "gelu", c->hidden_act, sizeof c->hidden_act, path, err);
    if (!st) st = parse_act(c, path, err);
    if (!st) st = check_positions(j, path, err);
    c->mlm_act = c->family->mlm_gelu ? QB_ACT_GELU : c->act;
    return st;
}

/* The scores the text-classification pipeline gives: problem_type is one
 * of the three transformers accepts (it refuses others on load). */
static qb_status parse_head_function(const json_t *j, qb_config *c, const char *path, qb_error *err) {
    const json_t *problem = json_object_get(j, "problem_type");
    const char *p = json_is_string(problem) ? json_string_value(problem) : NULL;
    if (problem && !json_is_null(problem) && !p)
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"problem_type\" must be a string", path);
    if (p && strcmp(p, "regression") && strcmp(p, "single_label_classification") &&
        strcmp(p, "multi_label_classification"))
        return qb_fail(err, QB_ERR_FORMAT,
                       "%s: \"problem_type\" '%s' is not regression, single_label_classification or "
                       "multi_label_classification", path, p);
    if (p && !strcmp(p, "regression")) c->head_function = QB_HEAD_NONE;
    else if ((p && !strcmp(p, "multi_label_classification")) || c->num_labels == 1) c->head_function = QB_HEAD_SIGMOID;
    else c->head_function = QB_HEAD_SOFTMAX;
    return QB_OK;
}

/* id2label keys are decimal strings; every id in [0, n) must be present. */
static qb_status parse_labels(const json_t *j, qb_config *c, const char *path, qb_error *err) {
    const json_t *obj = json_object_get(j, "id2label");
    int n = 2;
    if (obj) {
        if (!json_is_object(obj) || json_object_size(obj) == 0)
            return qb_fail(err, QB_ERR_FORMAT, "%s: \"id2label\" must be a non-empty object", path);
        n = (int)json_object_size(obj);
    } else {
        qb_status st = get_int(j, "num_labels", 2, 1, 1 << 16, &n, path, err);
        if (st) return st;
    }
    c->labels = calloc((size_t)n, sizeof *c->labels);
    if (!c->labels) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    c->num_labels = n;
    if (!obj) {
        for (int i = 0; i < n; i++) {
            char buf[32];
            snprintf(buf, sizeof buf, "LABEL_%d", i);
            c->labels[i] = strdup(buf);
        }
        return QB_OK;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        char *end = NULL;
        long id = strtol(key, &end, 10);
        bool ok = *key && !*end && id >= 0 && id < n && !c->labels[id];
        if (!ok) return qb_fail(err, QB_ERR_FORMAT, "%s: id2label keys must be distinct ids 0..%d", path, n - 1);
        size_t len = 0;
        c->labels[id] = qb_json_strdup(v, &len);
        if (!c->labels[id]) return qb_fail(err, QB_ERR_FORMAT, "%s: id2label values must be strings", path);
        if (strlen(c->labels[id]) != len) /* C strings end there: the label would be printed cut */
            return qb_fail(err, QB_ERR_FORMAT, "%s: id2label[\"%s\"] holds a NUL character", path, key);
    }
    return QB_OK;
}

static const char *method_names[] = {"dynamic", "static", "fp16", "bf16", "weight-only"};

const char *qb_quant_method_name(qb_quant_method m) {
    return (unsigned)m < sizeof method_names / sizeof *method_names ? method_names[m] : "?";
}

int qb_quant_method_parse(const char *name, qb_quant_method *out) {
    for (unsigned i = 0; i < sizeof method_names / sizeof *method_names; i++)
        if (!strcmp(name, method_names[i])) {
            *out = (qb_quant_method)i;
            return 1;
        }
    return 0;
}

/* "modules": {"<linear>": "<format>"}: how each linear's weight binds
 * (the format table reads the names) and which inputs are dynamic. */
static qb_status parse_modules(const json_t *j, const json_t *q, qb_quant_config *qc, const char *path, qb_error *err) {
    const json_t *mods = json_object_get(q, "modules");
    if (!mods) return QB_OK;
    if (!json_is_object(mods))
        return qb_fail(err, QB_ERR_FORMAT, "%s: quantization_config.modules must be an object", path);
    qc->modules = calloc(2 * json_object_size(mods) + 1, sizeof *qc->modules);
    if (!qc->modules) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)mods, key, v) {
        char *name = strdup(key), *fmt = qb_json_strdup(v, NULL);
        qc->modules[2 * qc->n_modules] = name;
        qc->modules[2 * qc->n_modules++ + 1] = fmt;
        if (!name || !fmt)
            return qb_fail(err, QB_ERR_FORMAT, "%s: quantization_config.modules: every value must be a format name",
                           path);
    }
    return QB_OK;
}

const char *qb_quant_config_module(const qb_quant_config *qc, const char *name) {
    for (int i = qc->n_modules - 1; i >= 0; i--) /* the reader already kept the last of repeated keys */
        if (!strcmp(qc->modules[2 * i], name)) return qc->modules[2 * i + 1];
    return NULL;
}

bool qb_quant_config_dynamic(const qb_quant_config *qc, const char *name) {
    const char *f = qb_quant_config_module(qc, name);
    size_t n = f ? strlen(f) : 0;
    return n > 8 && !strcmp(f + n - 8, "-dynamic");
}

static const struct {
    const char *name;
    int bits;
} embedding_formats[] = {{"fp32", 32}, {"fp16", 16}, {"bf16", 16}, {"int8-rowwise", 8}, {"int4-rowwise", 4},
                         {"int2-rowwise", 2}};

static qb_status parse_embeddings(const json_t *j, const json_t *q, qb_quant_config *qc, const char *path, qb_error *err) {
    const json_t *e = json_object_get(q, "embeddings");
    qc->embedding_bits = 32;
    if (!e) return QB_OK;
    for (size_t i = 0; i < sizeof embedding_formats / sizeof *embedding_formats; i++)
        if (qb_json_str_eq(e, embedding_formats[i].name)) {
            qc->embedding_bits = embedding_formats[i].bits;
            return QB_OK;
        }
    return qb_fail(err, QB_ERR_FORMAT,
                   "%s: quantization_config.embeddings must be fp32, fp16, bf16, int8-rowwise, int4-rowwise or "
                   "int2-rowwise", path);
}

/* "weights": {"group_size": G, "zero_points": Z, "format": F} of low-bit
 * grids; the model checks F and Z against its format table and tensors. */
static qb_status parse_weights(const json_t *j, const json_t *q, qb_quant_config *qc, const char *path,
                               qb_error *err) {
    const json_t *w = json_object_get(q, "weights"), *z = json_object_get(w, "zero_points");
    const json_t *f = json_object_get(w, "format"), *g = json_object_get(w, "group_size");
    const json_t *gran = json_object_get(w, "granularity");
    qc->zero_points = z ? json_is_true(z) : -1;
    if (gran && !qb_json_str_eq(gran, "per-tensor") && !qb_json_str_eq(gran, "per-channel"))
        return qb_fail(err, QB_ERR_FORMAT, "%s: quantization_config.weights.granularity must be per-channel or "
                       "per-tensor", path);
    qc->weights_per_tensor = qb_json_str_eq(gran, "per-tensor");
    if (z && !json_is_boolean(z))
        return qb_fail(err, QB_ERR_FORMAT, "%s: quantization_config.weights.zero_points must be true or false", path);
    if (f && (!json_is_string(f) || json_string_length(f) >= sizeof qc->weights_format))
        return qb_fail(err, QB_ERR_FORMAT, "%s: quantization_config.weights.format must be a format name", path);
    if (f) snprintf(qc->weights_format, sizeof qc->weights_format, "%s", json_string_value(f));
    int64_t v = 0;
    if (!g) return QB_OK;
    if (qb_json_str_eq(g, "channel")) v = QB_GROUP_ROW;
    else if (!qb_json_int(g, &v) || v < 1 || v > 1 << 20)
        return qb_fail(err, QB_ERR_FORMAT,
                       "%s: quantization_config.weights.group_size must be a positive integer or \"channel\"", path);
    qc->group_size = (int)v;
    return QB_OK;
}

/* Only qbert's own block is understood; another library's (bitsandbytes,
 * GPTQ...) describes a format qbert cannot run. */
static qb_status parse_quant(const json_t *j, qb_config *c, const char *path, qb_error *err) {
    const json_t *q = json_object_get(j, "quantization_config");
    if (!q) return QB_OK;
    qb_quant_config *qc = &c->quant;
    if (!json_is_object(q) || !qb_json_str_eq(json_object_get(q, "quant_method"), "qbert"))
        return qb_fail(err, QB_ERR_UNSUPPORTED,
                       "%s: quantization_config is not qbert's (quant_method \"qbert\"); qbert cannot run it", path);
    char *method = qb_json_strdup(json_object_get(q, "method"), NULL);
    bool known = method && qb_quant_method_parse(method, &qc->method);
    free(method);
    if (!known)
        return qb_fail(err, QB_ERR_FORMAT,
                       "%s: quantization_config.method must be dynamic, static, weight-only, fp16 or bf16", path);
    int64_t bits = 0;
    bool wo = qc->method == QB_QUANT_WEIGHT_ONLY;
    bool int8 = qc->method == QB_QUANT_DYNAMIC || qc->method == QB_QUANT_STATIC;
    bool bits_ok = qb_json_int(json_object_get(q, "bits"), &bits) &&
                   (int8 ? bits >= 2 && bits <= 8 : wo ? bits >= 2 && bits <= 4 : bits == 16);
    if (!bits_ok)
        return qb_fail(err, QB_ERR_FORMAT, "%s: quantization_config.bits must be %s for method %s", path,
                       int8 ? "2..8" : wo ? "2..4" : "16", qb_quant_method_name(qc->method));
    qc->bits = (int)bits;
    const json_t *act = json_object_get(q, "activations");
    if (int8 && !json_is_object(act))
        return qb_fail(err, QB_ERR_FORMAT, "%s: quantization_config.activations is missing", path);
    const json_t *gran = json_object_get(act, "granularity");
    qc->act_per_token = qb_json_str_eq(gran, "per-token");
    if (int8 && !qc->act_per_token && !qb_json_str_eq(gran, "per-tensor"))
        return qb_fail(err, QB_ERR_FORMAT,
                       "%s: quantization_config.activations.granularity must be per-token or per-tensor", path);
    if (qc->method == QB_QUANT_STATIC && qc->act_per_token)
        return qb_fail(err, QB_ERR_FORMAT, "%s: static quantization has per-tensor activation scales", path);
    qc->act_symmetric = qb_json_get_bool(act, "symmetric", false);
    char *obs = qb_json_strdup(json_object_get(act, "observer"), NULL);
    snprintf(qc->observer, sizeof qc->observer, "%s", obs ? obs : "");
    free(obs);
    const json_t *attn = json_object_get(q, "attention");
    qc->attention_int8 = qb_json_str_eq(attn, "int8");
    if (attn && !qc->attention_int8 && !qb_json_str_eq(attn, "fp32"))
        return qb_fail(err, QB_ERR_FORMAT, "%s: quantization_config.attention must be \"int8\" or \"fp32\"", path);
    if (qc->attention_int8 && qc->method != QB_QUANT_STATIC)
        return qb_fail(err, QB_ERR_FORMAT, "%s: int8 attention needs static quantization (method \"static\")", path);
    qc->present = true;
    qb_status st = parse_modules(j, q, qc, path, err);
    if (!st) st = parse_weights(j, q, qc, path, err);
    return st ? st : parse_embeddings(j, q, qc, path, err);
}

/* Real config.json files are a few kB (a model with thousands of labels:
 * a few hundred kB); 16 MiB leaves room for any of them and still refuses
 * a file or device that never ends before it costs memory. */
#define QB_CONFIG_FILE_MAX ((size_t)16 << 20)

qb_status qb_config_load(const char *path, qb_config *c, qb_error *err) {
    memset(c, 0, sizeof *c);
    json_t *j = NULL;
    qb_status st = qb_json_load_object_max(path, QB_CONFIG_FILE_MAX, &j, err);
    if (!st) st = parse_arch(j, c, path, err);
    if (!st) st = parse_shapes(j, c, path, err);
    if (!st) st = parse_labels(j, c, path, err);
    if (!st) st = parse_head_function(j, c, path, err);
    if (!st) st = parse_quant(j, c, path, err);
    json_decref(j);
    if (st) qb_config_free(c);
    return st;
}

void qb_config_free(qb_config *c) {
    for (int i = 0; c->labels && i < c->num_labels; i++) free(c->labels[i]);
    free(c->labels);
    for (int i = 0; i < 2 * c->quant.n_modules; i++) free(c->quant.modules[i]);
    free(c->quant.modules);
    memset(c, 0, sizeof *c);
}
