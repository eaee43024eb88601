/* SHA-256 (FIPS 180-4), for recording which exact files a result came from. */
#ifndef QB_CORE_SHA256_H
#define QB_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "qbert.h"

typedef struct {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t fill;
} qb_sha256;

void qb_sha256_init(qb_sha256 *s);
void qb_sha256_update(qb_sha256 *s, const void *data, size_t n);
void qb_sha256_hex(qb_sha256 *s, char out[65]); /* finalizes */
/* Hash of a whole file, as lowercase hex. */
qb_status qb_sha256_file(const char *path, char out[65], qb_error *err);

#endif
