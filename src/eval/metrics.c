/* Confusion-matrix metrics and conlleval's entity-level counts. */
#include "eval/metrics.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- confusion matrix ------------------------------------------------- */

qb_status qb_confusion_init(qb_confusion *c, int n_classes) {
    memset(c, 0, sizeof *c);
    if (n_classes <= 0 || n_classes > 65536) return QB_ERR_ARG;
    c->counts = calloc((size_t)n_classes * (size_t)n_classes, sizeof *c->counts);
    if (!c->counts) return QB_ERR_NOMEM;
    c->n_classes = n_classes;
    return QB_OK;
}

/* A class id outside the matrix is dropped rather than written out of
 * bounds: the caller maps labels, and a bad id must not corrupt memory. */
void qb_confusion_add(qb_confusion *c, int gold, int pred) {
    if (gold < 0 || gold >= c->n_classes || pred < 0 || pred >= c->n_classes) return;
    c->counts[(size_t)gold * (size_t)c->n_classes + (size_t)pred]++;
    c->n++;
}

void qb_confusion_free(qb_confusion *c) {
    free(c->counts);
    memset(c, 0, sizeof *c);
}

static double ratio(int64_t num, int64_t den) { return den > 0 ? (double)num / (double)den : 0.0; }

static double harmonic_mean(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

double qb_confusion_accuracy(const qb_confusion *c) {
    int64_t right = 0;
    for (int k = 0; k < c->n_classes; k++) right += c->counts[(size_t)k * (size_t)c->n_classes + (size_t)k];
    return ratio(right, c->n);
}

static int64_t predicted_as(const qb_confusion *c, int k) {
    int64_t n = 0;
    for (int g = 0; g < c->n_classes; g++) n += c->counts[(size_t)g * (size_t)c->n_classes + (size_t)k];
    return n;
}

static int64_t gold_support(const qb_confusion *c, int k) {
    int64_t n = 0;
    for (int p = 0; p < c->n_classes; p++) n += c->counts[(size_t)k * (size_t)c->n_classes + (size_t)p];
    return n;
}

qb_class_score qb_confusion_class(const qb_confusion *c, int k) {
    qb_class_score s = {0};
    if (k < 0 || k >= c->n_classes) return s;
    int64_t tp = c->counts[(size_t)k * (size_t)c->n_classes + (size_t)k];
    s.support = gold_support(c, k);
    s.precision = ratio(tp, predicted_as(c, k));
    s.recall = ratio(tp, s.support);
    s.f1 = harmonic_mean(s.precision, s.recall);
    return s;
}

/* Classes that never occur, in gold or predictions, would add a 0 that
 * says nothing about the model, so they are left out of the mean. */
double qb_confusion_macro_f1(const qb_confusion *c) {
    double sum = 0;
    int used = 0;
    for (int k = 0; k < c->n_classes; k++) {
        qb_class_score s = qb_confusion_class(c, k);
        if (s.support == 0 && predicted_as(c, k) == 0) continue;
        sum += s.f1;
        used++;
    }
    return used ? sum / used : 0.0;
}

/* ---- entity spans, conlleval rules ------------------------------------ */

/* A tag cut into its prefix (B, I, E, S or O) and entity type.  Tags
 * without a "X-" prefix read as O, as anything but an entity. */
typedef struct {
    char prefix;
    const char *type;
    size_t type_len;
} span_tag;

static span_tag span_tag_parse(const char *tag) {
    span_tag t = {'O', "", 0};
    if (tag && tag[0] && tag[1] == '-' && strchr("BIES", tag[0])) {
        t.prefix = tag[0];
        t.type = tag + 2;
        t.type_len = strlen(tag + 2);
    }
    return t;
}

static bool same_type(span_tag a, span_tag b) {
    return a.type_len == b.type_len && memcmp(a.type, b.type, a.type_len) == 0;
}

/* conlleval's endOfChunk: does an entity end between prev and cur? */
static bool span_ends(span_tag prev, span_tag cur) {
    if (prev.prefix == 'O') return false;
    if (prev.prefix == 'E' || prev.prefix == 'S') return true;
    if (cur.prefix == 'B' || cur.prefix == 'S' || cur.prefix == 'O') return true;
    return !same_type(prev, cur);
}

/* conlleval's startOfChunk: does an entity start at cur? */
static bool span_starts(span_tag prev, span_tag cur) {
    if (cur.prefix == 'O') return false;
    if (cur.prefix == 'B' || cur.prefix == 'S') return true;
    if (prev.prefix == 'O' || prev.prefix == 'E' || prev.prefix == 'S') return true;
    return !same_type(prev, cur);
}

/* Walks both sequences at once as conlleval does: an entity is correct when
 * gold and prediction start it at the same word with the same type and end
 * it at the same word.  Position n is a virtual O that closes open spans. */
/* The counts of type t (NULL past QB_ENTITY_TYPES_MAX or for a long name). */
static qb_entity_type_counts *type_counts(qb_entity_counts *c, span_tag t) {
    for (int i = 0; i < c->n_types; i++)
        if (strlen(c->types[i].name) == t.type_len && !memcmp(c->types[i].name, t.type, t.type_len))
            return &c->types[i];
    if (c->n_types == QB_ENTITY_TYPES_MAX || t.type_len >= sizeof c->types[0].name) return NULL;
    qb_entity_type_counts *k = &c->types[c->n_types++];
    memcpy(k->name, t.type, t.type_len);
    k->name[t.type_len] = 0;
    return k;
}

static void count_entity(qb_entity_counts *c, span_tag t, int64_t tp, int64_t gold, int64_t pred) {
    qb_entity_type_counts *k = type_counts(c, t);
    if (!k) return;
    k->tp += tp;
    k->n_gold += gold;
    k->n_pred += pred;
}

void qb_entity_add(qb_entity_counts *c, const char *const *gold, const char *const *pred, int n) {
    const span_tag outside = {'O', "", 0};
    span_tag g_prev = outside, p_prev = outside;
    bool matching = false;
    for (int i = 0; i <= n; i++) {
        span_tag g = i < n ? span_tag_parse(gold[i]) : outside;
        span_tag p = i < n ? span_tag_parse(pred[i]) : outside;
        bool g_end = span_ends(g_prev, g), p_end = span_ends(p_prev, p);
        bool g_start = span_starts(g_prev, g), p_start = span_starts(p_prev, p);
        if (matching) {
            if (g_end && p_end && same_type(g_prev, p_prev)) {
                c->tp++;
                count_entity(c, g_prev, 1, 0, 0);
                matching = false;
            } else if (g_end != p_end || !same_type(g, p)) {
                matching = false;
            }
        }
        if (g_start && p_start && same_type(g, p)) matching = true;
        c->n_gold += g_start;
        c->n_pred += p_start;
        if (g_start) count_entity(c, g, 0, 1, 0);
        if (p_start) count_entity(c, p, 0, 0, 1);
        g_prev = g;
        p_prev = p;
    }
}

double qb_entity_precision(const qb_entity_counts *c) { return ratio(c->tp, c->n_pred); }

double qb_entity_recall(const qb_entity_counts *c) { return ratio(c->tp, c->n_gold); }

double qb_entity_f1(const qb_entity_counts *c) {
    return harmonic_mean(qb_entity_precision(c), qb_entity_recall(c));
}

double qb_entity_type_f1(const qb_entity_type_counts *t) {
    return harmonic_mean(ratio(t->tp, t->n_pred), ratio(t->tp, t->n_gold));
}

static int by_type_name(const void *a, const void *b) {
    return strcmp(((const qb_entity_type_counts *)a)->name, ((const qb_entity_type_counts *)b)->name);
}

void qb_entity_sort_types(qb_entity_counts *c) { qsort(c->types, (size_t)c->n_types, sizeof *c->types, by_type_name); }
