/* A small validating JSON reader: one pass builds a flat token array
 * (jsmn-style) over the caller's buffer, so nothing is copied until a string
 * is asked for.  Strings are (pointer, length): "\u0000" decodes to a NUL
 * byte that stays part of the string. */
#ifndef QB_CORE_JSON_H
#define QB_CORE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qbert.h"

typedef enum {
    QB_JSON_NULL, QB_JSON_BOOL, QB_JSON_NUMBER, QB_JSON_STRING, QB_JSON_ARRAY, QB_JSON_OBJECT
} qb_json_type;

typedef struct {
    qb_json_type type;
    uint32_t start, end; /* bytes of the value; for strings, inside the quotes */
    uint32_t size;       /* arrays: elements; objects: keys */
    uint32_t next;       /* index of the token after this whole subtree */
} qb_json_tok;

typedef struct {
    const char *src;
    size_t len;
    qb_json_tok *toks;
    uint32_t n, cap;
    char *owned;        /* the file text, when qb_json_load_object read it */
} qb_json;

/* what names the source in messages (a file name, "line 12 of x.jsonl"). */
qb_status qb_json_parse(qb_json *j, const char *src, size_t len, const char *what, qb_error *err);
void qb_json_free(qb_json *j);
/* Reads path and parses it; the document must be a JSON object.  The text
 * belongs to j and goes with qb_json_free().  A file over QB_JSON_FILE_MAX
 * (or a device that never ends) is refused with a one-line error: the
 * largest JSON qbert reads, calibration statistics of a large model, are a
 * few tens of MB, and the parse needs ~24 bytes a token on top of the text
 * (at most ~0.8 GB at the cap). */
#define QB_JSON_FILE_MAX ((size_t)64 << 20)
qb_status qb_json_load_object(qb_json *j, const char *path, qb_error *err);
/* The same with its own cap in bytes. */
qb_status qb_json_load_object_max(qb_json *j, const char *path, size_t max, qb_error *err);

/* Object member lookup; returns the value's token index or -1. */
int qb_json_get(const qb_json *j, int obj, const char *key);
/* Array element i, or -1. */
int qb_json_at(const qb_json *j, int arr, int i);
/* First child of an array/object (for iteration with toks[i].next). */
static inline int qb_json_first(const qb_json *j, int t) { (void)j; return t + 1; }

bool qb_json_is(const qb_json *j, int t, qb_json_type type);
/* Decoded string into a new malloc'd NUL-terminated buffer; *len gets the
 * decoded length (which may contain NULs).  NULL if t is not a string. */
char *qb_json_strdup(const qb_json *j, int t, size_t *len);
/* Compares the decoded string with s. */
bool qb_json_str_eq(const qb_json *j, int t, const char *s);
double qb_json_number(const qb_json *j, int t, double fallback);
/* Integer value; false if not an integral number in range. */
bool qb_json_int(const qb_json *j, int t, int64_t *out);
bool qb_json_bool(const qb_json *j, int t, bool fallback);

/* Helpers for the typed getters callers use most. */
double qb_json_get_number(const qb_json *j, int obj, const char *key, double fallback);
bool qb_json_get_bool(const qb_json *j, int obj, const char *key, bool fallback);

/* Writes s[0..len) as a JSON string literal, escaping as needed. */
void qb_json_write_str(FILE *f, const char *s, size_t len);

#endif
