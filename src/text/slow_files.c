/* transformers' slow tokenizers read more than vocab.txt or spiece.model:
 * the special tokens of tokenizer_config.json and special_tokens_map.json,
 * and the user's added tokens (tokenizer_config.json's added_tokens_decoder,
 * else added_tokens.json).  They are applied here as
 * PreTrainedTokenizer.tokenize applies them; what qbert cannot follow is
 * refused with one line naming the file and key, so no setting is ignored
 * silently (that gave other ids than Hugging Face). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/escape.h"
#include "core/fs.h"
#include "core/json.h"
#include "text/tokenizer_impl.h"

/* The special-token roles, with each slow class's default. */
typedef struct {
    const char *key, *wp, *sp; /* wp NULL: BertTokenizer has no such token */
} slow_role;

static const slow_role slow_roles[] = {
    {"unk_token", "[UNK]", "<unk>"}, {"sep_token", "[SEP]", "[SEP]"},   {"pad_token", "[PAD]", "<pad>"},
    {"cls_token", "[CLS]", "[CLS]"}, {"mask_token", "[MASK]", "[MASK]"}, {"bos_token", NULL, "[CLS]"},
    {"eos_token", NULL, "[SEP]"}};
#define SLOW_N_ROLES (sizeof slow_roles / sizeof slow_roles[0])

typedef struct {
    qb_tokenizer *t;
    bool lower;       /* do_lower_case: tokenize() lowercases the text around the special tokens */
    const char *path; /* the file read, for errors */
    const char *vocab_file;
} slow_ctx;

/* A token's text: a string, or an AddedToken object's "content". */
static const char *slow_content(const json_t *v) {
    return json_is_object(v) ? qb_json_str(json_object_get(v, "content"), NULL) : qb_json_str(v, NULL);
}

static int32_t slow_vocab_id(const qb_tokenizer *t, const char *s) {
    if (t->wp) return qb_wp_id(t->wp, s, -1);
    int32_t id = qb_sp_id(t->sp, s, strlen(s)), unk = qb_sp_id(t->sp, "<unk>", 5);
    return id == unk && strcmp(s, "<unk>") ? -1 : id; /* PieceToId gives <unk> for a missing piece */
}

static const qb_tok_added *slow_find(const qb_tokenizer *t, const char *s) {
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, s)) return &t->added[i];
    return NULL;
}

static bool slow_has_upper(const char *s) {
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') return true;
    return false;
}

/* One more added token, v its AddedToken object (or a plain string).  With
 * do_lower_case, transformers lowercases a normalized non-special token's
 * content when adding it, and tokenize() lowercases the text except exact
 * special tokens before matching: a token without capitals then also
 * matches any casing of itself (fold); only ASCII is folded, so other
 * content is refused. */
static qb_status slow_add(slow_ctx *c, const char *what, const json_t *v, int32_t id, bool special,
                          qb_error *err) {
    const char *content = slow_content(v);
    char shown[64];
    if (!content || !*content)
        return qb_fail(err, QB_ERR_FORMAT, "%s: %s has an entry that is not a non-empty token", c->path, what);
    qb_escape_str(shown, sizeof shown, content);
    const qb_tok_added *have = slow_find(c->t, content);
    if (have && have->id == id) return QB_OK;
    if (have)
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: %s gives \"%s\" id %d, but it is %d: not supported", c->path,
                       what, shown, id, have->id);
    if (c->lower && !qb_tok_is_ascii(content, strlen(content)))
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: %s \"%s\" is not ASCII, not supported with do_lower_case",
                       c->path, what, shown);
    bool obj = json_is_object(v);
    bool normalized = obj ? qb_json_get_bool(v, "normalized", !special) : !special;
    qb_tok_added a = {.len = strlen(content), .id = id, .special = special};
    if (obj) {
        a.lstrip = qb_json_get_bool(v, "lstrip", false);
        a.rstrip = qb_json_get_bool(v, "rstrip", false);
        a.single_word = qb_json_get_bool(v, "single_word", false);
    }
    qb_tok_added *grown = realloc(c->t->added, ((size_t)c->t->n_added + 1) * sizeof *grown);
    if (grown) c->t->added = grown;
    if (!grown || !(a.content = strdup(content))) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", c->path);
    if (c->lower && !special && normalized)
        for (char *p = a.content; *p; p++) *p = qb_tok_ascii_lower(*p);
    a.fold = c->lower && !slow_has_upper(a.content);
    c->t->added[c->t->n_added++] = a;
    return QB_OK;
}

/* A special token named in the text's own right: it must be in the vocabulary
 * (transformers would append it with a new id, past the embedding table). */
static qb_status slow_add_special(slow_ctx *c, const char *what, const json_t *v, qb_error *err) {
    const char *content = slow_content(v);
    int32_t id = content ? slow_vocab_id(c->t, content) : -1;
    if (content && id < 0) {
        char shown[64];
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: %s \"%s\" is not in %s: not supported", c->path, what,
                       qb_escape_str(shown, sizeof shown, content), c->vocab_file);
    }
    return slow_add(c, what, v, id, true, err);
}

/* The roles must keep the class's defaults (the template, [PAD], [UNK] and
 * the never_split words are built on them); a bos/eos token BertTokenizer
 * does not have is one more special token. */
static qb_status slow_roles_check(slow_ctx *c, const json_t *j, qb_error *err) {
    for (size_t r = 0; r < SLOW_N_ROLES; r++) {
        const json_t *v = json_object_get(j, slow_roles[r].key);
        const char *def = c->t->wp ? slow_roles[r].wp : slow_roles[r].sp;
        if (!v || (json_is_null(v) && !def)) continue;
        const char *content = slow_content(v);
        if (!content)
            return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: %s is not a token string: not supported", c->path,
                           slow_roles[r].key);
        if (def && !strcmp(content, def)) continue;
        if (!def) {
            qb_status st = slow_find(c->t, content) ? QB_OK : slow_add_special(c, slow_roles[r].key, v, err);
            if (st) return st;
            continue;
        }
        char shown[64];
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: %s \"%s\" is not supported (qbert's %s tokenizer uses \"%s\")",
                       c->path, slow_roles[r].key, qb_escape_str(shown, sizeof shown, content), c->vocab_file, def);
    }
    return QB_OK;
}

static qb_status slow_additional(slow_ctx *c, const json_t *j, qb_error *err) {
    const json_t *list = json_object_get(j, "additional_special_tokens");
    if (!list || json_is_null(list)) return QB_OK;
    if (!json_is_array(list))
        return qb_fail(err, QB_ERR_FORMAT, "%s: additional_special_tokens is not a list", c->path);
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v) {
        qb_status st = slow_add_special(c, "additional_special_tokens", v, err);
        if (st) return st;
    }
    return QB_OK;
}

/* An added token's id must be one of the vocabulary's: transformers would
 * grow the vocabulary past the embedding table. */
static qb_status slow_check_id(const slow_ctx *c, const char *name, int64_t id, bool ok, qb_error *err) {
    int n = qb_tokenizer_vocab_size(c->t);
    char shown[64];
    qb_escape_str(shown, sizeof shown, name ? name : "");
    if (!ok || id < 0)
        return qb_fail(err, QB_ERR_FORMAT, "%s: the id of \"%s\" is not a non-negative integer", c->path, shown);
    if (id >= n)
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: added token \"%s\" has id %lld, past %s's %d tokens: not supported",
                       c->path, shown, (long long)id, c->vocab_file, n);
    return QB_OK;
}

/* tokenizer_config.json's added_tokens_decoder: {"id": AddedToken}. */
static qb_status slow_decoder(slow_ctx *c, const json_t *dec, qb_error *err) {
    if (!json_is_object(dec)) return qb_fail(err, QB_ERR_FORMAT, "%s: added_tokens_decoder is not an object", c->path);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)dec, key, v) {
        char *end;
        long long id = strtoll(key, &end, 10);
        qb_status st = slow_check_id(c, slow_content(v) ? slow_content(v) : key, id, *key && !*end, err);
        if (!st) st = slow_add(c, "added_tokens_decoder", v, (int32_t)id, qb_json_get_bool(v, "special", false), err);
        if (st) return st;
    }
    return QB_OK;
}

/* added_tokens.json: {"token": id}, the slow tokenizers' user tokens. */
static qb_status slow_added_json(slow_ctx *c, const json_t *j, qb_error *err) {
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        int64_t id = -1;
        bool is_int = qb_json_int(v, &id);
        qb_status st = slow_check_id(c, key, id, is_int, err);
        json_t *content = st ? NULL : json_string(key);
        if (!st && !content) st = qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", c->path);
        if (!st) st = slow_add(c, "added token", content, (int32_t)id, false, err);
        json_decref(content);
        if (st) return st;
    }
    return QB_OK;
}

/* Loads dir/name when it is there (*j NULL when not). */
static qb_status slow_load(slow_ctx *c, const char *dir, const char *name, char *path, size_t cap, json_t **j,
                           qb_error *err) {
    *j = NULL;
    c->path = path;
    if (!qb_path_join(path, cap, dir, name) || !qb_file_exists(path)) return QB_OK;
    return qb_json_load_object(path, j, err);
}

qb_status qb_tokenizer_read_slow_files(qb_tokenizer *t, const char *dir, const json_t *cfg, bool lower,
                                       qb_error *err) {
    char path[4096];
    slow_ctx c = {.t = t, .lower = lower, .vocab_file = t->wp ? "vocab.txt" : "spiece.model", .path = path};
    json_t *map = NULL, *added = NULL;
    qb_status st = QB_OK;
    qb_path_join(path, sizeof path, dir, "tokenizer_config.json");
    if (cfg) st = slow_roles_check(&c, cfg, err);
    if (!st && cfg) st = slow_additional(&c, cfg, err);
    const json_t *dec = cfg ? json_object_get(cfg, "added_tokens_decoder") : NULL;
    if (!st) st = slow_load(&c, dir, "special_tokens_map.json", path, sizeof path, &map, err);
    if (!st && map) st = slow_roles_check(&c, map, err);
    if (!st && map) st = slow_additional(&c, map, err);
    if (!st && dec) { /* transformers reads added_tokens.json only without it */
        qb_path_join(path, sizeof path, dir, "tokenizer_config.json");
        st = slow_decoder(&c, dec, err);
    } else if (!st) {
        st = slow_load(&c, dir, "added_tokens.json", path, sizeof path, &added, err);
        if (!st && added) st = slow_added_json(&c, added, err);
    }
    json_decref(map);
    json_decref(added);
    if (!st) qb_tok_added_index(t);
    return st;
}
