/* The thread pool (pool.h): one job slot, a claim counter, and two futex
 * words, `gen` for idle workers and `inside` for the owner.
 *
 * gen is odd while a job is open.  A worker that sees an open job counts
 * itself in `inside`, then reads gen again: still the same, the owner has
 * not closed the job (it closes by bumping gen, then waits for inside to
 * fall to 0), so the job's fields hold until the worker counts itself
 * out.  Both sides store, then load the other's word, all sequentially
 * consistent, so one of them always sees the other (Dekker's pattern);
 * the same holds for `sleepers` and `owner_waits`, which spare the futex
 * wake when nobody sleeps. */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/pool.h"

/* How long an idle thread spins before it sleeps: longer than the gaps
 * between a forward pass's jobs (a LayerNorm, a head), far shorter than
 * a scheduler tick. */
#define QB_POOL_SPIN_NS 50000

/* A worker the OS stops while it holds a task stops the owner too, until
 * the worker's next time slice: with another process on the cores, each
 * job can wait out that process's slices, and the team ends slower than
 * the owner alone.  So the owner measures how long it waits for tasks in
 * progress once it has no more to claim.  When that is more than 1/5 of
 * the jobs' time over a window of QB_POOL_WINDOW_NS, it runs jobs alone
 * for QB_POOL_SOLO_NS, then tries the team again.  On an idle machine the
 * wait is a few percent; a lower bar also caught our own server's
 * connection threads, which were better served by the team.  Which thread
 * runs a task never changes results. */
#define QB_POOL_WINDOW_NS 20000000
#define QB_POOL_SOLO_NS 200000000

struct qb_pool {
    int n_threads;
    pthread_t *threads;
    int started;

    qb_pool_fn fn; /* the open job: written by the owner while gen is even */
    void *ctx;
    int n_tasks;
    int job_team;  /* threads with a smaller id take part in it */

    _Atomic uint32_t gen;     /* odd: a job is open */
    _Atomic int next;         /* the next task to claim */
    _Atomic uint32_t inside;  /* workers inside the current job */
    _Atomic int sleepers;     /* workers asleep on gen */
    _Atomic int owner_waits;  /* the owner sleeps on inside */
    _Atomic bool stop;

    /* the owner's own: its team, the current window, and until when it
     * runs alone */
    int team;
    int64_t window_ns, stalled_ns, solo_until;
};

typedef struct {
    qb_pool *p;
    int id;
} qb_pool_worker;

static void qb_pool_futex_wait(_Atomic uint32_t *word, uint32_t seen) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}

static void qb_pool_futex_wake(_Atomic uint32_t *word) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void qb_pool_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static int64_t qb_pool_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Spins until check(p, arg) returns non-zero or the spin time is up;
 * returns the last check. */
static uint32_t qb_pool_spin(qb_pool *p, uint32_t (*check)(qb_pool *, uint32_t), uint32_t arg) {
    int64_t until = qb_pool_now_ns() + QB_POOL_SPIN_NS;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            uint32_t v = check(p, arg);
            if (v) return v;
            qb_pool_pause();
        }
        if (qb_pool_now_ns() > until) return 0;
    }
}

/* gen if it is an open job other than `seen`, or 1 to stop, or 0.  gen
 * is read before stop: a gen already bumped by qb_pool_free then comes
 * with stop set, and an older one ends the futex wait at once. */
static uint32_t qb_pool_new_job_at(qb_pool *p, uint32_t seen, uint32_t g) {
    if (atomic_load(&p->stop)) return 1;
    return g != seen && (g & 1) ? g : 0;
}

static uint32_t qb_pool_new_job(qb_pool *p, uint32_t seen) {
    return qb_pool_new_job_at(p, seen, atomic_load(&p->gen));
}

/* Waits for an open job other than `seen`; returns its gen.  A worker
 * left out of the last job sleeps at once: the cores are another
 * owner's meanwhile. */
static uint32_t qb_pool_wait_job(qb_pool *p, uint32_t seen, bool spin) {
    uint32_t found = spin ? qb_pool_spin(p, qb_pool_new_job, seen) : 0;
    if (found) return found;
    atomic_fetch_add(&p->sleepers, 1);
    for (;;) {
        uint32_t g = atomic_load(&p->gen);
        if ((found = qb_pool_new_job_at(p, seen, g))) break;
        qb_pool_futex_wait(&p->gen, g);
    }
    atomic_fetch_sub(&p->sleepers, 1);
    return found;
}

/* Runs tasks until none is left to claim; returns how many it ran. */
static int qb_pool_claim(qb_pool *p, int thread) {
    int ran = 0;
    for (int i; (i = atomic_fetch_add(&p->next, 1)) < p->n_tasks; ran++) p->fn(p->ctx, i, thread);
    return ran;
}

static void *qb_pool_work(void *arg) {
    qb_pool_worker *w = arg;
    qb_pool *p = w->p;
    uint32_t seen = 0;
    bool member = true;
    for (;;) {
        uint32_t g = qb_pool_wait_job(p, seen, member);
        if (atomic_load(&p->stop)) break;
        seen = g;
        atomic_fetch_add(&p->inside, 1);
        if (atomic_load(&p->gen) == g && (member = w->id < p->job_team)) qb_pool_claim(p, w->id);
        if (atomic_fetch_sub(&p->inside, 1) == 1 && atomic_load(&p->owner_waits)) qb_pool_futex_wake(&p->inside);
    }
    free(w);
    return NULL;
}

static uint32_t qb_pool_all_out(qb_pool *p, uint32_t unused) { return atomic_load(&p->inside) == 0; }

static void qb_pool_wait_out(qb_pool *p) {
    if (qb_pool_spin(p, qb_pool_all_out, 0)) return;
    atomic_store(&p->owner_waits, 1);
    for (uint32_t v; (v = atomic_load(&p->inside)) != 0;) qb_pool_futex_wait(&p->inside, v);
    atomic_store(&p->owner_waits, 0);
}

/* Whether the owner runs this job alone (see QB_POOL_SOLO_NS). */
static bool qb_pool_solo(qb_pool *p) {
    if (!p->solo_until) return false;
    if (qb_pool_now_ns() < p->solo_until) return true;
    p->solo_until = 0;
    return false;
}

/* Counts a team job that began at t0, whose owner ran `ran` tasks, ran
 * out of them at t1 and saw them all done at t2.  Up to one of its own
 * tasks' length, that wait is the job's grain, not a stall: a worker may
 * have claimed the last task just before t1.  (Counted whole, the grain of
 * a GEMM cut into 8 parts on 2 idle threads passed 1/5 and sent the team
 * solo.) */
static void qb_pool_account(qb_pool *p, int ran, int64_t t0, int64_t t1, int64_t t2) {
    int64_t task_ns = ran ? (t1 - t0) / ran : 0, wait_ns = t2 - t1;
    p->window_ns += t2 - t0;
    p->stalled_ns += wait_ns > task_ns ? wait_ns - task_ns : 0;
    if (p->window_ns < QB_POOL_WINDOW_NS) return;
    if (p->stalled_ns * 5 > p->window_ns) p->solo_until = t2 + QB_POOL_SOLO_NS;
    p->window_ns = p->stalled_ns = 0;
}

void qb_pool_run(qb_pool *p, int n_tasks, qb_pool_fn fn, void *ctx) {
    if (!p || p->team == 1 || n_tasks <= 1 || qb_pool_solo(p)) {
        for (int i = 0; i < n_tasks; i++) fn(ctx, i, 0);
        return;
    }
    int64_t t0 = qb_pool_now_ns();
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    p->job_team = p->team;
    atomic_store(&p->next, 0);
    uint32_t g = atomic_load(&p->gen) + 1;
    atomic_store(&p->gen, g);
    if (atomic_load(&p->sleepers)) qb_pool_futex_wake(&p->gen);
    int ran = qb_pool_claim(p, 0);
    atomic_store(&p->gen, g + 1);
    int64_t t1 = qb_pool_now_ns();
    qb_pool_wait_out(p);
    qb_pool_account(p, ran, t0, t1, qb_pool_now_ns());
}

typedef struct {
    qb_pool_range_fn fn;
    void *ctx;
    long n;
    int parts;
} qb_pool_for_job;

static void qb_pool_for_task(void *ctx, int part, int thread) {
    qb_pool_for_job *j = ctx;
    long begin, end;
    qb_pool_range(j->n, part, j->parts, &begin, &end);
    if (end > begin) j->fn(j->ctx, begin, end, thread);
}

void qb_pool_for(qb_pool *p, long n, long grain, qb_pool_range_fn fn, void *ctx) {
    if (n <= 0) return;
    long most = 4L * qb_pool_threads(p), parts = grain > 0 ? n / grain : n;
    qb_pool_for_job j = {fn, ctx, n, (int)(parts < 1 ? 1 : parts > most ? most : parts)};
    qb_pool_run(p, j.parts, qb_pool_for_task, &j);
}

int qb_pool_threads(const qb_pool *p) { return p ? p->n_threads : 1; }

void qb_pool_set_team(qb_pool *p, int n) {
    if (p) p->team = n < 1 ? 1 : n > p->n_threads ? p->n_threads : n;
}

qb_status qb_pool_create(int n_threads, qb_pool **out, qb_error *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > QB_POOL_MAX_THREADS)
        return qb_fail(err, QB_ERR_ARG, "threads: %d is not in 1..%d", n_threads, QB_POOL_MAX_THREADS);
    qb_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->threads = calloc((size_t)n_threads, sizeof *p->threads))) {
        free(p);
        return qb_fail(err, QB_ERR_NOMEM, "threads: out of memory");
    }
    p->n_threads = p->team = n_threads;
    for (int t = 1; t < n_threads; t++) {
        qb_pool_worker *w = malloc(sizeof *w);
        if (w) *w = (qb_pool_worker){p, t};
        if (!w || pthread_create(&p->threads[p->started], NULL, qb_pool_work, w)) {
            free(w);
            qb_pool_free(p);
            return qb_fail(err, QB_ERR_NOMEM, "threads: cannot start thread %d of %d", t + 1, n_threads);
        }
        p->started++;
    }
    *out = p;
    return QB_OK;
}

void qb_pool_free(qb_pool *p) {
    if (!p) return;
    atomic_store(&p->stop, true);
    atomic_fetch_add(&p->gen, 2); /* a sleeper sees the word change */
    qb_pool_futex_wake(&p->gen);
    for (int t = 0; t < p->started; t++) pthread_join(p->threads[t], NULL);
    free(p->threads);
    free(p);
}
