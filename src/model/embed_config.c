/* The sentence-transformers layout of a model directory: modules.json lists
 * Transformer -> Pooling -> (Normalize); 1_Pooling/config.json names the
 * pooling modes; sentence_bert_config.json the truncation length and lowercasing;
 * config_sentence_transformers.json the prompts put before the texts. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/escape.h"
#include "core/fs.h"
#include "core/json.h"
#include "model/model.h"

/* sentence-transformers' names, in the order its output concatenates them. */
static const struct {
    const char *name, *key;
    unsigned bit;
} modes[] = {
    {"cls", "pooling_mode_cls_token", QB_POOL_CLS},
    {"max", "pooling_mode_max_tokens", QB_POOL_MAX},
    {"mean", "pooling_mode_mean_tokens", QB_POOL_MEAN},
    {"mean_sqrt_len", "pooling_mode_mean_sqrt_len_tokens", QB_POOL_MEAN_SQRT_LEN},
    {"weightedmean", "pooling_mode_weightedmean_tokens", QB_POOL_WEIGHTED_MEAN},
    {"lasttoken", "pooling_mode_lasttoken", QB_POOL_LAST_TOKEN},
};
enum { N_MODES = sizeof modes / sizeof *modes };

/* Names joined by '+' (or ','), each once: an empty item ("mean+") or a
 * repeated one ("mean+mean", which would not widen the output) is no list. */
unsigned qb_pooling_parse(const char *names) {
    unsigned bits = 0;
    for (const char *at = names; at && *at; at++) {
        size_t n = strcspn(at, "+,");
        unsigned bit = 0;
        for (int i = 0; i < N_MODES; i++)
            if (strlen(modes[i].name) == n && !strncmp(at, modes[i].name, n)) bit = modes[i].bit;
        if (!bit || (bits & bit) || (at[n] && !at[n + 1])) return 0;
        bits |= bit;
        at += n;
        if (!*at) break;
    }
    return bits;
}

const char *qb_pooling_format(unsigned pooling, char *buf, size_t cap) {
    size_t at = 0;
    if (cap) buf[0] = 0;
    for (int i = 0; i < N_MODES && at < cap; i++)
        if (pooling & modes[i].bit) at += (size_t)snprintf(buf + at, cap - at, "%s%s", at ? "+" : "", modes[i].name);
    return buf;
}

int qb_embed_dim(const qb_model *m, unsigned pooling) {
    int n = 0;
    for (int i = 0; i < N_MODES; i++) n += (pooling & modes[i].bit) != 0;
    return n * m->cfg.hidden_size;
}

qb_embed_params qb_model_embed_params(const qb_model *m) { return m->embed; }

static qb_status read_pooling(const char *path, qb_model *m, qb_error *err) {
    json_t *j = NULL;
    qb_status st = qb_json_load_object(path, &j, err);
    if (st) return st;
    int hidden = m->cfg.hidden_size;
    unsigned *out = &m->embed.pooling;
    *out = 0;
    for (int i = 0; i < N_MODES; i++)
        if (qb_json_get_bool(j, modes[i].key, false)) *out |= modes[i].bit;
    /* the string lives in j: parsed before j is freed */
    const char *other = qb_json_str(json_object_get(j, "pooling_mode"), NULL);
    if (!*out && other) *out = qb_pooling_parse(other);
    double dim = qb_json_get_number(j, "word_embedding_dimension", hidden);
    m->prompts.exclude = !qb_json_get_bool(j, "include_prompt", true);
    json_decref(j);
    if (!*out) return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: no pooling mode qbert knows is enabled", path);
    if (dim != hidden)
        return qb_fail(err, QB_ERR_FORMAT, "%s: word_embedding_dimension %g is not the model's hidden size %d", path,
                       dim, hidden);
    return QB_OK;
}

/* sentence_bert_config.json: the truncation length and do_lower_case. */
static qb_status read_st_config(qb_model *m, bool *lower_case, qb_error *err) {
    char path[4096];
    qb_embed_params *e = &m->embed;
    const qb_config *c = &m->cfg;
    if (!qb_path_join(path, sizeof path, m->dir, "sentence_bert_config.json") || !qb_file_exists(path)) return QB_OK;
    json_t *j = NULL;
    qb_status st = qb_json_load_object(path, &j, err);
    if (st) return st;
    int64_t n = 0;
    const json_t *v = json_object_get(j, "max_seq_length"), *lower = json_object_get(j, "do_lower_case");
    bool ok = !v || json_is_null(v) || (qb_json_int(v, &n) && n >= 2);
    bool lower_ok = !lower || json_is_boolean(lower);
    *lower_case = json_is_true(lower);
    json_decref(j);
    if (!ok) return qb_fail(err, QB_ERR_FORMAT, "%s: max_seq_length must be an integer >= 2", path);
    if (!lower_ok) return qb_fail(err, QB_ERR_FORMAT, "%s: do_lower_case must be true or false", path);
    if (n) e->max_length = (int)(n < c->max_position ? n : c->max_position);
    return QB_OK;
}

/* dir's modules.json (its path in file) parsed into *j; *j stays NULL
 * when there is none. */
static qb_status load_modules(const char *dir, char *file, size_t cap, json_t **j, qb_error *err) {
    *j = NULL;
    if (!qb_path_join(file, cap, dir, "modules.json") || !qb_file_exists(file)) return QB_OK;
    char *text = NULL;
    size_t n = 0;
    qb_status st = qb_file_read_max(file, 1 << 20, 0, "modules.json", &text, &n, err);
    if (!st) st = qb_json_parse(text, n, file, j, err);
    free(text);
    return st;
}

/* A module's kind: the last component of its type, or NULL. */
static const char *module_kind(const json_t *mod) {
    const char *type = qb_json_str(json_object_get(mod, "type"), NULL);
    return type && strrchr(type, '.') ? strrchr(type, '.') + 1 : type;
}

/* One entry of modules.json: its kind (the type's last component) and
 * folder, checked to exist for the modules that read files there. */
static qb_status read_module(qb_model *m, const char *file, const json_t *mod, qb_error *err) {
    const char *type = qb_json_str(json_object_get(mod, "type"), NULL);
    const char *sub = qb_json_str(json_object_get(mod, "path"), NULL);
    if (!type) return qb_fail(err, QB_ERR_FORMAT, "%s: every module needs a \"type\" string", file);
    const char *kind = module_kind(mod);
    if (!strcmp(kind, "Transformer")) return QB_OK;
    if (!strcmp(kind, "Normalize")) {
        m->embed.normalize = 1;
        return QB_OK;
    }
    if (strcmp(kind, "Pooling"))
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: module type \"%s\" is not supported (Transformer, Pooling, "
                       "Normalize)", file, type);
    char folder[4096], path[4200];
    if (!sub || !qb_path_join(folder, sizeof folder, m->dir, sub) ||
        !qb_path_join(path, sizeof path, folder, "config.json"))
        return qb_fail(err, QB_ERR_FORMAT, "%s: the Pooling module needs a \"path\"", file);
    if (!qb_file_exists(path))
        return qb_fail(err, QB_ERR_IO, "%s: Pooling module's folder \"%s\" has no config.json", file, sub);
    return read_pooling(path, m, err);
}

/* One "prompts" entry, copied. */
static qb_status add_prompt(qb_prompts *p, const char *file, const char *name, const json_t *v, qb_error *err) {
    size_t len = 0;
    const char *text = qb_json_str(v, &len);
    char shown[64];
    if (!text || strlen(text) != len)
        return qb_fail(err, QB_ERR_FORMAT, "%s: prompt \"%s\" must be a string without NUL characters", file,
                       qb_escape_str(shown, sizeof shown, name));
    p->names[p->n] = strdup(name);
    p->texts[p->n] = strdup(text);
    if (!p->names[p->n] || !p->texts[p->n]) {
        free(p->names[p->n]), free(p->texts[p->n]);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", file);
    }
    p->n++;
    return QB_OK;
}

/* config_sentence_transformers.json: "prompts" {name: text} and
 * "default_prompt_name", which must be one of them. */
static qb_status read_prompts(qb_model *m, qb_error *err) {
    char file[4096];
    qb_prompts *p = &m->prompts;
    p->default_index = -1;
    if (!qb_path_join(file, sizeof file, m->dir, "config_sentence_transformers.json") || !qb_file_exists(file))
        return QB_OK;
    json_t *j = NULL;
    qb_status st = qb_json_load_object(file, &j, err);
    if (st) return st;
    json_t *all = json_object_get(j, "prompts"), *def = json_object_get(j, "default_prompt_name");
    if (all && !json_is_null(all) && !json_is_object(all))
        st = qb_fail(err, QB_ERR_FORMAT, "%s: \"prompts\" must be an object of name: text", file);
    else if (def && !json_is_null(def) && !json_is_string(def))
        st = qb_fail(err, QB_ERR_FORMAT, "%s: \"default_prompt_name\" must be a string or null", file);
    size_t n = json_is_object(all) ? json_object_size(all) : 0;
    if (!st && n && (!(p->names = calloc(n, sizeof *p->names)) || !(p->texts = calloc(n, sizeof *p->texts))))
        st = qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", file);
    const char *name;
    json_t *v;
    json_object_foreach(st ? NULL : all, name, v) {
        if ((st = add_prompt(p, file, name, v, err))) break;
        if (qb_json_str_eq(def, name)) p->default_index = p->n - 1;
    }
    char shown[64];
    if (!st && json_is_string(def) && p->default_index < 0)
        st = qb_fail(err, QB_ERR_FORMAT, "%s: default_prompt_name \"%s\" is not one of its prompts", file,
                     qb_escape_str(shown, sizeof shown, json_string_value(def)));
    json_decref(j);
    return st;
}

static qb_status read_modules(qb_model *m, qb_error *err) {
    char file[4096];
    json_t *j;
    qb_status st = load_modules(m->dir, file, sizeof file, &j, err);
    if (!st && !j) return QB_OK;
    if (!st && !json_is_array(j)) st = qb_fail(err, QB_ERR_FORMAT, "%s: must be a JSON array of modules", file);
    for (size_t i = 0; !st && i < json_array_size(j); i++) {
        const json_t *mod = json_array_get(j, i);
        st = json_is_object(mod) ? read_module(m, file, mod, err)
                                 : qb_fail(err, QB_ERR_FORMAT, "%s: module %zu is not an object", file, i);
    }
    json_decref(j);
    bool lower = false;
    if (!st) st = read_st_config(m, &lower, err);
    if (!st) qb_tokenizer_set_sentence_prep(m->tok, true, lower); /* Transformer.tokenize strips every text */
    return st;
}

bool qb_model_transformer_folder(const char *dir, char *sub, size_t cap) {
    char file[4096];
    json_t *j;
    qb_error ignored = {0};
    bool found = false;
    if (load_modules(dir, file, sizeof file, &j, &ignored)) return false;
    for (size_t i = 0; !found && i < json_array_size(j); i++) {
        const json_t *mod = json_array_get(j, i);
        const char *kind = module_kind(mod), *path = qb_json_str(json_object_get(mod, "path"), NULL);
        if (kind && !strcmp(kind, "Transformer") && path && *path && strcmp(path, "."))
            found = qb_escape_str(sub, cap, path) != NULL;
    }
    json_decref(j);
    return found;
}

qb_status qb_model_read_embed_config(qb_model *m, qb_error *err) {
    m->embed = (qb_embed_params){.pooling = QB_POOL_MEAN, .normalize = 0, .max_length = 0};
    qb_status st = read_modules(m, err);
    return st ? st : read_prompts(m, err);
}

void qb_prompts_free(qb_prompts *p) {
    for (int i = 0; i < p->n; i++) free(p->names[i]), free(p->texts[i]);
    free(p->names);
    free(p->texts);
    *p = (qb_prompts){.default_index = -1};
}

/* "query, passage" (as much as fits, escaped), for the message naming a
 * wrong one. */
static const char *prompt_names(const qb_prompts *p, char *buf, size_t cap) {
    size_t at = 0;
    char name[64];
    buf[0] = 0;
    for (int i = 0; i < p->n && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? ", " : "",
                               qb_escape_str(name, sizeof name, p->names[i]));
    return buf;
}

qb_status qb_model_prompt(const qb_model *m, const char *name, const char **prompt, qb_error *err) {
    const qb_prompts *p = &m->prompts;
    int k = name || !p->n ? -1 : p->default_index;
    for (int i = 0; name && i < p->n; i++)
        if (!strcmp(p->names[i], name)) k = i;
    char known[256], asked[64];
    *prompt = NULL;
    /* no paths in these messages: the server sends them to its clients */
    if (name && !p->n)
        return qb_fail(err, QB_ERR_ARG, "no prompt named \"%s\": the model's config_sentence_transformers.json has "
                       "no \"prompts\"", qb_escape_str(asked, sizeof asked, name));
    if (name && k < 0)
        return qb_fail(err, QB_ERR_ARG, "no prompt named \"%s\" in config_sentence_transformers.json (it has: %s)",
                       qb_escape_str(asked, sizeof asked, name), prompt_names(p, known, sizeof known));
    if (k >= 0 && p->texts[k][0] && p->exclude)
        return qb_fail(err, QB_ERR_UNSUPPORTED, "prompt \"%s\": the Pooling module leaves the prompt's tokens out "
                       "(include_prompt false), which qbert does not support",
                       qb_escape_str(asked, sizeof asked, p->names[k]));
    *prompt = k >= 0 ? p->texts[k] : NULL;
    return QB_OK;
}

const char *qb_model_prompt_at(const qb_model *m, int i, const char **text, int *is_default) {
    const qb_prompts *p = &m->prompts;
    if (i < 0 || i >= p->n) return NULL;
    *text = p->texts[i];
    *is_default = i == p->default_index;
    return p->names[i];
}

/* Copies every regular file of from/sub into to/sub. */
static qb_status copy_folder(const char *from, const char *to, const char *sub, qb_error *err) {
    char src[4200], dst[4200], s[8400], d[8400];
    if (!qb_path_join(src, sizeof src, from, sub) || !qb_path_join(dst, sizeof dst, to, sub))
        return qb_fail(err, QB_ERR_ARG, "%s: path too long", to);
    DIR *dir = opendir(src);
    if (!dir) return qb_fail(err, QB_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
    qb_status st = mkdir(dst, 0777) && errno != EEXIST ? qb_fail(err, QB_ERR_IO, "%s: cannot create: %s", dst,
                                                                 strerror(errno))
                                                       : QB_OK;
    struct dirent *e;
    struct stat sb;
    while (!st && (e = readdir(dir))) {
        if (!qb_path_join(s, sizeof s, src, e->d_name) || !qb_path_join(d, sizeof d, dst, e->d_name))
            st = qb_fail(err, QB_ERR_ARG, "%s: path too long", dst);
        else if (stat(s, &sb) == 0 && S_ISREG(sb.st_mode))
            st = qb_file_copy(s, d, err);
    }
    closedir(dir);
    return st;
}

qb_status qb_embed_copy_files(const char *from, const char *to, qb_error *err) {
    static const char *const files[] = {"modules.json", "sentence_bert_config.json",
                                        "config_sentence_transformers.json"};
    char s[4200], d[4200];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        if (!qb_path_join(s, sizeof s, from, files[i]) || !qb_path_join(d, sizeof d, to, files[i]))
            return qb_fail(err, QB_ERR_ARG, "%s: path too long", to);
        qb_status st = qb_file_exists(s) ? qb_file_copy(s, d, err) : QB_OK;
        if (st) return st;
    }
    json_t *j;
    qb_status st = load_modules(from, s, sizeof s, &j, err);
    for (size_t i = 0; !st && i < json_array_size(j); i++) {
        const char *sub = qb_json_str(json_object_get(json_array_get(j, i), "path"), NULL);
        if (sub && *sub && !strstr(sub, "..")) {
            char probe[4200];
            struct stat sb;
            if (qb_path_join(probe, sizeof probe, from, sub) && stat(probe, &sb) == 0 && S_ISDIR(sb.st_mode))
                st = copy_folder(from, to, sub, err);
        }
    }
    json_decref(j);
    return st;
}
