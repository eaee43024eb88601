#include "core/stamp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t qb_stamp_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static bool stamp_path(char *buf, size_t cap, const char *dir, const char *check, const qb_file_id *id) {
    int n = snprintf(buf, cap, "%s/%s-%llx-%llx-%lld-%lld-%lld", dir, check, (unsigned long long)id->dev,
                     (unsigned long long)id->ino, (long long)id->size, (long long)id->mtime_ns,
                     (long long)id->ctime_ns);
    return n > 0 && (size_t)n < cap;
}

bool qb_stamp_has(const char *dir, const char *check, const qb_file_id *id) {
    char path[4096];
    struct stat st;
    return stamp_path(path, sizeof path, dir, check, id) && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* mkdir -p, private: the stamps say which files this user has loaded. */
static bool make_dirs(const char *dir) {
    char p[4096];
    size_t n = strlen(dir);
    if (!n || n >= sizeof p) return false;
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) return false;
        p[i] = c;
    }
    return true;
}

void qb_stamp_put(const char *dir, const char *check, const char *path, const qb_file_id *id, int64_t started_ns) {
    qb_file_id now;
    if (!qb_file_id_of(path, &now) || memcmp(&now, id, sizeof now) != 0) return;
    if (id->ctime_ns > started_ns - QB_STAMP_SETTLE_NS || id->mtime_ns > started_ns - QB_STAMP_SETTLE_NS) return;
    char stamp[4096];
    if (!stamp_path(stamp, sizeof stamp, dir, check, id) || !make_dirs(dir)) return;
    int fd = open(stamp, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) close(fd);
}
