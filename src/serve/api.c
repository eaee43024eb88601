/* The endpoints: a request body is read into a list of inputs (texts, or
 * text pairs), tokenized into a job, and once the model has run it, the
 * reply is written in TEI's or OpenAI's shape.  Errors are TEI's
 * {"error", "error_type"} with the status codes the issue lists. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/vec.h"
#include "model/linear_format.h"
#include "model/model.h"
#include "serve/serve.h"

bool srv_error(srv_reply *r, int status, const char *type, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    bool ok = o && qb_json_set_str(o, "error", msg) && qb_json_set_str(o, "error_type", type);
    free(r->body);
    r->body = ok ? qb_json_dumps(o, QB_JSON_COMPACT) : NULL;
    json_decref(o);
    r->status = r->body ? status : 500;
    r->len = r->body ? strlen(r->body) : 0;
    r->type = "application/json";
    return false;
}

void srv_error_openai(srv_reply *r) {
    json_t *tei = r->body ? json_loads(r->body, 0, NULL) : NULL, *o = json_object(), *e = json_object();
    bool ok = tei && o && e && qb_json_set(e, "message", json_incref(json_object_get(tei, "error"))) &&
              qb_json_set(e, "type", json_incref(json_object_get(tei, "error_type"))) &&
              qb_json_set(e, "param", json_null()) && qb_json_set(e, "code", json_null());
    ok = qb_json_set(o, "error", qb_json_built(e, ok)) && ok; /* jansson frees e where o is NULL */
    char *body = ok ? qb_json_dumps(o, QB_JSON_COMPACT) : NULL;
    json_decref(o);
    json_decref(tei);
    if (!body) return; /* TEI's shape stays */
    free(r->body);
    r->body = body;
    r->len = strlen(body);
}

static bool reply_json(srv_reply *r, json_t *v, bool built) {
    char *s = built ? qb_json_dumps(v, QB_JSON_COMPACT | QB_JSON_DIGITS9) : NULL;
    json_decref(v);
    if (!s) return srv_error(r, 500, "backend", "out of memory writing the reply");
    free(r->body);
    *r = (srv_reply){200, s, strlen(s), "application/json"};
    return true;
}

bool srv_embedder(const qb_model_info *info) { return info->task == QB_TASK_NONE || info->task == QB_TASK_MLM; }

qb_status srv_ctx_init(srv_ctx *x, const qb_model *m, const qb_serve_params *p, qb_error *err) {
    x->m = m;
    x->p = p;
    qb_model_get_info(m, &x->info);
    x->embedder = srv_embedder(&x->info);
    x->embed = qb_model_embed_params(m);
    x->max_len = qb_model_max_length(m, p->max_input_length ? p->max_input_length : x->embed.max_length);
    if (x->max_len > x->info.max_position)
        return qb_fail(err, QB_ERR_ARG, "serve: --max-input-length %d exceeds the model's %d positions", x->max_len,
                       x->info.max_position);
    x->dim = x->embedder ? qb_embed_dim(m, x->embed.pooling) : x->info.num_labels;
    if (x->info.task == QB_TASK_TOKEN)
        return qb_fail(err, QB_ERR_UNSUPPORTED, "serve: token classification models (%s) are not served",
                       x->info.class_name);
    if (p->default_prompt_name && !x->embedder)
        return qb_fail(err, QB_ERR_ARG, "serve: --default-prompt-name is for embedding models, not %s",
                       x->info.class_name);
    if (p->no_default_prompt || !x->embedder) return QB_OK;
    return qb_model_prompt(m, p->default_prompt_name, &x->prompt, err);
}

/* ---- reading inputs ---- */

typedef struct {
    const char *text, *pair;
    size_t len, pair_len;
} srv_input;

/* Inputs past cap are counted, not kept: the caller refuses them with 413. */
static void add_text(srv_input *in, int *n, int cap, const json_t *t, const json_t *pair) {
    if (*n < cap) {
        in[*n] = (srv_input){0};
        in[*n].text = qb_json_str(t, &in[*n].len);
        if (pair) in[*n].pair = qb_json_str(pair, &in[*n].pair_len);
    }
    (*n)++;
}

/* inputs: "text", or ["text", ...]; OpenAI's token-id arrays are refused. */
static bool read_texts(const json_t *v, const char *key, srv_input *in, int *n, int cap, bool *single,
                       srv_reply *r) {
    *single = json_is_string(v);
    if (*single) {
        add_text(in, n, cap, v, NULL);
        return true;
    }
    if (!json_is_array(v)) return srv_error(r, 400, "validation", "\"%s\" must be a string or a list of strings", key);
    size_t i;
    const json_t *t;
    json_array_foreach(v, i, t) {
        if (!json_is_string(t))
            return srv_error(r, 400, "validation", "\"%s\"[%zu] is not a string (token ids are not accepted)", key, i);
        add_text(in, n, cap, t, NULL);
    }
    return true;
}

/* /predict's sequences: "text", ["text"] or ["text", "pair"]. */
static bool read_sequence(const json_t *v, srv_input *in, int *n, int cap, srv_reply *r, size_t at) {
    size_t k = json_is_array(v) ? json_array_size(v) : 0;
    const json_t *first = k ? json_array_get(v, 0) : v, *pair = k == 2 ? json_array_get(v, 1) : NULL;
    if (!json_is_string(first) || k > 2 || (pair && !json_is_string(pair)))
        return srv_error(r, 400, "validation", "\"inputs\"[%zu] must be a string, [text] or [text, text_pair]", at);
    add_text(in, n, cap, first, pair);
    return true;
}

/* inputs: a sequence, or a list of them; a list of two strings is a pair,
 * as in TEI. */
static bool read_predict(const json_t *v, srv_input *in, int *n, int cap, bool *single, srv_reply *r) {
    size_t k = json_is_array(v) ? json_array_size(v) : 0;
    *single = json_is_string(v) ||
              (k == 2 && json_is_string(json_array_get(v, 0)) && json_is_string(json_array_get(v, 1)));
    if (*single) return read_sequence(v, in, n, cap, r, 0);
    if (!json_is_array(v))
        return srv_error(r, 400, "validation", "\"inputs\" must be a string, [text, text_pair] or a list of those");
    for (size_t i = 0; i < k; i++)
        if (!read_sequence(json_array_get(v, i), in, n, cap, r, i)) return false;
    return true;
}

static bool read_rerank(const json_t *doc, srv_input *in, int *n, int cap, srv_reply *r) {
    const json_t *q = json_object_get(doc, "query"), *texts = json_object_get(doc, "texts");
    if (!json_is_string(q)) return srv_error(r, 400, "validation", "\"query\" must be a string");
    if (!json_is_array(texts)) return srv_error(r, 400, "validation", "\"texts\" must be a list of strings");
    size_t i;
    const json_t *t;
    json_array_foreach(texts, i, t) {
        if (!json_is_string(t)) return srv_error(r, 400, "validation", "\"texts\"[%zu] is not a string", i);
        add_text(in, n, cap, q, t);
    }
    return true;
}

/* TEI's /similarity: {"source_sentence", "sentences"}, the source first. */
static bool read_similarity(const json_t *v, srv_input *in, int *n, int cap, srv_reply *r) {
    const json_t *src = json_object_get(v, "source_sentence"), *texts = json_object_get(v, "sentences");
    if (!json_is_object(v))
        return srv_error(r, 400, "validation", "\"inputs\" must be {\"source_sentence\": str, \"sentences\": [str]}");
    if (!json_is_string(src)) return srv_error(r, 400, "validation", "\"inputs\".\"source_sentence\" must be a string");
    if (!json_is_array(texts))
        return srv_error(r, 400, "validation", "\"inputs\".\"sentences\" must be a list of strings");
    if (!json_array_size(texts)) return srv_error(r, 400, "empty", "\"inputs\".\"sentences\" is empty");
    add_text(in, n, cap, src, NULL);
    size_t i;
    const json_t *t;
    json_array_foreach(texts, i, t) {
        if (!json_is_string(t))
            return srv_error(r, 400, "validation", "\"inputs\".\"sentences\"[%zu] is not a string", i);
        add_text(in, n, cap, t, NULL);
    }
    return true;
}

/* The endpoints that need a bare encoder's states. */
static bool embeds(int route) {
    return route == SRV_EMBED || route == SRV_OPENAI || route == SRV_EMBED_ALL || route == SRV_SIMILARITY;
}

/* What each endpoint needs of the model. */
static bool check_model(const srv_ctx *x, int route, srv_reply *r) {
    if (embeds(route) && !x->embedder)
        return srv_error(r, 400, "validation", "this model is a classifier (%s), not an embedding model: use /predict",
                         x->info.class_name);
    if ((route == SRV_PREDICT || route == SRV_RERANK) && x->info.task != QB_TASK_SEQUENCE)
        return srv_error(r, 400, "validation", "this model (%s) is not a sequence classifier%s", x->info.class_name,
                         x->embedder ? ": it is served as an embedding model (/embed)" : "");
    if (route == SRV_RERANK && x->info.num_labels != 1)
        return srv_error(r, 400, "validation", "/rerank needs a cross-encoder with one output; this model has %d labels",
                         x->info.num_labels);
    return true;
}

static bool read_inputs(const srv_ctx *x, srv_call *c, srv_input *in, int *n, srv_reply *r) {
    const json_t *d = c->doc;
    int cap = x->p->max_client_batch_size;
    const char *key = c->route == SRV_OPENAI ? "input" : "inputs";
    if (c->route != SRV_RERANK && !json_object_get(d, key))
        return srv_error(r, 400, "validation", "missing \"%s\"", key);
    switch (c->route) {
    case SRV_PREDICT: return read_predict(json_object_get(d, key), in, n, cap, &c->single, r);
    case SRV_RERANK: return read_rerank(d, in, n, cap, r);
    case SRV_SIMILARITY: return read_similarity(json_object_get(d, key), in, n, cap, r);
    default: return read_texts(json_object_get(d, key), key, in, n, cap, &c->single, r);
    }
}

/* TEI's "prompt_name", on the routes that embed or tokenize a text. */
static bool read_prompt(const srv_ctx *x, srv_call *c, const json_t *par, srv_reply *r) {
    bool prompted = embeds(c->route) || c->route == SRV_TOKENIZE;
    const json_t *v = c->route == SRV_OPENAI ? NULL : json_object_get(par, "prompt_name");
    c->prompt = prompted ? x->prompt : NULL;
    if (!v || json_is_null(v)) return true;
    if (!prompted) return srv_error(r, 400, "validation", "\"prompt_name\" applies to /embed, /embed_all, "
                                    "/similarity and /tokenize only");
    if (!json_is_string(v)) return srv_error(r, 400, "validation", "\"prompt_name\" must be a string or null");
    qb_error err = {0};
    if (qb_model_prompt(x->m, json_string_value(v), &c->prompt, &err))
        return srv_error(r, 422, "validation", "%s", err.msg);
    return true;
}

/* A boolean option (absent or null: dflt); another type is refused, as
 * TEI's typed requests refuse it, rather than read as the default. */
static bool read_bool(const json_t *obj, const char *key, bool dflt, bool *out, srv_reply *r) {
    const json_t *v = json_object_get(obj, key);
    bool given = v && !json_is_null(v);
    *out = given ? json_is_true(v) : dflt;
    return !given || json_is_boolean(v) || srv_error(r, 400, "validation", "\"%s\" must be true or false", key);
}

/* "dimensions" (OpenAI's, and TEI's on /embed) shortens Matryoshka
 * embeddings, which these are not: only the model's own width is taken. */
static bool read_dimensions(const srv_ctx *x, const json_t *d, srv_reply *r) {
    const json_t *v = json_object_get(d, "dimensions");
    int64_t n;
    if (!v || json_is_null(v) || (qb_json_int(v, &n) && n == x->dim)) return true;
    return srv_error(r, 400, "validation", "\"dimensions\": this model's embeddings have %d and cannot be shortened",
                     x->dim);
}

/* TEI's "truncation_direction": only "Right" (what qbert's tokenizers cut)
 * is taken, rather than cutting the other end without saying so. */
static bool read_direction(const json_t *par, srv_reply *r) {
    const json_t *v = json_object_get(par, "truncation_direction");
    if (!v || json_is_null(v) || qb_json_str_eq(v, "Right") || qb_json_str_eq(v, "right")) return true;
    if (qb_json_str_eq(v, "Left") || qb_json_str_eq(v, "left"))
        return srv_error(r, 422, "validation", "\"truncation_direction\": \"Left\" is not supported: inputs are cut "
                         "at the right");
    return srv_error(r, 400, "validation", "\"truncation_direction\" is \"Right\" or \"Left\"");
}

static bool read_options(const srv_ctx *x, srv_call *c, srv_reply *r) {
    const json_t *d = c->doc, *fmt = json_object_get(d, "encoding_format");
    /* /similarity's options are in "parameters", as in TEI */
    const json_t *par = c->route == SRV_SIMILARITY ? json_object_get(d, "parameters") : d;
    if (par && !json_is_null(par) && !json_is_object(par))
        return srv_error(r, 400, "validation", "\"parameters\" must be an object");
    bool openai = c->route == SRV_OPENAI;
    if (!read_bool(par, "truncate", false, &c->truncate, r) ||
        !read_bool(openai ? NULL : d, "normalize", true, &c->normalize, r) ||
        !read_bool(d, "raw_scores", false, &c->raw_scores, r) || !read_bool(d, "return_text", false, &c->return_text, r) ||
        ((openai || c->route == SRV_EMBED) && !read_dimensions(x, d, r)) || !read_direction(par, r))
        return false;
    c->normalize |= openai;
    c->base64 = qb_json_str_eq(fmt, "base64");
    if (fmt && !json_is_null(fmt) && !c->base64 && !qb_json_str_eq(fmt, "float"))
        return srv_error(r, 400, "validation", "\"encoding_format\" is \"float\" or \"base64\"");
    return read_prompt(x, c, par, r);
}

/* ---- tokenizing ---- */

/* TEI's SimpleToken: a special token's text is its vocabulary piece, with
 * null offsets; any other's is the bytes of its input [start, stop). */
static json_t *token_json(const srv_ctx *x, const srv_input *in, int32_t id, const qb_token_offset *off) {
    json_t *o = json_object();
    const char *src = off->segment == 1 ? in->pair : in->text, *piece = qb_token_text(x->m, id);
    bool ok = o && qb_json_set_int(o, "id", id) && qb_json_set(o, "special", json_boolean(off->special));
    if (ok && off->special)
        ok = qb_json_set_str(o, "text", piece ? piece : "") && qb_json_set(o, "start", json_null()) &&
             qb_json_set(o, "stop", json_null());
    else if (ok)
        ok = qb_json_set(o, "text", json_stringn(src + off->start, off->end - off->start)) &&
             qb_json_set_int(o, "start", (long long)off->start) && qb_json_set_int(o, "stop", (long long)off->end);
    return qb_json_built(o, ok);
}

/* One input's tokens for /tokenize, the special ones if asked for. */
static bool tokens_json(const srv_ctx *x, const srv_input *in, const qb_encoding *e, bool specials, json_t *all,
                        srv_reply *r, int i) {
    qb_token_offset *off = malloc((size_t)(e->n ? e->n : 1) * sizeof *off);
    qb_error err = {0};
    if (!off) return srv_error(r, 500, "backend", "out of memory for input %d's offsets", i);
    if (qb_token_offsets(x->m, in->text, in->len, in->pair, in->pair_len, e, off, &err)) {
        free(off);
        return srv_error(r, 422, "tokenizer", "input %d: %s", i, err.msg);
    }
    json_t *a = json_array();
    bool ok = a != NULL;
    for (int t = 0; ok && t < e->n; t++)
        if (!off[t].special || specials) ok = qb_json_push(a, token_json(x, in, e->input_ids[t], &off[t]));
    free(off);
    ok = qb_json_push(all, qb_json_built(a, ok));
    return ok || srv_error(r, 500, "backend", "out of memory for input %d's tokens", i);
}

/* Room for the model's outputs: x->dim floats an input, or for /embed_all
 * the longest input's tokens' hidden states. */
static bool alloc_outputs(const srv_ctx *x, srv_job *j, bool tokens, srv_reply *r) {
    int longest = 1;
    for (int i = 0; i < j->n; i++) longest = j->enc[i].n > longest ? j->enc[i].n : longest;
    j->tokens = tokens;
    j->width = tokens ? longest * x->info.hidden_size : x->dim;
    j->out = malloc((size_t)j->n * (size_t)j->width * sizeof(float));
    return j->out || srv_error(r, 500, "backend", "out of memory for the outputs of %d inputs", j->n);
}

/* Every input tokenized; /tokenize's, as TEI's, untruncated and answered
 * here, while the texts are at hand: the model does not run for them. */
static bool tokenize(const srv_ctx *x, srv_call *c, const srv_input *in, srv_reply *r) {
    srv_job *j = &c->job;
    bool only = c->route == SRV_TOKENIZE;
    bool specials;
    if (!read_bool(c->doc, "add_special_tokens", true, &specials, r)) return false;
    if (only && !(j->answer = json_array())) return srv_error(r, 500, "backend", "out of memory");
    if (!(j->enc = calloc((size_t)j->n, sizeof *j->enc)))
        return srv_error(r, 500, "backend", "out of memory for %d inputs", j->n);
    for (int i = 0; i < j->n; i++) {
        qb_error err = {0};
        qb_encoding *e = &j->enc[i];
        if (qb_tokenize(x->m, in[i].text, in[i].len, in[i].pair, in[i].pair_len, only ? INT32_MAX / 2 : x->max_len,
                        e, &err))
            return srv_error(r, 422, "tokenizer", "input %d: %s", i, err.msg);
        if (only && !tokens_json(x, &in[i], e, specials, j->answer, r, i)) return false;
        if (e->n_truncated && !c->truncate && !only)
            return srv_error(r, 422, "validation", "input %d has %d tokens, more than the %d allowed: send %s to cut it",
                             i, e->n + e->n_truncated, x->max_len,
                             c->route == SRV_SIMILARITY ? "\"parameters\": {\"truncate\": true}" : "\"truncate\": true");
    }
    return only || alloc_outputs(x, j, c->route == SRV_EMBED_ALL, r);
}

/* ---- decoding ---- */

/* One list of ids, named in errors by path ("ids" or "ids"[2]), decoded;
 * false with the reply's error in r. */
static bool decode_one(const srv_ctx *x, const json_t *v, bool skip, json_t *all, int32_t *ids, const char *path,
                       srv_reply *r) {
    size_t n = json_array_size(v), i;
    const json_t *id;
    if (!json_is_array(v) || n == 0)
        return srv_error(r, 400, "validation", "%s must be a non-empty list of token ids", path);
    json_array_foreach(v, i, id) {
        int64_t k;
        if (!qb_json_int(id, &k) || k < 0 || k > INT32_MAX)
            return srv_error(r, 400, "validation", "%s[%zu] is not a token id", path, i);
        ids[i] = (int32_t)k;
    }
    /* room for most texts at once; a longer one is decoded again into its length */
    qb_error err = {0};
    size_t cap = 16 * n + 16, len = 0;
    char *text = malloc(cap);
    qb_status st = text ? qb_detokenize(x->m, ids, (int)n, skip, text, cap, &len, &err) : QB_ERR_NOMEM;
    if (st == QB_OK && len >= cap) {
        char *more = realloc(text, len + 1);
        st = more ? qb_detokenize(x->m, ids, (int)n, skip, text = more, len + 1, &len, &err) : QB_ERR_NOMEM;
    }
    bool ok = st == QB_OK && qb_json_push(all, json_stringn(text, len));
    free(text);
    if (st != QB_OK && st != QB_ERR_NOMEM) return srv_error(r, 422, "tokenizer", "%s: %s", path, err.msg);
    return ok || srv_error(r, 500, "backend", "out of memory decoding %s", path);
}

/* TEI's /decode: "ids" a list of token ids or a list of them, each back to
 * its text; the reply is always a list. */
static bool decode(const srv_ctx *x, srv_call *c, srv_reply *r) {
    const json_t *v = json_object_get(c->doc, "ids");
    bool batch = json_is_array(v) && json_is_array(json_array_get(v, 0));
    size_t n = batch ? json_array_size(v) : 1, longest = 1;
    bool skip;
    if (!read_bool(c->doc, "skip_special_tokens", true, &skip, r)) return false;
    if (!json_is_array(v) || !json_array_size(v))
        return srv_error(r, 400, "empty", "\"ids\" must be a non-empty list of token ids, or a list of them");
    if (n > (size_t)x->p->max_client_batch_size)
        return srv_error(r, 413, "validation", "%zu id lists, more than the %d allowed per request", n,
                         x->p->max_client_batch_size);
    for (size_t i = 0; i < n; i++) {
        size_t k = json_array_size(batch ? json_array_get(v, i) : v);
        if (k > longest) longest = k;
    }
    int32_t *ids = malloc(longest * sizeof *ids);
    if (!ids || !(c->job.answer = json_array())) {
        free(ids);
        return srv_error(r, 500, "backend", "out of memory");
    }
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        char path[40] = "\"ids\"";
        if (batch) snprintf(path, sizeof path, "\"ids\"[%zu]", i);
        ok = decode_one(x, batch ? json_array_get(v, i) : v, skip, c->job.answer, ids, path, r);
    }
    free(ids);
    return ok;
}

/* Each input with the prompt before it, in one buffer for the caller to
 * free once they are tokenized. */
static char *prompt_inputs(const char *prompt, srv_input *in, int n) {
    size_t plen = strlen(prompt), total = 1;
    for (int i = 0; i < n; i++) total += plen + in[i].len;
    char *buf = malloc(total), *at = buf;
    for (int i = 0; buf && i < n; i++) {
        memcpy(at, prompt, plen);
        memcpy(at + plen, in[i].text, in[i].len);
        in[i].text = at;
        in[i].len += plen;
        at += in[i].len;
    }
    return buf;
}

bool srv_call_prepare(const srv_ctx *x, srv_call *c, srv_reply *r) {
    if (!json_is_object(c->doc)) return srv_error(r, 400, "validation", "the request body must be a JSON object");
    if (c->route == SRV_DECODE) return decode(x, c, r);
    if (!check_model(x, c->route, r) || !read_options(x, c, r)) return false;
    int cap = x->p->max_client_batch_size, n = 0;
    srv_input *in = calloc((size_t)cap, sizeof *in);
    if (!in) return srv_error(r, 500, "backend", "out of memory");
    bool ok = read_inputs(x, c, in, &n, r);
    if (ok && n == 0) ok = srv_error(r, 400, "empty", "no inputs");
    if (ok && n > cap)
        ok = srv_error(r, 413, "validation", "%d inputs, more than the %d allowed per request (--max-client-batch-size)",
                       n, cap);
    c->job.n = n;
    char *prompted = NULL;
    if (ok && c->prompt && *c->prompt && !(prompted = prompt_inputs(c->prompt, in, n)))
        ok = srv_error(r, 500, "backend", "out of memory");
    if (ok) ok = tokenize(x, c, in, r);
    free(prompted);
    free(in);
    return ok;
}

void srv_call_free(srv_call *c) {
    for (int i = 0; c->job.enc && i < c->job.n; i++) qb_encoding_free(&c->job.enc[i]);
    free(c->job.enc);
    free(c->job.out);
    json_decref(c->job.answer);
    json_decref(c->doc);
    memset(c, 0, sizeof *c);
}

/* ---- replies ---- */

/* Little-endian float32 in standard base64, as OpenAI's clients decode it. */
static json_t *base64_floats(const float *v, int n) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *b = (const unsigned char *)v; /* x86 and ARM Linux are little-endian */
    size_t len = (size_t)n * sizeof(float), o = 0;
    char *s = malloc((len + 2) / 3 * 4 + 1);
    if (!s) return NULL;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t w = (uint32_t)b[i] << 16 | (i + 1 < len ? (uint32_t)b[i + 1] << 8 : 0) | (i + 2 < len ? b[i + 2] : 0);
        s[o++] = abc[w >> 18 & 63];
        s[o++] = abc[w >> 12 & 63];
        s[o++] = i + 1 < len ? abc[w >> 6 & 63] : '=';
        s[o++] = i + 2 < len ? abc[w & 63] : '=';
    }
    json_t *j = qb_json_strn(s, o);
    free(s);
    return j;
}

static json_t *embedding_json(const srv_call *c, int i) {
    float *v = c->job.out + (size_t)i * c->job.width;
    if (c->normalize) qb_vec_normalize(v, c->job.width);
    return c->base64 ? base64_floats(v, c->job.width) : qb_json_floats(v, c->job.width);
}

static bool reply_embed(srv_call *c, srv_reply *r) {
    json_t *a = json_array();
    bool ok = a != NULL;
    for (int i = 0; ok && i < c->job.n; i++) ok = qb_json_push(a, embedding_json(c, i));
    return reply_json(r, a, ok);
}

/* TEI's /embed_all: each input's tokens' last hidden states, as the model
 * computed them (no pooling, no normalizing). */
static bool reply_embed_all(const srv_ctx *x, srv_call *c, srv_reply *r) {
    int h = x->info.hidden_size;
    json_t *a = json_array();
    bool ok = a != NULL;
    for (int i = 0; ok && i < c->job.n; i++) {
        json_t *rows = json_array();
        const float *v = c->job.out + (size_t)i * c->job.width;
        ok = rows != NULL;
        for (int t = 0; ok && t < c->job.enc[i].n; t++) ok = qb_json_push(rows, qb_json_floats(v + (size_t)t * h, h));
        ok = qb_json_push(a, qb_json_built(rows, ok));
    }
    return reply_json(r, a, ok);
}

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

/* TEI's /similarity: the cosine of each sentence's embedding with the
 * source sentence's (input 0). */
static bool reply_similarity(srv_call *c, srv_reply *r) {
    json_t *a = json_array();
    bool ok = a != NULL;
    const float *src = c->job.out;
    for (int i = 1; ok && i < c->job.n; i++)
        ok = qb_json_push(a, qb_json_real(cosine(src, c->job.out + (size_t)i * c->job.width, c->job.width)));
    return reply_json(r, a, ok);
}

static bool reply_openai(const srv_ctx *x, srv_call *c, srv_reply *r) {
    json_t *o = json_object(), *data = json_array(), *usage = json_object();
    const json_t *model = json_object_get(c->doc, "model");
    long long tokens = 0;
    bool ok = o && data && usage;
    for (int i = 0; ok && i < c->job.n; i++) {
        json_t *e = json_object();
        ok = e && qb_json_set_str(e, "object", "embedding") && qb_json_set_int(e, "index", i) &&
             qb_json_set(e, "embedding", embedding_json(c, i));
        ok = qb_json_push(data, e) && ok;
        tokens += c->job.enc[i].n;
    }
    ok = qb_json_set_int(usage, "prompt_tokens", tokens) && qb_json_set_int(usage, "total_tokens", tokens) && ok;
    ok = qb_json_set_str(o, "object", "list") && ok;
    ok = qb_json_set(o, "data", data) && ok;
    ok = qb_json_set_str(o, "model", json_is_string(model) ? json_string_value(model) : x->p->model_id) && ok;
    ok = qb_json_set(o, "usage", usage) && ok;
    return reply_json(r, o, ok);
}

/* Scores as the CLI prints them (the head's softmax or sigmoids), or the
 * raw logits when asked. */
static void scores(const srv_ctx *x, const float *logits, int n, bool raw, float *out) {
    if (raw) memcpy(out, logits, (size_t)n * sizeof *out);
    else qb_head_scores(x->m, logits, n, out);
}

/* Indices of v by decreasing value (ties in index order). */
static void rank(const float *v, int n, int *idx) {
    for (int i = 0; i < n; i++) {
        int k = i;
        while (k > 0 && v[idx[k - 1]] < v[i]) idx[k] = idx[k - 1], k--;
        idx[k] = i;
    }
}

static json_t *predict_json(const srv_ctx *x, const srv_call *c, int i, float *sc, int *idx) {
    int L = c->job.width;
    scores(x, c->job.out + (size_t)i * L, L, c->raw_scores, sc);
    rank(sc, L, idx);
    json_t *a = json_array();
    bool ok = a != NULL;
    for (int k = 0; ok && k < L; k++) {
        json_t *e = json_object();
        const char *label = qb_model_label(x->m, idx[k]);
        ok = e && qb_json_set_str(e, "label", label ? label : "") && qb_json_set_real(e, "score", sc[idx[k]]);
        ok = qb_json_push(a, e) && ok;
    }
    return qb_json_built(a, ok);
}

static bool reply_predict(const srv_ctx *x, srv_call *c, srv_reply *r) {
    int L = c->job.width;
    float *sc = malloc((size_t)L * sizeof *sc);
    int *idx = malloc((size_t)L * sizeof *idx);
    json_t *a = c->single ? NULL : json_array();
    bool ok = sc && idx && (c->single || a);
    if (ok && c->single) a = predict_json(x, c, 0, sc, idx), ok = a != NULL;
    for (int i = 0; ok && !c->single && i < c->job.n; i++) ok = qb_json_push(a, predict_json(x, c, i, sc, idx));
    free(sc);
    free(idx);
    return reply_json(r, a, ok);
}

static bool reply_rerank(const srv_ctx *x, srv_call *c, srv_reply *r) {
    int n = c->job.n;
    float *sc = malloc((size_t)n * sizeof *sc);
    int *idx = malloc((size_t)n * sizeof *idx);
    json_t *a = json_array();
    bool ok = sc && idx && a;
    for (int i = 0; ok && i < n; i++) scores(x, c->job.out + i, 1, c->raw_scores, &sc[i]);
    if (ok) rank(sc, n, idx);
    const json_t *texts = json_object_get(c->doc, "texts");
    for (int k = 0; ok && k < n; k++) {
        json_t *e = json_object();
        ok = e && qb_json_set_int(e, "index", idx[k]) && qb_json_set_real(e, "score", sc[idx[k]]);
        if (ok && c->return_text) ok = qb_json_set(e, "text", json_deep_copy(json_array_get(texts, (size_t)idx[k])));
        ok = qb_json_push(a, e) && ok;
    }
    free(sc);
    free(idx);
    return reply_json(r, a, ok);
}

static bool reply_answer(srv_call *c, srv_reply *r) { return reply_json(r, json_incref(c->job.answer), true); }

void srv_call_reply(const srv_ctx *x, srv_call *c, srv_reply *r) {
    if (c->job.failed) {
        srv_error(r, 500, "backend", "%s", c->job.error);
        return;
    }
    switch (c->route) {
    case SRV_EMBED: reply_embed(c, r); break;
    case SRV_OPENAI: reply_openai(x, c, r); break;
    case SRV_PREDICT: reply_predict(x, c, r); break;
    case SRV_RERANK: reply_rerank(x, c, r); break;
    case SRV_EMBED_ALL: reply_embed_all(x, c, r); break;
    case SRV_SIMILARITY: reply_similarity(c, r); break;
    default: reply_answer(c, r); break;
    }
}

static json_t *labels_json(const srv_ctx *x, bool to_id) {
    json_t *o = json_object();
    bool ok = o != NULL;
    for (int i = 0; ok && i < x->info.num_labels; i++) {
        const char *label = qb_model_label(x->m, i);
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        ok = to_id ? qb_json_set_int(o, label ? label : id, i) : qb_json_set_str(o, id, label ? label : id);
    }
    return qb_json_built(o, ok);
}

static json_t *pooling_json(unsigned pooling) {
    char s[96];
    return json_string(qb_pooling_format(pooling, s, sizeof s));
}

/* TEI's model_type: {"embedding": {"pooling"}} or {"classifier" or
 * "reranker": {"id2label", "label2id"}}. */
static json_t *model_type_json(const srv_ctx *x) {
    json_t *o = json_object(), *t = json_object();
    bool ok = true;
    if (x->embedder) ok = qb_json_set(t, "pooling", pooling_json(x->embed.pooling));
    else ok = qb_json_set(t, "id2label", labels_json(x, false)) && qb_json_set(t, "label2id", labels_json(x, true));
    const char *kind = x->embedder ? "embedding" : x->info.num_labels == 1 ? "reranker" : "classifier";
    ok = qb_json_set(o, kind, t) && ok;
    return qb_json_built(o, ok);
}

/* TEI's torch dtype name; for a quantized model, the format most of its
 * linears are stored in ("int8", "int4", "ternary-weight-only"...). */
static const char *model_dtype(const qb_model *m) {
    const qb_linear_format *most = NULL;
    int best = 0;
    for (int i = 0; i < m->n_linears; i++) {
        int n = 0;
        for (int k = 0; k < m->n_linears; k++) n += m->linears[k]->fmt == m->linears[i]->fmt;
        if (n > best) best = n, most = m->linears[i]->fmt;
    }
    const char *name = most ? most->name : "fp32";
    return !strcmp(name, "fp16") ? "float16" : !strcmp(name, "bf16") ? "bfloat16" : !strcmp(name, "fp32") ? "float32"
                                                                                                          : name;
}

void srv_info_reply(const srv_ctx *x, srv_reply *r) {
    json_t *o = json_object();
    const qb_serve_params *p = x->p;
    bool ok = o && qb_json_set_str(o, "model_id", p->model_id) && qb_json_set(o, "model_sha", json_null()) &&
              qb_json_set_str(o, "model_dtype", model_dtype(x->m)) && qb_json_set(o, "model_type", model_type_json(x)) &&
              qb_json_set_str(o, "architecture", x->info.class_name) &&
              qb_json_set_str(o, "quantization", qb_model_quant_summary(x->m)) &&
              qb_json_set_int(o, "max_concurrent_requests", p->max_concurrent_requests) &&
              qb_json_set_int(o, "max_input_length", x->max_len) &&
              qb_json_set_int(o, "max_batch_tokens", p->max_batch_tokens) &&
              qb_json_set_int(o, "max_client_batch_size", p->max_client_batch_size) &&
              qb_json_set_int(o, "tokenization_workers", p->http_threads) &&
              qb_json_set_str(o, "version", QBERT_VERSION);
    reply_json(r, o, ok);
}
