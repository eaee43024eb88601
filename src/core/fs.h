/* Files: read-only mappings for weights, whole-file reads for small text
 * files, and outputs written to a temporary name then renamed, so a reader
 * never sees a half-written file. */
#ifndef QB_CORE_FS_H
#define QB_CORE_FS_H

#include <stdbool.h>
#include <stddef.h>

#include "qbert.h"

typedef struct {
    const unsigned char *data;
    size_t size;
    bool mapped; /* false: data is malloc'd (empty files cannot be mapped) */
} qb_file_map;

qb_status qb_file_map_open(qb_file_map *m, const char *path, qb_error *err);
void qb_file_map_close(qb_file_map *m);

/* Reads a whole file and NUL-terminates it (the NUL is not counted in *size). */
qb_status qb_file_read_all(const char *path, char **out, size_t *size, qb_error *err);

bool qb_file_exists(const char *path);
/* dir + "/" + name into buf; false if it does not fit. */
bool qb_path_join(char *buf, size_t cap, const char *dir, const char *name);

#endif
