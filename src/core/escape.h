/* Names and texts from files (labels, tensor names, dataset fields) shown in
 * text output and error messages: control characters are written as
 * escapes (\t, \n, \r, \xHH, and \u0080..\u009f for the C1 range), so a
 * crafted label cannot forge output lines or send a terminal escape
 * sequences.  Other bytes, UTF-8 included, pass through unchanged. */
#ifndef QB_CORE_ESCAPE_H
#define QB_CORE_ESCAPE_H

#include <stddef.h>
#include <stdio.h>

void qb_escape_write(FILE *f, const char *s, size_t n);
/* s[0..n) escaped into buf (cap >= 8); cut with "..." when it does not
 * fit.  Returns buf. */
const char *qb_escape(char *buf, size_t cap, const char *s, size_t n);
/* qb_escape of a NUL-terminated string (NULL as ""). */
const char *qb_escape_str(char *buf, size_t cap, const char *s);

#endif
