/* The JSON reader: valid documents, strings with escapes and NULs, and the
 * malformed inputs it must refuse with a message. */
#include <string.h>

#include "core/json.h"
#include "test_util.h"

static bool parses(const char *s) {
    qb_json j;
    qb_error err = {0};
    qb_status st = qb_json_parse(&j, s, strlen(s), "t.json", &err);
    if (!st) qb_json_free(&j);
    return st == QB_OK;
}

int main(void) {
    static const char *good[] = {"{}", "[]", "0", "-1.5e3", "\"x\"", "true", "null", " {\"a\": [1, 2, {\"b\": null}]} ",
                                 "[\"\\u00e9\\ud83d\\ude00\"]"};
    static const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "{\"a\":}", "01", "1.", "\"abc", "\"\\x\"", "tru",
                                "[1] 2", "{\"a\":1,}", "\"\\u12\"", "\"a\nb\"", "-", "[1e]"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) CHECK(parses(good[i]), "should parse: %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CHECK(!parses(bad[i]), "should fail: %s", bad[i]);

    char deep[2000];
    memset(deep, '[', sizeof deep);
    deep[sizeof deep - 1] = 0;
    CHECK(!parses(deep), "deep nesting must be refused, not overflow the stack");

    const char *doc = "{\"text\": \"a\\u0000b\\n\\\"q\\\"\", \"n\": 42, \"f\": 0.5, \"ok\": true, "
                      "\"list\": [10, 20, 30], \"obj\": {\"k\": \"v\"}}";
    qb_json j;
    qb_error err = {0};
    CHECK(qb_json_parse(&j, doc, strlen(doc), "doc", &err) == QB_OK, "%s", err.msg);
    size_t n = 0;
    char *t = qb_json_strdup(&j, qb_json_get(&j, 0, "text"), &n);
    CHECK(t && n == 7 && memcmp(t, "a\0b\n\"q\"", 7) == 0, "decoded text keeps its NUL (len %zu)", n);
    free(t);
    int64_t v = 0;
    CHECK(qb_json_int(&j, qb_json_get(&j, 0, "n"), &v) && v == 42, "int");
    CHECK(!qb_json_int(&j, qb_json_get(&j, 0, "f"), &v), "0.5 is not an integer");
    CHECK(qb_json_get_bool(&j, 0, "ok", false), "bool");
    CHECK(qb_json_number(&j, qb_json_at(&j, qb_json_get(&j, 0, "list"), 2), 0) == 30, "array index");
    CHECK(qb_json_at(&j, qb_json_get(&j, 0, "list"), 3) == -1, "index past the end");
    CHECK(qb_json_str_eq(&j, qb_json_get(&j, qb_json_get(&j, 0, "obj"), "k"), "v"), "nested lookup");
    CHECK(qb_json_get(&j, 0, "missing") == -1, "missing key");
    qb_json_free(&j);

    CHECK(qb_json_parse(&j, "{\n\"a\": 1,\n}", 11, "cfg.json", &err) != QB_OK, "trailing comma");
    CHECK(strstr(err.msg, "cfg.json: invalid JSON at line 3") != NULL, "message names file and line: %s", err.msg);

    char *mem;
    size_t len;
    FILE *f = open_memstream(&mem, &len);
    qb_json_write_str(f, "a\"\\\n\x01\0z", 7);
    fclose(f);
    CHECK(strcmp(mem, "\"a\\\"\\\\\\n\\u0001\\u0000z\"") == 0, "escaped output: %s", mem);
    free(mem);
    return qb_test_done("test_json");
}
