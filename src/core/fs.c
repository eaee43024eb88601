#define _GNU_SOURCE /* renameat2 */
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
#include <time.h>
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

static void file_id_from(const struct stat *st, qb_file_id *id) {
    memset(id, 0, sizeof *id); /* compared with memcmp */
    id->dev = (uint64_t)st->st_dev;
    id->ino = (uint64_t)st->st_ino;
    id->size = (int64_t)st->st_size;
    id->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
    id->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec;
}

bool qb_file_id_of(const char *path, qb_file_id *id) {
    struct stat st;
    if (stat(path, &st) != 0) return false;
    file_id_from(&st, id);
    return true;
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
    file_id_from(&st, &m->id);
    if (m->size == 0) {
        close(fd);
        m->data = calloc(1, 1);
        return m->data ? QB_OK : qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    }
    void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        return qb_fail(err, QB_ERR_IO, "%s: cannot map: %s", path, strerror(e));
    }
    m->data = p;
    m->mapped = true;
    m->fd = fd;
    return QB_OK;
}

void qb_file_map_close(qb_file_map *m) {
    if (m->mapped) {
        munmap((void *)m->data, m->size);
        close(m->fd);
    } else {
        free((void *)m->data);
    }
    memset(m, 0, sizeof *m);
}

bool qb_file_map_read(const qb_file_map *m, const void *p, size_t n, void *out) {
    uintptr_t lo = (uintptr_t)p, base = (uintptr_t)m->data;
    if (!m->mapped || lo < base || lo - base > m->size || n > m->size - (lo - base)) return false;
    for (size_t done = 0; done < n;) {
        ssize_t got = pread(m->fd, (char *)out + done, n - done, (off_t)(lo - base + done));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        done += (size_t)got;
    }
    return true;
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

/* A link is removed, never followed; a directory on another file system
 * than dev (something mounted inside) is left whole. */
static void remove_tree_on(const char *path, dev_t dev) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    if (st.st_dev != dev) return;
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char p[4096];
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && qb_path_join(p, sizeof p, path, e->d_name))
                remove_tree_on(p, dev);
        }
        closedir(d);
    }
    rmdir(path);
}

void qb_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) == 0) remove_tree_on(path, st.st_dev);
}

bool qb_dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return false;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d))) empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty;
}

bool qb_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool qb_path_within(const char *path, const char *dir) {
    char *p = path ? realpath(path, NULL) : NULL, *d = dir ? realpath(dir, NULL) : NULL;
    size_t n = d ? strlen(d) : 0;
    bool within = p && d && !strncmp(p, d, n) && (p[n] == '/' || p[n] == 0 || (n == 1 && d[0] == '/'));
    free(p);
    free(d);
    return within;
}

qb_status qb_outdir_check_inputs(const char *out, const char *model_dir, const char *const *read, int n,
                                 qb_error *err) {
    if (qb_path_within(model_dir, out))
        return qb_fail(err, QB_ERR_ARG, "%s: refusing to overwrite the input model", out);
    for (int i = 0; i < n; i++)
        if (qb_path_within(read[i], out))
            return qb_fail(err, QB_ERR_ARG, "%s: refusing to replace it: it holds %s, which this run reads", out,
                           read[i]);
    return QB_OK;
}

qb_status qb_path_normalize(const char *in, char *out, size_t cap, qb_error *err) {
    if (!in || !*in) return qb_fail(err, QB_ERR_ARG, "output path: empty path");
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        if (*p == '/' && n && out[n - 1] == '/') continue; /* "a//b" is "a/b" */
        if (n + 1 >= cap) return qb_fail(err, QB_ERR_ARG, "%s: path too long", in);
        out[n++] = *p;
    }
    while (n > 1 && out[n - 1] == '/') n--; /* "OUT/" is "OUT" */
    out[n] = 0;
    const char *base = strrchr(out, '/');
    base = base ? base + 1 : out;
    if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
        return qb_fail(err, QB_ERR_ARG, "%s: not a name a new directory can take", in);
    return QB_OK;
}

/* path's parent directory into buf ("." for a bare name). */
static void parent_of(const char *path, char *buf, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(buf, cap, ".");
    else if (slash == path) snprintf(buf, cap, "/");
    else snprintf(buf, cap, "%.*s", (int)(slash - path), path);
}

/* mkdir -p dir; the first component that cannot be made is named. */
static qb_status make_dirs(const char *dir, qb_error *err) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1;; p++) {
        if (*p && *p != '/') continue;
        char c = *p;
        *p = 0;
        struct stat st;
        if (mkdir(buf, 0755) != 0 && !(errno == EEXIST && stat(buf, &st) == 0 && S_ISDIR(st.st_mode)))
            return qb_fail(err, QB_ERR_IO, "%s: cannot create: %s", buf, strerror(errno == EEXIST ? ENOTDIR : errno));
        *p = c;
        if (!c) return QB_OK;
    }
}

qb_status qb_path_parent_ready(const char *out, bool parents, qb_error *err) {
    char parent[4096];
    parent_of(out, parent, sizeof parent);
    struct stat st;
    if (stat(parent, &st) == 0) {
        return S_ISDIR(st.st_mode) ? QB_OK
                                   : qb_fail(err, QB_ERR_IO, "%s: parent %s is not a directory", out, parent);
    }
    if (errno != ENOENT) return qb_fail(err, QB_ERR_IO, "%s: parent %s: %s", out, parent, strerror(errno));
    if (!parents)
        return qb_fail(err, QB_ERR_IO, "%s: parent directory %s does not exist (use --parents to create it)", out,
                       parent);
    return make_dirs(parent, err);
}

/* A staging directory holds this file until it is renamed into place: a
 * sweep removes only directories that carry it, with its own process id in
 * it, and whose process has died. */
#define STAGING_MARK ".qbert-staging"

static bool staging_marked(const char *dir, long pid) {
    char mark[4200], text[64];
    if (!qb_path_join(mark, sizeof mark, dir, STAGING_MARK)) return false;
    int fd = open(mark, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return false;
    text[n] = 0;
    char want[64];
    snprintf(want, sizeof want, "qbert staging pid %ld\n", pid);
    return !strcmp(text, want);
}

/* path's last component, with its directory in parent. */
static const char *split_path(const char *path, char *parent, size_t cap) {
    parent_of(path, parent, cap);
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The process id of name when it is "<base>.tmp-PID-<rest>", else 0. */
static long temp_pid(const char *name, const char *base, const char **rest) {
    size_t n = strlen(base);
    if (strncmp(name, base, n) || strncmp(name + n, ".tmp-", 5)) return 0;
    char *end;
    long pid = strtol(name + n + 5, &end, 10);
    if (pid <= 0 || *end != '-') return 0;
    *rest = end + 1;
    return pid;
}

static bool process_gone(long pid) { return pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH; }

/* The names in dir (*n of them), read whole before any is renamed or
 * removed: readdir over a changing directory may skip or repeat one. */
static char **list_dir(const char *dir, int *n) {
    DIR *d = opendir(dir);
    char **names = NULL;
    int cap = 0;
    *n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (*n == cap) {
            char **grown = realloc(names, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *names);
            if (!grown) break;
            names = grown;
        }
        if (!(names[*n] = strdup(e->d_name))) break;
        ++*n;
    }
    if (d) closedir(d);
    return names;
}

/* What a process that died without cleaning up (SIGKILL) left beside
 * path: staging directories (<path>.tmp-PID-N, carrying its marker) and
 * temporary files (<path>.tmp-PID-XXXXXXXX, no more to the name). */
static void remove_stale(const char *path) {
    char parent[4096], p[4200 + 256];
    const char *base = split_path(path, parent, sizeof parent), *rest;
    int count;
    char **names = list_dir(parent, &count);
    for (int i = 0; i < count; i++) {
        long pid = temp_pid(names[i], base, &rest);
        struct stat st;
        if (pid && process_gone(pid) && qb_path_join(p, sizeof p, parent, names[i]) && lstat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode) && staging_marked(p, pid)) qb_remove_tree(p);
            else if (S_ISREG(st.st_mode) && strlen(rest) == 8 && strspn(rest, "0123456789abcdef") == 8) unlink(p);
        }
        free(names[i]);
    }
    free(names);
}

void qb_discard_tree(const char *path) {
    char moved[4500];
    snprintf(moved, sizeof moved, "%.4400s.discard-%ld", path, (long)getpid());
    if (rename(path, moved) == 0) qb_remove_tree(moved);
}

void qb_staging_discard_own(const char *out) {
    char norm[4096], parent[4096], tag[48], path[4200 + 256];
    qb_error err = {0};
    if (qb_path_normalize(out, norm, sizeof norm, &err)) return;
    const char *base = split_path(norm, parent, sizeof parent);
    size_t n = strlen(base);
    snprintf(tag, sizeof tag, ".tmp-%ld-", (long)getpid());
    int count;
    char **names = list_dir(parent, &count);
    for (int i = 0; i < count; i++) {
        const char *name = names[i], *at = strstr(name, tag);
        size_t len = strlen(name);
        /* "<tmp>.old" is the only copy of the earlier output while a commit
         * without RENAME_EXCHANGE has it moved aside: never removed here */
        bool old = len > 4 && !strcmp(name + len - 4, ".old");
        if (!strncmp(name, base, n) && at && !old && qb_path_join(path, sizeof path, parent, name))
            qb_discard_tree(path);
        free(names[i]);
    }
    free(names);
}

static unsigned long staging_nonce(void) {
    unsigned long r = 0;
    if (getentropy(&r, sizeof r) != 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = (unsigned long)ts.tv_nsec ^ ((unsigned long)ts.tv_sec << 20);
    }
    return r & 0xffffffffu;
}

static qb_status make_staging(qb_outdir *o, qb_error *err) {
    for (int attempt = 0; attempt < 16; attempt++) {
        int n = snprintf(o->tmp, sizeof o->tmp, "%s.tmp-%ld-%08lx", o->out, (long)getpid(), staging_nonce());
        if (n < 0 || (size_t)n >= sizeof o->tmp) break;
        if (mkdir(o->tmp, 0755) != 0) {
            if (errno == EEXIST) continue;
            int e = errno;
            o->tmp[0] = 0;
            return qb_fail(err, QB_ERR_IO, "%s: cannot create a directory beside it: %s", o->out, strerror(e));
        }
        char mark[4300], text[64];
        int len = snprintf(text, sizeof text, "qbert staging pid %ld\n", (long)getpid());
        int fd = qb_path_join(mark, sizeof mark, o->tmp, STAGING_MARK)
                     ? open(mark, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)
                     : -1;
        bool ok = fd >= 0 && write(fd, text, (size_t)len) == len;
        if (fd >= 0) ok = close(fd) == 0 && ok;
        if (ok) return QB_OK;
        int e = errno;
        qb_remove_tree(o->tmp);
        o->tmp[0] = 0;
        return qb_fail(err, QB_ERR_IO, "%s: cannot write in a directory beside it: %s", o->out, strerror(e));
    }
    o->tmp[0] = 0;
    return qb_fail(err, QB_ERR_ARG, "%s: path too long", o->out);
}

qb_status qb_outdir_begin(qb_outdir *o, const char *out, unsigned flags, qb_error *err) {
    memset(o, 0, sizeof *o);
    o->flags = flags;
    qb_status st = qb_path_normalize(out, o->out, sizeof o->out, err);
    if (!st) st = qb_path_parent_ready(o->out, flags & QB_OUTDIR_PARENTS, err);
    if (st) return st;
    remove_stale(o->out);
    struct stat sb;
    if (lstat(o->out, &sb) == 0 && !(flags & QB_OUTDIR_FORCE))
        return qb_fail(err, QB_ERR_IO, "%s: already exists (use --force to replace it)", o->out);
    return make_staging(o, err);
}

/* renameat2 (Linux 3.15): NOREPLACE publishes only if nothing is there,
 * EXCHANGE swaps atomically with what is.  EINVAL: the file system has
 * neither, and a plain rename (not safe against a concurrent writer) is
 * all there is. */
static int rename_flags(const char *from, const char *to, unsigned flags) {
    int rc = renameat2(AT_FDCWD, from, AT_FDCWD, to, flags);
    if (rc != 0 && errno == EINVAL) {
        struct stat st;
        if (flags == RENAME_NOREPLACE && lstat(to, &st) == 0) {
            errno = EEXIST;
            return -1;
        }
        if (flags == RENAME_EXCHANGE) {
            errno = ENOSYS;
            return -1;
        }
        rc = rename(from, to);
    }
    return rc;
}

qb_status qb_outdir_commit(qb_outdir *o, qb_error *err) {
    char mark[4300];
    if (!o->tmp[0]) return qb_fail(err, QB_ERR_ARG, "%s: nothing staged to move into place", o->out);
    if (qb_path_join(mark, sizeof mark, o->tmp, STAGING_MARK)) unlink(mark);
    bool force = o->flags & QB_OUTDIR_FORCE;
    int e = 0;
    for (int attempt = 0; attempt < 8; attempt++) {
        if (force && rename_flags(o->tmp, o->out, RENAME_EXCHANGE) == 0) {
            qb_remove_tree(o->tmp); /* what was at out before (a directory, a file or a link) */
            o->tmp[0] = 0;
            return QB_OK;
        }
        if (force && errno == ENOSYS) { /* no exchange: move the old one aside first */
            char old[4400];
            snprintf(old, sizeof old, "%s.old", o->tmp);
            if (rename(o->out, old) == 0) {
                if (rename(o->tmp, o->out) != 0) {
                    e = errno;
                    rename(old, o->out);
                    break;
                }
                qb_remove_tree(old);
                o->tmp[0] = 0;
                return QB_OK;
            }
        }
        if (rename_flags(o->tmp, o->out, RENAME_NOREPLACE) == 0) {
            o->tmp[0] = 0;
            return QB_OK;
        }
        e = errno;
        if (e != EEXIST) break;
        if (!force)
            return qb_fail(err, QB_ERR_IO, "%s: already exists: another run wrote it meanwhile (use --force to replace "
                           "it)", o->out);
        /* force: out appeared between the two renames; exchange again */
    }
    return qb_fail(err, QB_ERR_IO, "%s: cannot move %s into place: %s", o->out, o->tmp, strerror(e));
}

void qb_outdir_abort(qb_outdir *o) {
    if (o->tmp[0]) qb_remove_tree(o->tmp);
    o->tmp[0] = 0;
}

qb_status qb_file_copy(const char *src, const char *dst, qb_error *err) {
    qb_file_map m;
    qb_status st = qb_file_map_open(&m, src, err);
    if (st) return st;
    st = qb_file_write_atomic(dst, m.data, m.size, err);
    qb_file_map_close(&m);
    return st;
}

/* A name of this process's own, made with O_EXCL: two writers of one
 * path never write into the same temporary file. */
qb_status qb_file_create_temp(const char *path, char *tmp, size_t cap, int *fd, qb_error *err) {
    *fd = -1;
    /* the rename would put a file in place of a device, FIFO or socket */
    qb_status st = qb_file_check_regular(path, err);
    if (st) return st;
    remove_stale(path);
    for (int attempt = 0; *fd < 0 && attempt < 16; attempt++) {
        int len = snprintf(tmp, cap, "%s.tmp-%ld-%08lx", path, (long)getpid(), staging_nonce());
        if (len < 0 || (size_t)len >= cap) return qb_fail(err, QB_ERR_ARG, "%s: path too long", path);
        *fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (*fd < 0 && errno != EEXIST) break;
    }
    return *fd >= 0 ? QB_OK : qb_fail(err, QB_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
}

qb_status qb_file_write_atomic(const char *path, const void *data, size_t n, qb_error *err) {
    char tmp[4200];
    int fd;
    qb_status st = qb_file_create_temp(path, tmp, sizeof tmp, &fd, err);
    if (st) return st;
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd), unlink(tmp);
        return qb_fail(err, QB_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
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
