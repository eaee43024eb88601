/* Label sets, up-front tokenization and length-bucketed batches. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/escape.h"
#include "model/ops.h"
#include "train/train_data.h"

/* ---- labels ----------------------------------------------------------- */

static bool is_integer(const char *s) {
    char *end;
    if (!*s) return false;
    (void)strtol(s, &end, 10);
    return !*end;
}

/* "B-PER" sorts as ("PER", 0), "I-PER" as ("PER", 1); "O" before all. */
static int tag_cmp(const char *a, const char *b) {
    bool ao = !strcmp(a, "O"), bo = !strcmp(b, "O");
    if (ao || bo) return bo - ao;
    bool ap = strlen(a) > 2 && a[1] == '-', bp = strlen(b) > 2 && b[1] == '-';
    if (!ap || !bp) return ap != bp ? (ap ? -1 : 1) : strcmp(a, b);
    int c = strcmp(a + 2, b + 2);
    return c ? c : (a[0] == 'B' ? -1 : b[0] == 'B' ? 1 : strcmp(a, b));
}

static int cmp_tag(const void *a, const void *b) { return tag_cmp(*(char *const *)a, *(char *const *)b); }

static int cmp_int_label(const void *a, const void *b) {
    long x = strtol(*(char *const *)a, NULL, 10), y = strtol(*(char *const *)b, NULL, 10);
    return (x > y) - (x < y);
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool has_label(const qb_label_set *ls, const char *name) {
    for (int i = 0; i < ls->n; i++)
        if (!strcmp(ls->names[i], name)) return true;
    return false;
}

static qb_status add_label(qb_label_set *ls, int *cap, const char *name, qb_error *err) {
    if (has_label(ls, name)) return QB_OK;
    if (ls->n == *cap) {
        int c = *cap ? 2 * *cap : 16;
        char **grown = realloc(ls->names, (size_t)c * sizeof *grown);
        if (!grown) return qb_fail(err, QB_ERR_NOMEM, "train: out of memory for labels");
        ls->names = grown;
        *cap = c;
    }
    ls->names[ls->n] = strdup(name);
    if (!ls->names[ls->n]) return qb_fail(err, QB_ERR_NOMEM, "train: out of memory for labels");
    ls->n++;
    return QB_OK;
}

static qb_status add_dataset_labels(qb_label_set *ls, int *cap, const qb_dataset *ds, qb_error *err) {
    qb_status st = QB_OK;
    for (int i = 0; !st && i < ds->n; i++) {
        const qb_example *x = &ds->ex[i];
        if (!ls->token_task && !x->label)
            st = qb_fail(err, QB_ERR_FORMAT, "%s:%d: example has no label", ds->path, x->line);
        else if (!ls->token_task)
            st = add_label(ls, cap, x->label, err);
        for (int w = 0; !st && ls->token_task && w < x->n_words; w++) st = add_label(ls, cap, x->tags[w], err);
    }
    return st;
}

/* A sentence label only DEV has would get a head row no example trains
 * (tags are many and rare: a short --limit may miss some, so DEV adds them). */
static qb_status check_dev_labels(const qb_label_set *ls, const qb_dataset *dev, const qb_dataset *train,
                                  qb_error *err) {
    for (int i = 0; !ls->token_task && i < dev->n; i++)
        if (dev->ex[i].label && !has_label(ls, dev->ex[i].label))
            return qb_fail(err, QB_ERR_FORMAT, "%s:%d: label '%s' never occurs in the training data %s", dev->path,
                           dev->ex[i].line, dev->ex[i].label, train->path);
    return QB_OK;
}

qb_status qb_label_set_collect(const qb_dataset *train, const qb_dataset *dev, qb_label_set *ls, qb_error *err) {
    memset(ls, 0, sizeof *ls);
    ls->token_task = train->format == QB_DATA_CONLL;
    int cap = 0;
    qb_status st = add_dataset_labels(ls, &cap, train, err);
    if (!st && dev) st = check_dev_labels(ls, dev, train, err);
    if (!st && dev) st = add_dataset_labels(ls, &cap, dev, err);
    if (!st && ls->n < 2)
        st = qb_fail(err, QB_ERR_FORMAT, "%s: %d distinct label%s; training needs at least 2", train->path, ls->n,
                     ls->n == 1 ? "" : "s");
    if (st) {
        qb_label_set_free(ls);
        return st;
    }
    bool numeric = true;
    for (int i = 0; i < ls->n; i++) numeric &= is_integer(ls->names[i]);
    qsort(ls->names, (size_t)ls->n, sizeof *ls->names,
          ls->token_task ? cmp_tag : numeric ? cmp_int_label : cmp_name);
    return QB_OK;
}

void qb_label_set_free(qb_label_set *ls) {
    for (int i = 0; ls->names && i < ls->n; i++) free(ls->names[i]);
    free(ls->names);
    memset(ls, 0, sizeof *ls);
}

/* ---- tokenization ----------------------------------------------------- */

/* Grows the packed arrays to hold `need` tokens. */
static bool reserve_tokens(qb_train_set *ts, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    int32_t *ids = realloc(ts->ids, c * sizeof *ids);
    if (ids) ts->ids = ids;
    int32_t *types = realloc(ts->types, c * sizeof *types);
    if (types) ts->types = types;
    if (!ids || !types) return false;
    if (ts->token_task) {
        int32_t *labels = realloc(ts->labels, c * sizeof *labels);
        if (!labels) return false;
        ts->labels = labels;
    }
    *cap = c;
    return true;
}

/* Copies one encoding in at token offset `at`, with its labels. */
static qb_status store_example(qb_train_set *ts, const qb_dataset *ds, int i, const qb_encoding *enc, size_t at,
                               qb_label_map_fn label_of, const void *map_ctx, qb_error *err) {
    const qb_example *x = &ds->ex[i];
    memcpy(ts->ids + at, enc->input_ids, (size_t)enc->n * sizeof(int32_t));
    memcpy(ts->types + at, enc->token_type_ids, (size_t)enc->n * sizeof(int32_t));
    char label[128];
    if (!ts->token_task) {
        ts->labels[i] = label_of(map_ctx, x->label);
        if (ts->labels[i] < 0)
            return qb_fail(err, QB_ERR_FORMAT, "%s:%d: unknown label '%s'", ds->path, x->line,
                           qb_escape_str(label, sizeof label, x->label));
        return QB_OK;
    }
    for (int j = 0; j < enc->n; j++) {
        int w = enc->word_ids[j];
        bool first = w >= 0 && (j == 0 || enc->word_ids[j - 1] != w);
        ts->labels[at + j] = first ? label_of(map_ctx, x->tags[w]) : QB_IGNORE_INDEX;
        if (first && ts->labels[at + j] < 0)
            return qb_fail(err, QB_ERR_FORMAT, "%s:%d: unknown tag '%s'", ds->path, x->line,
                           qb_escape_str(label, sizeof label, x->tags[w]));
    }
    return QB_OK;
}

qb_status qb_train_set_encode(const qb_model *m, const qb_dataset *ds, int max_length, qb_label_map_fn label_of,
                              const void *map_ctx, qb_train_set *ts, qb_error *err) {
    memset(ts, 0, sizeof *ts);
    ts->token_task = ds->format == QB_DATA_CONLL;
    ts->n = ds->n;
    ts->start = calloc((size_t)ds->n + 1, sizeof *ts->start);
    if (!ts->token_task) ts->labels = calloc((size_t)ds->n + 1, sizeof *ts->labels);
    if (!ts->start || (!ts->token_task && !ts->labels)) return qb_fail(err, QB_ERR_NOMEM, "train: out of memory");
    qb_encoding enc = {0};
    size_t cap = 0, at = 0;
    qb_status st = QB_OK;
    for (int i = 0; !st && i < ds->n; i++) {
        st = qb_example_tokenize(m, ds, &ds->ex[i], max_length, &enc, err);
        if (st) break;
        if (!reserve_tokens(ts, &cap, at + (size_t)enc.n)) st = qb_fail(err, QB_ERR_NOMEM, "train: out of memory");
        if (!st) st = store_example(ts, ds, i, &enc, at, label_of, map_ctx, err);
        at += (size_t)enc.n;
        ts->start[i + 1] = (int64_t)at;
        if (enc.n > ts->max_len) ts->max_len = enc.n;
    }
    qb_encoding_free(&enc);
    return st;
}

void qb_train_set_free(qb_train_set *ts) {
    free(ts->start);
    free(ts->ids);
    free(ts->types);
    free(ts->labels);
    free(ts->flags);
    memset(ts, 0, sizeof *ts);
}

/* ---- batches ---------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void shuffle_ints(int *v, int n, uint64_t *rng) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(splitmix(rng) % (uint64_t)(i + 1)), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

typedef struct {
    int index, len;
} sized;

/* Ties keep the shuffled order, so the result does not depend on qsort. */
static int cmp_sized(const void *a, const void *b) {
    const sized *x = a, *y = b;
    if (x->len != y->len) return x->len - y->len;
    return (x->index > y->index) - (x->index < y->index);
}

enum { BATCHES_PER_WINDOW = 32 };

int qb_train_set_batches(const qb_train_set *ts, int batch, uint64_t seed, int epoch, int *order, int *bounds) {
    uint64_t rng = seed ^ (0x5851f42d4c957f2dull * (uint64_t)(epoch + 1));
    for (int i = 0; i < ts->n; i++) order[i] = i;
    shuffle_ints(order, ts->n, &rng);
    int window = batch * BATCHES_PER_WINDOW;
    sized *w = malloc((size_t)(window < ts->n ? window : ts->n) * sizeof *w + 1);
    int *starts = malloc(((size_t)ts->n / (size_t)batch + 2) * sizeof *starts);
    int *tmp = malloc((size_t)ts->n * sizeof *tmp + 1);
    if (!w || !starts || !tmp) {
        free(w), free(starts), free(tmp);
        return -1;
    }
    for (int at = 0; at < ts->n; at += window) {
        int n = ts->n - at < window ? ts->n - at : window;
        for (int k = 0; k < n; k++) {
            /* position in the shuffle as the tie-breaker */
            w[k].index = at + k;
            w[k].len = (int)(ts->start[order[at + k] + 1] - ts->start[order[at + k]]);
        }
        qsort(w, (size_t)n, sizeof *w, cmp_sized);
        for (int k = 0; k < n; k++) tmp[at + k] = order[w[k].index];
    }
    int n_batches = 0;
    for (int at = 0; at < ts->n; at += batch) starts[n_batches++] = at;
    shuffle_ints(starts, n_batches, &rng);
    int pos = 0;
    for (int b = 0; b < n_batches; b++) {
        int end = starts[b] + batch < ts->n ? starts[b] + batch : ts->n;
        bounds[b] = pos;
        for (int k = starts[b]; k < end; k++) order[pos++] = tmp[k];
    }
    bounds[n_batches] = pos;
    free(w), free(starts), free(tmp);
    return n_batches;
}
