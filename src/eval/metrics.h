/* Classification metrics: a confusion matrix gives accuracy, per-class
 * precision/recall/F1 and macro-F1; spans decoded with conlleval's rules
 * give entity-level F1 for NER. */
#ifndef QB_EVAL_METRICS_H
#define QB_EVAL_METRICS_H

#include <stdint.h>

#include "qbert.h"

typedef struct {
    int n_classes;
    int64_t *counts;    /* [gold * n_classes + pred] */
    int64_t n;
} qb_confusion;

qb_status qb_confusion_init(qb_confusion *c, int n_classes);
void qb_confusion_add(qb_confusion *c, int gold, int pred);
void qb_confusion_free(qb_confusion *c);

typedef struct {
    double precision, recall, f1;
    int64_t support;
} qb_class_score;

double qb_confusion_accuracy(const qb_confusion *c);
qb_class_score qb_confusion_class(const qb_confusion *c, int k);
double qb_confusion_macro_f1(const qb_confusion *c); /* over classes with support or predictions */

/* Entity-level (exact span) counts over IOB/IOB2 tag sequences, conlleval
 * rules: an I- tag that does not continue an entity of the same type starts
 * a new one.  Tags are strings such as "B-PER", "I-LOC", "O". */
#define QB_ENTITY_TYPES_MAX 32 /* types counted apart (CoNLL has 4); later ones only in the total */
typedef struct {
    char name[24];
    int64_t tp, n_gold, n_pred;
} qb_entity_type_counts;

typedef struct {
    int64_t tp, n_gold, n_pred;
    qb_entity_type_counts types[QB_ENTITY_TYPES_MAX]; /* by first appearance */
    int n_types;
} qb_entity_counts;

void qb_entity_add(qb_entity_counts *c, const char *const *gold, const char *const *pred, int n);
double qb_entity_precision(const qb_entity_counts *c);
double qb_entity_recall(const qb_entity_counts *c);
double qb_entity_f1(const qb_entity_counts *c);
/* The same scores for one type's counts (sorted by name with qb_entity_sort_types). */
double qb_entity_type_f1(const qb_entity_type_counts *t);
void qb_entity_sort_types(qb_entity_counts *c);

#endif
