#include "io/st_list.h"

#include <stdlib.h>
#include <string.h>

bool qb_st_list_init(qb_st_list *o, int cap) {
    memset(o, 0, sizeof *o);
    o->cap = o->cap_owned = cap;
    o->t = calloc((size_t)cap, sizeof *o->t);
    o->names = calloc((size_t)cap, sizeof *o->names);
    o->owned = calloc((size_t)cap, sizeof *o->owned);
    return o->t && o->names && o->owned;
}

void qb_st_list_free(qb_st_list *o) {
    for (int i = 0; i < o->n; i++) free(o->names[i]);
    for (int i = 0; i < o->n_owned; i++) free(o->owned[i]);
    free(o->t);
    free(o->names);
    free(o->owned);
    memset(o, 0, sizeof *o);
}

void *qb_st_list_alloc(qb_st_list *o, size_t bytes) {
    if (o->n_owned == o->cap_owned) return NULL;
    void *p = malloc(bytes ? bytes : 1);
    if (p) o->owned[o->n_owned++] = p;
    return p;
}

bool qb_st_list_push(qb_st_list *o, const char *name, qb_dtype dtype, int ndim, const int64_t *shape,
                     const void *data) {
    if (o->n == o->cap) return false;
    char *nm = strdup(name);
    if (!nm) return false;
    o->names[o->n] = nm;
    qb_st_write_tensor *t = &o->t[o->n++];
    t->name = nm;
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->data = data;
    return true;
}

float *qb_st_list_f32(qb_st_list *o, const qb_st_tensor *t) {
    float *f = qb_st_list_alloc(o, (size_t)t->numel * sizeof *f);
    if (f) qb_safetensors_to_f32(t, f);
    return f;
}

bool qb_st_list_push_half(qb_st_list *o, const qb_st_tensor *t, qb_dtype half) {
    float *f = qb_st_list_f32(o, t);
    uint16_t *h = f ? qb_st_list_alloc(o, (size_t)t->numel * 2) : NULL;
    if (!h) return false;
    for (int64_t i = 0; i < t->numel; i++) h[i] = half == QB_F16 ? qb_f32_to_f16(f[i]) : qb_f32_to_bf16(f[i]);
    return qb_st_list_push(o, t->name, half, t->ndim, t->shape, h);
}
