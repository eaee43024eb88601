/* A fixed team of threads that runs parallel loops for the one thread that
 * owns it (a session, a trainer, a quantizer).  The owner publishes a job
 * of n_tasks and takes part; tasks are claimed one at a time from a shared
 * counter, so a thread the OS does not run (another process on its core)
 * only delays the task it holds, and the owner waits only for tasks in
 * progress, never for a thread to show up.  Idle workers spin briefly,
 * since a forward pass publishes its jobs back to back, then sleep on a
 * futex, so a busy or quota-limited machine is not fought for.  While
 * the cores are contended (the owner waits on tasks held by stopped
 * workers, or the OS preempts it), workers sleep between jobs, off the
 * owner's CPU; if the owner still waits on them, it runs jobs alone for a
 * while (pool.c).
 *
 * Results never depend on timing: callers cut work into tasks by size
 * alone, and which thread runs a task only picks its scratch. */
#ifndef QB_CORE_POOL_H
#define QB_CORE_POOL_H

#include "qbert.h"

/* Cap on a pool's threads; more is a mistake, not a machine. */
#define QB_POOL_MAX_THREADS 256

typedef struct qb_pool qb_pool;

/* Runs task `task` of a job on thread `thread`, in [0, qb_pool_threads):
 * the owner is 0.  It must not run jobs on the same pool. */
typedef void (*qb_pool_fn)(void *ctx, int task, int thread);

/* n_threads counts the owner: 1 starts no thread. */
qb_status qb_pool_create(int n_threads, qb_pool **out, qb_error *err);
void qb_pool_free(qb_pool *p);

/* Threads of p, the owner included; 1 for NULL. */
int qb_pool_threads(const qb_pool *p);

/* How many of p's threads, the owner first, run its next jobs: 1 to
 * qb_pool_threads(p), all at creation.  Jobs are still cut for all of
 * them, so results do not change; a server running two batches at once
 * gives each half the cores this way. */
void qb_pool_set_team(qb_pool *p, int n);

/* How a pool runs its jobs now: the owner steps down this ladder while
 * the cores are contended, and back up when that ends. */
typedef enum {
    QB_POOL_SPIN,  /* the team; idle workers spin briefly, then sleep */
    QB_POOL_SLEEP, /* the team; idle workers sleep at once */
    QB_POOL_SOLO   /* the owner alone */
} qb_pool_mode;

/* p's mode for its next job; QB_POOL_SOLO for NULL. */
qb_pool_mode qb_pool_get_mode(const qb_pool *p);

/* fn(ctx, i, thread) for every i in [0, n_tasks), on p's threads; returns
 * when all are done, their writes visible.  p NULL runs them in order on
 * the caller, as does a job of one task. */
void qb_pool_run(qb_pool *p, int n_tasks, qb_pool_fn fn, void *ctx);

/* fn(ctx, begin, end, thread) over runs that cover [0, n): up to 4 per
 * thread, each of at least `grain` items (so n < 2 * grain runs at once
 * on the caller). */
typedef void (*qb_pool_range_fn)(void *ctx, long begin, long end, int thread);
void qb_pool_for(qb_pool *p, long n, long grain, qb_pool_range_fn fn, void *ctx);

/* [*begin, *end) of part `part` of n items cut into `parts` runs: the
 * first n % parts runs hold one more (OpenMP's static schedule). */
static inline void qb_pool_range(long n, int part, int parts, long *begin, long *end) {
    long q = n / parts, r = n % parts;
    *begin = part * q + (part < r ? part : r);
    *end = *begin + q + (part < r);
}

#endif
