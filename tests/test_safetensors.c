/* safetensors: round trips through the writer, a corpus of malformed files
 * generated here at run time (no binary blobs in the repository), mutation
 * of a valid file, a real checkpoint from ../shared, and Python reading what
 * we wrote. */
#define _GNU_SOURCE
#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/json.h"
#include "io/safetensors.h"
#include "test_util.h"

static char tmpdir[256];

static const char *tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
    return buf;
}

static void put_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

/* A file whose length field says len_field, followed by header and data_len
 * zero bytes. */
static void put_st_len(const char *path, uint64_t len_field, const char *header, size_t data_len) {
    size_t hlen = strlen(header), n = 8 + hlen + data_len;
    unsigned char *buf = calloc(1, n);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(len_field >> (8 * i));
    memcpy(buf + 8, header, hlen);
    put_bytes(path, buf, n);
    free(buf);
}

/* Padded with spaces to 8 bytes, as writers do, so alignment in the data
 * section is decided by the offsets alone. */
static void put_st(const char *path, const char *header, size_t data_len) {
    size_t n = strlen(header), padded = (n + 7) / 8 * 8;
    char *h = malloc(padded + 1);
    memcpy(h, header, n);
    memset(h + n, ' ', padded - n);
    h[padded] = 0;
    put_st_len(path, padded, h, data_len);
    free(h);
}

/* Every failure must carry the expected code and a message that names the
 * file (and the problem), on one line. */
static void expect_open_fails(const char *path, qb_status code, const char *needle) {
    qb_safetensors st;
    qb_error err = {0};
    qb_status s = qb_safetensors_open(&st, path, &err);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    CHECK(s == code, "%s: got %s, want %s (%s)", base, qb_status_name(s), qb_status_name(code), err.msg);
    if (s == QB_OK) {
        qb_safetensors_close(&st);
        return;
    }
    CHECK(strstr(err.msg, base) != NULL, "%s: message does not name the file: %s", base, err.msg);
    CHECK(!needle || strstr(err.msg, needle), "%s: message lacks '%s': %s", base, needle, err.msg);
    CHECK(!strchr(err.msg, '\n'), "%s: message spans lines: %s", base, err.msg);
}

static void corpus_case(const char *name, const char *header, size_t data_len, qb_status code,
                        const char *needle) {
    char p[512];
    put_st(tmp_path(p, sizeof p, name), header, data_len);
    expect_open_fails(p, code, needle);
}

#define F32_4 "\"dtype\":\"F32\",\"shape\":[4],"

static void test_malformed_lengths(void) {
    char p[512];
    put_bytes(tmp_path(p, sizeof p, "empty.safetensors"), "", 0);
    expect_open_fails(p, QB_ERR_FORMAT, "too short");
    put_bytes(tmp_path(p, sizeof p, "short.safetensors"), "\x02\0\0\0\0", 5);
    expect_open_fails(p, QB_ERR_FORMAT, "too short");
    put_st_len(tmp_path(p, sizeof p, "hlen0.safetensors"), 0, "{}", 0);
    expect_open_fails(p, QB_ERR_FORMAT, "header length is 0");
    put_st_len(tmp_path(p, sizeof p, "hlen_past.safetensors"), 1000, "{}", 16);
    expect_open_fails(p, QB_ERR_FORMAT, "past the end");
    put_st_len(tmp_path(p, sizeof p, "hlen_huge.safetensors"), (uint64_t)1 << 40, "{}", 16);
    expect_open_fails(p, QB_ERR_FORMAT, "limit");
    put_st_len(tmp_path(p, sizeof p, "hlen_max.safetensors"), UINT64_MAX, "{}", 16);
    expect_open_fails(p, QB_ERR_FORMAT, "limit");
    put_st_len(tmp_path(p, sizeof p, "hlen_short.safetensors"), 1, "{}", 0);
    expect_open_fails(p, QB_ERR_FORMAT, "invalid JSON");
    /* A length field off by one: the header still parses (one pad space
     * less, or one data byte more), but every tensor would read shifted. */
    const char *one = "{\"a\":{" F32_4 "\"data_offsets\":[0,16]}}       ";
    put_st_len(tmp_path(p, sizeof p, "hlen_minus1.safetensors"), strlen(one) - 1, one, 16);
    expect_open_fails(p, QB_ERR_FORMAT, "tensors end at byte 16 of the 17-byte data section: the header length");
    put_st_len(tmp_path(p, sizeof p, "hlen_plus1.safetensors"), strlen(one) + 1, one, 16);
    expect_open_fails(p, QB_ERR_FORMAT, NULL);
    expect_open_fails(tmp_path(p, sizeof p, "missing.safetensors"), QB_ERR_IO, "cannot open");
}

static void test_malformed_json(void) {
    corpus_case("notjson.safetensors", "{not json", 0, QB_ERR_FORMAT, "invalid JSON");
    corpus_case("array.safetensors", "[1, 2]", 0, QB_ERR_FORMAT, "not a JSON object");
    corpus_case("badutf8.safetensors", "{\"w\xff\":{}}", 0, QB_ERR_FORMAT, "UTF-8");
    corpus_case("overlong.safetensors", "{\"\xc0\xaf\":{}}", 0, QB_ERR_FORMAT, "UTF-8");
    corpus_case("nul_name.safetensors", "{\"a\\u0000b\":{" F32_4 "\"data_offsets\":[0,16]}}", 16,
                QB_ERR_FORMAT, "NUL");
    corpus_case("entry_num.safetensors", "{\"w\":5}", 0, QB_ERR_FORMAT, "'w': entry is not an object");
    corpus_case("no_dtype.safetensors", "{\"w\":{\"shape\":[4],\"data_offsets\":[0,16]}}", 16,
                QB_ERR_FORMAT, "'w': \"dtype\"");
    corpus_case("dtype_num.safetensors", "{\"w\":{\"dtype\":3,\"shape\":[4],\"data_offsets\":[0,16]}}", 16,
                QB_ERR_FORMAT, "'w': \"dtype\"");
    corpus_case("no_shape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", 16,
                QB_ERR_FORMAT, "'w': \"shape\"");
    corpus_case("shape_obj.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,16]}}",
                16, QB_ERR_FORMAT, "'w': \"shape\"");
    corpus_case("no_offsets.safetensors", "{\"w\":{" F32_4 "\"x\":1}}", 16, QB_ERR_FORMAT,
                "'w': \"data_offsets\"");
    corpus_case("offsets_one.safetensors", "{\"w\":{" F32_4 "\"data_offsets\":[16]}}", 16,
                QB_ERR_FORMAT, "'w': \"data_offsets\"");
    corpus_case("offsets_str.safetensors", "{\"w\":{" F32_4 "\"data_offsets\":[\"0\",\"16\"]}}", 16,
                QB_ERR_FORMAT, "'w': \"data_offsets\"");
    corpus_case("offsets_neg.safetensors", "{\"w\":{" F32_4 "\"data_offsets\":[-16,0]}}", 16,
                QB_ERR_FORMAT, "'w': \"data_offsets\"");
    corpus_case("offsets_big.safetensors",
                "{\"w\":{" F32_4 "\"data_offsets\":[0,99999999999999999999999]}}", 16, QB_ERR_FORMAT,
                "column 73: too big integer");
}

static void test_malformed_shapes(void) {
    corpus_case("dim_neg.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}",
                0, QB_ERR_FORMAT, "'w': shape dim 0");
    corpus_case("dim_frac.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2.5],\"data_offsets\":[0,20]}}",
                20, QB_ERR_FORMAT, "'w': shape dim 1");
    corpus_case("dim_exp.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1e1],\"data_offsets\":[0,10]}}",
                10, QB_ERR_FORMAT, "'w': shape dim 0");
    corpus_case("dim_str.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[\"4\"],\"data_offsets\":[0,4]}}",
                4, QB_ERR_FORMAT, "'w': shape dim 0");
    corpus_case("dims5.safetensors",
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
                QB_ERR_FORMAT, "'w': shape has 5 dims");
    corpus_case("numel_overflow.safetensors",
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,0]}}",
                0, QB_ERR_FORMAT, "'w': shape [4294967296, 4294967296, 16] overflows");
    corpus_case("bytes_overflow.safetensors",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[2305843009213693952,3],\"data_offsets\":[0,0]}}",
                0, QB_ERR_FORMAT, "overflows");
    corpus_case("f64.safetensors", "{\"w\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16,
                QB_ERR_UNSUPPORTED, "'w': dtype \"F64\"");
    corpus_case("bool.safetensors", "{\"w\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
                QB_ERR_UNSUPPORTED, "'w': dtype \"BOOL\"");
}

static void test_malformed_layout(void) {
    corpus_case("begin_after_end.safetensors", "{\"w\":{" F32_4 "\"data_offsets\":[16,0]}}", 16,
                QB_ERR_FORMAT, "'w': data_offsets [16, 0] begin after end");
    corpus_case("end_past.safetensors", "{\"w\":{" F32_4 "\"data_offsets\":[0,16]}}", 8,
                QB_ERR_FORMAT, "'w': data_offsets end 16 is beyond the data section (8 bytes)");
    corpus_case("size_mismatch.safetensors",
                "{\"bert.pooler.dense.weight\":{\"dtype\":\"F32\",\"shape\":[768,768],\"data_offsets\":[0,100]}}",
                100, QB_ERR_FORMAT,
                "tensor 'bert.pooler.dense.weight': shape [768, 768] needs 2359296 bytes but data_offsets span 100");
    corpus_case("overlap.safetensors",
                "{\"a\":{" F32_4 "\"data_offsets\":[0,16]},\"b\":{" F32_4 "\"data_offsets\":[8,24]}}", 24,
                QB_ERR_FORMAT, "'b': data [8, 24) overlaps tensor 'a' [0, 16)");
    corpus_case("overlap_nested.safetensors",
                "{\"big\":{\"dtype\":\"U8\",\"shape\":[32],\"data_offsets\":[0,32]},"
                "\"c\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[20,24]},"
                "\"d\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[26,30]}}", 32,
                QB_ERR_FORMAT, "overlaps tensor 'big'");
    corpus_case("same_range.safetensors",
                "{\"a\":{" F32_4 "\"data_offsets\":[0,16]},\"b\":{" F32_4 "\"data_offsets\":[0,16]}}", 16,
                QB_ERR_FORMAT, "overlaps");
    /* Hugging Face refuses these too: tensors must tile the data section. */
    corpus_case("gap.safetensors",
                "{\"a\":{" F32_4 "\"data_offsets\":[0,16]},\"b\":{" F32_4 "\"data_offsets\":[20,36]}}", 36,
                QB_ERR_FORMAT, "'b': data begins at 20, leaving a gap of 4 bytes after tensor 'a'");
    corpus_case("lead_gap.safetensors", "{\"a\":{" F32_4 "\"data_offsets\":[4,20]}}", 20, QB_ERR_FORMAT,
                "'a': data begins at 4, leaving a gap of 4 bytes after the header");
    corpus_case("trailing.safetensors", "{\"a\":{" F32_4 "\"data_offsets\":[0,16]}}", 17, QB_ERR_FORMAT,
                "tensors end at byte 16 of the 17-byte data section");
    corpus_case("empty_inside.safetensors",
                "{\"a\":{" F32_4 "\"data_offsets\":[0,16]},\"e\":{\"dtype\":\"F32\",\"shape\":[0],"
                "\"data_offsets\":[8,8]}}", 16, QB_ERR_FORMAT, "'e': data [8, 8) overlaps tensor 'a' [0, 16)");
    corpus_case("dup_name.safetensors",
                "{\"a\":{" F32_4 "\"data_offsets\":[0,16]},\"a\":{" F32_4 "\"data_offsets\":[16,32]}}", 32,
                QB_ERR_FORMAT, "duplicate object key near '\"a\"'");
    corpus_case("meta_array.safetensors", "{\"__metadata__\":[]}", 0, QB_ERR_FORMAT, "__metadata__");
    corpus_case("meta_num.safetensors", "{\"__metadata__\":{\"format\":1}}", 0, QB_ERR_FORMAT,
                "value of \"format\" is not a string");
    corpus_case("meta_dup.safetensors", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, QB_ERR_FORMAT,
                "duplicate");
}

/* Things the format allows that a strict reader might wrongly refuse. */
static void test_accepted_oddities(void) {
    char p[512];
    qb_safetensors st;
    qb_error err = {0};
    /* Trailing spaces (writers pad), empty tensors sharing an offset, an
     * empty tensor at the very end, odd alignment. */
    put_st(tmp_path(p, sizeof p, "odd_ok.safetensors"),
           "{\"__metadata__\":{\"k\":\"v\"},"
           "\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
           "\"f\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[3,7]},"
           "\"e1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[3,3]},"
           "\"e2\":{\"dtype\":\"I64\",\"shape\":[5,0],\"data_offsets\":[3,3]},"
           "\"pad\":{\"dtype\":\"U8\",\"shape\":[5],\"data_offsets\":[7,12]},"
           "\"gap\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[12,16]},"
           "\"end\":{\"dtype\":\"BF16\",\"shape\":[0,2],\"data_offsets\":[16,16]}}   ",
           16);
    qb_status s = qb_safetensors_open(&st, p, &err);
    CHECK(s == QB_OK, "odd_ok: %s", err.msg);
    if (s) return;
    CHECK(st.n == 7, "odd_ok: %d tensors", st.n);
    CHECK(st.metadata && strcmp(st.metadata, "{\"k\":\"v\"}") == 0, "metadata %s", st.metadata);
    const qb_st_tensor *f = qb_safetensors_find(&st, "f"), *g = qb_safetensors_find(&st, "gap");
    CHECK(f && !f->aligned && f->offset == 3, "F32 at offset 3 should be recorded as unaligned");
    CHECK(g && g->ndim == 0 && g->numel == 1 && g->nbytes == 4 && g->aligned, "scalar gap tensor");
    CHECK(st.n_unaligned == 1, "n_unaligned %d", st.n_unaligned);
    const qb_st_tensor *e = qb_safetensors_find(&st, "end");
    CHECK(e && e->numel == 0 && e->nbytes == 0, "empty tensor at the end");
    CHECK(!qb_safetensors_find(&st, "zzz") && !qb_safetensors_find(&st, ""), "absent names");
    for (int i = 1; i < st.n; i++)
        CHECK(strcmp(st.tensors[i - 1].name, st.tensors[i].name) < 0, "tensors sorted by name");
    qb_safetensors_close(&st);
}

/* ---- round trip -------------------------------------------------------- */

enum { N_RT = 9 };

typedef struct {
    float f32[6];
    uint16_t f16[5], bf16[8];
    int8_t i8[3];
    uint8_t u8[4];
    int32_t i32[2];
    int64_t i64;
    double weird[2]; /* written as I64 [2] through a byte view */
} rt_data;

static const char *weird_name = "weird \"name\"\\ \xc3\xa9\n\x01";

static void rt_fill(rt_data *d, qb_st_write_tensor *w) {
    for (int i = 0; i < 6; i++) d->f32[i] = 0.5f * (float)i - 1.0f;
    for (int i = 0; i < 5; i++) d->f16[i] = qb_f32_to_f16(0.25f * (float)i);
    for (int i = 0; i < 8; i++) d->bf16[i] = qb_f32_to_bf16(-3.0f + (float)i);
    d->i8[0] = -128, d->i8[1] = 0, d->i8[2] = 127;
    for (int i = 0; i < 4; i++) d->u8[i] = (uint8_t)(250 + i);
    d->i32[0] = -7, d->i32[1] = 2147483647;
    d->i64 = -1234567890123LL;
    d->weird[0] = 1.5, d->weird[1] = -2.5;
    /* The I8 tensor of 3 bytes leaves the next ones misaligned on purpose. */
    qb_st_write_tensor t[N_RT] = {
        {"f32.matrix", QB_F32, 2, {2, 3}, d->f32},
        {"f16.vec", QB_F16, 1, {5}, d->f16},
        {"bf16.cube", QB_BF16, 3, {2, 2, 2}, d->bf16},
        {"i8.odd", QB_I8, 1, {3}, d->i8},
        {"u8.4d", QB_U8, 4, {4, 1, 1, 1}, d->u8},
        {"i32.after_odd", QB_I32, 1, {2}, d->i32},
        {"i64.scalar", QB_I64, 0, {0}, &d->i64},
        {"f32.empty", QB_F32, 2, {0, 4}, NULL},
        {weird_name, QB_I64, 1, {2}, d->weird},
    };
    memcpy(w, t, sizeof t);
}

static const char *rt_metadata = "{ \"format\" : \"pt\", \"note\": \"a \\\"quoted\\\" \\u00e9\" }";

static void check_rt_tensor(const qb_safetensors *st, const qb_st_write_tensor *w) {
    const qb_st_tensor *t = qb_safetensors_find(st, w->name);
    CHECK(t != NULL, "round trip: '%s' missing", w->name);
    if (!t) return;
    int64_t numel = 1;
    for (int d = 0; d < w->ndim; d++) numel *= w->shape[d];
    size_t nbytes = (size_t)numel * qb_dtype_traits_of(w->dtype)->size;
    CHECK(t->dtype == w->dtype && t->ndim == w->ndim, "'%s' dtype/ndim", w->name);
    for (int d = 0; d < w->ndim && d < t->ndim; d++)
        CHECK(t->shape[d] == w->shape[d], "'%s' dim %d: %lld", w->name, d, (long long)t->shape[d]);
    CHECK(t->numel == numel && t->nbytes == nbytes, "'%s' numel %lld nbytes %zu", w->name,
          (long long)t->numel, t->nbytes);
    const unsigned char *lo = st->map.data, *hi = lo + st->map.size, *p = t->data;
    CHECK(p >= lo && p + t->nbytes <= hi, "'%s' data outside the mapping", w->name);
    CHECK(!nbytes || memcmp(t->data, w->data, nbytes) == 0, "'%s' data differs", w->name);
    CHECK(t->aligned == (!nbytes || (uintptr_t)p % qb_dtype_traits_of(t->dtype)->size == 0),
          "'%s' aligned flag", w->name);
}

/* Whether a temporary file of path's (path.tmp-PID-N) is left beside it. */
static bool temp_left(const char *path) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : path;
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s.tmp", base);
    if (slash) *slash = 0;
    DIR *d = opendir(slash ? dir : ".");
    bool left = false;
    struct dirent *e;
    while (d && !left && (e = readdir(d))) left = !strncmp(e->d_name, prefix, strlen(prefix));
    if (d) closedir(d);
    return left;
}

static void test_round_trip(const char *path) {
    rt_data d;
    qb_st_write_tensor w[N_RT];
    rt_fill(&d, w);
    qb_error err = {0};
    qb_status s = qb_safetensors_write(path, w, N_RT, rt_metadata, &err);
    CHECK(s == QB_OK, "write: %s", err.msg);
    CHECK(!temp_left(path), "temporary file left behind");
    qb_safetensors st;
    s = qb_safetensors_open(&st, path, &err);
    CHECK(s == QB_OK, "read back: %s", err.msg);
    if (s) return;
    CHECK(st.n == N_RT, "read back %d tensors", st.n);
    for (int i = 0; i < N_RT; i++) check_rt_tensor(&st, &w[i]);
    CHECK(st.n_unaligned > 0, "the tensors after the 3-byte I8 should be unaligned");
    const qb_st_tensor *t = qb_safetensors_find(&st, "f32.matrix");
    CHECK(t && t->offset == 0 && t->aligned, "first tensor at offset 0, aligned");
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | st.map.data[i];
    CHECK(hlen % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hlen);
    CHECK(st.map.size == 8 + hlen + 24 + 10 + 16 + 3 + 4 + 8 + 8 + 16, "file size %zu", st.map.size);
    json_t *j = NULL;
    CHECK(st.metadata && qb_json_parse(st.metadata, strlen(st.metadata), "metadata", &j, &err) == QB_OK,
          "metadata does not parse: %s", st.metadata ? st.metadata : "(null)");
    if (j) {
        CHECK(qb_json_str_eq(json_object_get(j, "format"), "pt"), "metadata format");
        CHECK(qb_json_str_eq(json_object_get(j, "note"), "a \"quoted\" \xc3\xa9"), "metadata note");
        json_decref(j);
    }
    qb_safetensors_close(&st);
}

static void test_write_empty(void) {
    char p[512];
    qb_error err = {0};
    CHECK(qb_safetensors_write(tmp_path(p, sizeof p, "none.safetensors"), NULL, 0, NULL, &err) == QB_OK,
          "empty write: %s", err.msg);
    qb_safetensors st;
    CHECK(qb_safetensors_open(&st, p, &err) == QB_OK, "empty read: %s", err.msg);
    CHECK(st.n == 0 && !st.metadata && !qb_safetensors_find(&st, "x"), "empty file contents");
    CHECK(st.map.size == 16, "'{}' padded to 8: file is %zu bytes", st.map.size);
    qb_safetensors_close(&st);
}

static void expect_write_fails(const char *name, const qb_st_write_tensor *w, int n, const char *meta,
                               qb_status code, const char *needle) {
    char p[512];
    qb_error err = {0};
    tmp_path(p, sizeof p, name);
    qb_status s = qb_safetensors_write(p, w, n, meta, &err);
    CHECK(s == code, "%s: got %s, want %s (%s)", name, qb_status_name(s), qb_status_name(code), err.msg);
    CHECK(strstr(err.msg, name) && (!needle || strstr(err.msg, needle)), "%s: message: %s", name, err.msg);
    CHECK(!temp_left(p), "%s: temporary file left behind", name);
}

static void test_write_errors(const char *good_path) {
    float x[4] = {1, 2, 3, 4};
    qb_st_write_tensor dup[2] = {{"a", QB_F32, 1, {4}, x}, {"a", QB_F32, 1, {2}, x}};
    expect_write_fails("w_dup.safetensors", dup, 2, NULL, QB_ERR_ARG, "'a': duplicate name");
    qb_st_write_tensor reserved = {"__metadata__", QB_F32, 1, {4}, x};
    expect_write_fails("w_reserved.safetensors", &reserved, 1, NULL, QB_ERR_ARG, "reserved");
    qb_st_write_tensor neg = {"n", QB_F32, 1, {-4}, x};
    expect_write_fails("w_neg.safetensors", &neg, 1, NULL, QB_ERR_ARG, "'n'");
    qb_st_write_tensor ndim = {"n", QB_F32, 5, {1, 1, 1, 1}, x};
    expect_write_fails("w_ndim.safetensors", &ndim, 1, NULL, QB_ERR_ARG, "ndim 5");
    qb_st_write_tensor nodata = {"n", QB_F32, 1, {4}, NULL};
    expect_write_fails("w_nodata.safetensors", &nodata, 1, NULL, QB_ERR_ARG, "NULL");
    qb_st_write_tensor baddt = {"n", (qb_dtype)99, 1, {4}, x};
    expect_write_fails("w_dtype.safetensors", &baddt, 1, NULL, QB_ERR_ARG, "dtype");
    qb_st_write_tensor ok = {"ok", QB_F32, 1, {4}, x};
    expect_write_fails("w_meta_json.safetensors", &ok, 1, "{oops", QB_ERR_ARG, "metadata");
    expect_write_fails("w_meta_arr.safetensors", &ok, 1, "[\"a\"]", QB_ERR_ARG, "not a JSON object");
    expect_write_fails("w_meta_num.safetensors", &ok, 1, "{\"a\":\"b\",\"n\":1}", QB_ERR_ARG, "not a string");
    /* a directory where the file goes is refused before anything is
     * written, and no temporary file is left */
    char p[512];
    mkdir(tmp_path(p, sizeof p, "w_isdir.safetensors"), 0755);
    expect_write_fails("w_isdir.safetensors", &ok, 1, NULL, QB_ERR_IO, "is a directory, not a file");
    qb_error err = {0};
    CHECK(qb_safetensors_write("/nonexistent-dir/x.safetensors", &ok, 1, NULL, &err) == QB_ERR_IO &&
              strstr(err.msg, "x.safetensors"),
          "unwritable directory: %s", err.msg);
    /* A failed write leaves an existing file as it was. */
    CHECK(qb_safetensors_write(good_path, dup, 2, NULL, &err) == QB_ERR_ARG, "dup over good file");
    qb_safetensors st;
    qb_status s = qb_safetensors_open(&st, good_path, &err);
    CHECK(s == QB_OK && st.n == N_RT, "good file damaged: %s", err.msg);
    if (s == QB_OK) qb_safetensors_close(&st);
}

/* ---- robustness: truncations and mutations of a valid file -------------- */

static void test_truncations(const char *good_path) {
    char *buf;
    size_t n;
    qb_error err = {0};
    if (qb_file_read_all(good_path, &buf, &n, &err)) {
        CHECK(0, "read %s: %s", good_path, err.msg);
        return;
    }
    char p[512];
    tmp_path(p, sizeof p, "trunc.safetensors");
    int bad = 0;
    /* The last tensor written is non-empty, so every cut loses something. */
    for (size_t len = 0; len < n; len++) {
        put_bytes(p, buf, len);
        qb_safetensors st;
        qb_status s = qb_safetensors_open(&st, p, &err);
        if (s == QB_OK) qb_safetensors_close(&st);
        bad += s != QB_ERR_FORMAT || !strstr(err.msg, "trunc.safetensors");
    }
    CHECK(bad == 0, "%d of %zu truncations not answered with a format error naming the file", bad, n);
    free(buf);
}

static void test_mutations(const char *good_path) {
    char *buf;
    size_t n;
    qb_error err = {0};
    if (qb_file_read_all(good_path, &buf, &n, &err)) {
        CHECK(0, "read %s: %s", good_path, err.msg);
        return;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (unsigned char)buf[i];
    char p[512];
    tmp_path(p, sizeof p, "mutant.safetensors");
    char *m = malloc(n);
    uint32_t seed = 12345;
    int unnamed = 0, accepted = 0;
    const char swaps[] = "0123456789-.e[]{},:\" \\\x80\xff";
    for (int iter = 0; iter < 1500; iter++) {
        memcpy(m, buf, n);
        int edits = 1 + iter % 3;
        for (int e = 0; e < edits; e++) {
            seed = seed * 1664525u + 1013904223u;
            size_t at = (seed >> 8) % (8 + hlen);
            seed = seed * 1664525u + 1013904223u;
            m[at] = swaps[(seed >> 8) % (sizeof swaps - 1)];
        }
        put_bytes(p, m, n);
        qb_safetensors st;
        qb_status s = qb_safetensors_open(&st, p, &err);
        if (s == QB_OK) {
            accepted++;
            for (int i = 0; i < st.n; i++) {
                const unsigned char *d = st.tensors[i].data;
                unnamed += d < st.map.data || d + st.tensors[i].nbytes > st.map.data + st.map.size;
            }
            qb_safetensors_close(&st);
        } else {
            unnamed += !strstr(err.msg, "mutant.safetensors") || strchr(err.msg, '\n') != NULL;
        }
    }
    CHECK(unnamed == 0, "%d mutants gave an unnamed error or data outside the file", unnamed);
    printf("mutations: 1500 tried, %d still valid\n", accepted);
    free(m);
    free(buf);
}

/* ---- Python reads what we wrote ----------------------------------------- */

static const char *py_check =
    "import json, struct, sys\n"
    "import numpy as np\n"
    "b = open(sys.argv[1], 'rb').read()\n"
    "n = struct.unpack('<Q', b[:8])[0]\n"
    "assert n % 8 == 0\n"
    "h = json.loads(b[8:8 + n].decode('utf-8'))\n"
    "data = b[8 + n:]\n"
    "meta = h.pop('__metadata__')\n"
    "assert meta == {'format': 'pt', 'note': 'a \"quoted\" \\u00e9'}, meta\n"
    "assert len(h) == 9, len(h)\n"
    "assert 'weird \"name\"\\\\ \\u00e9\\n\\x01' in h, list(h)\n"
    "ends = sorted((v['data_offsets'] for v in h.values()))\n"
    "assert ends[0][0] == 0 and ends[-1][1] == len(data)\n"
    "assert all(a[1] == b[0] for a, b in zip(ends, ends[1:]))\n"
    "def get(name, dt):\n"
    "    t = h[name]; o = t['data_offsets']\n"
    "    return np.frombuffer(data[o[0]:o[1]], dtype=dt).reshape(t['shape'])\n"
    "m = get('f32.matrix', '<f4')\n"
    "assert m.shape == (2, 3) and m[1, 2] == 1.5, m\n"
    "assert get('f16.vec', '<f2')[4] == 1.0\n"
    "bf = (get('bf16.cube', '<u2').astype(np.uint32) << 16).view(np.float32)\n"
    "assert bf.shape == (2, 2, 2) and bf[1, 1, 1] == 4.0, bf\n"
    "assert get('i8.odd', 'i1').tolist() == [-128, 0, 127]\n"
    "assert get('i32.after_odd', '<i4')[1] == 2147483647\n"
    "s = get('i64.scalar', '<i8')\n"
    "assert s.shape == () and int(s) == -1234567890123\n"
    "assert get('f32.empty', '<f4').shape == (0, 4)\n"
    "assert h['u8.4d']['dtype'] == 'U8' and get('u8.4d', 'u1')[3, 0, 0, 0] == 253\n";

static void test_python_reads(const char *good_path) {
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        printf("note: /usr/bin/python3 with numpy not found; skipping the Python read check\n");
        return;
    }
    char script[512], cmd[1200];
    put_bytes(tmp_path(script, sizeof script, "check.py"), py_check, strlen(py_check));
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", script, good_path);
    CHECK(system(cmd) == 0, "Python could not read %s", good_path);
}

/* ---- a real checkpoint -------------------------------------------------- */

static void test_real_checkpoint(void) {
    char path[4096];
    qb_test_shared_path(path, sizeof path, "models/bert-mini-sst2/model.safetensors");
    qb_safetensors st;
    qb_error err = {0};
    qb_status s = qb_safetensors_open(&st, path, &err);
    CHECK(s == QB_OK, "bert-mini: %s", err.msg);
    if (s) return;
    CHECK(st.n == 73, "bert-mini has %d tensors, want 73", st.n);
    const qb_st_tensor *t = qb_safetensors_find(&st, "bert.embeddings.word_embeddings.weight");
    CHECK(t && t->dtype == QB_F32 && t->ndim == 2 && t->shape[0] == 30522 && t->shape[1] == 256 &&
              t->nbytes == (size_t)30522 * 256 * 4,
          "word embeddings shape");
    CHECK(st.metadata && strstr(st.metadata, "\"pt\""), "metadata %s", st.metadata ? st.metadata : "");
    int outside = 0, missed = 0;
    for (int i = 0; i < st.n; i++) {
        const qb_st_tensor *x = &st.tensors[i];
        const unsigned char *d = x->data;
        outside += d < st.map.data + 8 || d + x->nbytes > st.map.data + st.map.size;
        missed += qb_safetensors_find(&st, x->name) != x;
    }
    CHECK(outside == 0, "%d tensors point outside the mapping", outside);
    CHECK(missed == 0, "%d tensors not found by their own name", missed);
    CHECK(st.n_unaligned == 0, "%d unaligned F32 tensors in an HF checkpoint", st.n_unaligned);
    qb_safetensors_close(&st);
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    return remove(p);
}

/* Released pages of a mapping read back from the file; ranges outside it
 * and a map that is not a mapping (an empty file's, in memory) are left alone. */
static void test_map_release(void) {
    char path[512];
    tmp_path(path, sizeof path, "release.bin");
    size_t n = 5 * 4096 + 123;
    unsigned char *bytes = malloc(n);
    for (size_t i = 0; i < n; i++) bytes[i] = (unsigned char)(i * 7 + 1);
    put_bytes(path, bytes, n);
    qb_file_map m;
    qb_error err = {0};
    CHECK(qb_file_map_open(&m, path, &err) == QB_OK && m.mapped, "map %s", path);
    if (m.mapped) {
        volatile unsigned sum = 0;
        for (size_t i = 0; i < n; i++) sum += m.data[i]; /* fault everything in */
        qb_file_map_release(&m, m.data + 100, n - 200);
        qb_file_map_release(&m, bytes, n); /* not inside the mapping: ignored */
        CHECK(memcmp(m.data, bytes, n) == 0, "released pages read back from the file");
        qb_file_map_close(&m);
    }
    free(bytes);
    /* whole heap pages posing as data: DONTNEED would zero them */
    size_t heap_n = 3 * 4096;
    unsigned char *heap = aligned_alloc(4096, heap_n);
    memset(heap, 0xab, heap_n);
    qb_file_map fake = {.data = heap, .size = heap_n, .mapped = false};
    qb_file_map_release(&fake, heap, heap_n);
    CHECK(heap[0] == 0xab && heap[heap_n - 1] == 0xab, "heap data of an unmapped file untouched");
    free(heap);
}

int main(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/qb_safetensors_XXXXXX", base);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char good[512];
    tmp_path(good, sizeof good, "round_trip.safetensors");
    test_malformed_lengths();
    test_malformed_json();
    test_malformed_shapes();
    test_malformed_layout();
    test_accepted_oddities();
    test_round_trip(good);
    test_write_empty();
    test_write_errors(good);
    test_truncations(good);
    test_mutations(good);
    test_python_reads(good);
    test_map_release();
    nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    /* Last, since it exits 77 when ../shared is missing; a failure above
     * outranks that skip. */
    if (!qb_test_shared_dir() && qb_test_failures) return qb_test_done("test_safetensors");
    test_real_checkpoint();
    return qb_test_done("test_safetensors");
}
