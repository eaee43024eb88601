/* Files: read-only mappings for weights, whole-file reads for small text
 * files, and outputs written to a temporary name then renamed, so a reader
 * never sees a half-written file; and anonymous memory on 2 MiB pages,
 * which weights and activations are allocated in. */
#ifndef QB_CORE_FS_H
#define QB_CORE_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qbert.h"

/* What names a file's content without reading it: every write changes the
 * change time, which no user can set back (core/stamp.h). */
typedef struct {
    uint64_t dev, ino;
    int64_t size, mtime_ns, ctime_ns;
} qb_file_id;

/* False if path cannot be stat'ed. */
bool qb_file_id_of(const char *path, qb_file_id *id);

typedef struct {
    const unsigned char *data;
    size_t size;
    bool mapped; /* false: data is malloc'd (empty files cannot be mapped) */
    int fd;      /* mapped: the file, open for qb_file_map_read */
    qb_file_id id; /* of the file mapped, taken from its open descriptor */
} qb_file_map;

/* Refuses anything but a regular file ("DIR/model.safetensors: is a
 * directory, not a file"; a device, a FIFO) without opening it. */
qb_status qb_file_map_open(qb_file_map *m, const char *path, qb_error *err);
/* QB_OK if path is a regular file or does not exist; otherwise an error
 * saying what it is (a directory, a device, a FIFO), found without opening
 * it: opening a FIFO waits for a writer. */
qb_status qb_file_check_regular(const char *path, qb_error *err);
void qb_file_map_close(qb_file_map *m);
/* Drops the resident pages wholly inside [p, p + n) of a mapping whose data
 * has been copied elsewhere (packed weights): they stop counting in the
 * process's memory, and a later read faults them in from the file again. */
void qb_file_map_release(const qb_file_map *m, const void *p, size_t n);

/* Copies [p, p + n) of a mapping into out with pread, mapping nothing: a
 * read fault maps the page's neighbours too, as many as the page cache's
 * folio holds, which depends on how the file was last read, so rows read
 * here and there through the mapping make a varying share of a table
 * resident.  False if p is not inside a file mapping or the read fails
 * (then read p itself). */
bool qb_file_map_read(const qb_file_map *m, const void *p, size_t n, void *out);

/* Reads a whole file and NUL-terminates it (the NUL is not counted in *size). */
qb_status qb_file_read_all(const char *path, char **out, size_t *size, qb_error *err);

/* qb_file_read_all with bounds, for files from strangers: refuses a file of
 * more than max bytes, and (max_line > 0) one with a line of more than
 * max_line bytes, as soon as it reads that far, so a device or a file that
 * never ends costs at most max bytes.  kind names the file's kind in the
 * one-line error ("a JSON file": "x.json: larger than 16 MiB, the limit for
 * a JSON file"). */
qb_status qb_file_read_max(const char *path, size_t max, size_t max_line, const char *kind, char **out,
                           size_t *size, qb_error *err);

bool qb_file_exists(const char *path);
/* dir + "/" + name into buf; false if it does not fit. */
bool qb_path_join(char *buf, size_t cap, const char *dir, const char *name);

/* Output directories are built under a staging sibling (OUT.tmp-PID-N,
 * marked by a file inside naming PID) and moved into place once complete,
 * so an interrupted run leaves no partial OUT.  begin normalizes out
 * ("a//b/" is "a/b"), refuses an empty path, a missing parent directory
 * (unless QB_OUTDIR_PARENTS) and an existing out (unless QB_OUTDIR_FORCE),
 * and removes the staging directories of dead processes -- only those
 * carrying the marker.  commit publishes without replacing (of two runs
 * writing one OUT, the later fails) or, with FORCE, by an atomic exchange
 * with whatever is at out, removed afterwards. */
enum { QB_OUTDIR_FORCE = 1, QB_OUTDIR_PARENTS = 2 };
typedef struct {
    char out[4096];  /* normalized */
    char tmp[4200];  /* the staging directory ("" once committed or aborted) */
    unsigned flags;
} qb_outdir;
qb_status qb_outdir_begin(qb_outdir *o, const char *out, unsigned flags, qb_error *err);
/* Removes what this process began beside out and has not published: its
 * staging directories and the temporary files of qb_file_write_atomic
 * (out.tmp-PID-N, out.state.tmp-PID-N...), as an interrupted run must. */
void qb_staging_discard_own(const char *out);
qb_status qb_outdir_commit(qb_outdir *o, qb_error *err);
void qb_outdir_abort(qb_outdir *o);
/* path's parent directory exists, or with parents is made (mkdir -p). */
qb_status qb_path_parent_ready(const char *path, bool parents, qb_error *err);
/* "a//b/" into "a/b"; refuses "", ".", ".." and names ending in them. */
qb_status qb_path_normalize(const char *in, char *out, size_t cap, qb_error *err);
/* Removes a directory with its contents, or a file; links are not followed,
 * nor mount points (another file system's files stay). */
void qb_remove_tree(const char *path);
/* qb_remove_tree after a rename aside (path.discard-PID), so that a writer
 * still at work, or a commit racing with this, finds nothing left at path
 * rather than publishing half of it. */
void qb_discard_tree(const char *path);
bool qb_same_file(const char *a, const char *b); /* same inode (dirs too) */
/* Whether path, which exists, is dir or lies inside it (links resolved):
 * what replacing dir would remove. */
bool qb_path_within(const char *path, const char *dir);
/* Refuses an output directory out that is or holds model_dir or one of
 * the n files in read (NULL entries skipped): replacing it would remove
 * what the run reads. */
qb_status qb_outdir_check_inputs(const char *out, const char *model_dir, const char *const *read, int n,
                                 qb_error *err);
bool qb_dir_is_empty(const char *path);        /* false for what is not a readable directory */

qb_status qb_file_copy(const char *src, const char *dst, qb_error *err);
/* Opens path.tmp-PID-N, a new file of this process's own, for writing
 * (*fd; tmp receives its name). */
qb_status qb_file_create_temp(const char *path, char *tmp, size_t cap, int *fd, qb_error *err);
/* Writes data to path through qb_file_create_temp + rename. */
qb_status qb_file_write_atomic(const char *path, const void *data, size_t n, qb_error *err);

#endif
