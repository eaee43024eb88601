/* tokenizer.json against the ids of Hugging Face's own tokenizers library
 * (shared/golden/tokens-hf-*), and bert-base-uncased's tokenizer.json
 * against the WordPiece golden files; plus the load errors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/json.h"
#include "test_util.h"
#include "text/tokenizer.h"

#define MAX_SHOWN 3

static void print_ids(const char *label, const int32_t *ids, int n) {
    fprintf(stderr, "    %s (%d):", label, n);
    for (int i = 0; i < n && i < 80; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* The next line of [*p, end) parsed as JSON into *j (NULL when it is empty
 * or not JSON, err saying why); *p moves past it.  False for an empty line. */
static bool next_json_line(char **p, const char *end, const char *what, json_t **j, qb_error *err) {
    char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t len = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    *j = NULL;
    if (len && qb_json_parse(*p, len, what, j, err) != QB_OK) *j = NULL;
    *p += len + 1;
    return len > 0;
}

/* One golden file: every line's text encoded at max_length 512. */
static void check_file(const qb_tokenizer *t, const char *rel) {
    char path[4096];
    qb_test_shared_path(path, sizeof path, rel);
    char *buf;
    size_t size;
    qb_error err;
    if (qb_file_read_all(path, &buf, &size, &err) != QB_OK) {
        CHECK(0, "%s", err.msg);
        return;
    }
    qb_encoding enc = {0};
    int matched = 0, total = 0, shown = 0;
    char *p = buf, *end = buf + size;
    for (int line = 1; p < end; line++) {
        json_t *j;
        bool some = next_json_line(&p, end, "line", &j, &err);
        if (j) {
            size_t tlen;
            const char *text = qb_json_str(json_object_get(j, "text"), &tlen);
            const json_t *want = json_object_get(j, "input_ids");
            int n_want = (int)json_array_size(want);
            qb_status st = text ? qb_tokenizer_encode(t, text, tlen, NULL, 0, 512, &enc, &err) : QB_ERR_FORMAT;
            bool same = st == QB_OK && enc.n == n_want;
            for (int i = 0; same && i < n_want; i++) {
                int64_t id = -1;
                qb_json_int(json_array_get(want, (size_t)i), &id);
                same = enc.input_ids[i] == id;
            }
            total++;
            matched += same;
            if (!same && shown++ < MAX_SHOWN) {
                fprintf(stderr, "  mismatch %s:%d text=\"%.200s\"\n", rel, line, text ? text : "");
                if (st != QB_OK) fprintf(stderr, "    error: %s\n", err.msg);
                else print_ids("got ", enc.input_ids, enc.n);
                int32_t w[80];
                for (int i = 0; i < n_want && i < 80; i++) {
                    int64_t id = -1;
                    qb_json_int(json_array_get(want, (size_t)i), &id);
                    w[i] = (int32_t)id;
                }
                print_ids("want", w, n_want);
            }
        } else if (some) {
            CHECK(0, "%s:%d: %s", rel, line, err.msg);
        }
        json_decref(j);
    }
    free(buf);
    qb_encoding_free(&enc);
    printf("%s: %d/%d identical\n", rel, matched, total);
    CHECK(total > 0 && matched == total, "%s: %d of %d texts differ", rel, total - matched, total);
}

/* The file with its normalizer or pre-tokenizer wrapped in a one-step
 * Sequence: the same tokenizer, run through the general pipeline instead
 * of the model's direct path. */
static qb_tokenizer *load_wrapped(const char *rel, const char *key, const char *list) {
    char path[4096], tmp[] = "/tmp/qb_test_tokwrap_XXXXXX";
    qb_test_shared_path(path, sizeof path, rel);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je), *seq = json_object();
    json_object_set_new(seq, "type", json_string("Sequence"));
    json_t *arr = json_array();
    json_array_append(arr, json_object_get(j, key));
    json_object_set_new(seq, list, arr);
    json_object_set_new(j, key, seq);
    int fd = mkstemp(tmp);
    CHECK(fd >= 0 && json_dumpfd(j, fd, 0) == 0, "cannot write %s", tmp);
    close(fd);
    json_decref(j);
    qb_tokenizer *t = NULL;
    qb_error err;
    CHECK(qb_tokenizer_load_json(tmp, &t, &err) == QB_OK, "%s", err.msg);
    unlink(tmp);
    return t;
}

/* A file of tests/data/tokenizer_json (or file itself, when given), read
 * whole; NULL, the failure checked, when it cannot be. */
static char *read_data(const char *name, const char *file, size_t *size) {
    char path[4096], *buf = NULL;
    qb_error err;
    if (!file) {
        snprintf(path, sizeof path, "%s/tests/data/tokenizer_json/%s",
                 getenv("QB_SOURCE_DIR") ? getenv("QB_SOURCE_DIR") : "..", name);
        file = path;
    }
    CHECK(qb_file_read_all(file, &buf, size, &err) == QB_OK, "%s", err.msg);
    return buf;
}

/* tests/data/tokenizer_json/cases.jsonl: the shared files with other
 * components put in, against HF tokenizers' ids (make_cases.py). */
static void check_component_cases(void) {
    char path[4096], base[4096];
    size_t size;
    qb_error err;
    char *buf = read_data("cases.jsonl", NULL, &size);
    if (!buf) return;
    json_t *prev_set = NULL;
    qb_tokenizer *t = NULL;
    qb_encoding enc = {0};
    int matched = 0, total = 0, variants = 0;
    for (char *p = buf, *end = buf + size; p < end;) {
        json_t *j;
        next_json_line(&p, end, "case", &j, &err);
        if (j) {
            json_t *set = json_object_get(j, "set");
            if (!prev_set || !json_equal(prev_set, set)) {
                qb_tokenizer_free(t);
                t = NULL;
                snprintf(base, sizeof base, "tokenizers/%s/tokenizer.json", qb_json_str(json_object_get(j, "base"), NULL));
                qb_test_shared_path(path, sizeof path, base);
                json_error_t je;
                json_t *doc = json_load_file(path, 0, &je);
                json_object_update(doc, set);
                char tmp[] = "/tmp/qb_test_tokvar_XXXXXX";
                int fd = mkstemp(tmp);
                CHECK(fd >= 0 && json_dumpfd(doc, fd, 0) == 0, "cannot write %s", tmp);
                close(fd);
                json_decref(doc);
                CHECK(qb_tokenizer_load_json(tmp, &t, &err) == QB_OK, "variant %d: %s", variants, err.msg);
                unlink(tmp);
                json_decref(prev_set);
                prev_set = json_incref(set);
                variants++;
            }
            size_t tl, pl;
            const char *text = qb_json_str(json_object_get(j, "text"), &tl);
            const char *pair = qb_json_str(json_object_get(j, "text_pair"), &pl);
            const json_t *ids = json_object_get(j, "input_ids"), *types = json_object_get(j, "token_type_ids");
            bool same = t && qb_tokenizer_encode(t, text, tl, pair, pair ? pl : 0, 512, &enc, &err) == QB_OK &&
                        enc.n == (int)json_array_size(ids);
            for (int i = 0; same && i < enc.n; i++) {
                int64_t a = -1, b = -1;
                qb_json_int(json_array_get(ids, (size_t)i), &a);
                qb_json_int(json_array_get(types, (size_t)i), &b);
                same = enc.input_ids[i] == a && enc.token_type_ids[i] == b;
            }
            total++;
            matched += same;
            if (!same) {
                char *set_s = json_dumps(set, JSON_COMPACT);
                fprintf(stderr, "  mismatch variant %d %.300s text=\"%s\" pair=%s\n", variants, set_s, text, pair ? pair : "null");
                free(set_s);
                if (t) print_ids("got ", enc.input_ids, enc.n);
                int32_t w[80];
                int nw = (int)json_array_size(ids);
                for (int i = 0; i < nw && i < 80; i++) {
                    int64_t id = -1;
                    qb_json_int(json_array_get(ids, (size_t)i), &id);
                    w[i] = (int32_t)id;
                }
                print_ids("want", w, nw);
            }
        }
        json_decref(j);
    }
    json_decref(prev_set);
    qb_tokenizer_free(t);
    qb_encoding_free(&enc);
    free(buf);
    printf("tests/data/tokenizer_json/cases.jsonl: %d/%d identical over %d component variants\n", matched, total, variants);
    CHECK(total > 0 && matched == total, "component cases: %d of %d differ", total - matched, total);
}

static qb_tokenizer *load(const char *rel);

/* The slow tokenizer files: vocab.txt or spiece.model, default options. */
static qb_tokenizer *load_slow(const char *rel) {
    char path[4096];
    qb_test_shared_path(path, sizeof path, rel);
    qb_tokenizer *t = NULL;
    qb_error err;
    qb_tok_options o = qb_tok_default_options();
    qb_status st = strstr(rel, "spiece") ? qb_tokenizer_load_sentencepiece(path, &o, &t, &err)
                                         : qb_tokenizer_load_wordpiece(path, &o, &t, &err);
    CHECK(st == QB_OK, "%s", err.msg);
    return t;
}

/* Whether the line's ids decode to its `key` text (skipping special tokens
 * or not), printing the first differences. */
static int decoded_differs(const qb_tokenizer *t, const json_t *j, const qb_encoding *enc, const char *key, bool skip,
                           int *shown) {
    size_t wl;
    const char *want = qb_json_str(json_object_get(j, key), &wl);
    if (!want) return 0; /* files written before decoding was checked */
    qb_bytebuf got = {0};
    qb_error err;
    bool same = qb_tokenizer_decode(t, enc->input_ids, enc->n, skip, &got, &err) == QB_OK && got.n == wl &&
                !memcmp(got.v, want, wl);
    if (!same && (*shown)++ < 8)
        fprintf(stderr, "  %s of \"%.60s\": got \"%.*s\", want \"%s\"\n", key,
                qb_json_str(json_object_get(j, "text"), NULL), (int)got.n, got.v ? got.v : "", want);
    free(got.v);
    return !same;
}

/* One offsets.jsonl line's expected offsets and decoded texts against t's;
 * prints the first differences.  Returns the tokens that differ (-1: the
 * ids do; -2: t truncated them); *dec_bad counts the texts that differ. */
static int offsets_differ(const qb_tokenizer *t, const json_t *j, qb_encoding *enc, qb_token_offset *got,
                          int *shown, int *dec_bad) {
    size_t tl, pl;
    const char *text = qb_json_str(json_object_get(j, "text"), &tl);
    const char *pair = qb_json_str(json_object_get(j, "text_pair"), &pl);
    const json_t *ids = json_object_get(j, "ids"), *offs = json_object_get(j, "offsets");
    const json_t *special = json_object_get(j, "special");
    qb_error err;
    if (qb_tokenizer_encode(t, text, tl, pair, pair ? pl : 0, 1 << 20, enc, &err) != QB_OK ||
        enc->n_truncated > 0) /* a tokenizer.json's own truncation: not this check's business */
        return -2;
    if (enc->n != (int)json_array_size(ids) || enc->n > 4096) return -1;
    for (int i = 0; i < enc->n; i++) {
        int64_t id = -1;
        if (!qb_json_int(json_array_get(ids, (size_t)i), &id) || id != enc->input_ids[i]) return -1;
    }
    if (qb_tokenizer_offsets(t, text, tl, pair, pair ? pl : 0, enc, got, &err) != QB_OK) {
        fprintf(stderr, "  offsets failed: %s\n", err.msg);
        return enc->n;
    }
    *dec_bad += decoded_differs(t, j, enc, "decoded", true, shown);
    *dec_bad += decoded_differs(t, j, enc, "decoded_all", false, shown);
    int bad = 0;
    for (int i = 0; i < enc->n; i++) {
        int64_t a = -1, b = -1, sp = -1;
        const json_t *o = json_array_get(offs, (size_t)i);
        qb_json_int(json_array_get(o, 0), &a);
        qb_json_int(json_array_get(o, 1), &b);
        qb_json_int(json_array_get(special, (size_t)i), &sp);
        if (got[i].special == sp && (sp || ((int64_t)got[i].start == a && (int64_t)got[i].end == b))) continue;
        if (bad++ == 0 && (*shown)++ < 8)
            fprintf(stderr, "  offsets of \"%.80s\" token %d (%s): got [%zu, %zu)%s, want [%lld, %lld)%s\n", text, i,
                    qb_tokenizer_piece(t, enc->input_ids[i]), got[i].start, got[i].end, got[i].special ? " special" : "",
                    (long long)a, (long long)b, sp ? " special" : "");
    }
    return bad;
}

/* tests/data/tokenizer_json/offsets.jsonl (make_offsets.cjs): every
 * token's offsets as tokenizers gives them, for the shared tokenizer.json
 * files and, where the ids agree, the slow files: bert-base-uncased's
 * vocab.txt and ALBERT-mini's spiece.model.  QB_OFFSETS_FILE names another
 * file (make_offsets.cjs SHARED TEXTS.json OUT.jsonl writes one). */
static void check_offsets(void) {
    size_t size;
    qb_error err;
    char *buf = read_data("offsets.jsonl", getenv("QB_OFFSETS_FILE"), &size);
    if (!buf) return;
    qb_tokenizer *t = NULL, *slow = NULL;
    char name[256] = "";
    qb_encoding enc = {0};
    qb_token_offset *got = malloc(4096 * sizeof *got);
    int tokens = 0, bad = 0, texts = 0, shown = 0, slow_texts = 0, slow_bad = 0, truncated = 0, dec_bad = 0;
    for (char *p = buf, *end = buf + size; p < end;) {
        json_t *j;
        next_json_line(&p, end, "offsets", &j, &err);
        if (j) {
            const char *tn = qb_json_str(json_object_get(j, "tokenizer"), NULL);
            if (tn && strcmp(tn, name)) {
                qb_tokenizer_free(t), qb_tokenizer_free(slow);
                slow = NULL;
                snprintf(name, sizeof name, "%s", tn);
                char rel[512];
                snprintf(rel, sizeof rel, "tokenizers/%s/tokenizer.json", name);
                t = load(rel);
                if (!strcmp(name, "bert-base-uncased")) slow = load_slow("tokenizers/bert-base-uncased/vocab.txt");
                if (!strcmp(name, "albert-base-v2")) slow = load_slow("models/albert-mini-sst2/spiece.model");
            }
            int d = t ? offsets_differ(t, j, &enc, got, &shown, &dec_bad) : -1;
            CHECK(d >= -2 && d != -1, "offsets.jsonl: %s gives other ids for \"%.60s\"", name,
                  qb_json_str(json_object_get(j, "text"), NULL));
            truncated += d == -2;
            texts += d != -2;
            tokens += d != -2 ? enc.n : 0;
            bad += d > 0 ? d : 0;
            int ds = slow && d != -2 ? offsets_differ(slow, j, &enc, got, &shown, &dec_bad) : -1;
            slow_texts += ds >= 0;
            slow_bad += ds > 0 ? ds : 0;
        }
        json_decref(j);
    }
    if (t) { /* an encoding of another text is refused, not laid */
        qb_status st = qb_tokenizer_encode(t, "hello world", 11, NULL, 0, 512, &enc, &err);
        if (st == QB_OK) st = qb_tokenizer_offsets(t, "other words", 11, NULL, 0, &enc, got, &err);
        CHECK(st == QB_ERR_ARG && strstr(err.msg, "not those of this text"), "offsets of another text: %d %s", st,
              err.msg);
    }
    printf("%s: %d of %d tokens' offsets as tokenizers gives them (%d texts, %d past a tokenizer's own "
           "truncation left out); vocab.txt and spiece.model: %d texts, %d differ; %d decoded texts differ\n",
           getenv("QB_OFFSETS_FILE") ? getenv("QB_OFFSETS_FILE") : "tests/data/tokenizer_json/offsets.jsonl",
           tokens - bad, tokens, texts, truncated, slow_texts, slow_bad, dec_bad);
    CHECK(texts > 0 && slow_texts > 0 && bad == 0 && slow_bad == 0 && dec_bad == 0,
          "offsets: %d tokens differ, %d with the slow files; %d decoded texts differ", bad, slow_bad, dec_bad);
    qb_tokenizer_free(t), qb_tokenizer_free(slow);
    qb_encoding_free(&enc);
    free(got);
    free(buf);
}

static qb_tokenizer *load(const char *rel) {
    char path[4096];
    qb_test_shared_path(path, sizeof path, rel);
    qb_tokenizer *t = NULL;
    qb_error err;
    CHECK(qb_tokenizer_load_json(path, &t, &err) == QB_OK, "%s", err.msg);
    return t;
}

/* Pre-split words (a CoNLL file's) as transformers' is_split_into_words
 * reads them, which for a byte-level BPE needs add_prefix_space: each word
 * as the sentence " word" gives it ("ĠWest"), the first one included. */
static void check_split_words(const qb_tokenizer *t) {
    static const char *const words[] = {"West", "Indian", "cricketer", "Phil"};
    size_t lens[4];
    qb_encoding enc = {0}, one = {0};
    qb_error err;
    int32_t want[64] = {0};
    int n = 1;
    for (int i = 0; i < 4; i++) {
        char spaced[32];
        lens[i] = strlen(words[i]);
        snprintf(spaced, sizeof spaced, " %s", words[i]);
        CHECK(qb_tokenizer_encode(t, spaced, strlen(spaced), NULL, 0, 64, &one, &err) == QB_OK, "%s", err.msg);
        for (int k = 1; k + 1 < one.n && n < 62; k++) want[n++] = one.input_ids[k];
    }
    want[n++] = 2;
    CHECK(qb_tokenizer_encode_words(t, words, lens, 4, 64, &enc, &err) == QB_OK && enc.n == n &&
              !memcmp(enc.input_ids, want, (size_t)n * sizeof *want),
          "byte-level words each after a space (%d ids, want %d)", enc.n, n);
    qb_encoding_free(&enc);
    qb_encoding_free(&one);
}

static bool ids_are(const json_t *arr, const int32_t *v, int n) {
    bool same = (int)json_array_size(arr) == n;
    for (int i = 0; same && i < n; i++) {
        int64_t x;
        same = qb_json_int(json_array_get(arr, (size_t)i), &x) && x == v[i];
    }
    return same;
}

/* tests/data/tokenizer_json/truncation.jsonl (make_truncation.cjs): pairs
 * truncated LongestFirst as tokenizers' Rust code does (an odd budget's last
 * token to the longer segment, the second on ties), and Rust's lowercase
 * (no final sigma). */
static void check_truncation(void) {
    char name[128] = "";
    size_t size;
    qb_error err;
    char *buf = read_data("truncation.jsonl", NULL, &size);
    if (!buf) return;
    qb_tokenizer *t = NULL;
    qb_encoding enc = {0};
    int total = 0, same = 0;
    for (char *p = buf, *end = buf + size; p < end;) {
        json_t *j;
        if (!next_json_line(&p, end, "truncation", &j, &err)) continue;
        const char *tok = json_string_value(json_object_get(j, "tokenizer"));
        if (tok && strcmp(tok, name)) {
            char rel[256];
            snprintf(name, sizeof name, "%s", tok);
            snprintf(rel, sizeof rel, "tokenizers/%s/tokenizer.json", tok);
            qb_tokenizer_free(t);
            t = load(rel);
        }
        size_t tl, pl = 0;
        const char *text = qb_json_str(json_object_get(j, "text"), &tl);
        const char *pair = qb_json_str(json_object_get(j, "text_pair"), &pl);
        int max_length = (int)qb_json_get_number(j, "max_length", 512);
        bool ok = t && text && qb_tokenizer_encode(t, text, tl, pair, pl, max_length, &enc, &err) == QB_OK &&
                  ids_are(json_object_get(j, "ids"), enc.input_ids, enc.n) &&
                  ids_are(json_object_get(j, "type_ids"), enc.token_type_ids, enc.n);
        CHECK(ok, "truncation.jsonl: %s (%zu + %zu bytes) at max_length %d differs", name, tl, pl, max_length);
        total++;
        same += ok;
        json_decref(j);
    }
    printf("tests/data/tokenizer_json/truncation.jsonl: %d/%d identical\n", same, total);
    CHECK(total > 0, "truncation.jsonl: no lines");
    qb_tokenizer_free(t);
    qb_encoding_free(&enc);
    free(buf);
}

/* A temporary tokenizer.json holding s; the caller unlinks and frees it. */
static char *write_temp(const char *s) {
    char *path = strdup("/tmp/qb_test_tokjson_XXXXXX");
    int fd = path ? mkstemp(path) : -1;
    if (fd < 0) {
        free(path);
        return NULL;
    }
    size_t len = strlen(s);
    bool ok = write(fd, s, len) == (ssize_t)len;
    close(fd);
    CHECK(ok, "cannot write %s", path);
    return path;
}

static void expect_load_error(const char *json, qb_status want, const char *needle) {
    char *p = write_temp(json);
    if (!p) return;
    qb_tokenizer *t = NULL;
    qb_error err = {0};
    qb_status st = qb_tokenizer_load_json(p, &t, &err);
    CHECK(st == want && t == NULL && strstr(err.msg, p) && strstr(err.msg, needle) && !strchr(err.msg, '\n'),
          "%s: gave %d \"%s\", want %d naming the file and \"%s\"", json, st, err.msg, want, needle);
    qb_tokenizer_free(t);
    unlink(p);
    free(p);
}

static void check_bad(void) {
    expect_load_error("{\"model\": ", QB_ERR_FORMAT, "invalid JSON");
    expect_load_error("{\"version\": \"1.0\"}", QB_ERR_FORMAT, "no model");
    expect_load_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]]}, "
                      "\"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"@@\"}}",
                      QB_ERR_FORMAT, "Precompiled");
    expect_load_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]]}, "
                      "\"pre_tokenizer\": {\"type\": \"UnicodeScripts\"}}", QB_ERR_UNSUPPORTED, "pre_tokenizer UnicodeScripts");
    expect_load_error("{\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", QB_ERR_UNSUPPORTED,
                      "model WordLevel");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
                      "\"merges\": [\"a c\"]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
                      QB_ERR_FORMAT, "model.merges[0]");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": []}, "
                      "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"a+\"}}}", QB_ERR_UNSUPPORTED,
                      "pre_tokenizer Split");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": []}, "
                      "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"post_processor\": {\"type\": \"Magic\"}}",
                      QB_ERR_UNSUPPORTED, "post_processor Magic");
    /* names from the file are escaped: the message stays one line */
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a \\n\"]}}",
                      QB_ERR_FORMAT, "(\\n)");
    expect_load_error("{\"model\": {\"type\": \"Odd\\nType\", \"vocab\": {}}}", QB_ERR_UNSUPPORTED, "Odd\\nType");
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 5}, \"merges\": []}}",
                      QB_ERR_FORMAT, "model.vocab");
    expect_load_error("{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0}}, "
                      "\"normalizer\": {\"type\": \"Strange\"}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
                      QB_ERR_UNSUPPORTED, "normalizer Strange");
    /* a segment twice would overrun the truncation budget (found by fuzz_tokenizer_json) */
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
                      "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"Sequence\": "
                      "{\"id\": \"A\"}}, {\"Sequence\": {\"id\": \"A\"}}], \"pair\": [], \"special_tokens\": {}}}",
                      QB_ERR_FORMAT, "post_processor.single uses sequence A twice");
}

/* "normalized": true added tokens match as in HF's normalized text: under a
 * lowercasing normalizer, in any casing (the token lowercased too); a
 * content the normalizer changes otherwise is refused. */
#define NORM_ADDED_JSON(content) \
    "{\"added_tokens\": [{\"id\": 2, \"content\": \"[unused0]\", \"normalized\": true, \"special\": false}," \
    " {\"id\": 5, \"content\": \"" content "\", \"normalized\": true, \"special\": false}]," \
    " \"normalizer\": {\"type\": \"BertNormalizer\", \"lowercase\": true}," \
    " \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"model\": {\"type\": \"WordPiece\"," \
    " \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0, \"x\": 1, \"[unused0]\": 2, \"[\": 3, \"]\": 4}}}"

static void check_normalized_added(void) {
    char *p = write_temp(NORM_ADDED_JSON("NewWord"));
    qb_tokenizer *t = NULL;
    qb_error err;
    CHECK(p && qb_tokenizer_load_json(p, &t, &err) == QB_OK, "%s", err.msg);
    if (p) unlink(p);
    free(p);
    qb_encoding enc = {0};
    const char *text = "x [UNUSED0] [Unused0]x NEWWORD newword";
    int32_t want[] = {1, 2, 2, 1, 5, 5};
    CHECK(t && qb_tokenizer_encode(t, text, strlen(text), NULL, 0, 64, &enc, &err) == QB_OK && enc.n == 6 &&
              !memcmp(enc.input_ids, want, sizeof want),
          "normalized added tokens in any casing (n=%d)", enc.n);
    CHECK(t && !strcmp(qb_tokenizer_piece(t, 5), "NewWord"), "decoding keeps the file's spelling");
    qb_encoding_free(&enc);
    qb_tokenizer_free(t);
    expect_load_error(NORM_ADDED_JSON("Caf\\u00e9"), QB_ERR_UNSUPPORTED,
                      "added token \"Caf\xc3\xa9\" is \"normalized\": true and the normalizer changes it");
}

/* A small byte-level BPE: merges by rank, added tokens with lstrip. */
/* A decoder qbert does not know loads (encoding does not need it) and
 * refuses to decode, naming it. */
static void check_unknown_decoder(void) {
    char *p = write_temp("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                         " \"decoder\": {\"type\": \"Fuse\"}}");
    qb_tokenizer *t = NULL;
    qb_error err;
    CHECK(p && qb_tokenizer_load_json(p, &t, &err) == QB_OK, "%s", err.msg);
    qb_bytebuf text = {0};
    int32_t id = 0;
    CHECK(t && qb_tokenizer_decode(t, &id, 1, true, &text, &err) == QB_ERR_UNSUPPORTED && strstr(err.msg, "Fuse"),
          "unknown decoder: %s", err.msg);
    free(text.v);
    qb_tokenizer_free(t);
    if (p) unlink(p);
    free(p);
}

static void check_small_bpe(void) {
    const char *json =
        "{\"added_tokens\": [{\"id\": 7, \"content\": \"<m>\", \"lstrip\": true}],"
        " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"\\u0120\": 3, \"ab\": 4,"
        " \"bc\": 5, \"\\u0120a\": 6, \"<m>\": 7}, \"merges\": [\"b c\", \"a b\", \"\\u0120 a\"]},"
        " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false},"
        " \"post_processor\": {\"type\": \"RobertaProcessing\", \"cls\": [\"a\", 0], \"sep\": [\"b\", 1]}}";
    char *p = write_temp(json);
    if (!p) return;
    qb_tokenizer *t = NULL;
    qb_error err;
    CHECK(qb_tokenizer_load_json(p, &t, &err) == QB_OK, "%s", err.msg);
    unlink(p);
    free(p);
    if (!t) return;
    qb_encoding enc = {0};
    /* "abc": "b c" ranks before "a b", so a + bc */
    CHECK(qb_tokenizer_encode(t, "abc a <m>", 9, NULL, 0, 64, &enc, &err) == QB_OK, "%s", err.msg);
    int32_t want[] = {0, 0, 5, 6, 7, 1};
    CHECK(enc.n == 6 && memcmp(enc.input_ids, want, sizeof want) == 0, "small BPE ids (n=%d)", enc.n);
    CHECK(qb_tokenizer_encode(t, "a", 1, "b", 1, 64, &enc, &err) == QB_OK && enc.n == 6 &&
              enc.input_ids[3] == 1 && enc.token_type_ids[4] == 0,
          "RoBERTa pair layout");
    CHECK(qb_tokenizer_vocab_size(t) == 8 && strcmp(qb_tokenizer_piece(t, 7), "<m>") == 0, "pieces");
    CHECK(strstr(qb_tokenizer_describe(t), "BPE (byte-level), 8 tokens") != NULL, "%s", qb_tokenizer_describe(t));
    /* no decoder: the tokens joined by spaces; an id past the vocabulary is named */
    qb_bytebuf text = {0};
    int32_t ids[] = {0, 5, 6, 7}, bad[] = {0, 8};
    CHECK(qb_tokenizer_decode(t, ids, 4, true, &text, &err) == QB_OK && !strcmp(text.v, "a bc \xc4\xa0" "a <m>"),
          "decoded without a decoder: \"%s\"", text.v ? text.v : "");
    CHECK(qb_tokenizer_decode(t, bad, 2, true, &text, &err) == QB_ERR_ARG && strstr(err.msg, "id 8"), "%s", err.msg);
    free(text.v);
    /* a long word without spaces: merging is O(n log n), not quadratic */
    size_t n = 1 << 20;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = "abc"[i % 3];
    CHECK(qb_tokenizer_encode(t, big, n, NULL, 0, 8, &enc, &err) == QB_OK && enc.n == 8, "1 MiB word");
    free(big);
    qb_encoding_free(&enc);
    qb_tokenizer_free(t);
}

int main(void) {
    check_offsets();
    check_normalized_added();
    check_unknown_decoder();
    qb_tokenizer *bert = load("tokenizers/bert-base-uncased/tokenizer.json");
    qb_tokenizer *minilm = load("tokenizers/all-MiniLM-L6-v2/tokenizer.json");
    qb_tokenizer *roberta = load("tokenizers/roberta-base/tokenizer.json");
    qb_tokenizer *albert = load("tokenizers/albert-base-v2/tokenizer.json");
    if (bert) {
        CHECK(qb_tokenizer_vocab_size(bert) == 30522, "bert vocab %d", qb_tokenizer_vocab_size(bert));
        check_file(bert, "golden/tokens-wordpiece-sst2-dev.jsonl");
        check_file(bert, "golden/tokens-wordpiece-imdb-test-2000.jsonl");
        check_file(bert, "golden/tokens-wordpiece-conll-valid.jsonl");
        check_file(bert, "golden/tokens-hf-bert-base-uncased-specials.jsonl");
    }
    if (minilm) check_file(minilm, "golden/tokens-hf-bert-base-uncased-specials.jsonl");
    if (roberta) {
        CHECK(qb_tokenizer_vocab_size(roberta) == 50265, "roberta vocab %d", qb_tokenizer_vocab_size(roberta));
        check_file(roberta, "golden/tokens-hf-roberta-base-sst2-dev.jsonl");
        check_file(roberta, "golden/tokens-hf-roberta-base-imdb-test-2000.jsonl");
        check_file(roberta, "golden/tokens-hf-roberta-base-conll-valid.jsonl");
        check_file(roberta, "golden/tokens-hf-roberta-base-specials.jsonl");
        check_split_words(roberta);
    }
    if (albert) {
        CHECK(qb_tokenizer_vocab_size(albert) == 30000, "albert vocab %d", qb_tokenizer_vocab_size(albert));
        CHECK(strcmp(qb_tokenizer_describe(albert), "tokenizer.json: Unigram, 30000 tokens") == 0, "%s",
              qb_tokenizer_describe(albert));
        check_file(albert, "golden/tokens-hf-albert-base-v2-sst2-dev.jsonl");
        check_file(albert, "golden/tokens-hf-albert-base-v2-imdb-test-2000.jsonl");
        check_file(albert, "golden/tokens-hf-albert-base-v2-conll-valid.jsonl");
        check_file(albert, "golden/tokens-hf-albert-base-v2-specials.jsonl");
    }
    /* the general pipeline with BERT's and RoBERTa's own components */
    qb_tokenizer *bert_pipe = load_wrapped("tokenizers/bert-base-uncased/tokenizer.json", "pre_tokenizer", "pretokenizers");
    if (bert_pipe) {
        check_file(bert_pipe, "golden/tokens-wordpiece-sst2-dev.jsonl");
        check_file(bert_pipe, "golden/tokens-wordpiece-conll-valid.jsonl");
        check_file(bert_pipe, "golden/tokens-hf-bert-base-uncased-specials.jsonl");
    }
    qb_tokenizer *roberta_pipe = load_wrapped("tokenizers/roberta-base/tokenizer.json", "pre_tokenizer", "pretokenizers");
    if (roberta_pipe) {
        CHECK(strstr(qb_tokenizer_describe(roberta_pipe), "byte-level") != NULL, "%s", qb_tokenizer_describe(roberta_pipe));
        check_file(roberta_pipe, "golden/tokens-hf-roberta-base-sst2-dev.jsonl");
        check_file(roberta_pipe, "golden/tokens-hf-roberta-base-conll-valid.jsonl");
        check_file(roberta_pipe, "golden/tokens-hf-roberta-base-specials.jsonl");
    }
    qb_tokenizer_free(bert_pipe);
    qb_tokenizer_free(roberta_pipe);
    check_component_cases();
    check_truncation();
    check_small_bpe();
    check_bad();
    qb_tokenizer_free(bert);
    qb_tokenizer_free(minilm);
    qb_tokenizer_free(roberta);
    qb_tokenizer_free(albert);
    return qb_test_done("test_tokenizer_json");
}
