#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

qb_status qb_fail(qb_error *err, qb_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

qb_status qb_fail_wrap(qb_error *err, qb_status code, const char *context) {
    if (err) {
        char tmp[sizeof err->msg];
        /* Truncation is fine: the message stays one line either way. */
        size_t n = strlen(context);
        if (n > sizeof tmp - 3) n = sizeof tmp - 3;
        memcpy(tmp, context, n);
        memcpy(tmp + n, ": ", 2);
        size_t m = strnlen(err->msg, sizeof err->msg), rest = sizeof tmp - n - 3;
        if (m > rest) m = rest;
        memcpy(tmp + n + 2, err->msg, m);
        tmp[n + 2 + m] = 0;
        memcpy(err->msg, tmp, sizeof tmp);
        err->code = code;
    }
    return code;
}

const char *qb_status_name(qb_status s) {
    switch (s) {
    case QB_OK: return "ok";
    case QB_ERR_IO: return "I/O error";
    case QB_ERR_FORMAT: return "format error";
    case QB_ERR_UNSUPPORTED: return "unsupported";
    case QB_ERR_NOMEM: return "out of memory";
    case QB_ERR_ARG: return "invalid argument";
    case QB_ERR_UTF8: return "invalid UTF-8";
    case QB_ERR_NUMERIC: return "non-finite value";
    }
    return "unknown error";
}
