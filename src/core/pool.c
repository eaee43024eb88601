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
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
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
 * the worker's next time slice (a tick, 4 ms at HZ=250): with another
 * process on its core, each job can wait out that process's slices, and
 * the team ends slower than the owner alone.  A spinning worker uses up
 * its fair share of that core, and the kernel stops it at a tick, often
 * inside a task; one that sleeps between jobs stays under its share, and
 * the kernel runs it soon after it is woken.  But each wake costs 20-40 us
 * on a VM, some 160 times a forward pass (+20% on an idle machine), so
 * workers spin unless the owner sees the cores contended.
 *
 * The owner judges over windows of QB_POOL_WINDOW_NS of team jobs.  They
 * are contended when it waited for tasks in progress, once it had none to
 * claim, more than 1/5 of that time, or when the OS took its own core
 * from it QB_POOL_PREEMPTIONS times (idle: 0-1; our server's connection
 * threads and its client: up to 6; beside a busy loop: up to 60, in
 * windows the wait alone missed).  The first window is not judged: there
 * the workers touch their scratch for the first time.  Contended, it
 * steps one mode down (qb_pool_mode) and holds it for QB_POOL_HOLD_NS,
 * longer while the OS still preempts it, then steps one back up.  A
 * lower bar on the wait also caught our own server's connection threads,
 * which were better served by the team.  Which thread runs a task never
 * changes results. */
#define QB_POOL_WINDOW_NS 20000000
#define QB_POOL_HOLD_NS 1000000000
#define QB_POOL_PREEMPTIONS 10

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

    _Atomic bool workers_spin; /* mode QB_POOL_SPIN: idle workers spin first */
    _Atomic int owner_cpu;     /* mode QB_POOL_SLEEP: where the owner runs */

    /* the owner's own: its team, the current window, its mode and until
     * when it holds it */
    int team;
    int64_t window_ns, stalled_ns, mode_until;
    long window_switches; /* window_thread's preemptions when it began */
    pthread_t window_thread;
    bool judged;          /* a window before */
    qb_pool_mode mode;
};

typedef struct {
    qb_pool *p;
    int id;
    cpu_set_t home; /* the CPUs it may run on */
    int away_from;  /* the CPU its affinity leaves out of home, or -1 */
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

/* While workers sleep between jobs (QB_POOL_SLEEP), a worker keeps off
 * the owner's CPU.  Woken there, the kernel would run it in the owner's
 * place (it has the larger share of CPU time left), and the two would
 * take turns on one core while another ran only the process the team is
 * sharing the machine with: 28 ms against 23 ms for bert-base beside a
 * busy loop.  Spinning again, it gets all its CPUs back. */
static void qb_pool_place(qb_pool_worker *w, bool spinning) {
    int cpu = spinning ? -1 : atomic_load_explicit(&w->p->owner_cpu, memory_order_relaxed);
    if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &w->home) || CPU_COUNT(&w->home) < 2) cpu = -1;
    if (cpu == w->away_from) return;
    cpu_set_t set = w->home;
    if (cpu >= 0) CPU_CLR(cpu, &set);
    sched_setaffinity(0, sizeof set, &set); /* a refusal only costs speed */
    w->away_from = cpu;
}

static void *qb_pool_work(void *arg) {
    qb_pool_worker *w = arg;
    qb_pool *p = w->p;
    uint32_t seen = 0;
    bool member = true;
    if (sched_getaffinity(0, sizeof w->home, &w->home)) CPU_ZERO(&w->home);
    for (;;) {
        bool spinning = atomic_load_explicit(&p->workers_spin, memory_order_relaxed);
        qb_pool_place(w, spinning);
        uint32_t g = qb_pool_wait_job(p, seen, member && spinning);
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

static void qb_pool_enter(qb_pool *p, qb_pool_mode mode, int64_t now) {
    p->mode = mode;
    p->mode_until = mode == QB_POOL_SPIN ? 0 : now + QB_POOL_HOLD_NS;
    p->window_ns = p->stalled_ns = 0;
    atomic_store_explicit(&p->workers_spin, mode == QB_POOL_SPIN, memory_order_relaxed);
}

/* The owner's mode for its next job: a held mode ends one step up. */
static qb_pool_mode qb_pool_next_mode(qb_pool *p) {
    if (p->mode != QB_POOL_SPIN) {
        int64_t now = qb_pool_now_ns();
        if (now >= p->mode_until) qb_pool_enter(p, p->mode - 1, now);
    }
    return p->mode;
}

/* Involuntary context switches of the calling thread: the times the OS
 * took its core for another thread. */
static long qb_pool_preemptions(void) {
    struct rusage u;
    return getrusage(RUSAGE_THREAD, &u) ? 0 : u.ru_nivcsw;
}

static void qb_pool_judge(qb_pool *p, bool stalled, bool preempted, int64_t now) {
    if (p->mode == QB_POOL_SPIN && (stalled || preempted)) qb_pool_enter(p, QB_POOL_SLEEP, now);
    else if (p->mode == QB_POOL_SLEEP && stalled) qb_pool_enter(p, QB_POOL_SOLO, now);
    else if (p->mode == QB_POOL_SLEEP && preempted) p->mode_until = now + QB_POOL_HOLD_NS;
}

/* Counts a team job that began at t0, whose owner ran `ran` tasks, ran
 * out of them at t1 and saw them all done at t2.  Up to one of its own
 * tasks' length, that wait is the job's grain, not a stall: a worker may
 * have claimed the last task just before t1.  (Counted whole, the grain of
 * a GEMM cut into 8 parts on 2 idle threads passed 1/5 and sent the team
 * solo.) */
static void qb_pool_account(qb_pool *p, int ran, int64_t t0, int64_t t1, int64_t t2) {
    int64_t task_ns = ran ? (t1 - t0) / ran : 0, wait_ns = t2 - t1;
    if (!p->window_ns) {
        p->window_switches = qb_pool_preemptions();
        p->window_thread = pthread_self();
    }
    p->window_ns += t2 - t0;
    p->stalled_ns += wait_ns > task_ns ? wait_ns - task_ns : 0;
    if (p->window_ns < QB_POOL_WINDOW_NS) return;
    if (p->judged) {
        bool same = pthread_equal(p->window_thread, pthread_self());
        qb_pool_judge(p, p->stalled_ns * 5 > p->window_ns,
                      same && qb_pool_preemptions() - p->window_switches >= QB_POOL_PREEMPTIONS, t2);
    }
    p->judged = true;
    p->window_ns = p->stalled_ns = 0;
}

void qb_pool_run(qb_pool *p, int n_tasks, qb_pool_fn fn, void *ctx) {
    if (!p || p->team == 1 || n_tasks <= 1 || qb_pool_next_mode(p) == QB_POOL_SOLO) {
        for (int i = 0; i < n_tasks; i++) fn(ctx, i, 0);
        return;
    }
    if (p->mode == QB_POOL_SLEEP) atomic_store_explicit(&p->owner_cpu, sched_getcpu(), memory_order_relaxed);
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

qb_pool_mode qb_pool_get_mode(const qb_pool *p) { return p ? p->mode : QB_POOL_SOLO; }

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
    atomic_init(&p->workers_spin, true);
    atomic_init(&p->owner_cpu, -1);
    for (int t = 1; t < n_threads; t++) {
        qb_pool_worker *w = malloc(sizeof *w);
        if (w) *w = (qb_pool_worker){.p = p, .id = t, .away_from = -1};
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
