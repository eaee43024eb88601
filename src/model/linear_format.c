/* The table of linear formats and its two lookups. */
#include <stdio.h>
#include <string.h>

#include "model/linear_format.h"

extern const qb_linear_format qb_linear_fp32, qb_linear_fp16, qb_linear_bf16, qb_linear_int8;
extern const qb_linear_format *const qb_linear_lowbit_rows[];
extern const int qb_linear_lowbit_count;

static const qb_linear_format *const rows[] = {&qb_linear_fp32, &qb_linear_fp16, &qb_linear_bf16, &qb_linear_int8};
#define N_FIXED ((int)(sizeof rows / sizeof *rows))

int qb_linear_format_count(void) { return N_FIXED + qb_linear_lowbit_count; }

const qb_linear_format *qb_linear_format_at(int i) {
    return i < N_FIXED ? rows[i] : qb_linear_lowbit_rows[i - N_FIXED];
}

const qb_linear_format *qb_linear_format_of(qb_dtype stored) {
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        if (rows[i]->dtype == stored) return rows[i];
    return &qb_linear_fp32; /* its bind refuses what is not a float */
}

const qb_linear_format *qb_linear_format_named(const char *name) {
    for (int i = 0; i < qb_linear_format_count(); i++)
        if (!strcmp(qb_linear_format_at(i)->name, name)) return qb_linear_format_at(i);
    return NULL;
}

const qb_linear_format *qb_linear_format_parse(const char *s, char *inputs) {
    static const struct {
        const char *suffix;
        char kind;
    } kinds[] = {{"-dynamic", 'd'}, {"-static", 's'}};
    size_t n = strlen(s);
    *inputs = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds && !*inputs; i++) {
        size_t k = strlen(kinds[i].suffix);
        if (n > k && !strcmp(s + n - k, kinds[i].suffix)) n -= k, *inputs = kinds[i].kind;
    }
    char name[48];
    if (n >= sizeof name) return NULL;
    snprintf(name, sizeof name, "%.*s", (int)n, s);
    const qb_linear_format *f = qb_linear_format_named(name);
    return f && (!*inputs || f->integer_inputs) ? f : NULL;
}
