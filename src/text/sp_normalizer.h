/* SentencePiece's text normalizer: the model's precompiled character map
 * (a Darts-clone double-array trie over UTF-8 with replacement strings),
 * user-defined symbols left untouched, then whitespace cleanup, the dummy
 * prefix and "▁" for spaces. */
#ifndef QB_TEXT_SP_NORMALIZER_H
#define QB_TEXT_SP_NORMALIZER_H

#include "text/piece_table.h"
#include "text/sp_model.h"
#include "text/tok_work.h"

typedef struct {
    uint32_t *units; /* the double array; NULL when the model has no map */
    size_t n_units;
    char *strings;   /* replacement strings, each NUL-terminated */
    size_t strings_len;
    const qb_ptab *user; /* user-defined symbols (with prefixes), not owned */
    bool add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
} qb_spn;

/* Validates the charsmap's layout; `path` names the model in errors. */
qb_status qb_spn_init(qb_spn *n, const qb_spm_model *m, const qb_ptab *user, const char *path,
                      qb_error *err);
void qb_spn_free(qb_spn *n);

/* Replaces out's contents with the normalized form of in[0..len). */
bool qb_spn_normalize(const qb_spn *n, const char *in, size_t len, qb_bytebuf *out);

/* tokenizers' Precompiled normalizer over the same charsmap (spm_precompiled):
 * per grapheme cluster shorter than 6 bytes the first (shortest) rule that
 * prefixes it replaces it whole, else each character on its own.  Replaces
 * out's contents. */
bool qb_spn_precompiled(const qb_spn *n, const char *in, size_t len, qb_bytebuf *out);

#endif
