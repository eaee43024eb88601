#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/fs.h"
#include "report/report_internal.h"

qb_status qb_report_out_open(qb_report_out *o, qb_error *err) {
    memset(o, 0, sizeof *o);
    o->f = open_memstream(&o->data, &o->size);
    if (!o->f) return qb_fail(err, QB_ERR_NOMEM, "report: cannot allocate an output buffer");
    return QB_OK;
}

qb_status qb_report_out_commit(qb_report_out *o, const char *dir, const char *name, qb_error *err) {
    bool ok = ferror(o->f) == 0;
    ok = fclose(o->f) == 0 && ok;
    o->f = NULL;
    char path[4096];
    qb_status st = QB_OK;
    if (!qb_path_join(path, sizeof path, dir, name))
        st = qb_fail(err, QB_ERR_IO, "%s: path too long for %s", dir, name);
    else if (!ok)
        st = qb_fail(err, QB_ERR_NOMEM, "%s: out of memory while rendering", path);
    else
        st = qb_file_write_atomic(path, o->data, o->size, err);
    free(o->data);
    o->data = NULL;
    return st;
}

qb_status qb_report_prepare_dir(const char *dir, qb_error *err) {
    struct stat st;
    if (stat(dir, &st) != 0) {
        /* A missing last component is made here; anything deeper is the
         * caller's mistake and is reported rather than guessed at. */
        if (errno == ENOENT && mkdir(dir, 0777) == 0) return QB_OK;
        return qb_fail(err, QB_ERR_IO, "%s: cannot use report directory: %s", dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) return qb_fail(err, QB_ERR_IO, "%s: report directory is not a directory", dir);
    return QB_OK;
}
