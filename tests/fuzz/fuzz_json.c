/* The JSON module (src/core/json.c over jansson): parse, walk every value
 * through each accessor, as config, calibration and dataset readers do, and
 * check that the writer's output parses back to an equal document. */
#include "fuzz_common.h"

#include "core/json.h"

static void walk(const json_t *v) {
    size_t len;
    const char *s = qb_json_str(v, &len);
    if (s) {
        fuzz_touch(s, len + 1);
        if (qb_json_str_eq(v, s) != (strlen(s) == len)) abort();
    }
    int64_t i;
    if (qb_json_int(v, &i) && !json_is_number(v)) abort();
    fuzz_sink += (qb_json_number(v, 0) > 0) + qb_json_bool(v, false);
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if (n && !json_array_get(v, n - 1)) abort();
        if (json_array_get(v, n)) abort();
        for (size_t k = 0; k < n; k++) walk(json_array_get(v, k));
    }
    if (json_is_object(v)) {
        fuzz_sink += json_object_get(v, "model_type") != NULL;
        fuzz_sink += qb_json_get_number(v, "n", 0) > 0;
        fuzz_sink += qb_json_get_bool(v, "symmetric", false);
        const char *key;
        json_t *m;
        json_object_foreach((json_t *)v, key, m) walk(m);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *j = NULL;
    qb_error err;
    if (qb_json_parse((const char *)data, size, "fuzz", &j, &err) != QB_OK) {
        if (strchr(err.msg, '\n')) abort(); /* messages are one line */
        fuzz_touch(err.msg, strlen(err.msg));
        return 0;
    }
    walk(j);
    char *text = qb_json_dumps(j, QB_JSON_COMPACT);
    json_t *back = NULL;
    if (!text || qb_json_parse(text, strlen(text), "dump", &back, &err) != QB_OK) abort();
    if (!json_equal(j, back)) abort();
    json_decref(back);
    free(text);
    json_decref(j);
    return 0;
}
