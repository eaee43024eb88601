#include "text/sp_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "text/unicode.h"

/* Protobuf wire types. */
enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

/* Field numbers used from sentencepiece_model.proto. */
enum {
    MODEL_PIECES = 1, MODEL_TRAINER = 2, MODEL_NORMALIZER = 3,
    PIECE_TEXT = 1, PIECE_SCORE = 2, PIECE_TYPE = 3,
    TRAINER_MODEL_TYPE = 3, TRAINER_WS_SUFFIX = 24,
    NORM_CHARSMAP = 2, NORM_DUMMY_PREFIX = 3, NORM_REMOVE_WS = 4, NORM_ESCAPE_WS = 5
};

enum { MODEL_TYPE_UNIGRAM = 1 };

/* A bounded view of a message being read; the first error sticks. */
typedef struct {
    const unsigned char *p, *end;
    const unsigned char *base; /* start of the file, for offsets in errors */
    const char *path;
    qb_error *err;
    qb_status st;
} pb_reader;

typedef struct {
    uint32_t field, wire;
    uint64_t varint;                /* PB_VARINT, PB_I64, PB_I32 value */
    const unsigned char *data;      /* PB_LEN payload */
    size_t len;
} pb_field;

static bool pb_fail(pb_reader *r, const char *what) {
    if (r->st == QB_OK)
        r->st = qb_fail(r->err, QB_ERR_FORMAT, "%s: corrupt SentencePiece model: %s at byte %zu",
                        r->path, what, (size_t)(r->p - r->base));
    return false;
}

static bool pb_varint(pb_reader *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return pb_fail(r, "truncated varint");
        unsigned char b = *r->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return pb_fail(r, "varint too long");
}

static uint64_t pb_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Next field of the message, or false at its end or on error. */
static bool pb_next(pb_reader *r, pb_field *f) {
    if (r->p >= r->end || r->st != QB_OK) return false;
    uint64_t key;
    if (!pb_varint(r, &key)) return false;
    f->field = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    if (f->field == 0) return pb_fail(r, "field number 0");
    switch (f->wire) {
    case PB_VARINT:
        return pb_varint(r, &f->varint);
    case PB_I64:
    case PB_I32: {
        int n = f->wire == PB_I64 ? 8 : 4;
        if (r->end - r->p < n) return pb_fail(r, "truncated fixed-width field");
        f->varint = pb_le(r->p, n);
        r->p += n;
        return true;
    }
    case PB_LEN: {
        uint64_t len;
        if (!pb_varint(r, &len)) return false;
        if (len > (uint64_t)(r->end - r->p)) return pb_fail(r, "length past the end of the data");
        f->data = r->p;
        f->len = (size_t)len;
        r->p += len;
        return true;
    }
    default:
        return pb_fail(r, "unsupported wire type");
    }
}

static pb_reader pb_sub(const pb_reader *r, const pb_field *f) {
    pb_reader s = *r;
    s.p = f->data;
    s.end = f->data + f->len;
    return s;
}

static bool pb_expect(pb_reader *r, const pb_field *f, uint32_t wire) {
    return f->wire == wire || pb_fail(r, "unexpected wire type for a known field");
}

/* Counts pieces and their bytes so everything is allocated once. */
static bool spm_count(pb_reader r, size_t *n, size_t *bytes) {
    pb_field f;
    *n = *bytes = 0;
    while (pb_next(&r, &f))
        if (f.field == MODEL_PIECES && f.wire == PB_LEN) { /* f.len is only set for PB_LEN */
            (*n)++;
            *bytes += f.len + 1;
        }
    return r.st == QB_OK;
}

/* Pieces are text: they are matched against UTF-8, printed and decoded. */
static bool spm_piece_is_text(const char *s, size_t n) {
    for (size_t i = 0, k; i < n; i += k) {
        uint32_t c;
        if (!(k = qb_utf8_decode_char(s + i, n - i, &c)) || c == 0) return false;
    }
    return true;
}

static bool spm_read_piece(pb_reader *outer, const pb_field *msg, qb_spm_model *m, size_t *pool_n) {
    pb_reader r = pb_sub(outer, msg);
    qb_spm_piece *pc = &m->pieces[m->n_pieces];
    *pc = (qb_spm_piece){.text = NULL, .len = 0, .score = 0.0f, .type = QB_SPM_NORMAL};
    pb_field f;
    while (pb_next(&r, &f)) {
        if (f.field == PIECE_TEXT) {
            if (!pb_expect(&r, &f, PB_LEN)) break;
            char *dst = m->pool + *pool_n;
            memcpy(dst, f.data, f.len);
            dst[f.len] = 0;
            pc->text = dst;
            pc->len = (uint32_t)f.len;
            *pool_n += f.len + 1;
        } else if (f.field == PIECE_SCORE) {
            if (!pb_expect(&r, &f, PB_I32)) break;
            uint32_t bits = (uint32_t)f.varint;
            memcpy(&pc->score, &bits, sizeof bits);
            if (!isfinite(pc->score)) return pb_fail(outer, "non-finite piece score");
        } else if (f.field == PIECE_TYPE) {
            if (!pb_expect(&r, &f, PB_VARINT)) break;
            if (f.varint < QB_SPM_NORMAL || f.varint > QB_SPM_BYTE)
                return pb_fail(outer, "unknown piece type");
            pc->type = (int)f.varint;
        }
    }
    if (r.st != QB_OK) {
        outer->st = r.st;
        return false;
    }
    if (!pc->text || pc->len == 0) return pb_fail(outer, "piece without text");
    if (!spm_piece_is_text(pc->text, pc->len)) return pb_fail(outer, "piece that is not UTF-8 text");
    m->n_pieces++;
    return true;
}

static bool spm_read_trainer(pb_reader *outer, const pb_field *msg) {
    pb_reader r = pb_sub(outer, msg);
    pb_field f;
    while (pb_next(&r, &f)) {
        if (f.field == TRAINER_MODEL_TYPE && f.wire == PB_VARINT && f.varint != MODEL_TYPE_UNIGRAM) {
            outer->st = qb_fail(outer->err, QB_ERR_UNSUPPORTED,
                                "%s: SentencePiece model type %llu is not unigram", outer->path,
                                (unsigned long long)f.varint);
            return false;
        }
        if (f.field == TRAINER_WS_SUFFIX && f.wire == PB_VARINT && f.varint) {
            outer->st = qb_fail(outer->err, QB_ERR_UNSUPPORTED,
                                "%s: treat_whitespace_as_suffix is not supported", outer->path);
            return false;
        }
    }
    outer->st = r.st;
    return r.st == QB_OK;
}

static bool spm_read_normalizer(pb_reader *outer, const pb_field *msg, qb_spm_model *m) {
    pb_reader r = pb_sub(outer, msg);
    pb_field f;
    while (pb_next(&r, &f)) {
        if (f.field == NORM_CHARSMAP) {
            if (!pb_expect(&r, &f, PB_LEN)) break;
            free(m->charsmap);
            m->charsmap = malloc(f.len ? f.len : 1);
            if (!m->charsmap) {
                r.st = qb_fail(r.err, QB_ERR_NOMEM, "%s: out of memory", r.path);
                break;
            }
            memcpy(m->charsmap, f.data, f.len);
            m->charsmap_len = f.len;
        } else if (f.field >= NORM_DUMMY_PREFIX && f.field <= NORM_ESCAPE_WS) {
            if (!pb_expect(&r, &f, PB_VARINT)) break;
            bool v = f.varint != 0;
            if (f.field == NORM_DUMMY_PREFIX) m->add_dummy_prefix = v;
            else if (f.field == NORM_REMOVE_WS) m->remove_extra_whitespaces = v;
            else m->escape_whitespaces = v;
        }
    }
    outer->st = r.st;
    return r.st == QB_OK;
}

qb_status qb_spm_parse(const unsigned char *data, size_t size, const char *path, qb_spm_model *m,
                       qb_error *err) {
    memset(m, 0, sizeof *m);
    /* proto2 defaults of NormalizerSpec */
    m->add_dummy_prefix = m->remove_extra_whitespaces = m->escape_whitespaces = true;
    if (size == 0) return qb_fail(err, QB_ERR_FORMAT, "%s: empty SentencePiece model", path);
    pb_reader r = {.p = data, .end = data + size, .base = data, .path = path, .err = err};
    size_t n, bytes;
    if (!spm_count(r, &n, &bytes)) return QB_ERR_FORMAT;
    if (n == 0) return qb_fail(err, QB_ERR_FORMAT, "%s: SentencePiece model has no pieces", path);
    if (n > INT32_MAX / 2) return qb_fail(err, QB_ERR_FORMAT, "%s: too many pieces", path);
    m->pieces = malloc(n * sizeof *m->pieces);
    m->pool = malloc(bytes);
    if (!m->pieces || !m->pool) {
        qb_spm_free(m);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t pool_n = 0;
    bool has_trainer = false, has_normalizer = false;
    pb_field f;
    while (pb_next(&r, &f)) {
        bool ok = true;
        if (f.field == MODEL_PIECES) {
            ok = pb_expect(&r, &f, PB_LEN) && spm_read_piece(&r, &f, m, &pool_n);
        } else if (f.field == MODEL_TRAINER) {
            ok = pb_expect(&r, &f, PB_LEN) && spm_read_trainer(&r, &f);
            has_trainer = true;
        } else if (f.field == MODEL_NORMALIZER) {
            ok = pb_expect(&r, &f, PB_LEN) && spm_read_normalizer(&r, &f, m);
            has_normalizer = true;
        }
        if (!ok) break;
    }
    /* sentencepiece always writes both specs after the pieces, so a file cut
     * between two fields still shows up as damaged */
    if (r.st == QB_OK && (!has_trainer || !has_normalizer))
        r.st = qb_fail(err, QB_ERR_FORMAT, "%s: SentencePiece model has no %s (truncated file?)",
                       path, has_trainer ? "normalizer_spec" : "trainer_spec");
    if (r.st != QB_OK) qb_spm_free(m);
    return r.st;
}

void qb_spm_free(qb_spm_model *m) {
    free(m->pieces);
    free(m->pool);
    free(m->charsmap);
    memset(m, 0, sizeof *m);
}
