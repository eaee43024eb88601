/* Entity spans of a token-classification model's output, grouped as
 * Hugging Face's aggregation_strategy="simple" groups them: each sub-token
 * tagged by its argmax, runs of one entity type grouped (a B- tag starts a
 * new group), "O" groups dropped.  One implementation for the CLI, the
 * server and the Python binding. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "qbert.h"

/* The bytes of a piece's text in its word: "##", "▁" or "Ġ" prefixes off. */
static size_t qb_entity_piece_len(const char *piece) {
    if (!piece) return 0;
    size_t n = strlen(piece);
    if (n >= 2 && !memcmp(piece, "##", 2)) return n - 2;
    if (n >= 2 && (unsigned char)piece[0] == 0xC4 && (unsigned char)piece[1] == 0xA0) return n - 2;
    if (n >= 3 && !memcmp(piece, "\xE2\x96\x81", 3)) return n - 3;
    return n;
}

/* Token t tagged by its argmax, with that label's softmax probability. */
static void qb_entity_tag(const qb_model *m, const float *logits, int L, qb_entity *t) {
    int best = qb_argmax(logits, L);
    double sum = 0;
    for (int i = 0; i < L; i++) sum += exp((double)logits[i] - logits[best]);
    const char *name = qb_model_label(m, best);
    t->label = best;
    t->type_offset = !strncmp(name, "B-", 2) || !strncmp(name, "I-", 2) ? 2 : 0;
    t->score = (float)(1.0 / sum); /* qb_softmax's (float) value at the argmax */
}

/* Byte spans of word w's tokens: each piece's own when their lengths add
 * up to the word's (plain text), else the whole word for each (accents or
 * normalization changed them). */
static void qb_entity_spans(const qb_model *m, const qb_encoding *e, const qb_word_span *w, int t0, int t1,
                            qb_entity *tags) {
    size_t start = w->start, sum = 0;
    for (int t = t0; t < t1; t++) sum += qb_entity_piece_len(qb_token_text(m, e->input_ids[t]));
    bool exact = sum == w->end - w->start;
    for (int t = t0; t < t1; t++) {
        size_t n = qb_entity_piece_len(qb_token_text(m, e->input_ids[t]));
        tags[t - t0].start = exact ? start : w->start;
        tags[t - t0].end = exact ? start + n : w->end;
        start += n;
    }
}

static bool qb_entity_continues(const qb_model *m, const qb_entity *a, const qb_entity *b) {
    const char *x = qb_model_label(m, a->label), *y = qb_model_label(m, b->label);
    return strncmp(y, "B-", 2) && a->segment == b->segment && !strcmp(x + a->type_offset, y + b->type_offset);
}

int qb_entities_simple(const qb_model *m, const qb_encoding *e, const float *logits, const qb_word_span *spans,
                       int n_text, int n_words, qb_entity *out) {
    qb_model_info info;
    qb_model_get_info(m, &info);
    int L = info.num_labels, n = 0;
    for (int t = 0; t < e->n;) { /* the words' tokens, packed into out */
        int w = e->word_ids[t], t1 = t + 1;
        if (w < 0 || w >= n_words) {
            t++;
            continue;
        }
        while (t1 < e->n && e->word_ids[t1] == w) t1++;
        for (int u = t; u < t1; u++) {
            qb_entity_tag(m, logits + (size_t)u * L, L, &out[n + u - t]);
            out[n + u - t].segment = w >= n_text;
        }
        qb_entity_spans(m, e, &spans[w], t, t1, out + n);
        n += t1 - t;
        t = t1;
    }
    /* Groups, compacted in place: group k is written once tokens [g, t)
     * are read, and k <= g. */
    int k = 0;
    for (int g = 0, t = 1; n && t <= n; t++) {
        if (t < n && qb_entity_continues(m, &out[g], &out[t])) continue;
        double score = 0;
        for (int u = g; u < t; u++) score += out[u].score;
        qb_entity grp = out[g];
        grp.end = out[t - 1].end;
        grp.score = score / (t - g);
        if (strcmp(qb_model_label(m, grp.label) + grp.type_offset, "O")) out[k++] = grp;
        g = t;
    }
    return k;
}
