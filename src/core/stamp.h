/* Stamps: a record, in a cache directory, that a file's content passed a
 * check, so that loading the same file again need not read all of it again.
 * The finite check reads every weight, which on an FP32 model costs many
 * times what the rest of loading does; a stamp costs a stat. */
#ifndef QB_CORE_STAMP_H
#define QB_CORE_STAMP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/fs.h"

/* Files changed less than this long before a check began are never stamped:
 * file times are kept at a clock tick's resolution (and network file
 * systems keep the server's clock), so a second write that soon could leave
 * them unchanged. */
#define QB_STAMP_SETTLE_NS (10 * 1000000000LL)

/* The current CLOCK_REALTIME, the clock of file times, in nanoseconds. */
int64_t qb_stamp_now_ns(void);

/* True if dir holds a stamp of check (a short name with a version) for the
 * file content id names. */
bool qb_stamp_has(const char *dir, const char *check, const qb_file_id *id);

/* Stamps path, whose content id named when the check began at started_ns,
 * unless the file has changed since or changed too recently (above).  A
 * directory that cannot be created or written is not an error: the check
 * runs again next time. */
void qb_stamp_put(const char *dir, const char *check, const char *path, const qb_file_id *id, int64_t started_ns);

#endif
