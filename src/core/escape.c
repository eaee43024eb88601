#include "core/escape.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The escape for s[i] into out (at least 7 bytes); returns how many bytes
 * of s it stands for (0: s[i] needs none). */
static size_t escape_at(const unsigned char *s, size_t n, size_t i, char *out) {
    unsigned char c = s[i];
    if (c == '\t' || c == '\n' || c == '\r') {
        snprintf(out, 7, "\\%c", c == '\t' ? 't' : c == '\n' ? 'n' : 'r');
        return 1;
    }
    if (c < 0x20 || c == 0x7f) {
        snprintf(out, 7, "\\x%02x", c);
        return 1;
    }
    if (c == 0xc2 && i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f) { /* C1 controls: CSI is U+009B */
        snprintf(out, 7, "\\u%04x", s[i + 1]);
        return 2;
    }
    return 0;
}

static size_t utf8_len(unsigned char c) { return c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1; }

void qb_escape_write(FILE *f, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0; /* start of the bytes not yet written */
    char esc[8];
    for (size_t i = 0; i < n;) {
        size_t k = escape_at(u, n, i, esc);
        if (!k) {
            i++;
            continue;
        }
        fwrite(s + run, 1, i - run, f);
        fputs(esc, f);
        i += k;
        run = i;
    }
    fwrite(s + run, 1, n - run, f);
}

const char *qb_escape(char *buf, size_t cap, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t w = 0;
    char esc[8];
    for (size_t i = 0; i < n;) {
        size_t k = escape_at(u, n, i, esc);
        size_t take = k ? k : utf8_len(u[i]), len = k ? strlen(esc) : take;
        if (take > n - i) take = len = n - i;
        if (w + len + 4 > cap) { /* room for "..." and the NUL; whole characters only */
            memcpy(buf + w, "...", 3);
            w += 3;
            break;
        }
        memcpy(buf + w, k ? esc : s + i, len);
        w += len;
        i += take;
    }
    buf[w] = 0;
    return buf;
}

const char *qb_escape_str(char *buf, size_t cap, const char *s) { return qb_escape(buf, cap, s ? s : "", s ? strlen(s) : 0); }
