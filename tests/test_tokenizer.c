/* Tokenizers against the golden ids of Hugging Face's slow BertTokenizer
 * and AlbertTokenizer (shared/golden), plus the error paths. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/json.h"
#include "test_util.h"
#include "text/tokenizer.h"

#define MAX_SHOWN_MISMATCHES 3

static void print_ids(const char *label, const int32_t *ids, int n) {
    fprintf(stderr, "    %s (%d):", label, n);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Reads a JSON int array into a malloc'd buffer; count in *n. */
static int32_t *json_ids(const json_t *arr, int *n) {
    *n = 0;
    if (!json_is_array(arr)) return NULL;
    int32_t *v = malloc((json_array_size(arr) + 1) * sizeof *v);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        int64_t x = -1;
        qb_json_int(json_array_get(arr, i), &x);
        v[(*n)++] = (int32_t)x;
    }
    return v;
}

static bool ids_equal(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

typedef struct {
    const char *file;
    int line;
    json_t *j;
} golden_line;

/* Calls fn on every JSON line of a golden file; returns the line count. */
static int for_each_line(const char *path, void (*fn)(golden_line *, void *), void *ctx) {
    char *buf;
    size_t size;
    qb_error err;
    if (qb_file_read_all(path, &buf, &size, &err) != QB_OK) {
        CHECK(0, "%s", err.msg);
        return 0;
    }
    int count = 0;
    char *p = buf, *end = buf + size;
    for (int line = 1; p < end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len) {
            golden_line g = {.file = path, .line = line};
            char what[64];
            snprintf(what, sizeof what, "line %d", line);
            if (qb_json_parse(p, len, what, &g.j, &err) == QB_OK) {
                fn(&g, ctx);
                count++;
            } else {
                CHECK(0, "%s: %s", path, err.msg);
            }
            json_decref(g.j);
        }
        p += len + 1;
    }
    free(buf);
    return count;
}

/* ---- tokens-*.jsonl: one text, its ids at max_length 512 ---------------- */

typedef struct {
    const qb_tokenizer *tok;
    qb_encoding enc;
    int matched, total, shown, known;
    bool by_words;       /* also check encode_words on the space-split text */
    const char *hf_file; /* cases: texts whose ids this file of Hugging Face's gives instead */
} token_ctx;

static void check_words_match(token_ctx *c, golden_line *g, const char *text, size_t len,
                              const int32_t *want, int n_want) {
    /* split on single spaces: CoNLL sentences are words joined by ' ' */
    const char *words[1024];
    size_t lens[1024];
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len && n < 1024; i++) {
        if (i == len || text[i] == ' ') {
            if (i > start) {
                words[n] = text + start;
                lens[n++] = i - start;
            }
            start = i + 1;
        }
    }
    qb_error err;
    qb_encoding enc = {0};
    qb_status st = qb_tokenizer_encode_words(c->tok, words, lens, n, 512, &enc, &err);
    CHECK(st == QB_OK, "%s:%d encode_words: %s", g->file, g->line, err.msg);
    if (st != QB_OK) return;
    bool same = ids_equal(enc.input_ids, enc.n, want, n_want);
    CHECK(same, "%s:%d encode_words differs from the sentence's ids", g->file, g->line);
    bool mono = enc.word_ids[0] == -1 && enc.word_ids[enc.n - 1] == -1;
    for (int i = 2; i < enc.n - 1; i++) mono = mono && enc.word_ids[i] >= enc.word_ids[i - 1];
    CHECK(mono, "%s:%d word_ids not monotonic", g->file, g->line);
    qb_encoding_free(&enc);
}

static void check_token_line(golden_line *g, void *ctx) {
    token_ctx *c = ctx;
    size_t len;
    char *text = qb_json_strdup(json_object_get(g->j, "text"), &len);
    int n_want;
    int32_t *want = json_ids(json_object_get(g->j, "input_ids"), &n_want);
    if (!text || !want) {
        CHECK(0, "%s:%d: no text/input_ids", g->file, g->line);
        free(text);
        free(want);
        return;
    }
    qb_error err;
    qb_status st = qb_tokenizer_encode(c->tok, text, len, NULL, 0, 512, &c->enc, &err);
    c->total++;
    if (st == QB_OK && ids_equal(c->enc.input_ids, c->enc.n, want, n_want)) {
        c->matched++;
    } else if (c->shown++ < MAX_SHOWN_MISMATCHES) {
        fprintf(stderr, "  mismatch %s:%d text=\"%.200s\"\n", g->file, g->line, text);
        if (st != QB_OK) fprintf(stderr, "    error: %s\n", err.msg);
        else print_ids("got ", c->enc.input_ids, c->enc.n);
        print_ids("want", want, n_want);
    }
    if (c->by_words) check_words_match(c, g, text, len, want, n_want);
    free(text);
    free(want);
}

static void check_token_file(const qb_tokenizer *tok, const char *rel, bool by_words) {
    char path[4096];
    qb_test_shared_path(path, sizeof path, rel);
    token_ctx c = {.tok = tok, .by_words = by_words};
    for_each_line(path, check_token_line, &c);
    printf("%s: %d/%d identical\n", rel, c.matched, c.total);
    CHECK(c.total > 0 && c.matched == c.total, "%s: %d of %d texts differ", rel,
          c.total - c.matched, c.total);
    qb_encoding_free(&c.enc);
}

/* ---- cases-*.jsonl: pairs, truncation, edge texts ------------------------ */

typedef struct {
    const char *text;
    bool found;
} text_search;

static void find_text(golden_line *g, void *ctx) {
    text_search *t = ctx;
    const char *s = json_string_value(json_object_get(g->j, "text"));
    t->found |= s && !strcmp(s, t->text);
}

/* The golden README's known difference: the older ALBERT files read special
 * tokens written in the text as plain text; Hugging Face maps them to their
 * ids, and so does qbert.  Those texts are checked in hf_file instead. */
static bool known_difference(const token_ctx *c, const char *text, const char *pair) {
    text_search t = {text, false};
    if (c->hf_file && text && !pair) {
        char path[4096];
        qb_test_shared_path(path, sizeof path, c->hf_file);
        for_each_line(path, find_text, &t);
    }
    return t.found;
}

static void check_case_line(golden_line *g, void *ctx) {
    token_ctx *c = ctx;
    if (json_object_get(g->j, "meta")) return;
    size_t len, pair_len = 0;
    char *text = qb_json_strdup(json_object_get(g->j, "text"), &len);
    char *pair = qb_json_strdup(json_object_get(g->j, "text_pair"), &pair_len);
    if (known_difference(c, text, pair)) {
        c->known++;
        free(text);
        free(pair);
        return;
    }
    int max_length = (int)qb_json_get_number(g->j, "max_length", 128);
    int n_ids, n_types;
    int32_t *ids = json_ids(json_object_get(g->j, "input_ids"), &n_ids);
    int32_t *types = json_ids(json_object_get(g->j, "token_type_ids"), &n_types);
    qb_error err;
    qb_status st = qb_tokenizer_encode(c->tok, text, len, pair, pair_len, max_length, &c->enc, &err);
    c->total++;
    bool ok = st == QB_OK && ids_equal(c->enc.input_ids, c->enc.n, ids, n_ids) &&
              ids_equal(c->enc.token_type_ids, c->enc.n, types, n_types);
    if (ok) {
        c->matched++;
    } else if (c->shown++ < MAX_SHOWN_MISMATCHES) {
        fprintf(stderr, "  mismatch %s:%d text=\"%.120s\" pair=%s\n", g->file, g->line,
                text ? text : "", pair ? "yes" : "null");
        if (st != QB_OK) {
            fprintf(stderr, "    error: %s\n", err.msg);
        } else {
            print_ids("got ids   ", c->enc.input_ids, c->enc.n);
            print_ids("got types ", c->enc.token_type_ids, c->enc.n);
        }
        print_ids("want ids  ", ids, n_ids);
        print_ids("want types", types, n_types);
    }
    free(text);
    free(pair);
    free(ids);
    free(types);
}

static void check_case_file(const qb_tokenizer *tok, const char *rel, const char *hf_file) {
    char path[4096];
    qb_test_shared_path(path, sizeof path, rel);
    token_ctx c = {.tok = tok, .hf_file = hf_file};
    for_each_line(path, check_case_line, &c);
    printf("%s: %d/%d cases identical", rel, c.matched, c.total);
    if (c.known) printf(" (and %d as %s)", c.known, hf_file);
    printf("\n");
    CHECK(c.total > 0 && c.matched == c.total, "%s: %d of %d cases differ", rel,
          c.total - c.matched, c.total);
    qb_encoding_free(&c.enc);
}

/* ---- unit cases ---------------------------------------------------------- */

static int encode_n(const qb_tokenizer *t, const char *s, size_t len, qb_encoding *enc) {
    qb_error err;
    return qb_tokenizer_encode(t, s, len, NULL, 0, 512, enc, &err) == QB_OK ? enc->n : -1;
}

static void check_units_common(const qb_tokenizer *t, const char *name) {
    qb_encoding enc = {0};
    qb_error err;
    /* invalid UTF-8: a lone continuation byte at offset 3 */
    qb_status st = qb_tokenizer_encode(t, "abc\x80xyz", 7, NULL, 0, 64, &enc, &err);
    CHECK(st == QB_ERR_UTF8 && strstr(err.msg, "byte 3"), "%s: invalid UTF-8 gave %d: %s", name,
          st, err.msg);
    st = qb_tokenizer_encode(t, "ok", 2, "\xed\xa0\x80", 3, 64, &enc, &err);
    CHECK(st == QB_ERR_UTF8 && strstr(err.msg, "pair"), "%s: surrogate in pair gave %d: %s", name,
          st, err.msg);
    /* max_length edges */
    CHECK(qb_tokenizer_encode(t, "a b", 3, NULL, 0, 1, &enc, &err) == QB_ERR_ARG, "%s: max 1", name);
    CHECK(qb_tokenizer_encode(t, "a", 1, "b", 1, 2, &enc, &err) == QB_ERR_ARG, "%s: pair max 2", name);
    st = qb_tokenizer_encode(t, "hello world again", 17, NULL, 0, 2, &enc, &err);
    CHECK(st == QB_OK && enc.n == 2 && enc.n_truncated > 0, "%s: max 2 keeps only specials", name);
    st = qb_tokenizer_encode(t, "hello world", 11, "again and again", 15, 3, &enc, &err);
    CHECK(st == QB_OK && enc.n == 3 && enc.token_type_ids[2] == 1, "%s: pair max 3", name);
    st = qb_tokenizer_encode(t, "a b c d e f", 11, "x", 1, 6, &enc, &err);
    CHECK(st == QB_OK && enc.n == 6 && enc.n_truncated > 0 && enc.token_type_ids[5] == 1 &&
              enc.token_type_ids[4] == 1 && enc.token_type_ids[3] == 0,
          "%s: longest_first keeps the short pair (n=%d)", name, enc.n);
    /* empty segments */
    st = qb_tokenizer_encode(t, "", 0, "", 0, 8, &enc, &err);
    CHECK(st == QB_OK && enc.n == 3 && enc.n_truncated == 0, "%s: empty pair", name);
    /* encode_words truncation and word ids */
    const char *words[] = {"hello", "world", "again"};
    size_t lens[] = {5, 5, 5};
    st = qb_tokenizer_encode_words(t, words, lens, 3, 4, &enc, &err);
    CHECK(st == QB_OK && enc.n == 4 && enc.word_ids[0] == -1 && enc.word_ids[1] == 0 &&
              enc.word_ids[3] == -1 && enc.n_truncated > 0,
          "%s: encode_words truncation", name);
    CHECK(qb_tokenizer_encode_words(t, words, lens, 3, 1, &enc, &err) == QB_ERR_ARG,
          "%s: encode_words max 1", name);
    qb_encoding_free(&enc);
}

static void check_wordpiece_units(const qb_tokenizer *t) {
    qb_encoding enc = {0};
    char word[102];
    memset(word, 'a', 101);
    word[101] = 0;
    int n = encode_n(t, word, 101, &enc);
    CHECK(n == 3 && enc.input_ids[1] == 100, "101-char word: n=%d id=%d", n, n > 1 ? enc.input_ids[1] : -1);
    n = encode_n(t, word, 100, &enc);
    CHECK(n > 3 || (n == 3 && enc.input_ids[1] != 100), "100-char word is split, not [UNK]");
    /* NUL is dropped by cleaning: "a\0b" reads as "ab" */
    int n_ab = encode_n(t, "ab", 2, &enc);
    int32_t id_ab = enc.input_ids[1];
    n = encode_n(t, "a\0b", 3, &enc);
    CHECK(n == n_ab && enc.input_ids[1] == id_ab, "embedded NUL: n=%d vs %d", n, n_ab);
    n = encode_n(t, "[CLS] x [MASK]", 14, &enc);
    CHECK(n == 5 && enc.input_ids[1] == 101 && enc.input_ids[3] == 103, "never_split specials");
    qb_encoding_free(&enc);
}

static void check_sentencepiece_units(const qb_tokenizer *t) {
    qb_encoding enc = {0};
    int n = encode_n(t, "a\0b", 3, &enc);
    CHECK(n >= 3, "embedded NUL is data (n=%d)", n);
    CHECK(qb_tokenizer_pad_id(t) == 0, "<pad> id");
    qb_encoding_free(&enc);
}

/* A temporary file holding data[0..len); the caller unlinks and frees it. */
static char *write_temp(const void *data, size_t len) {
    char *path = strdup("/tmp/qb_test_tok_XXXXXX");
    int fd = path ? mkstemp(path) : -1;
    if (fd < 0) {
        free(path);
        return NULL;
    }
    bool ok = write(fd, data, len) == (ssize_t)len;
    close(fd);
    CHECK(ok, "cannot write %s", path);
    return path;
}

static void check_bad_files(const char *spiece) {
    qb_tokenizer *t = NULL;
    qb_error err;
    qb_status st = qb_tokenizer_load_wordpiece("/nonexistent/vocab.txt", NULL, &t, &err);
    CHECK(st == QB_ERR_IO && strstr(err.msg, "/nonexistent/vocab.txt"), "missing vocab: %s", err.msg);
    st = qb_tokenizer_load_sentencepiece("/nonexistent/spiece.model", NULL, &t, &err);
    CHECK(st == QB_ERR_IO && t == NULL, "missing spiece: %s", err.msg);

    char *p = write_temp("", 0);
    if (!p) return;
    st = qb_tokenizer_load_wordpiece(p, NULL, &t, &err);
    CHECK(st == QB_ERR_FORMAT && strstr(err.msg, p), "empty vocab: %s", err.msg);
    st = qb_tokenizer_load_sentencepiece(p, NULL, &t, &err);
    CHECK(st == QB_ERR_FORMAT && strstr(err.msg, p), "empty spiece: %s", err.msg);
    unlink(p);
    free(p);

    const char no_cls[] = "[PAD]\n[UNK]\n[SEP]\nhello\n";
    p = write_temp(no_cls, sizeof no_cls - 1);
    if (!p) return;
    st = qb_tokenizer_load_wordpiece(p, NULL, &t, &err);
    CHECK(st == QB_ERR_FORMAT && strstr(err.msg, "[CLS]") && strstr(err.msg, p), "vocab without [CLS]: %s", err.msg);
    unlink(p);
    free(p);

    char *model;
    size_t size;
    if (qb_file_read_all(spiece, &model, &size, &err) != QB_OK) {
        CHECK(0, "%s", err.msg);
        return;
    }
    /* cut at several places: mid-piece, mid-charsmap, one byte short */
    size_t cuts[] = {size / 2, size - 1000, size - 1, 7, 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        p = write_temp(model, cuts[i]);
        if (!p) continue;
        t = NULL;
        st = qb_tokenizer_load_sentencepiece(p, NULL, &t, &err);
        CHECK(st == QB_ERR_FORMAT && t == NULL && strstr(err.msg, p),
              "truncated spiece.model (%zu of %zu bytes) gave %d: %s", cuts[i], size, st, err.msg);
        qb_tokenizer_free(t);
        unlink(p);
        free(p);
    }
    /* a piece that is not UTF-8: "▁the" with its first byte broken */
    char *piece = NULL;
    for (size_t i = 0; !piece && i + 6 <= size; i++)
        if (!memcmp(model + i, "\xe2\x96\x81the", 6)) piece = model + i;
    CHECK(piece != NULL, "spiece.model has no \"\u2581the\" piece");
    if (piece && (p = write_temp(model, size))) {
        FILE *f = fopen(p, "r+b");
        if (f && fseek(f, (long)(piece - model), SEEK_SET) == 0) fputc(0xFF, f);
        if (f) fclose(f);
        t = NULL;
        st = qb_tokenizer_load_sentencepiece(p, NULL, &t, &err);
        CHECK(st == QB_ERR_FORMAT && t == NULL && strstr(err.msg, "not UTF-8") && strstr(err.msg, p),
              "a piece that is not UTF-8 gave %d: %s", st, err.msg);
        qb_tokenizer_free(t);
        unlink(p);
        free(p);
    }
    /* garbage bytes: a random-looking but deterministic pattern */
    for (size_t i = 0; i < size; i += 97) model[i] ^= 0x5A;
    p = write_temp(model, size);
    if (!p) {
        free(model);
        return;
    }
    t = NULL;
    st = qb_tokenizer_load_sentencepiece(p, NULL, &t, &err);
    CHECK(st != QB_OK || t != NULL, "corrupt spiece.model must fail cleanly or load");
    qb_tokenizer_free(t);
    unlink(p);
    free(p);
    free(model);
}

#define SP_SPECIALS "golden/tokens-hf-albert-base-v2-specials.jsonl"

int main(void) {
    char vocab[4096], spiece[4096];
    qb_test_shared_path(vocab, sizeof vocab, "models/bert-mini-sst2/vocab.txt");
    qb_test_shared_path(spiece, sizeof spiece, "models/albert-mini-sst2/spiece.model");
    qb_tok_options opt = qb_tok_default_options(); /* do_lower_case true for these models */
    qb_error err;
    qb_tokenizer *wp = NULL, *sp = NULL;
    CHECK(qb_tokenizer_load_wordpiece(vocab, &opt, &wp, &err) == QB_OK, "%s", err.msg);
    CHECK(qb_tokenizer_load_sentencepiece(spiece, &opt, &sp, &err) == QB_OK, "%s", err.msg);
    if (!wp || !sp) return qb_test_done("test_tokenizer");

    CHECK(qb_tokenizer_vocab_size(wp) == 30522, "bert vocab size %d", qb_tokenizer_vocab_size(wp));
    CHECK(qb_tokenizer_vocab_size(sp) == 30000, "albert vocab size %d", qb_tokenizer_vocab_size(sp));
    CHECK(strcmp(qb_tokenizer_piece(wp, 101), "[CLS]") == 0, "piece 101");
    CHECK(qb_tokenizer_piece(sp, 30000) == NULL, "piece out of range");

    check_token_file(wp, "golden/tokens-wordpiece-sst2-dev.jsonl", false);
    check_token_file(wp, "golden/tokens-wordpiece-imdb-test-2000.jsonl", false);
    check_token_file(wp, "golden/tokens-wordpiece-conll-valid.jsonl", true);
    check_token_file(sp, "golden/tokens-sentencepiece-sst2-dev.jsonl", false);
    check_token_file(sp, "golden/tokens-sentencepiece-imdb-test-2000.jsonl", false);
    check_token_file(sp, "golden/tokens-sentencepiece-conll-valid.jsonl", false);
    /* special tokens written in the text, as Hugging Face splits them out */
    check_token_file(wp, "golden/tokens-hf-bert-base-uncased-specials.jsonl", false);
    check_token_file(sp, SP_SPECIALS, false);

    check_case_file(wp, "golden/cases-bert-mini-sst2.jsonl", NULL);
    check_case_file(wp, "golden/cases-bert-mini-imdb.jsonl", NULL);
    check_case_file(wp, "golden/cases-bert-mini-conll.jsonl", NULL);
    check_case_file(wp, "golden/cases-random-bert-base.jsonl", NULL);
    check_case_file(wp, "golden/cases-random-distilbert-base.jsonl", NULL);
    check_case_file(sp, "golden/cases-albert-mini-sst2.jsonl", SP_SPECIALS);
    check_case_file(sp, "golden/cases-random-albert-base-v2.jsonl", SP_SPECIALS);

    check_units_common(wp, "wordpiece");
    check_units_common(sp, "sentencepiece");
    check_wordpiece_units(wp);
    check_sentencepiece_units(sp);
    check_bad_files(spiece);

    qb_tokenizer_free(wp);
    qb_tokenizer_free(sp);
    return qb_test_done("test_tokenizer");
}
