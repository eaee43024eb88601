#include "core/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

qb_status qb_file_map_open(qb_file_map *m, const char *path, qb_error *err) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return qb_fail(err, QB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return qb_fail(err, QB_ERR_IO, "%s: not a regular file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size == 0) {
        close(fd);
        m->data = calloc(1, 1);
        return m->data ? QB_OK : qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    }
    void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return qb_fail(err, QB_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    m->data = p;
    m->mapped = true;
    return QB_OK;
}

void qb_file_map_close(qb_file_map *m) {
    if (m->mapped) munmap((void *)m->data, m->size);
    else free((void *)m->data);
    memset(m, 0, sizeof *m);
}

qb_status qb_file_read_all(const char *path, char **out, size_t *size, qb_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return qb_fail(err, QB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) { free(buf); buf = NULL; break; }
        buf = nb;
        cap *= 2;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    if (bad) {
        free(buf);
        return qb_fail(err, QB_ERR_IO, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    if (size) *size = n;
    return QB_OK;
}

bool qb_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool qb_path_join(char *buf, size_t cap, const char *dir, const char *name) {
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    return n > 0 && (size_t)n < cap;
}
