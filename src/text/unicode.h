/* Unicode helpers for the tokenizers: strict UTF-8 decoding, the character
 * classes Hugging Face's Python tokenizers test (with Python's own meaning of
 * whitespace, digits and lower()), and normalization through utf8proc. */
#ifndef QB_TEXT_UNICODE_H
#define QB_TEXT_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qbert.h"
#include "text/tok_work.h"

/* U+2581 (▁), SentencePiece's stand-in for a space, and its UTF-8. */
#define QB_UNI_SP_SPACE 0x2581u
#define QB_UNI_SP_SPACE_UTF8 "\xe2\x96\x81"

typedef enum { QB_UNI_NFC, QB_UNI_NFD, QB_UNI_NFKD, QB_UNI_NFKC } qb_uni_form;

/* Appends the code points of s[0..len) to out.  Overlong forms, surrogates
 * and values past U+10FFFF are rejected with QB_ERR_UTF8 naming `what` and
 * the byte offset. */
qb_status qb_utf8_decode(const char *s, size_t len, qb_u32buf *out, const char *what,
                         qb_error *err);
/* Decodes the character at s; returns its length, or 0 if malformed. */
size_t qb_utf8_decode_char(const char *s, size_t len, uint32_t *cp);
/* Appends the UTF-8 form of cps to out. */
bool qb_utf8_encode(const uint32_t *cps, size_t n, qb_bytebuf *out);
/* Bytes of the character whose lead byte is c (1 for stray continuation bytes). */
int qb_utf8_char_len(unsigned char c);

bool qb_uni_is_py_space(uint32_t c);    /* Python str.isspace() */
bool qb_uni_is_bert_space(uint32_t c);  /* BasicTokenizer _is_whitespace */
bool qb_uni_is_bert_control(uint32_t c);/* BasicTokenizer _is_control */
bool qb_uni_is_punct(uint32_t c);       /* ASCII symbol ranges or category P* */
bool qb_uni_is_cjk(uint32_t c);         /* CJK ideograph blocks BERT splits on */
bool qb_uni_is_py_digit(uint32_t c);    /* Python str.isdigit() */
bool qb_uni_is_mn(uint32_t c);
bool qb_uni_is_alnum(uint32_t c);      /* categories L* and N* */          /* category Mn */
int qb_uni_combining_class(uint32_t c);

/* Appends the lowercase of in[0..n) to out, with full mappings (U+0130
 * becomes two code points).  final_sigma: Python's str.lower(), whose
 * word-final capital sigma becomes U+03C2 (the slow tokenizers); without
 * it, Rust's char-by-char to_lowercase (tokenizers' normalizers). */
bool qb_uni_lower(const uint32_t *in, size_t n, bool final_sigma, qb_u32buf *out);
/* Appends the normalization form of in[0..n) to out. */
bool qb_uni_normalize(const uint32_t *in, size_t n, qb_uni_form form, qb_u32buf *out);

#endif
