/* Dataset readers: counts and first rows of the real SST-2, IMDB and
 * CoNLL-2003 files, format detection, limits, and small synthetic files for
 * line endings, JSON escapes and every error path. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/dataset.h"
#include "test_util.h"

enum { MAX_SCRATCH_FILES = 64 };

typedef struct {
    char dir[256];
    char path[512];
    char files[MAX_SCRATCH_FILES][512];
    int n_files;
} scratch;

/* Writes bytes (maybe holding NULs) to a file in the scratch folder. */
static const char *scratch_file(scratch *s, const char *name, const char *bytes, size_t len) {
    snprintf(s->path, sizeof s->path, "%s/%s", s->dir, name);
    if (s->n_files < MAX_SCRATCH_FILES) memcpy(s->files[s->n_files++], s->path, sizeof s->path);
    FILE *f = fopen(s->path, "wb");
    if (!f) return s->path;
    fwrite(bytes, 1, len, f);
    fclose(f);
    return s->path;
}

static void scratch_remove(scratch *s) {
    for (int i = 0; i < s->n_files; i++) unlink(s->files[i]);
    rmdir(s->dir);
}

static const char *scratch_text(scratch *s, const char *name, const char *text) {
    return scratch_file(s, name, text, strlen(text));
}

static bool str_is(const char *s, size_t len, const char *want) {
    return s && len == strlen(want) && memcmp(s, want, len) == 0;
}

static bool has_substring(const char *s, size_t len, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(s + i, needle, n) == 0) return true;
    }
    return false;
}

static void test_sst2(void) {
    char p[4096];
    const char *dev = qb_test_shared_path(p, sizeof p, "data/sst2/dev.tsv");
    qb_dataset ds;
    qb_error err = {0};
    CHECK(qb_dataset_load(dev, QB_DATA_SST2, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.n == 872, "n %d", ds.n);
    if (ds.n > 0) {
        const qb_example *e = &ds.ex[0];
        CHECK(str_is(e->text, e->text_len, "it 's a charming and often affecting journey . "), "%.*s",
              (int)e->text_len, e->text);
        CHECK(e->text[e->text_len] == '\0', "text not NUL-terminated");
        CHECK(e->label && strcmp(e->label, "1") == 0, "label %s", e->label);
        CHECK(e->pair == NULL && e->line == 2, "pair %p line %d", (const void *)e->pair, e->line);
    }
    int pos = 0, neg = 0;
    for (int i = 0; i < ds.n; i++) {
        pos += strcmp(ds.ex[i].label, "1") == 0;
        neg += strcmp(ds.ex[i].label, "0") == 0;
    }
    CHECK(pos == 444 && neg == 428, "pos %d neg %d", pos, neg);
    qb_dataset_free(&ds);

    CHECK(qb_dataset_load(dev, QB_DATA_AUTO, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.format == QB_DATA_SST2 && ds.n == 872, "auto: %s, n %d", qb_data_format_name(ds.format), ds.n);
    qb_dataset_free(&ds);

    CHECK(qb_dataset_load(dev, QB_DATA_AUTO, NULL, 10, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.n == 10, "limit 10: n %d", ds.n);
    qb_dataset_free(&ds);

    CHECK(qb_dataset_load(dev, QB_DATA_AUTO, NULL, 100000, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.n == 872, "limit past the end: n %d", ds.n);
    qb_dataset_free(&ds);

    const char *train = qb_test_shared_path(p, sizeof p, "data/sst2/train.tsv");
    CHECK(qb_dataset_load(train, QB_DATA_AUTO, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.n == 67349, "train n %d", ds.n);
    qb_dataset_free(&ds);
}

static void test_imdb(void) {
    char p[4096];
    const char *test = qb_test_shared_path(p, sizeof p, "data/imdb/test-2000.tsv");
    qb_dataset ds;
    qb_error err = {0};
    CHECK(qb_dataset_load(test, QB_DATA_AUTO, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.format == QB_DATA_IMDB && ds.n == 2000, "auto: %s, n %d", qb_data_format_name(ds.format), ds.n);
    int breaks = 0, bad_label = 0, unterminated = 0;
    for (int i = 0; i < ds.n; i++) {
        const qb_example *e = &ds.ex[i];
        breaks += has_substring(e->text, e->text_len, "<br />");
        bad_label += strcmp(e->label, i % 2 ? "1" : "0") != 0; /* rows alternate neg, pos */
        unterminated += e->text[e->text_len] != '\0';
    }
    CHECK(breaks == 0, "%d texts still hold <br />", breaks);
    CHECK(bad_label == 0, "%d labels out of the neg/pos alternation", bad_label);
    CHECK(unterminated == 0, "%d texts not NUL-terminated", unterminated);
    if (ds.n > 0)
        CHECK(strncmp(ds.ex[0].text, "Once again Mr. Costner", 22) == 0 && ds.ex[0].line == 2, "first %.22s",
              ds.ex[0].text);
    qb_dataset_free(&ds);

    const char *train = qb_test_shared_path(p, sizeof p, "data/imdb/train-8000.tsv");
    CHECK(qb_dataset_load(train, QB_DATA_IMDB, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.n == 8000, "train n %d", ds.n);
    qb_dataset_free(&ds);
}

static int count_tag(const qb_dataset *ds, const char *tag) {
    int n = 0;
    for (int i = 0; i < ds->n; i++) {
        for (int w = 0; w < ds->ex[i].n_words; w++) n += strcmp(ds->ex[i].tags[w], tag) == 0;
    }
    return n;
}

static void check_conll_counts(const char *rel, int sentences, int tokens) {
    char p[4096];
    const char *path = qb_test_shared_path(p, sizeof p, rel);
    qb_dataset ds;
    qb_error err = {0};
    CHECK(qb_dataset_load(path, QB_DATA_AUTO, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.format == QB_DATA_CONLL, "%s: detected %s", rel, qb_data_format_name(ds.format));
    int words = 0;
    for (int i = 0; i < ds.n; i++) words += ds.ex[i].n_words;
    CHECK(ds.n == sentences && words == tokens, "%s: %d sentences, %d tokens", rel, ds.n, words);
    qb_dataset_free(&ds);
}

static void test_conll(void) {
    char p[4096];
    const char *valid = qb_test_shared_path(p, sizeof p, "data/conll2003/valid.txt");
    qb_dataset ds;
    qb_error err = {0};
    CHECK(qb_dataset_load(valid, QB_DATA_CONLL, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.n == 3250, "valid n %d", ds.n);
    if (ds.n > 1) {
        const qb_example *e = &ds.ex[0];
        CHECK(e->n_words == 11 && e->line == 1, "first sentence: %d words, line %d", e->n_words, e->line);
        CHECK(str_is(e->words[2], e->word_lens[2], "LEICESTERSHIRE") && strcmp(e->tags[2], "B-ORG") == 0,
              "word 2: %s %s", e->words[2], e->tags[2]);
        CHECK(strcmp(e->words[0], "CRICKET") == 0 && strcmp(e->tags[0], "O") == 0, "word 0: %s %s",
              e->words[0], e->tags[0]);
        CHECK(ds.ex[1].line == 13 && str_is(ds.ex[1].words[0], ds.ex[1].word_lens[0], "LONDON"),
              "second sentence at line %d", ds.ex[1].line);
    }
    /* IOB2: every entity starts with B-, so these are SOURCE.txt's entity counts. */
    CHECK(count_tag(&ds, "B-PER") == 1842 && count_tag(&ds, "B-ORG") == 1341 &&
              count_tag(&ds, "B-LOC") == 1837 && count_tag(&ds, "B-MISC") == 922,
          "entities PER %d ORG %d LOC %d MISC %d", count_tag(&ds, "B-PER"), count_tag(&ds, "B-ORG"),
          count_tag(&ds, "B-LOC"), count_tag(&ds, "B-MISC"));
    qb_dataset_free(&ds);

    CHECK(qb_dataset_load(valid, QB_DATA_CONLL, NULL, 5, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.n == 5, "limit 5: n %d", ds.n);
    qb_dataset_free(&ds);

    check_conll_counts("data/conll2003/valid.txt", 3250, 51362);
    check_conll_counts("data/conll2003/train.txt", 14041, 203621);
    check_conll_counts("data/conll2003/test.txt", 3453, 46435);
}

/* Loads a synthetic file expecting an error of code whose message holds want. */
static void expect_error(scratch *s, const char *name, const char *text, qb_data_format fmt, qb_status code,
                         const char *want) {
    const char *path = scratch_text(s, name, text);
    qb_dataset ds;
    qb_error err = {0};
    qb_status st = qb_dataset_load(path, fmt, NULL, 0, &ds, &err);
    CHECK(st == code, "%s: status %s, want %s (%s)", name, qb_status_name(st), qb_status_name(code), err.msg);
    CHECK(strstr(err.msg, want) != NULL, "%s: message \"%s\" lacks \"%s\"", name, err.msg, want);
    CHECK(strstr(err.msg, name) != NULL, "%s: message \"%s\" does not name the file", name, err.msg);
    CHECK(ds.n == 0 && ds.ex == NULL && ds.storage == NULL, "%s: dataset not cleared", name);
}

static void test_errors(scratch *s) {
    expect_error(s, "short.tsv", "sentence\tlabel\na\t1\nb\nc\t0\n", QB_DATA_SST2, QB_ERR_FORMAT, "short.tsv:3:");
    expect_error(s, "nolabel.tsv", "sentence\tlabel\na\t\n", QB_DATA_AUTO, QB_ERR_FORMAT, "nolabel.tsv:2:");
    expect_error(s, "imdb3.tsv", "label\trating\tid\ttext\n1\t9\tx\n", QB_DATA_AUTO, QB_ERR_FORMAT, "imdb3.tsv:2:");
    expect_error(s, "empty.tsv", "", QB_DATA_AUTO, QB_ERR_FORMAT, "no examples");
    expect_error(s, "empty.jsonl", "", QB_DATA_JSONL, QB_ERR_FORMAT, "no examples");
    expect_error(s, "empty.conll", "\n\n", QB_DATA_CONLL, QB_ERR_FORMAT, "no examples");
    expect_error(s, "header.tsv", "sentence\tlabel\n", QB_DATA_AUTO, QB_ERR_FORMAT, "no examples");
    expect_error(s, "header2.tsv", "label\trating\tid\ttext\r\n\r\n", QB_DATA_AUTO, QB_ERR_FORMAT, "no examples");
    expect_error(s, "onecol.conll", "EU B-ORG\nrejects\n\n", QB_DATA_CONLL, QB_ERR_FORMAT, "onecol.conll:2:");
    expect_error(s, "bad.jsonl", "{\"text\": \"a\"}\n\n{\"text\": \"b\",}\n", QB_DATA_AUTO, QB_ERR_FORMAT,
                 "bad.jsonl:3:");
    expect_error(s, "notext.jsonl", "{\"label\": 1}\n", QB_DATA_JSONL, QB_ERR_FORMAT, "notext.jsonl:1:");
    expect_error(s, "array.jsonl", "{\"text\": \"a\"}\n[1]\n", QB_DATA_JSONL, QB_ERR_FORMAT, "array.jsonl:2:");
    /* read by position, these would calibrate on ids, labels and commas */
    expect_error(s, "ids.tsv", "id\treview\tscore\n1\tgood\t5\n\n2\tbad\t1\n", QB_DATA_AUTO, QB_ERR_FORMAT,
                 "header names no text column");
    expect_error(s, "labelfirst.tsv", "label\tcomment\n1\tgood\n0\tbad\n", QB_DATA_AUTO, QB_ERR_FORMAT,
                 "header names no text column");
    expect_error(s, "table.csv", "\"sentence\", label\nit is good,1\n", QB_DATA_AUTO, QB_ERR_FORMAT,
                 "comma-separated header");
    expect_error(s, "floatlabel.jsonl", "{\"text\": \"a\", \"label\": 0.5}\n", QB_DATA_JSONL, QB_ERR_FORMAT,
                 "floatlabel.jsonl:1:");

    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing.tsv", s->dir);
    qb_dataset ds;
    qb_error err = {0};
    CHECK(qb_dataset_load(missing, QB_DATA_AUTO, NULL, 0, &ds, &err) == QB_ERR_IO, "missing file: %s", err.msg);
    CHECK(strstr(err.msg, "missing.tsv") != NULL, "missing file message: %s", err.msg);
}

static void test_crlf(scratch *s) {
    /* With a byte-order mark too: detection must see past it. */
    const char *path = scratch_text(s, "crlf.tsv", "\xEF\xBB\xBFsentence\tlabel\r\nhello \t1\r\n\r\nbye\t0");
    qb_dataset ds;
    qb_error err = {0};
    CHECK(qb_dataset_load(path, QB_DATA_AUTO, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.format == QB_DATA_SST2 && ds.n == 2, "crlf: %s n %d", qb_data_format_name(ds.format), ds.n);
    if (ds.n == 2) {
        CHECK(str_is(ds.ex[0].text, ds.ex[0].text_len, "hello ") && strcmp(ds.ex[0].label, "1") == 0,
              "row 1: '%s' '%s'", ds.ex[0].text, ds.ex[0].label);
        CHECK(strcmp(ds.ex[1].label, "0") == 0 && ds.ex[1].line == 4, "row 2: '%s' line %d", ds.ex[1].label,
              ds.ex[1].line);
    }
    qb_dataset_free(&ds);

    path = scratch_text(s, "crlf.conll", "EU NNP B-NP B-ORG\r\nrejects VBZ B-VP O\r\n\r\n");
    CHECK(qb_dataset_load(path, QB_DATA_AUTO, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.format == QB_DATA_CONLL && ds.n == 1 && ds.ex[0].n_words == 2, "crlf conll: %s n %d",
          qb_data_format_name(ds.format), ds.n);
    if (ds.n == 1 && ds.ex[0].n_words == 2)
        CHECK(strcmp(ds.ex[0].tags[0], "B-ORG") == 0 && strcmp(ds.ex[0].tags[1], "O") == 0, "tags '%s' '%s'",
              ds.ex[0].tags[0], ds.ex[0].tags[1]);
    qb_dataset_free(&ds);
}

static void test_imdb_breaks(scratch *s) {
    const char *path = scratch_text(s, "br.tsv", "label\trating\tid\ttext\n1\t9\tt/1\tGood.<br /><br />Fun <br/>.\n");
    qb_dataset ds;
    qb_error err = {0};
    CHECK(qb_dataset_load(path, QB_DATA_IMDB, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    if (ds.n == 1)
        CHECK(str_is(ds.ex[0].text, ds.ex[0].text_len, "Good.  Fun <br/>.") && strcmp(ds.ex[0].label, "1") == 0,
              "text '%s'", ds.ex[0].text);
    qb_dataset_free(&ds);
}

static void test_jsonl(scratch *s) {
    static const char text[] = "\n{\"text\": \"a\\u0000b\", \"label\": 1}\n"
                               "  \n"
                               "{\"text\": \"x\", \"text_pair\": \"y \\\"q\\\"\", \"label\": \"pos\"}\n"
                               "{\"text_pair\": null, \"text\": \"\"}";
    const char *path = scratch_text(s, "x.jsonl", text);
    qb_dataset ds;
    qb_error err = {0};
    CHECK(qb_dataset_load(path, QB_DATA_AUTO, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.format == QB_DATA_JSONL && ds.n == 3, "jsonl: %s n %d", qb_data_format_name(ds.format), ds.n);
    if (ds.n == 3) {
        const qb_example *e = ds.ex;
        CHECK(e[0].text_len == 3 && memcmp(e[0].text, "a\0b", 3) == 0, "\\u0000 text len %zu", e[0].text_len);
        CHECK(e[0].label && strcmp(e[0].label, "1") == 0 && e[0].pair == NULL && e[0].line == 2,
              "row 1: label %s line %d", e[0].label, e[0].line);
        CHECK(str_is(e[1].pair, e[1].pair_len, "y \"q\"") && e[1].pair[e[1].pair_len] == '\0', "pair '%s'",
              e[1].pair);
        CHECK(str_is(e[1].text, e[1].text_len, "x") && strcmp(e[1].label, "pos") == 0, "row 2 '%s' '%s'",
              e[1].text, e[1].label);
        CHECK(e[2].text_len == 0 && e[2].pair == NULL && e[2].label == NULL && e[2].line == 5,
              "row 3: len %zu line %d", e[2].text_len, e[2].line);
    }
    qb_dataset_free(&ds);

    CHECK(qb_dataset_load(path, QB_DATA_JSONL, NULL, 2, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.n == 2, "jsonl limit 2: n %d", ds.n);
    qb_dataset_free(&ds);
}

static void test_conll_edges(scratch *s) {
    const char *path = scratch_text(s, "trail.conll",
                                    "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG  \n\n\n\n"
                                    "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n\n");
    qb_dataset ds;
    qb_error err = {0};
    CHECK(qb_dataset_load(path, QB_DATA_AUTO, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.format == QB_DATA_CONLL && ds.n == 2, "trailing blanks: %s n %d", qb_data_format_name(ds.format),
          ds.n);
    if (ds.n == 2) {
        CHECK(ds.ex[0].n_words == 1 && strcmp(ds.ex[0].tags[0], "B-ORG") == 0 && ds.ex[0].line == 3,
              "sentence 1: %d words, tag '%s'", ds.ex[0].n_words, ds.ex[0].tags[0]);
        CHECK(ds.ex[1].n_words == 2 && ds.ex[1].line == 7 && strcmp(ds.ex[1].tags[1], "I-PER") == 0 &&
                  str_is(ds.ex[1].words[1], ds.ex[1].word_lens[1], "Blackburn"),
              "sentence 2: %d words line %d", ds.ex[1].n_words, ds.ex[1].line);
    }
    qb_dataset_free(&ds);

    path = scratch_text(s, "nonl.conll", "a X O\n\nb Y B-LOC");
    CHECK(qb_dataset_load(path, QB_DATA_CONLL, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.n == 2 && ds.ex[1].n_words == 1 && strcmp(ds.ex[1].tags[0], "B-LOC") == 0, "no newline: n %d",
          ds.n);
    qb_dataset_free(&ds);
}

static void test_generic_tsv(scratch *s) {
    const char *path = scratch_text(s, "pairs.tsv", "label\ttext\tpair\nyes\tA b\tc D\tignored\nno\t\t\n");
    qb_tsv_columns cols = {.text_col = 1, .pair_col = 2, .label_col = 0, .header = -1};
    qb_dataset ds;
    qb_error err = {0};
    CHECK(qb_dataset_load(path, QB_DATA_TSV, &cols, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.n == 2, "pairs: n %d", ds.n);
    if (ds.n == 2) {
        CHECK(str_is(ds.ex[0].text, ds.ex[0].text_len, "A b") && str_is(ds.ex[0].pair, ds.ex[0].pair_len, "c D") &&
                  strcmp(ds.ex[0].label, "yes") == 0 && ds.ex[0].line == 2,
              "row 1: '%s' '%s' '%s'", ds.ex[0].text, ds.ex[0].pair, ds.ex[0].label);
        CHECK(ds.ex[1].text_len == 0 && ds.ex[1].pair_len == 0 && strcmp(ds.ex[1].label, "no") == 0, "row 2");
    }
    qb_dataset_free(&ds);

    cols.header = 0;
    CHECK(qb_dataset_load(path, QB_DATA_TSV, &cols, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.n == 3 && strcmp(ds.ex[0].label, "label") == 0, "header 0 keeps the first line: n %d", ds.n);
    qb_dataset_free(&ds);

    path = scratch_text(s, "plain.tsv", "good movie\t1\nbad one\t0\n");
    CHECK(qb_dataset_load(path, QB_DATA_AUTO, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.format == QB_DATA_TSV && ds.n == 2 && strcmp(ds.ex[1].label, "0") == 0, "plain: %s n %d",
          qb_data_format_name(ds.format), ds.n);
    qb_dataset_free(&ds);

    cols = (qb_tsv_columns){.text_col = 5, .pair_col = -1, .label_col = -1, .header = 0};
    CHECK(qb_dataset_load(path, QB_DATA_TSV, &cols, 0, &ds, &err) == QB_ERR_FORMAT &&
              strstr(err.msg, "plain.tsv:1:"),
          "text column 5 of 2: %s", err.msg);
    cols.text_col = -1;
    CHECK(qb_dataset_load(path, QB_DATA_TSV, &cols, 0, &ds, &err) == QB_ERR_ARG, "text column -1: %s", err.msg);

    /* a text that is a number does not make the line above it a header */
    path = scratch_text(s, "numbers.tsv", "hello\t1\n42\t0\nbad film, sadly\t0\n");
    CHECK(qb_dataset_load(path, QB_DATA_AUTO, NULL, 0, &ds, &err) == QB_OK, "%s", err.msg);
    CHECK(ds.n == 3 && str_is(ds.ex[0].text, ds.ex[0].text_len, "hello"), "numbers: n %d", ds.n);
    qb_dataset_free(&ds);
}

static void test_format_names(void) {
    for (int f = QB_DATA_AUTO; f <= QB_DATA_JSONL; f++) {
        qb_data_format back = QB_DATA_AUTO;
        CHECK(qb_data_format_from_name(qb_data_format_name((qb_data_format)f), &back) && (int)back == f,
              "format %d round trip", f);
    }
    qb_data_format out;
    CHECK(!qb_data_format_from_name("csv", &out), "csv accepted");
}

int main(void) {
    static scratch s;
    snprintf(s.dir, sizeof s.dir, "/tmp/qb_test_dataset_XXXXXX");
    if (!mkdtemp(s.dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_format_names();
    test_errors(&s);
    test_crlf(&s);
    test_imdb_breaks(&s);
    test_jsonl(&s);
    test_conll_edges(&s);
    test_generic_tsv(&s);
    scratch_remove(&s);
    /* The real files last, so the synthetic cases run even without
     * ../shared; their failures must not hide behind the skip. */
    if (!qb_test_shared_dir() && qb_test_failures) return qb_test_done("test_dataset");
    test_sst2();
    test_imdb();
    test_conll();
    return qb_test_done("test_dataset");
}
