/* Shared by the libFuzzer targets (tests/fuzz/fuzz_<parser>.c).
 *
 * Most parsers take a path, not bytes.  Rather than a temporary file per
 * input, an input is written into one memfd and the parser opens it as
 * /proc/self/fd/N: a regular file (mmap and fstat work), in memory, reused
 * for every input.  Targets that need a directory (a whole model) make one
 * under $TMPDIR (or /tmp) and remove it at exit. */
#ifndef QB_FUZZ_COMMON_H
#define QB_FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qbert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static inline void fuzz_die(const char *what, const char *detail) {
    fprintf(stderr, "fuzz setup: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* One in-memory file, rewritten for each input. */
typedef struct {
    int fd;
    char path[64];
} fuzz_file;

static inline const char *fuzz_file_write(fuzz_file *f, const void *data, size_t size) {
    if (f->fd <= 0) {
        f->fd = memfd_create("qb-fuzz", MFD_CLOEXEC);
        if (f->fd < 0) fuzz_die("memfd_create failed", NULL);
        snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    }
    if (ftruncate(f->fd, 0) != 0) fuzz_die("ftruncate failed", NULL);
    const char *p = data;
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(f->fd, p + done, size - done, (off_t)done);
        if (n <= 0) fuzz_die("pwrite failed", NULL);
        done += (size_t)n;
    }
    return f->path;
}

/* Writes a regular file (O_TRUNC), for targets that need a directory. */
static inline void fuzz_write_path(const char *path, const void *data, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fuzz_die("cannot create", path);
    const char *p = data;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, p + done, size - done);
        if (n <= 0) fuzz_die("write failed", path);
        done += (size_t)n;
    }
    close(fd);
}

/* A file of the source tree (tests/data/...), or of the shared models
 * folder when present ($QB_SHARED_DIR, else the configured one). */
static inline const char *fuzz_source_path(char *buf, size_t cap, const char *rel) {
    snprintf(buf, cap, "%s/%s", QB_FUZZ_SOURCE_DIR, rel);
    return buf;
}

static inline const char *fuzz_shared_path(char *buf, size_t cap, const char *rel) {
    const char *dir = getenv("QB_SHARED_DIR");
    snprintf(buf, cap, "%s/%s", dir && *dir ? dir : QB_FUZZ_SHARED_DIR, rel);
    struct stat st;
    return stat(buf, &st) == 0 ? buf : NULL;
}

/* ---- a scratch directory, removed at exit ------------------------------- */

static char fuzz_scratch_root[4096];

static void fuzz_remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[8192];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) fuzz_remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void fuzz_scratch_cleanup(void) {
    if (fuzz_scratch_root[0]) fuzz_remove_tree(fuzz_scratch_root);
}

/* The scratch directory (made on first use). */
static inline const char *fuzz_scratch(void) {
    if (fuzz_scratch_root[0]) return fuzz_scratch_root;
    const char *tmp = getenv("TMPDIR");
    snprintf(fuzz_scratch_root, sizeof fuzz_scratch_root, "%s/qb-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fuzz_scratch_root)) fuzz_die("mkdtemp failed", fuzz_scratch_root);
    atexit(fuzz_scratch_cleanup);
    return fuzz_scratch_root;
}

/* Touches every byte of [p, p+n) so ASan checks the range; the sum keeps
 * the compiler from dropping the reads. */
static volatile unsigned fuzz_sink;
static inline void fuzz_touch(const void *p, size_t n) {
    const unsigned char *s = p;
    unsigned h = 0;
    for (size_t i = 0; i < n; i++) h = h * 31 + s[i];
    fuzz_sink += h;
}

#endif
