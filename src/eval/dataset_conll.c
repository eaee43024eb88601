/* CoNLL reader: "word POS chunk TAG" lines, a blank line between sentences.
 * Only the first column (the word) and the last (the NER tag) are kept; all
 * sentences share one word array, sized once from the file's line count. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/dataset_read.h"

static bool is_sep(char c) { return c == ' ' || c == '\t'; }

static bool is_docstart(const qb_data_line *line) {
    static const char mark[] = "-DOCSTART-";
    size_t n = sizeof mark - 1;
    return line->len >= n && memcmp(line->s, mark, n) == 0 && (line->len == n || is_sep(line->s[n]));
}

/* Cuts the word (first column) and tag (last column) out of the line. */
static bool split_word_tag(char *s, size_t len, const char **word, size_t *word_len, const char **tag) {
    char *end = s + len;
    while (s < end && is_sep(*s)) s++;
    while (end > s && is_sep(end[-1])) end--;
    *end = '\0';
    char *w_end = s;
    while (w_end < end && !is_sep(*w_end)) w_end++;
    if (w_end == end) return false;
    char *t = end;
    while (!is_sep(t[-1])) t--;
    *word = s;
    *word_len = (size_t)(w_end - s);
    *w_end = '\0';
    *tag = t;
    return true;
}

/* A tab-separated line whose first field holds spaces is a TSV row (a
 * sentence and its label): read as CoNLL it would train one "sentence" of
 * the file's first words. */
static bool is_tsv_row(const qb_data_line *line) {
    const char *tab = memchr(line->s, '\t', line->len);
    return tab && memchr(line->s, ' ', (size_t)(tab - line->s)) != NULL;
}

qb_status qb_data_read_conll(qb_data_reader *r, qb_error *err) {
    qb_data_store *st = r->store;
    size_t cap = (size_t)r->cap;
    st->words = malloc(cap * sizeof *st->words);
    st->tags = malloc(cap * sizeof *st->tags);
    st->word_lens = malloc(cap * sizeof *st->word_lens);
    if (!st->words || !st->tags || !st->word_lens)
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", r->path);
    qb_example *sentence = NULL;
    int n_words = 0;
    qb_data_line line;
    while (qb_data_next_line(r, &line)) {
        if (qb_data_line_is_blank(&line) || is_docstart(&line)) {
            sentence = NULL;
            continue;
        }
        if (!sentence) {
            if (qb_data_full(r)) break;
            sentence = qb_data_push(r, line.no);
            sentence->words = st->words + n_words;
            sentence->tags = st->tags + n_words;
            sentence->word_lens = st->word_lens + n_words;
        }
        if (is_tsv_row(&line))
            return qb_fail(err, QB_ERR_FORMAT, "%s:%d: a tab-separated text with spaces: a TSV row, not CoNLL "
                           "(--task tsv?)", r->path, line.no);
        if (!split_word_tag(line.s, line.len, &st->words[n_words], &st->word_lens[n_words], &st->tags[n_words]))
            return qb_fail(err, QB_ERR_FORMAT, "%s:%d: expected a word and a tag separated by spaces",
                           r->path, line.no);
        n_words++;
        sentence->n_words++;
    }
    return QB_OK;
}
