/* The helpers every binder of checkpoint tensors uses: ownership of
 * converted copies, shape checks, the parameter registry, FP32 views and
 * the companion tensors of quantized weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/huge.h"
#include "core/pool.h"
#include "model/linear_format.h"

const qb_st_tensor *qb_binder_find(qb_binder *b, const char *name) {
    const qb_st_tensor *t = qb_safetensors_find(&b->m->st, name);
    if (t) b->m->st_used[t - b->m->st.tensors] = true;
    return t;
}

bool qb_binder_own(qb_binder *b, void *p, size_t bytes) {
    void **list = p ? realloc(b->m->owned, (size_t)(b->m->n_owned + 1) * sizeof *list) : NULL;
    if (!list) {
        free(p);
        return false;
    }
    b->m->owned = list;
    b->m->owned[b->m->n_owned++] = p;
    b->m->held_bytes += bytes;
    return true;
}

/* Packing writes every page of its output once, right after allocating
 * it: on 4 KiB pages the faults took as long as the packing itself
 * (bert-base FP32: `predict` 0.34 s against 0.16 s on 2 MiB pages).
 * Weights get pages of their own rather than 2 MiB-aligned allocations
 * each, which would round every 2.4 MB matrix up to 4 MB: consecutive
 * packs share chunks, and a chunk's pages that no weight reached are
 * never touched, so never resident.  Those it reached are resident whole:
 * the memory model counts a chunk's 2 MiB pages up to its last weight, as
 * it counts a session's arena. */
#define QB_PACKED_CHUNK ((size_t)64 << 20)

void *qb_binder_alloc_packed(qb_binder *b, size_t bytes, const char *what) {
    bytes = (bytes + 63) / 64 * 64;
    if (bytes > b->arena_cap - b->arena_used) {
        size_t cap = qb_huge_round(bytes > QB_PACKED_CHUNK ? bytes : QB_PACKED_CHUNK);
        char *chunk = qb_huge_alloc(cap);
        if (!chunk || !qb_binder_own(b, chunk, 0)) {
            qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory packing '%s'", b->file, what);
            return NULL;
        }
        b->arena = chunk, b->arena_used = 0, b->arena_cap = cap;
    }
    void *p = b->arena + b->arena_used;
    b->m->held_bytes += qb_huge_round(b->arena_used + bytes) - qb_huge_round(b->arena_used);
    b->arena_used += bytes;
    return p;
}

/* A read fault maps the page's neighbours too, as many as the page cache
 * holds together: a 64 KiB window, or a whole folio (up to 2 MiB) where a
 * file read in order sits in large ones.  Dropping t's bytes widened by
 * that much each way therefore drops every page that reading t mapped,
 * its neighbours' included: left mapped, those would add up to tens of MB
 * over a load on top of the copies.  Nothing is lost: the pages stay in
 * the page cache, and runs fault back what they read. */
static void drop_pages(const qb_model *m, const qb_st_tensor *t) {
    const qb_file_map *map = &m->st.map;
    const char *lo = t->data, *hi = lo + t->nbytes, *base = (const char *)map->data, *end = base + map->size;
    lo = lo - base > (ptrdiff_t)QB_HUGE_PAGE ? lo - QB_HUGE_PAGE : base;
    hi = end - hi > (ptrdiff_t)QB_HUGE_PAGE ? hi + QB_HUGE_PAGE : end;
    qb_file_map_release(map, lo, (size_t)(hi - lo));
}

void qb_binder_release(qb_binder *b, const qb_st_tensor *t) {
    drop_pages(b->m, t);
    b->m->st_released[t - b->m->st.tensors] = true;
}

typedef struct qb_binder_pack {
    qb_linear *l;
    const qb_st_tensor *t;
    bool failed;
} qb_binder_pack;

/* Bind may have read t to check it: dropped now, faulted back by pack. */
bool qb_binder_defer_pack(qb_binder *b, qb_linear *l, const qb_st_tensor *t, bool release) {
    qb_binder_pack *list = realloc(b->packs, (size_t)(b->n_packs + 1) * sizeof *list);
    if (!list) {
        qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory binding '%s'", b->file, t->name);
        return false;
    }
    b->packs = list;
    b->packs[b->n_packs++] = (qb_binder_pack){l, t, false};
    if (release) qb_binder_release(b, t);
    else drop_pages(b->m, t);
    return true;
}

static void pack_task(void *ctx, int i, int thread) {
    (void)thread;
    qb_binder *b = ctx;
    qb_binder_pack *p = &b->packs[i];
    p->failed = !p->l->fmt->pack(b->m, p->l, p->t);
    drop_pages(b->m, p->t);
}

/* Packing is most of a load (bert-base FP32 on AVX2: the panels' page
 * faults and the transposes), and each linear's is independent. */
void qb_binder_run_packs(qb_binder *b, int n_threads) {
    long n = n_threads > 0 ? n_threads : sysconf(_SC_NPROCESSORS_ONLN);
    n = n < b->n_packs ? n : b->n_packs;
    qb_pool *pool = NULL;
    qb_error ignored = {0};
    /* threads only speed it up: without them the caller packs alone */
    if (!b->err->code && n > 1) qb_pool_create(n < QB_POOL_MAX_THREADS ? (int)n : QB_POOL_MAX_THREADS, &pool, &ignored);
    if (!b->err->code) qb_pool_run(pool, b->n_packs, pack_task, b);
    qb_pool_free(pool);
    for (int i = 0; !b->err->code && i < b->n_packs; i++)
        if (b->packs[i].failed) qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory packing '%s'", b->file, b->packs[i].t->name);
    free(b->packs);
    b->packs = NULL;
    b->n_packs = 0;
}

const float *qb_binder_f32_copy(qb_binder *b, const qb_st_tensor *t) {
    float *f = malloc((size_t)t->numel * sizeof *f + 1);
    if (!qb_binder_own(b, f, (size_t)t->numel * sizeof *f + 1)) return NULL;
    qb_safetensors_to_f32(t, f);
    return f;
}

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

bool qb_binder_check_shape(qb_binder *b, const qb_st_tensor *t, int ndim, int64_t d0, int64_t d1) {
    int64_t want[2] = {d0, d1};
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == want[i];
    if (!ok) {
        char got[80], exp[80];
        format_shape(got, sizeof got, t->ndim, t->shape);
        format_shape(exp, sizeof exp, ndim, want);
        qb_fail(b->err, QB_ERR_FORMAT, "%s: tensor '%s' has shape %s, config.json implies %s", b->file, t->name,
                got, exp);
    }
    return ok;
}

void qb_binder_register(qb_binder *b, const qb_st_tensor *t, const float *data) {
    qb_param *p = &b->m->params[b->m->n_params++];
    p->name = t->name;
    p->ndim = t->ndim;
    memcpy(p->shape, t->shape, sizeof p->shape);
    p->numel = t->numel;
    p->data = data;
}

/* A float tensor as FP32: mapped when it is an F32, aligned matrix, else
 * converted or copied.  Vectors (biases, LayerNorm) are copied: read from
 * the map at run time, each would bring back the kernel's fault-around
 * window of its neighbours (64 KiB), packed weights that load released
 * included. */
const float *qb_binder_f32(qb_binder *b, const qb_st_tensor *t, int ndim, int64_t d0, int64_t d1) {
    if (!t || b->err->code || !qb_binder_check_shape(b, t, ndim, d0, d1)) return NULL;
    const qb_dtype_traits *tr = qb_dtype_traits_of(t->dtype);
    if (!tr->is_float) {
        qb_fail(b->err, QB_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, expected a float type", b->file,
                t->name, tr->name);
        return NULL;
    }
    const float *data = t->data;
    if (t->dtype != QB_F32 || ((uintptr_t)data & 3) || t->ndim == 1) {
        data = qb_binder_f32_copy(b, t);
        if (!data) {
            qb_fail(b->err, QB_ERR_NOMEM, "%s: out of memory converting '%s'", b->file, t->name);
            return NULL;
        }
        qb_binder_release(b, t);
    }
    qb_binder_register(b, t, data);
    return data;
}

/* A companion tensor of a quantized one ("<weight>_scale"...), F32 or I32
 * with exactly n elements. */
const qb_st_tensor *qb_binder_companion(qb_binder *b, const char *base, const char *suffix, qb_dtype dtype,
                                        int64_t n) {
    char name[256];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    const qb_st_tensor *t = qb_binder_find(b, name);
    if (!t) {
        qb_fail(b->err, QB_ERR_FORMAT, "%s: quantized tensor '%s' has no '%s'", b->file, base, name);
        return NULL;
    }
    if (t->dtype != dtype || t->numel != n) {
        qb_fail(b->err, QB_ERR_FORMAT, "%s: tensor '%s' must be %s with %lld element(s)", b->file, name,
                qb_dtype_traits_of(dtype)->name, (long long)n);
        return NULL;
    }
    return t;
}

bool qb_binder_int8_allowed(qb_binder *b, const qb_st_tensor *t) {
    const qb_quant_config *q = &b->m->cfg.quant;
    if (q->present && (q->method == QB_QUANT_DYNAMIC || q->method == QB_QUANT_STATIC)) return true;
    qb_fail(b->err, QB_ERR_FORMAT, "%s: tensor '%s' is I8 but config.json has no int8 quantization_config",
            b->file, t->name);
    return false;
}

/* Values may sit at any byte offset in the file, hence memcpy. */
bool qb_binder_positive(qb_binder *b, const qb_st_tensor *t) {
    for (int64_t i = 0; i < t->numel; i++) {
        float v;
        memcpy(&v, (const char *)t->data + i * 4, 4);
        if (!(v > 0) || !isfinite(v)) {
            qb_fail(b->err, QB_ERR_FORMAT, "%s: '%s' holds a non-positive or non-finite value at %lld", b->file,
                    t->name, (long long)i);
            return false;
        }
    }
    return true;
}

