/* Metrics against hand-computed values: confusion-matrix scores, and
 * entity counts that follow conlleval's span rules. */
#include <math.h>

#include "eval/metrics.h"
#include "test_util.h"

static int near(double a, double b) { return fabs(a - b) < 1e-12; }

/* gold 0 0 0 1 1 2, pred 0 0 1 1 2 2:
 *   class 0: tp 2, predicted 2, support 3 -> P 1,   R 2/3, F1 0.8
 *   class 1: tp 1, predicted 2, support 2 -> P 1/2, R 1/2, F1 0.5
 *   class 2: tp 1, predicted 2, support 1 -> P 1/2, R 1,   F1 2/3 */
static void fill_example(qb_confusion *c) {
    static const int gold[] = {0, 0, 0, 1, 1, 2}, pred[] = {0, 0, 1, 1, 2, 2};
    for (int i = 0; i < 6; i++) qb_confusion_add(c, gold[i], pred[i]);
}

static void test_confusion(void) {
    qb_confusion c;
    CHECK(qb_confusion_init(&c, 3) == QB_OK, "init");
    fill_example(&c);
    CHECK(c.n == 6, "n %lld", (long long)c.n);
    CHECK(near(qb_confusion_accuracy(&c), 4.0 / 6), "accuracy %f", qb_confusion_accuracy(&c));
    qb_class_score s0 = qb_confusion_class(&c, 0), s1 = qb_confusion_class(&c, 1), s2 = qb_confusion_class(&c, 2);
    CHECK(near(s0.precision, 1) && near(s0.recall, 2.0 / 3) && near(s0.f1, 0.8) && s0.support == 3,
          "class 0: %f %f %f %lld", s0.precision, s0.recall, s0.f1, (long long)s0.support);
    CHECK(near(s1.precision, 0.5) && near(s1.recall, 0.5) && near(s1.f1, 0.5) && s1.support == 2,
          "class 1: %f %f %f", s1.precision, s1.recall, s1.f1);
    CHECK(near(s2.precision, 0.5) && near(s2.recall, 1) && near(s2.f1, 2.0 / 3) && s2.support == 1,
          "class 2: %f %f %f", s2.precision, s2.recall, s2.f1);
    double macro = (0.8 + 0.5 + 2.0 / 3) / 3;
    CHECK(near(qb_confusion_macro_f1(&c), macro), "macro %f want %f", qb_confusion_macro_f1(&c), macro);

    /* Ids outside the matrix are dropped, not counted. */
    qb_confusion_add(&c, 3, 0);
    qb_confusion_add(&c, 0, -1);
    CHECK(c.n == 6, "out-of-range ids counted: n %lld", (long long)c.n);
    qb_class_score none = qb_confusion_class(&c, 7);
    CHECK(none.support == 0 && none.f1 == 0, "class 7 of 3");
    qb_confusion_free(&c);
}

static void test_macro_classes(void) {
    qb_confusion c;
    /* Class 3 never occurs: it stays out of the macro mean. */
    CHECK(qb_confusion_init(&c, 4) == QB_OK, "init");
    fill_example(&c);
    double macro = (0.8 + 0.5 + 2.0 / 3) / 3;
    CHECK(near(qb_confusion_macro_f1(&c), macro), "unused class: macro %f want %f", qb_confusion_macro_f1(&c),
          macro);
    qb_class_score s3 = qb_confusion_class(&c, 3);
    CHECK(s3.precision == 0 && s3.recall == 0 && s3.f1 == 0 && s3.support == 0, "empty class not 0");

    /* Predicted but never gold: it counts, with F1 0.  Class 0 becomes
     * tp 2, predicted 2, support 4 -> P 1, R 1/2, F1 2/3. */
    qb_confusion_add(&c, 0, 3);
    macro = (2.0 / 3 + 0.5 + 2.0 / 3 + 0) / 4;
    CHECK(near(qb_confusion_macro_f1(&c), macro), "predicted-only class: macro %f want %f",
          qb_confusion_macro_f1(&c), macro);
    CHECK(near(qb_confusion_accuracy(&c), 4.0 / 7), "accuracy %f", qb_confusion_accuracy(&c));
    qb_confusion_free(&c);

    CHECK(qb_confusion_init(&c, 2) == QB_OK, "init");
    CHECK(qb_confusion_accuracy(&c) == 0 && qb_confusion_macro_f1(&c) == 0, "empty matrix not 0");
    qb_confusion_free(&c);
    CHECK(qb_confusion_init(&c, 0) == QB_ERR_ARG && c.counts == NULL, "0 classes accepted");
}

typedef struct {
    long long tp, gold, pred;
} want_counts;

static void check_entities(const char *what, const char *const *gold, const char *const *pred, int n,
                           want_counts want) {
    qb_entity_counts c = {0};
    qb_entity_add(&c, gold, pred, n);
    CHECK(c.tp == want.tp && c.n_gold == want.gold && c.n_pred == want.pred,
          "%s: tp %lld gold %lld pred %lld, want %lld %lld %lld", what, (long long)c.tp, (long long)c.n_gold,
          (long long)c.n_pred, want.tp, want.gold, want.pred);
}

static void test_entity_rules(void) {
    {
        const char *g[] = {"O", "I-PER", "I-PER", "O", "B-LOC", "I-LOC"};
        check_entities("I- after O starts an entity; a span closes at the end", g, g, 6, (want_counts){2, 2, 2});
    }
    {
        const char *g[] = {"B-PER", "I-LOC"}, *p[] = {"B-PER", "I-PER"};
        check_entities("I-LOC after B-PER starts a LOC", g, p, 2, (want_counts){0, 2, 1});
        check_entities("I-LOC after B-PER, both sides", g, g, 2, (want_counts){2, 2, 2});
    }
    {
        const char *g[] = {"B-ORG", "B-ORG"}, *p[] = {"B-ORG", "I-ORG"};
        check_entities("B-X B-X is two entities", g, p, 2, (want_counts){0, 2, 1});
    }
    {
        const char *g[] = {"B-ORG", "I-ORG", "I-ORG"}, *p[] = {"B-ORG", "I-ORG", "O"};
        check_entities("prediction ends early", g, p, 3, (want_counts){0, 1, 1});
        check_entities("prediction runs long", p, g, 3, (want_counts){0, 1, 1});
    }
    {
        const char *g[] = {"O", "B-PER", "I-PER"}, *p[] = {"O", "B-ORG", "I-ORG"};
        check_entities("same span, other type", g, p, 3, (want_counts){0, 1, 1});
    }
    {
        /* IOB1: I-X opens an entity, B-X only splits two adjacent ones. */
        const char *g[] = {"I-PER", "I-PER", "B-PER", "O", "I-LOC"};
        check_entities("IOB1", g, g, 5, (want_counts){3, 3, 3});
    }
    {
        const char *g[] = {"O", "O"};
        check_entities("no entities", g, g, 2, (want_counts){0, 0, 0});
        check_entities("empty sentence", g, g, 0, (want_counts){0, 0, 0});
    }
}

/* Three sentences, counted into one total:
 *   1: gold PER[0,1] LOC[3]     pred PER[0,1]          -> tp 1, gold 2, pred 1
 *   2: gold MISC[1,2] PER[4]    pred MISC[1,2]         -> tp 1, gold 2, pred 1
 *   3: gold ORG[0]              pred ORG[0] (I-ORG) LOC[1] -> tp 1, gold 1, pred 2
 * tp 3, gold 5, pred 4: P 3/4, R 3/5, F1 2/3. */
static void test_entity_f1(void) {
    const char *g1[] = {"B-PER", "I-PER", "O", "B-LOC"}, *p1[] = {"B-PER", "I-PER", "O", "O"};
    const char *g2[] = {"O", "B-MISC", "I-MISC", "O", "B-PER"}, *p2[] = {"O", "B-MISC", "I-MISC", "O", "O"};
    const char *g3[] = {"B-ORG", "O"}, *p3[] = {"I-ORG", "B-LOC"};
    qb_entity_counts c = {0};
    CHECK(qb_entity_precision(&c) == 0 && qb_entity_recall(&c) == 0 && qb_entity_f1(&c) == 0, "empty not 0");
    qb_entity_add(&c, g1, p1, 4);
    qb_entity_add(&c, g2, p2, 5);
    qb_entity_add(&c, g3, p3, 2);
    CHECK(c.tp == 3 && c.n_gold == 5 && c.n_pred == 4, "tp %lld gold %lld pred %lld", (long long)c.tp,
          (long long)c.n_gold, (long long)c.n_pred);
    CHECK(near(qb_entity_precision(&c), 0.75), "precision %f", qb_entity_precision(&c));
    CHECK(near(qb_entity_recall(&c), 0.6), "recall %f", qb_entity_recall(&c));
    CHECK(near(qb_entity_f1(&c), 2.0 / 3), "f1 %f", qb_entity_f1(&c));
    /* per type, from the same table: LOC gold 1 pred 1 tp 0; MISC 1 1 1;
     * ORG 1 1 1; PER 2 1 1 */
    static const struct { const char *name; long long gold, pred, tp; double f1; } want[] = {
        {"LOC", 1, 1, 0, 0}, {"MISC", 1, 1, 1, 1}, {"ORG", 1, 1, 1, 1}, {"PER", 2, 1, 1, 2.0 / 3}};
    qb_entity_sort_types(&c);
    CHECK(c.n_types == 4, "%d entity types", c.n_types);
    for (int i = 0; i < 4 && i < c.n_types; i++) {
        const qb_entity_type_counts *t = &c.types[i];
        CHECK(!strcmp(t->name, want[i].name) && t->n_gold == want[i].gold && t->n_pred == want[i].pred &&
              t->tp == want[i].tp && near(qb_entity_type_f1(t), want[i].f1),
              "type %d: %s gold %lld pred %lld tp %lld", i, t->name, (long long)t->n_gold, (long long)t->n_pred,
              (long long)t->tp);
    }
}

int main(void) {
    test_confusion();
    test_macro_classes();
    test_entity_rules();
    test_entity_f1();
    return qb_test_done("test_metrics");
}
