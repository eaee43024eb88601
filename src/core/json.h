/* JSON through Debian's libjansson, behind one small module.
 *
 * jansson is maintained, reports errors with a line and a column, keeps
 * strings with NULs ("\u0000") when asked, keeps object keys in insertion
 * order, and lets the last of two equal keys win, as Python's json module and
 * Hugging Face do.  Callers walk the parsed json_t values with jansson's own
 * accessors (json_object_get, json_array_size, json_object_foreach ...); this
 * module owns what qbert adds: reading files with a size cap, messages that
 * name the file, strict number reads, and one writer that turns NaN and
 * infinities into null so --json output is always valid JSON. */
#ifndef QB_CORE_JSON_H
#define QB_CORE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qbert.h"

/* Parses src[0..len) (any JSON value; strings may hold NULs).  what names the
 * source in messages: "WHAT: invalid JSON at line L, column C: problem", or
 * "at column C" for one-line sources such as a JSONL row.  *out is a new
 * reference for json_decref(). */
qb_status qb_json_parse(const char *src, size_t len, const char *what, json_t **out, qb_error *err);
/* The same, refusing an object with a repeated key: for formats where the
 * repeat is an error (a safetensors header naming one tensor twice), not a
 * value to overwrite. */
qb_status qb_json_parse_unique(const char *src, size_t len, const char *what, json_t **out, qb_error *err);

/* Reads path and parses it; the document must be a JSON object.  A file over
 * QB_JSON_FILE_MAX (or a device that never ends) is refused with a one-line
 * error: the largest JSON qbert reads, calibration statistics of a large
 * model, are a few MB, and jansson's values take up to ~20x the text (one
 * allocation a number: 2.2 MB of statistics peak at 41 MB RSS), so the cap
 * bounds a hostile file to about 1.3 GB. */
#define QB_JSON_FILE_MAX ((size_t)64 << 20)
qb_status qb_json_load_object(const char *path, json_t **out, qb_error *err);
/* The same with its own cap in bytes. */
qb_status qb_json_load_object_max(const char *path, size_t max, json_t **out, qb_error *err);

/* The string's bytes (NUL-terminated; *len, if given, counts embedded NULs),
 * or NULL if v is not a string. */
const char *qb_json_str(const json_t *v, size_t *len);
/* A malloc'd copy of the string (NULs kept, *len counts them), or NULL if
 * v is not a string. */
char *qb_json_strdup(const json_t *v, size_t *len);
/* Whether v is a string equal to s. */
bool qb_json_str_eq(const json_t *v, const char *s);
/* v's value if it is a number (integer or real), else fallback. */
double qb_json_number(const json_t *v, double fallback);
/* An integral number within +-9e15 (exact in a double); 4.0 counts, as
 * Python writes some integers that way.  False otherwise. */
bool qb_json_int(const json_t *v, int64_t *out);
bool qb_json_bool(const json_t *v, bool fallback);
double qb_json_get_number(const json_t *obj, const char *key, double fallback);
bool qb_json_get_bool(const json_t *obj, const char *key, bool fallback);

/* Builders for writers.  qb_json_real gives null for NaN and infinities
 * (jansson refuses them); qb_json_strn keeps NULs.  qb_json_set and
 * qb_json_push take the value's reference and return false when either the
 * value (out of memory) or the insertion failed, so a writer checks once at
 * the end with a flag it ANDs into. */
json_t *qb_json_real(double x);
/* An unsigned integer (a seed); past INT64_MAX, the nearest real. */
json_t *qb_json_u64(uint64_t v);
json_t *qb_json_strn(const char *s, size_t len);
bool qb_json_set(json_t *obj, const char *key, json_t *v);
bool qb_json_push(json_t *arr, json_t *v);
/* Shorthands for the members writers set most. */
bool qb_json_set_str(json_t *obj, const char *key, const char *s);
bool qb_json_set_int(json_t *obj, const char *key, long long v);
bool qb_json_set_real(json_t *obj, const char *key, double v);
/* An array of n floats (nulls where not finite), or of n integers. */
json_t *qb_json_floats(const float *v, int n);
json_t *qb_json_ints(const int32_t *v, int n);
/* v when it was built whole (ok); otherwise drops it and gives NULL, which
 * fails the qb_json_set or qb_json_push it is handed to. */
json_t *qb_json_built(json_t *v, bool ok);

/* Output styles: 0 is one line with a space after ',' and ':' (JSONL,
 * --json of predict and bench); QB_JSON_COMPACT drops the spaces (large
 * machine-read files); QB_JSON_INDENT indents by two (files people read).
 * Reals print with 17 significant digits, which read back to the same double
 * whatever it is (statistics that must reload bit for bit).  QB_JSON_DIGITS15
 * asks for 15: a number that came from a decimal of up to 15 digits (a
 * config's 0.1 or 1e-12) prints as that decimal again, not 0.10000000000000001,
 * and metrics keep more digits than they mean.  QB_JSON_DIGITS9 asks for 9:
 * exact for values that were floats (logits, probabilities), and more than
 * timings carry. */
enum { QB_JSON_LINE = 0, QB_JSON_COMPACT = 1, QB_JSON_INDENT = 2, QB_JSON_DIGITS9 = 4, QB_JSON_DIGITS15 = 8 };
/* v then a newline to f; false on a write error. */
bool qb_json_write(FILE *f, const json_t *v, int style);
/* Writes o if it was built whole (built), then drops it; false if it was not
 * or the write failed.  For a line of --json output:
 * if (!qb_json_emit(stdout, o, ok, QB_JSON_LINE)) ... */
bool qb_json_emit(FILE *f, json_t *o, bool built, int style);
/* v as a new malloc'd NUL-terminated string (no newline), or NULL. */
char *qb_json_dumps(const json_t *v, int style);
/* v and a newline to path through path.tmp + rename. */
qb_status qb_json_write_file(const char *path, const json_t *v, int style, qb_error *err);

#endif
