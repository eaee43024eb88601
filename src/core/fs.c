#include "core/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

qb_status qb_file_check_regular(const char *path, qb_error *err) {
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode)) return QB_OK;
    mode_t m = st.st_mode;
    const char *kind = S_ISDIR(m) ? "a directory" : S_ISCHR(m) || S_ISBLK(m) ? "a device"
                       : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : "a special file";
    return qb_fail(err, QB_ERR_IO, "%s: is %s, not a file", path, kind);
}

/* Checked before opening: opening a FIFO waits for a writer, and opening
 * a device may act on it. */
qb_status qb_file_map_open(qb_file_map *m, const char *path, qb_error *err) {
    memset(m, 0, sizeof *m);
    qb_status s = qb_file_check_regular(path, err);
    if (s) return s;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return qb_fail(err, QB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { /* replaced since the check */
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

void qb_file_map_release(const qb_file_map *m, const void *p, size_t n) {
    uintptr_t lo = (uintptr_t)p, hi = lo + n, base = (uintptr_t)m->data;
    if (!m->mapped || lo < base || hi > base + m->size) return; /* never heap memory: DONTNEED would zero it */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    lo = (lo + page - 1) / page * page;
    hi = hi / page * page;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED); /* advice: nothing to do if it fails */
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

/* "16 MiB", "200 bytes": sizes in errors as a person writes them. */
static void fs_size_text(char *buf, size_t cap, size_t n) {
    if (n >= (1u << 20) && n % (1u << 20) == 0) snprintf(buf, cap, "%zu MiB", n >> 20);
    else snprintf(buf, cap, "%zu bytes", n);
}

qb_status qb_file_read_max(const char *path, size_t max, size_t max_line, const char *kind, char **out,
                           size_t *size, qb_error *err) {
    *out = NULL;
    char lim[32];
    FILE *f = fopen(path, "rb");
    if (!f) return qb_fail(err, QB_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    bool known = fstat(fileno(f), &st) == 0;
    if (known && S_ISDIR(st.st_mode)) {
        fclose(f);
        return qb_fail(err, QB_ERR_IO, "%s: is a directory", path);
    }
    if (known && S_ISREG(st.st_mode) && (uint64_t)st.st_size > (uint64_t)max) {
        fclose(f); /* refused before reading a byte */
        fs_size_text(lim, sizeof lim, max);
        return qb_fail(err, QB_ERR_FORMAT, "%s: larger than %s, the limit for %s", path, lim, kind);
    }
    size_t cap = 4096, n = 0, line = 0, line_no = 1;
    char *buf = malloc(cap);
    qb_status rc = buf ? QB_OK : qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    while (rc == QB_OK) {
        if (n + 1 == cap) {
            size_t ncap = cap > max / 2 ? max + 2 : cap * 2; /* room to see one byte past max */
            char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nb) {
                rc = qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        for (const char *p = buf + n, *e = buf + n + got; max_line;) { /* the line being read */
            const char *nl = memchr(p, '\n', (size_t)(e - p));
            if (!nl) {
                line += (size_t)(e - p);
                break;
            }
            if (line + (size_t)(nl - p) > max_line) {
                line += (size_t)(nl - p);
                break;
            }
            line = 0;
            line_no++;
            p = nl + 1;
        }
        n += got;
        if (n > max) {
            fs_size_text(lim, sizeof lim, max);
            rc = qb_fail(err, QB_ERR_FORMAT, "%s: larger than %s, the limit for %s", path, lim, kind);
        } else if (max_line && line > max_line) {
            fs_size_text(lim, sizeof lim, max_line);
            rc = qb_fail(err, QB_ERR_FORMAT, "%s:%zu: line longer than %s, the limit for one line of %s", path,
                         line_no, lim, kind);
        } else if (got == 0) {
            if (ferror(f)) rc = qb_fail(err, QB_ERR_IO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (rc != QB_OK) {
        free(buf);
        return rc;
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

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (!qb_path_join(p, sizeof p, dir, e->d_name)) continue;
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

bool qb_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* mkdir -p of path's parent directories. */
static void make_parents(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        mkdir(buf, 0755);
        *p = '/';
    }
}

/* Staging directories (<out>.tmp-PID, <out>.old-PID) of a process that
 * died without cleaning up, e.g. a training run killed with SIGKILL. */
static void remove_stale_staging(const char *out) {
    char parent[4200];
    snprintf(parent, sizeof parent, "%s", out);
    char *slash = strrchr(parent, '/');
    const char *base = slash ? slash + 1 : out;
    if (slash) *slash = 0;
    size_t n = strlen(base);
    DIR *d = opendir(slash ? (parent[0] ? parent : "/") : ".");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *tail = e->d_name + n;
        if (strncmp(e->d_name, base, n) || (strncmp(tail, ".tmp-", 5) && strncmp(tail, ".old-", 5))) continue;
        char *end;
        long pid = strtol(tail + 5, &end, 10);
        bool nested = !strncmp(end, ".tmp-", 5); /* a staging directory's own staging (QAT's FP32 side) */
        if ((*end && !nested) || pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char path[4200 + 256];
        snprintf(path, sizeof path, "%s/%s", slash ? (parent[0] ? parent : "") : ".", e->d_name);
        remove_tree(path);
    }
    closedir(d);
}

qb_status qb_outdir_begin(const char *out, bool force, char *tmp, size_t cap, qb_error *err) {
    remove_stale_staging(out);
    struct stat st;
    if (stat(out, &st) == 0 && !force)
        return qb_fail(err, QB_ERR_IO, "%s: already exists (use --force to replace it)", out);
    int n = snprintf(tmp, cap, "%s.tmp-%ld", out, (long)getpid());
    if (n < 0 || (size_t)n >= cap) return qb_fail(err, QB_ERR_ARG, "%s: path too long", out);
    remove_tree(tmp);
    make_parents(tmp);
    if (mkdir(tmp, 0755) != 0) return qb_fail(err, QB_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    return QB_OK;
}

qb_status qb_outdir_commit(const char *tmp, const char *out, qb_error *err) {
    char old[4200];
    struct stat st;
    bool replace = stat(out, &st) == 0;
    snprintf(old, sizeof old, "%s.old-%ld", out, (long)getpid());
    if (replace && rename(out, old) != 0)
        return qb_fail(err, QB_ERR_IO, "%s: cannot move the old directory aside: %s", out, strerror(errno));
    if (rename(tmp, out) != 0) {
        int e = errno;
        if (replace) rename(old, out);
        return qb_fail(err, QB_ERR_IO, "%s: cannot rename %s into place: %s", out, tmp, strerror(e));
    }
    if (replace) remove_tree(old);
    return QB_OK;
}

void qb_outdir_abort(const char *tmp) { remove_tree(tmp); }

qb_status qb_file_copy(const char *src, const char *dst, qb_error *err) {
    qb_file_map m;
    qb_status st = qb_file_map_open(&m, src, err);
    if (st) return st;
    st = qb_file_write_atomic(dst, m.data, m.size, err);
    qb_file_map_close(&m);
    return st;
}

qb_status qb_file_write_atomic(const char *path, const void *data, size_t n, qb_error *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return qb_fail(err, QB_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    bool ok = fwrite(data, 1, n, f) == n;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return qb_fail(err, QB_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return QB_OK;
}
