/* Masked-LM pre-training data: reading texts, tokenizing them with the
 * flags masking needs, and Hugging Face's 80/10/10 masking. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "model/model.h"
#include "model/ops.h"
#include "train/mlm_data.h"

/* ---- texts ------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static bool blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') return false;
    return true;
}

static bool grow_texts(qb_mlm_texts *t, int cap) {
    const char **text = realloc(t->text, (size_t)cap * sizeof *text);
    if (text) t->text = text;
    size_t *len = realloc(t->len, (size_t)cap * sizeof *len);
    if (len) t->len = len;
    int *line = realloc(t->line, (size_t)cap * sizeof *line);
    if (line) t->line = line;
    return text && len && line;
}

/* One document a non-blank line (CR before LF dropped). */
static qb_status load_plain(qb_mlm_texts *t, int limit, qb_error *err) {
    size_t size = 0;
    qb_status st = qb_file_read_all(t->path, &t->buf, &size, err);
    if (st) return st;
    int cap = 0, line = 0;
    for (size_t at = 0; at < size && (limit <= 0 || t->n < limit);) {
        const char *s = t->buf + at, *nl = memchr(s, '\n', size - at);
        size_t n = nl ? (size_t)(nl - s) : size - at;
        at += n + 1;
        line++;
        if (n && s[n - 1] == '\r') n--;
        if (blank(s, n)) continue;
        if (t->n == cap && !grow_texts(t, cap = cap ? 2 * cap : 1024))
            return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", t->path);
        t->text[t->n] = s;
        t->len[t->n] = n;
        t->line[t->n++] = line;
    }
    return QB_OK;
}

/* The dataset readers' text column (IMDB's "<br />" read as whitespace). */
static qb_status load_dataset(qb_mlm_texts *t, int limit, qb_error *err) {
    qb_status st = qb_dataset_load(t->path, QB_DATA_AUTO, NULL, limit, &t->ds, err);
    if (st) return st;
    if (t->ds.format == QB_DATA_CONLL)
        return qb_fail(err, QB_ERR_FORMAT, "%s: CoNLL word columns are not pre-training text", t->path);
    if (t->ds.n && !grow_texts(t, t->ds.n)) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", t->path);
    for (int i = 0; i < t->ds.n; i++) {
        const qb_example *x = &t->ds.ex[i];
        if (blank(x->text, x->text_len)) continue;
        t->text[t->n] = x->text;
        t->len[t->n] = x->text_len;
        t->line[t->n++] = x->line;
    }
    return QB_OK;
}

qb_status qb_mlm_texts_load(const char *path, int limit, qb_mlm_texts *t, qb_error *err) {
    memset(t, 0, sizeof *t);
    t->path = strdup(path);
    if (!t->path) return qb_fail(err, QB_ERR_NOMEM, "out of memory");
    bool dataset = ends_with(path, ".tsv") || ends_with(path, ".jsonl") || ends_with(path, ".ndjson");
    qb_status st = dataset ? load_dataset(t, limit, err) : load_plain(t, limit, err);
    if (!st && !t->n) st = qb_fail(err, QB_ERR_FORMAT, "%s: no text to train on (the file is empty or blank)", path);
    if (st) qb_mlm_texts_free(t);
    return st;
}

void qb_mlm_texts_free(qb_mlm_texts *t) {
    free(t->text);
    free(t->len);
    free(t->line);
    free(t->path);
    free(t->buf);
    if (t->ds.ex) qb_dataset_free(&t->ds);
    memset(t, 0, sizeof *t);
}

/* ---- tokenizing with flags ---------------------------------------------- */

/* Whether piece id continues the word before it: WordPiece marks
 * continuations ("##"), SentencePiece and byte-level BPE mark word starts
 * ("\u2581", "\u0120"). */
static bool continues_word(const qb_tokenizer *tok, int32_t id) {
    const char *p = qb_tokenizer_piece(tok, id);
    if (!p) return false;
    if (qb_tokenizer_kind(tok) == QB_TOK_WORDPIECE) return !strncmp(p, "##", 2);
    return strncmp(p, "\xe2\x96\x81", 3) && strncmp(p, "\xc4\xa0", 2);
}

/* The template's first and last tokens ([CLS], [SEP]) are special, and so
 * is any of their ids, the mask's or the padding's inside the text. */
static void token_flags(const qb_model *m, const qb_encoding *e, uint8_t *flags) {
    int32_t cls = e->input_ids[0], sep = e->input_ids[e->n - 1], pad = qb_tokenizer_pad_id(m->tok);
    for (int i = 0; i < e->n; i++) {
        int32_t id = e->input_ids[i];
        bool special = i == 0 || i == e->n - 1 || id == cls || id == sep || id == pad || id == m->mask_id;
        flags[i] = special ? QB_MLM_SPECIAL : 0;
        if (!special && i > 0 && !(flags[i - 1] & QB_MLM_SPECIAL) && continues_word(m->tok, id))
            flags[i] |= QB_MLM_CONTINUES;
    }
}

qb_status qb_train_set_encode_mlm(const qb_model *m, const qb_mlm_texts *texts, int max_length, qb_train_set *ts,
                                  qb_error *err) {
    memset(ts, 0, sizeof *ts);
    ts->n = texts->n;
    ts->start = calloc((size_t)texts->n + 1, sizeof *ts->start);
    if (!ts->start) return qb_fail(err, QB_ERR_NOMEM, "train: out of memory");
    qb_encoding enc = {0};
    size_t cap = 0, at = 0;
    qb_status st = QB_OK;
    for (int i = 0; !st && i < texts->n; i++) {
        st = qb_tokenize(m, texts->text[i], texts->len[i], NULL, 0, max_length, &enc, err);
        if (st) {
            qb_error inner = *err;
            st = qb_fail(err, inner.code, "%s:%d: %s", texts->path, texts->line[i], inner.msg);
            break;
        }
        if (at + (size_t)enc.n > cap) {
            cap = cap ? 2 * cap : 65536;
            while (cap < at + (size_t)enc.n) cap *= 2;
            int32_t *ids = realloc(ts->ids, cap * sizeof *ids), *types = ids ? realloc(ts->types, cap * sizeof *types)
                                                                              : NULL;
            uint8_t *flags = types ? realloc(ts->flags, cap) : NULL;
            if (ids) ts->ids = ids;
            if (types) ts->types = types;
            if (!flags) {
                st = qb_fail(err, QB_ERR_NOMEM, "train: out of memory for %zu tokens", cap);
                break;
            }
            ts->flags = flags;
        }
        memcpy(ts->ids + at, enc.input_ids, (size_t)enc.n * sizeof *ts->ids);
        memcpy(ts->types + at, enc.token_type_ids, (size_t)enc.n * sizeof *ts->types);
        token_flags(m, &enc, ts->flags + at);
        at += (size_t)enc.n;
        ts->start[i + 1] = (int64_t)at;
        if (enc.n > ts->max_len) ts->max_len = enc.n;
    }
    qb_encoding_free(&enc);
    return st;
}

/* ---- masking ------------------------------------------------------------ */

/* A uniform 64-bit draw for (seed, key, index, stream): splitmix64's
 * finalizer over their mix. */
static uint64_t draw(uint64_t seed, uint64_t key, uint64_t index, uint64_t stream) {
    uint64_t z = seed * 0x9e3779b97f4a7c15ull ^ key * 0xbf58476d1ce4e5b9ull ^ index * 0x94d049bb133111ebull ^
                 stream * 0xd6e8feb86659fd93ull;
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t seed, uint64_t key, uint64_t index, uint64_t stream) {
    return (double)(draw(seed, key, index, stream) >> 11) * (1.0 / 9007199254740992.0);
}

enum { DRAW_CHOOSE, DRAW_MASK, DRAW_RANDOM, DRAW_ID, DRAW_SHUFFLE };

/* DataCollatorForWholeWordMask: the words (a first piece and its
 * continuations; specials are no word) in a random order, each taken whole
 * while the total stays within round(n * p) (at least 1). */
static void choose_words(const qb_mlm_masking *p, uint64_t key, const int32_t *ids, const uint8_t *flags, int n,
                         int32_t *labels, int *word) {
    int n_words = 0;
    for (int i = 0; i < n; i++)
        if (!(flags[i] & QB_MLM_SPECIAL) && (!(flags[i] & QB_MLM_CONTINUES) || !n_words)) word[n_words++] = i;
    for (int i = n_words - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)(draw(p->seed, key, (uint64_t)i, DRAW_SHUFFLE) % (uint64_t)(i + 1)), w = word[i];
        word[i] = word[j];
        word[j] = w;
    }
    int want = (int)rint(n * (double)p->probability), taken = 0;
    if (want < 1) want = 1;
    for (int k = 0; k < n_words && taken < want; k++) {
        int end = word[k] + 1;
        while (end < n && (flags[end] & QB_MLM_CONTINUES)) end++;
        if (taken + end - word[k] > want) continue;
        for (int i = word[k]; i < end; i++) labels[i] = ids[i];
        taken += end - word[k];
    }
}

int qb_mlm_mask(const qb_mlm_masking *p, uint64_t key, int32_t *ids, const uint8_t *flags, int n, int32_t *labels,
                int *scratch) {
    for (int i = 0; i < n; i++) labels[i] = QB_IGNORE_INDEX;
    if (p->whole_word) choose_words(p, key, ids, flags, n, labels, scratch);
    else
        for (int i = 0; i < n; i++)
            if (!(flags[i] & QB_MLM_SPECIAL) && uniform(p->seed, key, (uint64_t)i, DRAW_CHOOSE) < p->probability)
                labels[i] = ids[i];
    int count = 0;
    for (int i = 0; i < n; i++) {
        if (labels[i] == QB_IGNORE_INDEX) continue;
        count++;
        if (uniform(p->seed, key, (uint64_t)i, DRAW_MASK) < 0.8) ids[i] = p->mask_id;
        else if (uniform(p->seed, key, (uint64_t)i, DRAW_RANDOM) < 0.5)
            ids[i] = (int32_t)(draw(p->seed, key, (uint64_t)i, DRAW_ID) % (uint64_t)p->vocab_size);
    }
    return count;
}
