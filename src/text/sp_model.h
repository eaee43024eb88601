/* Reader for SentencePiece's model file (spiece.model, a ModelProto
 * protobuf): the pieces with their scores and types, and the normalizer
 * spec.  Only what unigram encoding needs is kept. */
#ifndef QB_TEXT_SP_MODEL_H
#define QB_TEXT_SP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qbert.h"

/* SentencePiece.Type values from sentencepiece_model.proto. */
enum {
    QB_SPM_NORMAL = 1,
    QB_SPM_UNKNOWN = 2,
    QB_SPM_CONTROL = 3,
    QB_SPM_USER_DEFINED = 4,
    QB_SPM_UNUSED = 5,
    QB_SPM_BYTE = 6
};

typedef struct {
    const char *text; /* NUL-terminated, points into the model's pool */
    uint32_t len;
    float score;
    int type;
} qb_spm_piece;

typedef struct {
    qb_spm_piece *pieces;
    int n_pieces;
    char *pool;
    unsigned char *charsmap; /* normalizer_spec.precompiled_charsmap */
    size_t charsmap_len;
    bool add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
} qb_spm_model;

/* Parses data[0..size); `path` names the file in errors (QB_ERR_FORMAT for a
 * truncated or corrupt file, QB_ERR_UNSUPPORTED for a non-unigram model). */
qb_status qb_spm_parse(const unsigned char *data, size_t size, const char *path, qb_spm_model *m,
                       qb_error *err);
void qb_spm_free(qb_spm_model *m);

#endif
