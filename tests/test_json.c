/* The JSON module over jansson: valid and malformed documents, messages with
 * line and column, repeated keys, NULs in strings, the file cap, and the
 * writer's null for numbers JSON cannot hold. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/json.h"
#include "test_util.h"

static bool parses(const char *s) {
    json_t *j;
    qb_error err = {0};
    qb_status st = qb_json_parse(s, strlen(s), "t.json", &j, &err);
    if (!st) json_decref(j);
    return st == QB_OK;
}

static void test_accepts_and_refuses(void) {
    static const char *good[] = {"{}", "[]", "0", "-1.5e3", "\"x\"", "true", "null", " {\"a\": [1, 2, {\"b\": null}]} ",
                                 "[\"\\u00e9\\ud83d\\ude00\"]"};
    static const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "{\"a\":}", "01", "1.", "\"abc", "\"\\x\"", "tru",
                                "[1] 2", "{\"a\":1,}", "\"\\u12\"", "\"a\nb\"", "-", "[1e]", "NaN", "[Infinity]"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) CHECK(parses(good[i]), "should parse: %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CHECK(!parses(bad[i]), "should fail: %s", bad[i]);

    /* Deeper than jansson's limit (2048) is refused, not a stack overflow. */
    static char deep[100001];
    memset(deep, '[', sizeof deep - 1);
    CHECK(!parses(deep), "deep nesting must be refused, not overflow the stack");
}

static void test_values(void) {
    const char *doc = "{\"text\": \"a\\u0000b\\n\\\"q\\\"\", \"n\": 42, \"f\": 0.5, \"w\": 4.0, \"ok\": true, "
                      "\"list\": [10, 20, 30], \"obj\": {\"k\": \"v\"}, \"big\": 1e300}";
    json_t *j;
    qb_error err = {0};
    CHECK(qb_json_parse(doc, strlen(doc), "doc", &j, &err) == QB_OK, "%s", err.msg);
    if (!j) return;
    size_t n = 0;
    const char *t = qb_json_str(json_object_get(j, "text"), &n);
    CHECK(t && n == 7 && memcmp(t, "a\0b\n\"q\"", 7) == 0, "decoded text keeps its NUL (len %zu)", n);
    char *copy = qb_json_strdup(json_object_get(j, "text"), &n);
    CHECK(copy && n == 7 && copy[1] == '\0' && copy[7] == '\0', "strdup keeps the NUL and terminates");
    free(copy);
    int64_t v = 0;
    CHECK(qb_json_int(json_object_get(j, "n"), &v) && v == 42, "int");
    CHECK(qb_json_int(json_object_get(j, "w"), &v) && v == 4, "4.0 is an integer, as Python may write it");
    CHECK(!qb_json_int(json_object_get(j, "f"), &v), "0.5 is not an integer");
    CHECK(!qb_json_int(json_object_get(j, "big"), &v), "1e300 is out of range");
    CHECK(!qb_json_int(json_object_get(j, "text"), &v), "a string is not an integer");
    CHECK(qb_json_get_bool(j, "ok", false), "bool");
    CHECK(qb_json_get_bool(j, "missing", true), "bool fallback");
    CHECK(qb_json_number(json_array_get(json_object_get(j, "list"), 2), 0) == 30, "array index");
    CHECK(json_array_get(json_object_get(j, "list"), 3) == NULL, "index past the end");
    CHECK(qb_json_str_eq(json_object_get(json_object_get(j, "obj"), "k"), "v"), "nested lookup");
    CHECK(!qb_json_str_eq(json_object_get(j, "text"), "a"), "a NUL does not end the comparison");
    CHECK(json_object_get(j, "missing") == NULL, "missing key");
    CHECK(isnan(qb_json_get_number(j, "text", NAN)), "a string is no number");
    json_decref(j);
}

/* Python's json module and Hugging Face keep the last of repeated keys. */
static void test_repeated_keys(void) {
    const char *doc = "{\"a\": 1, \"b\": 2, \"a\": 3}";
    json_t *j;
    qb_error err = {0};
    CHECK(qb_json_parse(doc, strlen(doc), "dup", &j, &err) == QB_OK, "%s", err.msg);
    CHECK(j && qb_json_get_number(j, "a", 0) == 3, "the last value wins");
    CHECK(j && json_object_size(j) == 2, "one member per key");
    json_decref(j);
    CHECK(qb_json_parse_unique(doc, strlen(doc), "dup", &j, &err) != QB_OK, "the strict parse refuses it");
    CHECK(strstr(err.msg, "dup: invalid JSON at column") && strstr(err.msg, "duplicate"), "message: %s", err.msg);
}

static void test_messages(void) {
    json_t *j;
    qb_error err = {0};
    CHECK(qb_json_parse("{\n\"a\": 1,\n}", 11, "cfg.json", &j, &err) != QB_OK, "trailing comma");
    CHECK(strstr(err.msg, "cfg.json: invalid JSON at line 3, column 1: ") == err.msg, "file, line, column: %s",
          err.msg);
    CHECK(!strchr(err.msg, '\n'), "one line: %s", err.msg);
    /* jansson quotes the input near the error, a newline included */
    CHECK(qb_json_parse("{\n \"q\": \"q\\u\n}", 14, "nl.json", &j, &err) != QB_OK, "bad escape");
    CHECK(!strchr(err.msg, '\n') && strstr(err.msg, "\\n"), "the quoted newline is escaped: %s", err.msg);
    CHECK(qb_json_parse("{\"text\": \"x\",}", 14, "in.jsonl:7", &j, &err) != QB_OK, "JSONL row");
    CHECK(strstr(err.msg, "in.jsonl:7: invalid JSON at column 14: ") == err.msg, "one-line source: %s", err.msg);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void test_files(void) {
    char dir[] = "/tmp/qb_json_XXXXXX", path[256];
    if (!mkdtemp(dir)) return;
    json_t *j;
    qb_error err = {0};
    snprintf(path, sizeof path, "%s/a.json", dir);
    write_file(path, "{\"x\": [1, 2]}");
    CHECK(qb_json_load_object(path, &j, &err) == QB_OK && json_is_object(j), "%s", err.msg);
    json_decref(j);
    CHECK(qb_json_load_object_max(path, 4, &j, &err) != QB_OK && !j, "over the cap");
    CHECK(strstr(err.msg, path) != NULL, "the cap's message names the file: %s", err.msg);
    write_file(path, "[1]");
    CHECK(qb_json_load_object(path, &j, &err) != QB_OK && strstr(err.msg, "not a JSON object"), "%s", err.msg);
    CHECK(qb_json_load_object("/dev/zero", &j, &err) != QB_OK, "a device that never ends is refused");
    snprintf(path, sizeof path, "%s/missing.json", dir);
    CHECK(qb_json_load_object(path, &j, &err) != QB_OK && strstr(err.msg, "missing.json"), "%s", err.msg);

    /* written through a temporary name, with a newline; read back equal */
    json_t *o = json_object();
    CHECK(qb_json_set_str(o, "s", "x") && qb_json_set_int(o, "n", 7), "build");
    snprintf(path, sizeof path, "%s/out.json", dir);
    CHECK(qb_json_write_file(path, o, QB_JSON_INDENT, &err) == QB_OK, "%s", err.msg);
    json_t *back;
    CHECK(qb_json_load_object(path, &back, &err) == QB_OK && json_equal(o, back), "round trip: %s", err.msg);
    json_decref(back);
    json_decref(o);
    remove(path);
    snprintf(path, sizeof path, "%s/a.json", dir);
    remove(path);
    rmdir(dir);
}

static void test_writer(void) {
    json_t *o = json_object();
    float v[4] = {1.5f, NAN, INFINITY, -INFINITY};
    bool ok = qb_json_set_real(o, "nan", NAN) && qb_json_set_real(o, "inf", -INFINITY) &&
              qb_json_set(o, "floats", qb_json_floats(v, 4)) && qb_json_set(o, "s", qb_json_strn("a\"\\\n\x01\0z", 7)) &&
              qb_json_set(o, "latin1", qb_json_strn("caf\xe9", 4)) && qb_json_set_real(o, "third", 1.0 / 3) &&
              qb_json_set(o, "seed", qb_json_u64(UINT64_MAX));
    CHECK(ok, "every member set");
    char *s = qb_json_dumps(o, QB_JSON_LINE);
    CHECK(s && strstr(s, "\"nan\": null, \"inf\": null, \"floats\": [1.5, null, null, null]"), "non-finite -> null: %s",
          s ? s : "(null)");
    CHECK(s && strstr(s, "\"s\": \"a\\\"\\\\\\n\\u0001\\u0000z\""), "escaped output: %s", s ? s : "(null)");
    CHECK(s && strstr(s, "\"latin1\": \"caf?\""), "bytes that are not UTF-8 are replaced: %s", s ? s : "(null)");
    CHECK(s && strstr(s, "\"third\": 0.33333333333333331"), "17 digits by default: %s", s ? s : "(null)");
    CHECK(s && strstr(s, "\"seed\": 1.8446744073709552e19"), "seed past INT64_MAX: %s", s ? s : "(null)");
    json_t *back = NULL;
    qb_error err = {0};
    CHECK(s && qb_json_parse(s, strlen(s), "dump", &back, &err) == QB_OK, "the output parses: %s", err.msg);
    json_decref(back);
    free(s);
    s = qb_json_dumps(o, QB_JSON_LINE | QB_JSON_DIGITS9);
    CHECK(s && strstr(s, "\"third\": 0.333333333"), "9 digits: %s", s ? s : "(null)");
    free(s);
    json_t *cfg = json_object();
    CHECK(qb_json_set_real(cfg, "p", 0.1) && qb_json_set_real(cfg, "eps", 1e-12), "config values");
    s = qb_json_dumps(cfg, QB_JSON_LINE | QB_JSON_DIGITS15);
    CHECK(s && strcmp(s, "{\"p\": 0.1, \"eps\": 1e-12}") == 0, "decimals print as written: %s", s ? s : "(null)");
    free(s);
    json_decref(cfg);
    s = qb_json_dumps(o, QB_JSON_COMPACT);
    CHECK(s && strstr(s, "{\"nan\":null,\"inf\":null,"), "compact: %s", s ? s : "(null)");
    free(s);
    json_decref(o);
    o = json_object();
    CHECK(!qb_json_set(o, "k", NULL) && json_object_size(o) == 0, "a value that failed to build fails the set");
    json_decref(o);
    CHECK(!qb_json_emit(stdout, NULL, false, QB_JSON_LINE), "nothing emitted when not built");
}

int main(void) {
    test_accepts_and_refuses();
    test_values();
    test_repeated_keys();
    test_messages();
    test_files();
    test_writer();
    return qb_test_done("test_json");
}
