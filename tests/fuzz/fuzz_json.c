/* The JSON reader (src/core/json.c): parse, then read every token back
 * through each accessor, as config, calibration and dataset readers do. */
#include "fuzz_common.h"

#include "core/json.h"

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    devnull = fopen("/dev/null", "w");
    if (!devnull) fuzz_die("cannot open /dev/null", NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *j = NULL;
    qb_error err;
    if (qb_json_parse((const char *)data, size, "fuzz", &j, &err) != QB_OK) {
        fuzz_touch(err.msg, strlen(err.msg));
        return 0;
    }
    for (uint32_t t = 0; t < j.n; t++) {
        const qb_json_tok *k = &j.toks[t];
        if (k->start > k->end || k->end > size || k->next <= t || k->next > j.n) abort();
        size_t len;
        char *s = qb_json_strdup((int)t, &len);
        if (s) {
            if (len > k->end - k->start) abort(); /* decoding never grows a string */
            fuzz_touch(s, len + 1);
            qb_json_write_str(devnull, s, len);
            if (qb_json_str_eq((int)t, s) != (strlen(s) == len)) abort();
            free(s);
        }
        int64_t v;
        (void)qb_json_int((int)t, &v);
        fuzz_sink += (qb_json_number((int)t, 0) > 0) + qb_json_bool((int)t, false);
        if (k->type == QB_JSON_ARRAY && k->size) {
            if (json_array_get((int)t, (int)k->size - 1) < 0) abort();
            if (json_array_get((int)t, (int)k->size) != -1) abort();
        }
        if (k->type == QB_JSON_OBJECT) {
            fuzz_sink += (unsigned)json_object_get((int)t, "model_type");
            fuzz_sink += qb_json_get_number((int)t, "n", 0) > 0;
            fuzz_sink += qb_json_get_bool((int)t, "symmetric", false);
        }
    }
    json_decref(j);
    return 0;
}
