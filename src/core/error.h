/* Error reporting shared by every module: a status code plus a message that
 * names the file and the problem, kept by the caller (no global state). */
#ifndef QB_CORE_ERROR_H
#define QB_CORE_ERROR_H

#include "qbert.h"

/* Formats the message into err (if non-NULL) and returns code, so call sites
 * read `return qb_fail(err, QB_ERR_FORMAT, "%s: bad header", path);`. */
qb_status qb_fail(qb_error *err, qb_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "context: " to an existing message (e.g. the file being read). */
qb_status qb_fail_wrap(qb_error *err, qb_status code, const char *context);

#endif
