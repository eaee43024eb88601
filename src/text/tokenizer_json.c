/* tokenizer.json, Hugging Face tokenizers' serialization: the model, the
 * normalizer, the pre-tokenizer and the post-processor are read into the
 * engine's own tokenizers (WordPiece, byte-level BPE), and every component
 * qbert cannot run exactly is refused by name rather than approximated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/escape.h"
#include "core/json.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"

/* Real tokenizer.json files are 0.5-17 MB (XLM-R's 250k pieces: 17 MB);
 * jansson's values take up to ~20x the text, so 32 MiB bounds a hostile
 * file's memory near 0.7 GB. */
#define TJ_FILE_MAX ((size_t)32 << 20)
/* A vocabulary's ids must be dense enough that id -> piece stays an array. */
#define TJ_MAX_VOCAB (1 << 24)

typedef struct {
    const char *path;
    json_t *root, *model;
    const char **pieces; /* borrowed from root */
    size_t *lens;
    int n;               /* vocab ids 0..n-1 */
} tj_ctx;

static const char *tj_type(const json_t *v) {
    const char *s = qb_json_str(json_object_get(v, "type"), NULL);
    return s ? s : "(no type)";
}

static qb_status tj_unsupported(const tj_ctx *c, const char *part, const json_t *v, qb_error *err) {
    char type[64];
    return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: %s %s is not supported", c->path, part,
                   qb_escape_str(type, sizeof type, tj_type(v)));
}

/* n tokens, each id once, one past n-1: some id below n has no token.
 * Named, as a deleted vocab entry (HF: MergeTokenOutOfVocabulary or a
 * missing id) is what leaves it. */
static qb_status tj_vocab_gap(const tj_ctx *c, size_t n, qb_error *err) {
    size_t k = 0;
    while (k < n && c->pieces[k]) k++;
    return qb_fail(err, QB_ERR_FORMAT, "%s: model.vocab has no token with id %zu (its %zu ids must be 0..%zu, each once)",
                   c->path, k, n, n - 1);
}

/* model.vocab, an object token -> id with ids 0..n-1 each once. */
static qb_status tj_vocab_object(tj_ctx *c, const json_t *vocab, qb_error *err) {
    size_t n = json_object_size(vocab);
    if (!json_is_object(vocab) || n == 0)
        return qb_fail(err, QB_ERR_FORMAT, "%s: model.vocab is not a non-empty object", c->path);
    if (n > TJ_MAX_VOCAB) return qb_fail(err, QB_ERR_FORMAT, "%s: model.vocab has %zu tokens, too many", c->path, n);
    c->pieces = calloc(n, sizeof *c->pieces);
    c->lens = calloc(n, sizeof *c->lens);
    if (!c->pieces || !c->lens) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", c->path);
    c->n = (int)n;
    const char *key, *past = NULL;
    json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        int64_t id;
        bool is_id = qb_json_int(v, &id) && id >= 0;
        if (!is_id || (size_t)id >= n) {
            char shown[64];
            if (!is_id || id > INT32_MAX)
                return qb_fail(err, QB_ERR_FORMAT, "%s: model.vocab[\"%s\"] is not an id in 0..%zu", c->path,
                               qb_escape_str(shown, sizeof shown, key), n - 1);
            past = key; /* an id past the end means one below it is missing: that gap is the problem */
            continue;
        }
        if (c->pieces[id])
            return qb_fail(err, QB_ERR_FORMAT, "%s: model.vocab gives id %lld twice", c->path, (long long)id);
        c->pieces[id] = key;
        c->lens[id] = strlen(key); /* jansson keys hold no NUL */
    }
    return past ? tj_vocab_gap(c, n, err) : QB_OK;
}

static int32_t tj_vocab_id(const tj_ctx *c, const char *s) {
    if (!s) return -1;
    for (int i = 0; i < c->n; i++) /* only at load, for a handful of names */
        if (strcmp(c->pieces[i], s) == 0) return i;
    return -1;
}

/* ---- the model ---------------------------------------------------------- */

static qb_status tj_wordpiece(tj_ctx *c, qb_tokenizer *t, const json_t *norm, const json_t *pre, qb_error *err) {
    const json_t *m = c->model;
    const char *prefix = qb_json_str(json_object_get(m, "continuing_subword_prefix"), NULL);
    int64_t max_chars = 100;
    const json_t *mc = json_object_get(m, "max_input_chars_per_word");
    if ((prefix && strcmp(prefix, "##")) || (mc && (!qb_json_int(mc, &max_chars) || max_chars != 100)))
        return qb_fail(err, QB_ERR_UNSUPPORTED,
                       "%s: model WordPiece with a continuing_subword_prefix other than ## or "
                       "max_input_chars_per_word other than 100 is not supported", c->path);
    if (!qb_json_str_eq(json_object_get(m, "unk_token"), "[UNK]"))
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: model WordPiece with an unk_token other than [UNK] is not supported",
                       c->path);
    if ((!json_is_null(norm) && !qb_json_str_eq(json_object_get(norm, "type"), "BertNormalizer")) ||
        !qb_json_str_eq(json_object_get(pre, "type"), "BertPreTokenizer")) {
        /* not BERT's own pair: the general pipeline, word by word */
        qb_tok_options o = qb_tok_default_options();
        t->kind = QB_TOK_WORDPIECE;
        qb_status st = qb_hfp_load(norm, pre, c->path, &t->pipe, err);
        if (st == QB_OK) st = qb_wp_load_pieces(c->pieces, c->lens, c->n, &o, c->path, &t->wp, err);
        if (st != QB_OK) return st;
        qb_hfp_set_wordpiece(t->pipe, t->wp);
        snprintf(t->desc, sizeof t->desc, "tokenizer.json: WordPiece, %d tokens", c->n);
        return QB_OK;
    }
    qb_tok_options o = qb_tok_default_options();
    o.slow = false;
    if (json_is_null(norm)) {
        o.do_lower_case = false;
        o.strip_accents = 0;
        o.tokenize_chinese_chars = false;
    } else {
        if (!qb_json_get_bool(norm, "clean_text", true))
            return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: normalizer BertNormalizer with clean_text false is not supported",
                           c->path);
        o.do_lower_case = qb_json_get_bool(norm, "lowercase", true);
        o.tokenize_chinese_chars = qb_json_get_bool(norm, "handle_chinese_chars", true);
        const json_t *sa = json_object_get(norm, "strip_accents");
        o.strip_accents = json_is_boolean(sa) ? qb_json_bool(sa, false) : -1;
    }
    t->kind = QB_TOK_WORDPIECE;
    qb_status st = qb_wp_load_pieces(c->pieces, c->lens, c->n, &o, c->path, &t->wp, err);
    if (st == QB_OK)
        snprintf(t->desc, sizeof t->desc, "tokenizer.json: WordPiece, %d tokens", c->n);
    return st;
}

/* merges: ["a b", ...] (tokenizers < 0.20) or [["a", "b"], ...]. */
static qb_status tj_merges(const tj_ctx *c, const json_t *merges, qb_bpe_spec *s, qb_error *err) {
    size_t n = json_array_size(merges);
    if (!json_is_array(merges)) return qb_fail(err, QB_ERR_FORMAT, "%s: model.merges is not an array", c->path);
    const char **a = calloc(n + 1, sizeof *a), **b = calloc(n + 1, sizeof *b);
    size_t *la = calloc(n + 1, sizeof *la), *lb = calloc(n + 1, sizeof *lb);
    s->merge_a = a, s->merge_b = b, s->merge_a_len = la, s->merge_b_len = lb, s->n_merges = n;
    if (!a || !b || !la || !lb) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", c->path);
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(merges, i);
        size_t len;
        const char *str = qb_json_str(m, &len);
        if (str) {
            const char *sp = memchr(str, ' ', len);
            if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - str)))
                return qb_fail(err, QB_ERR_FORMAT, "%s: model.merges[%zu] is not two tokens split by one space",
                               c->path, i);
            a[i] = str, la[i] = (size_t)(sp - str), b[i] = sp + 1, lb[i] = len - la[i] - 1;
        } else if (json_array_size(m) == 2 && (a[i] = qb_json_str(json_array_get(m, 0), &la[i])) &&
                   (b[i] = qb_json_str(json_array_get(m, 1), &lb[i]))) {
        } else {
            return qb_fail(err, QB_ERR_FORMAT, "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", c->path, i);
        }
    }
    return QB_OK;
}

static qb_status tj_bpe(tj_ctx *c, qb_tokenizer *t, const json_t *norm, const json_t *pre, qb_error *err) {
    const json_t *m = c->model;
    /* no normalizer and ByteLevel alone: the direct path; else the pipeline */
    bool direct = json_is_null(norm) && qb_json_str_eq(json_object_get(pre, "type"), "ByteLevel");
    if (!direct) {
        qb_status st = qb_hfp_load(norm, pre, c->path, &t->pipe, err);
        if (st != QB_OK) return st;
    }
    const json_t *drop = json_object_get(m, "dropout");
    const char *pfx = qb_json_str(json_object_get(m, "continuing_subword_prefix"), NULL);
    const char *sfx = qb_json_str(json_object_get(m, "end_of_word_suffix"), NULL);
    if ((drop && !json_is_null(drop) && qb_json_number(drop, 0) != 0) || (pfx && *pfx) || (sfx && *sfx) ||
        qb_json_get_bool(m, "byte_fallback", false) || qb_json_get_bool(m, "fuse_unk", false))
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: model BPE with dropout, a subword prefix or suffix, "
                       "byte_fallback or fuse_unk is not supported", c->path);
    qb_bpe_spec s = {.pieces = c->pieces, .lens = c->lens, .n = c->n, .byte_level = direct,
                     .add_prefix_space = qb_json_get_bool(pre, "add_prefix_space", true),
                     .use_regex = qb_json_get_bool(pre, "use_regex", true),
                     .ignore_merges = qb_json_get_bool(m, "ignore_merges", false)};
    const json_t *unk = json_object_get(m, "unk_token");
    s.unk_id = json_is_null(unk) || !unk ? -1 : tj_vocab_id(c, qb_json_str(unk, NULL));
    qb_status st = tj_merges(c, json_object_get(m, "merges"), &s, err);
    t->kind = QB_TOK_BPE;
    if (st == QB_OK) st = qb_bpe_load(&s, c->path, &t->bpe, err);
    free((void *)s.merge_a), free((void *)s.merge_b), free((void *)s.merge_a_len), free((void *)s.merge_b_len);
    if (st == QB_OK && t->pipe) qb_hfp_set_bpe(t->pipe, t->bpe);
    if (st == QB_OK)
        snprintf(t->desc, sizeof t->desc, "tokenizer.json: BPE%s, %d tokens",
                 direct || qb_hfp_byte_level(t->pipe) ? " (byte-level)" : "", c->n);
    return st;
}

/* ---- added tokens, the post-processor ------------------------------------- */

static qb_status tj_added(tj_ctx *c, qb_tokenizer *t, qb_error *err) {
    const json_t *arr = json_object_get(c->root, "added_tokens");
    size_t n = json_array_size(arr);
    if (arr && !json_is_array(arr) && !json_is_null(arr))
        return qb_fail(err, QB_ERR_FORMAT, "%s: added_tokens is not an array", c->path);
    if (n > TJ_MAX_VOCAB) return qb_fail(err, QB_ERR_FORMAT, "%s: too many added_tokens", c->path);
    t->added = calloc(n + 1, sizeof *t->added);
    if (!t->added) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", c->path);
    for (size_t i = 0; i < n; i++) {
        const json_t *a = json_array_get(arr, i);
        int64_t id;
        size_t len;
        const char *s = qb_json_str(json_object_get(a, "content"), &len);
        if (!s || len == 0 || !qb_json_int(json_object_get(a, "id"), &id) || id < 0 || id >= TJ_MAX_VOCAB)
            return qb_fail(err, QB_ERR_FORMAT, "%s: added_tokens[%zu] needs a non-empty content and an id", c->path, i);
        qb_tok_added *d = &t->added[t->n_added];
        if (!(d->content = malloc(len + 1))) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", c->path);
        memcpy(d->content, s, len + 1);
        d->len = len;
        d->id = (int32_t)id;
        d->lstrip = qb_json_get_bool(a, "lstrip", false);
        d->rstrip = qb_json_get_bool(a, "rstrip", false);
        d->single_word = qb_json_get_bool(a, "single_word", false);
        d->special = qb_json_get_bool(a, "special", false);
        d->normalized = qb_json_get_bool(a, "normalized", !d->special);
        t->n_added++;
    }
    qb_tok_added_index(t);
    return QB_OK;
}

/* The ids of a token named by the post-processor: the vocab's, else an added token's. */
static int32_t tj_token_id(const tj_ctx *c, const qb_tokenizer *t, const char *s) {
    for (int i = 0; s && i < t->n_added; i++)
        if (strcmp(t->added[i].content, s) == 0) return t->added[i].id;
    return tj_vocab_id(c, s);
}

static bool tj_push(qb_tok_item *it, int *n, int8_t seq, int32_t id, int32_t type) {
    if (*n >= QB_TOK_MAX_ITEMS) return false;
    it[(*n)++] = (qb_tok_item){seq, id, type};
    return true;
}

static qb_status tj_template_side(const tj_ctx *c, const json_t *pp, const char *side, qb_tok_item *it, int *n,
                                  qb_error *err) {
    const json_t *arr = json_object_get(pp, side), *sp = json_object_get(pp, "special_tokens");
    unsigned seen = 0; /* each sequence once: the truncation budget counts each segment once */
    *n = 0;
    if (!json_is_array(arr)) return qb_fail(err, QB_ERR_FORMAT, "%s: post_processor.%s is not an array", c->path, side);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i), *x;
        int64_t type = 0;
        if ((x = json_object_get(e, "Sequence"))) {
            const char *which = qb_json_str(json_object_get(x, "id"), NULL);
            qb_json_int(json_object_get(x, "type_id"), &type);
            if (!which || (strcmp(which, "A") && strcmp(which, "B")) || !tj_push(it, n, which[0] == 'B', 0, (int32_t)type))
                return qb_fail(err, QB_ERR_FORMAT, "%s: post_processor.%s[%zu] is a bad Sequence", c->path, side, i);
            if (seen & (1u << (which[0] == 'B')))
                return qb_fail(err, QB_ERR_FORMAT, "%s: post_processor.%s uses sequence %s twice", c->path, side, which);
            seen |= 1u << (which[0] == 'B');
        } else if ((x = json_object_get(e, "SpecialToken"))) {
            const char *name = qb_json_str(json_object_get(x, "id"), NULL);
            qb_json_int(json_object_get(x, "type_id"), &type);
            const json_t *ids = json_object_get(json_object_get(sp, name ? name : ""), "ids");
            if (!name || !json_is_array(ids) || json_array_size(ids) == 0)
                return qb_fail(err, QB_ERR_FORMAT, "%s: post_processor.%s[%zu] names a special token without ids",
                               c->path, side, i);
            for (size_t k = 0; k < json_array_size(ids); k++) {
                int64_t id;
                if (!qb_json_int(json_array_get(ids, k), &id) || id < 0 || id >= TJ_MAX_VOCAB ||
                    !tj_push(it, n, -1, (int32_t)id, (int32_t)type))
                    return qb_fail(err, QB_ERR_FORMAT, "%s: post_processor.%s[%zu] has a bad id or too many tokens",
                                   c->path, side, i);
            }
        } else {
            return qb_fail(err, QB_ERR_FORMAT, "%s: post_processor.%s[%zu] is neither Sequence nor SpecialToken",
                           c->path, side, i);
        }
    }
    return QB_OK;
}

/* BertProcessing / RobertaProcessing: "cls": ["<s>", 0], "sep": ["</s>", 2]. */
static bool tj_pair_id(const json_t *pp, const char *key, int32_t *id) {
    int64_t v;
    const json_t *a = json_object_get(pp, key);
    if (json_array_size(a) != 2 || !qb_json_int(json_array_get(a, 1), &v) || v < 0 || v >= TJ_MAX_VOCAB) return false;
    *id = (int32_t)v;
    return true;
}

/* RobertaProcessing's and ByteLevel's offset trimming. */
static void tj_trim(qb_tokenizer *t, const json_t *p) {
    const char *type = qb_json_str(json_object_get(p, "type"), NULL);
    if (!type || (strcmp(type, "ByteLevel") && strcmp(type, "RobertaProcessing"))) return;
    t->trim_offsets = qb_json_get_bool(p, "trim_offsets", true);
    t->trim_keeps_prefix = qb_json_get_bool(p, "add_prefix_space", true);
}

static qb_status tj_post(const tj_ctx *c, qb_tokenizer *t, const json_t *pp, qb_error *err) {
    qb_tok_template *tm = &t->tmpl;
    tj_trim(t, pp);
    if (qb_json_str_eq(json_object_get(pp, "type"), "Sequence")) { /* ByteLevel steps touch only offsets */
        const json_t *list = json_object_get(pp, "processors"), *keep = NULL;
        for (size_t i = 0; i < json_array_size(list); i++) {
            const json_t *p = json_array_get(list, i);
            tj_trim(t, p);
            if (qb_json_str_eq(json_object_get(p, "type"), "ByteLevel")) continue;
            if (keep) return tj_unsupported(c, "post_processor Sequence with two id-changing steps, one", p, err);
            keep = p;
        }
        pp = keep;
    }
    const char *type = json_is_object(pp) ? tj_type(pp) : NULL;
    if (!type || strcmp(type, "ByteLevel") == 0) {
        *tm = (qb_tok_template){.n_single = 1, .n_pair = 2};
        tm->single[0] = tm->pair[0] = (qb_tok_item){0, 0, 0};
        tm->pair[1] = (qb_tok_item){1, 0, 1};
        return QB_OK;
    }
    int32_t cls, sep;
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0) {
        if (!tj_pair_id(pp, "cls", &cls) || !tj_pair_id(pp, "sep", &sep))
            return qb_fail(err, QB_ERR_FORMAT, "%s: post_processor %s needs cls and sep as [token, id]", c->path, type);
        qb_tok_template_bert(tm, cls, sep);
        if (type[0] == 'R') { /* <s> A </s></s> B </s>, one token type */
            tm->pair[3] = (qb_tok_item){-1, sep, 0};
            tm->pair[4] = (qb_tok_item){1, 0, 0};
            tm->pair[5] = (qb_tok_item){-1, sep, 0};
            tm->n_pair = 6;
        }
        return QB_OK;
    }
    if (strcmp(type, "TemplateProcessing") == 0) {
        qb_status st = tj_template_side(c, pp, "single", tm->single, &tm->n_single, err);
        if (st == QB_OK) st = tj_template_side(c, pp, "pair", tm->pair, &tm->n_pair, err);
        return st;
    }
    return tj_unsupported(c, "post_processor", pp, err);
}

/* id -> text over the vocab and the added tokens, for qb_tokenizer_piece. */
static qb_status tj_pieces(const tj_ctx *c, qb_tokenizer *t, qb_error *err) {
    int n = c->n;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id >= n) n = t->added[i].id + 1;
    t->pieces = calloc((size_t)n, sizeof *t->pieces);
    if (!t->pieces) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", c->path);
    t->n_pieces = n;
    for (int i = 0; i < c->n; i++)
        if (!(t->pieces[i] = strdup(c->pieces[i]))) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", c->path);
    for (int i = 0; i < t->n_added; i++)
        if (!t->pieces[t->added[i].id] && !(t->pieces[t->added[i].id] = strdup(t->added[i].content)))
            return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", c->path);
    for (int i = 0; i < n; i++)
        if (!t->pieces[i] && !(t->pieces[i] = strdup("")))
            return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", c->path);
    return QB_OK;
}

static qb_status tj_finish(tj_ctx *c, qb_tokenizer *t, qb_error *err);

static qb_status tj_unigram(tj_ctx *c, qb_tokenizer *t, const json_t *norm, const json_t *pre, qb_error *err) {
    t->kind = QB_TOK_UNIGRAM;
    qb_status st = qb_hfp_load(norm, pre, c->path, &t->pipe, err);
    if (st == QB_OK) st = qb_hfp_set_unigram(t->pipe, c->model, c->path, err);
    if (st != QB_OK) return st;
    int n = qb_hfp_unigram_size(t->pipe);
    c->pieces = calloc((size_t)n, sizeof *c->pieces);
    c->lens = calloc((size_t)n, sizeof *c->lens);
    if (!c->pieces || !c->lens) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", c->path);
    for (int i = 0; i < n; i++) {
        c->pieces[i] = qb_hfp_unigram_piece(t->pipe, i);
        c->lens[i] = strlen(c->pieces[i]);
    }
    c->n = n;
    snprintf(t->desc, sizeof t->desc, "tokenizer.json: Unigram, %d tokens", n);
    return QB_OK;
}

static qb_status tj_build(tj_ctx *c, qb_tokenizer *t, qb_error *err) {
    c->model = json_object_get(c->root, "model");
    if (!json_is_object(c->model)) return qb_fail(err, QB_ERR_FORMAT, "%s: no model object", c->path);
    const json_t *norm = json_object_get(c->root, "normalizer"), *pre = json_object_get(c->root, "pre_tokenizer");
    if (!norm) norm = json_null();
    if (!pre) pre = json_null();
    const char *type = qb_json_str(json_object_get(c->model, "type"), NULL);
    if (!type) /* files from tokenizers < 0.9 leave it out */
        type = json_object_get(c->model, "merges") ? "BPE" : "WordPiece";
    if (strcmp(type, "Unigram") == 0) {
        qb_status st = tj_unigram(c, t, norm, pre, err);
        if (st == QB_OK) st = tj_added(c, t, err);
        return st == QB_OK ? tj_finish(c, t, err) : st;
    }
    if (strcmp(type, "WordPiece") && strcmp(type, "BPE")) {
        char shown[64];
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: model %s is not supported", c->path,
                       qb_escape_str(shown, sizeof shown, type));
    }
    qb_status st = tj_vocab_object(c, json_object_get(c->model, "vocab"), err);
    if (st == QB_OK) st = tj_added(c, t, err);
    if (st == QB_OK) st = type[0] == 'W' ? tj_wordpiece(c, t, norm, pre, err) : tj_bpe(c, t, norm, pre, err);
    return st == QB_OK ? tj_finish(c, t, err) : st;
}

/* The decoder: one the tokenizers decode with, or a note for the error
 * qb_tokenizer_decode gives (encoding does not need it). */
static void tj_decoder(const tj_ctx *c, qb_tokenizer *t) {
    const json_t *d = json_object_get(c->root, "decoder");
    const char *type = qb_json_str(json_object_get(d, "type"), NULL), *pfx = NULL, *rep = NULL, *scheme = NULL;
    qb_tok_decoder *k = &t->dec;
    if (!d || json_is_null(d)) k->kind = QB_DEC_JOIN;
    else if (type && !strcmp(type, "WordPiece") && (pfx = qb_json_str(json_object_get(d, "prefix"), NULL)) &&
             !strcmp(pfx, "##"))
        *k = (qb_tok_decoder){.kind = QB_DEC_WORDPIECE, .cleanup = qb_json_get_bool(d, "cleanup", true)};
    else if (type && !strcmp(type, "ByteLevel")) k->kind = QB_DEC_BYTE_LEVEL;
    else if (type && !strcmp(type, "Metaspace") && (rep = qb_json_str(json_object_get(d, "replacement"), NULL)) &&
             !strcmp(rep, QB_UNI_SP_SPACE_UTF8)) {
        scheme = qb_json_str(json_object_get(d, "prepend_scheme"), NULL);
        *k = (qb_tok_decoder){.kind = QB_DEC_METASPACE,
                              .strip_first = scheme ? strcmp(scheme, "never") != 0
                                                    : qb_json_get_bool(d, "add_prefix_space", true)};
    } else {
        k->kind = QB_DEC_UNSUPPORTED;
        qb_escape_str(k->what, sizeof k->what, type ? type : "without a type");
    }
}

/* s[0..n) through the normalizer, a character at a time, into out. */
static qb_status tj_normalize(const qb_tokenizer *t, const char *s, size_t n, qb_tok_work *w, qb_bytebuf *out,
                              qb_error *err) {
    out->n = 0;
    for (size_t i = 0, k; i < n; i += k) {
        uint32_t cp;
        if (!(k = qb_utf8_decode_char(s + i, n - i, &cp))) k = 1;
        qb_bytebuf *c;
        qb_status st = t->pipe ? qb_hfp_normalize_char(t->pipe, s + i, k, w, &c, err)
                               : qb_wp_normalize_char(t->wp, s + i, k, w, &c, err);
        if (st) return st;
        if (!QB_TOK_RESERVE(out, out->n + c->n + 1)) return qb_fail(err, QB_ERR_NOMEM, "added tokens: out of memory");
        memcpy(out->v + out->n, c->v, c->n);
        out->n += c->n;
    }
    return QB_OK;
}

/* HF matches a "normalized": true added token in the normalized text, with
 * its content normalized too.  qbert matches in the raw text, which agrees
 * when the normalizer leaves the content as it is or only lowercases it (an
 * ASCII content): where the normalizer lowercases, the lowercased token
 * matches any casing of itself (fold).  Any other change is refused rather
 * than matched differently. */
static qb_status tj_normalized_one(const tj_ctx *c, const qb_tokenizer *t, qb_tok_added *a, qb_tok_work *w,
                                   qb_bytebuf *norm, qb_bytebuf *upper, qb_error *err) {
    qb_status st = tj_normalize(t, a->content, a->len, w, norm, err);
    if (st) return st;
    if (norm->n == a->len && qb_tok_is_ascii(a->content, a->len) && qb_tok_fold_eq(norm->v, a->content, a->len))
        memcpy(a->content, norm->v, a->len); /* decoding keeps the file's spelling: t->pieces */
    else if (norm->n != a->len || memcmp(norm->v, a->content, a->len)) {
        char shown[64];
        return qb_fail(err, QB_ERR_UNSUPPORTED,
                       "%s: added token \"%s\" is \"normalized\": true and the normalizer changes it: not supported",
                       c->path, qb_escape(shown, sizeof shown, a->content, a->len));
    }
    bool ascii = true, lower = false;
    if (!QB_TOK_RESERVE(upper, a->len + 1)) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", c->path);
    for (size_t i = 0; i < a->len; i++) {
        char ch = a->content[i];
        ascii = ascii && (unsigned char)ch < 0x80;
        lower = lower || (ch >= 'a' && ch <= 'z');
        upper->v[i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
    }
    if (!ascii || !lower) return QB_OK;
    st = tj_normalize(t, upper->v, a->len, w, norm, err);
    a->fold = !st && norm->n == a->len && !memcmp(norm->v, a->content, a->len);
    return st;
}

static qb_status tj_normalized_added(const tj_ctx *c, qb_tokenizer *t, qb_error *err) {
    if (!t->pipe && !(t->wp && t->kind == QB_TOK_WORDPIECE)) return QB_OK; /* no normalizer */
    qb_encoding scratch = {0};
    qb_bytebuf norm = {0}, upper = {0};
    qb_tok_work *w = scratch.work = calloc(1, sizeof *w);
    qb_status st = w ? QB_OK : qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", c->path);
    for (int i = 0; !st && i < t->n_added; i++)
        if (t->added[i].normalized) st = tj_normalized_one(c, t, &t->added[i], w, &norm, &upper, err);
    qb_tok_added_index(t); /* a lowercased content may start with another byte */
    qb_encoding_free(&scratch);
    free(norm.v);
    free(upper.v);
    return st;
}

/* What every model shares: the post-processor, id -> text, pad (the
 * "truncation" block is not read: see qb_model_max_length). */
static qb_status tj_finish(tj_ctx *c, qb_tokenizer *t, qb_error *err) {
    qb_status st = QB_OK;
    if (st == QB_OK) st = tj_post(c, t, json_object_get(c->root, "post_processor"), err);
    if (st == QB_OK) st = tj_pieces(c, t, err);
    if (st == QB_OK) tj_decoder(c, t);
    if (st == QB_OK) {
        int32_t pad = tj_token_id(c, t, "<pad>");
        t->pad_id = pad >= 0 ? pad : (pad = tj_token_id(c, t, "[PAD]")) >= 0 ? pad : 0;
        for (int i = 0; i < t->tmpl.n_pair + t->tmpl.n_single; i++) {
            const qb_tok_item *it = i < t->tmpl.n_pair ? &t->tmpl.pair[i] : &t->tmpl.single[i - t->tmpl.n_pair];
            if (it->seq < 0 && it->id >= t->n_pieces && st == QB_OK)
                st = qb_fail(err, QB_ERR_FORMAT, "%s: post_processor's id %d is past the vocabulary (%d tokens)",
                             c->path, it->id, t->n_pieces);
        }
    }
    return st == QB_OK ? tj_normalized_added(c, t, err) : st;
}

qb_status qb_tokenizer_load_json(const char *path, qb_tokenizer **out, qb_error *err) {
    *out = NULL;
    tj_ctx c = {.path = path};
    qb_status st = qb_json_load_object_max(path, TJ_FILE_MAX, &c.root, err);
    if (st != QB_OK) return st;
    qb_tokenizer *t = calloc(1, sizeof *t);
    if (!t) st = qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    if (st == QB_OK) st = tj_build(&c, t, err);
    free(c.pieces);
    free(c.lens);
    json_decref(c.root);
    if (st != QB_OK) {
        qb_tokenizer_free(t);
        return st;
    }
    *out = t;
    return QB_OK;
}
