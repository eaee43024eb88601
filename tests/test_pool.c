/* The thread pool (core/pool.h): every task of every job runs exactly once,
 * whatever the team and the job's size; qb_pool_for covers [0, n) once;
 * a team set smaller runs tasks on its members only, cut as before;
 * a worker that stalls the owner (here it sleeps in its tasks, as one the
 * OS has stopped does) sends the pool down its ladder of modes: workers
 * that sleep between jobs and keep off the owner's CPU, then the owner
 * alone for a while, then back up to the team; but a worker that only
 * finishes the job's last task does not.  The checks of how the OS
 * schedules the team are judged only while the machine has CPUs free. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "test_util.h"

typedef struct {
    _Atomic int *runs;   /* [n]: times task i ran */
    _Atomic int by_worker; /* tasks a worker ran */
    _Atomic unsigned seen; /* bit t: thread t ran a task */
    _Atomic int parts;     /* runs qb_pool_for made */
    int worker_sleep_us; /* a worker's task sleeps this long */
    int owner_spin_us;   /* the owner's task spins this long */
    int spin_us;         /* every task spins this long, odd ones 1/4 longer */
    int owner_cpu;       /* with check_cpu: a CPU the workers must keep off */
    bool check_cpu;
    _Atomic int cpu_ok;  /* with check_cpu: 1 if a worker kept off owner_cpu, -1 if not */
} job;

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

static void spin(int us) {
    for (double until = now_us() + us; now_us() < until;) {
    }
}

static void task(void *ctx, int i, int thread) {
    job *j = ctx;
    atomic_fetch_add(&j->runs[i], 1);
    atomic_fetch_or(&j->seen, 1u << thread);
    spin(j->spin_us + (i % 2) * j->spin_us / 4);
    if (thread && j->check_cpu) {
        cpu_set_t set;
        if (!sched_getaffinity(0, sizeof set, &set)) atomic_store(&j->cpu_ok, CPU_ISSET(j->owner_cpu, &set) ? -1 : 1);
    }
    if (thread) {
        atomic_fetch_add(&j->by_worker, 1);
        if (j->worker_sleep_us) nanosleep(&(struct timespec){0, j->worker_sleep_us * 1000L}, NULL);
    } else spin(j->owner_spin_us);
}

static void range(void *ctx, long b, long e, int thread) {
    atomic_fetch_add(&((job *)ctx)->parts, 1);
    for (long i = b; i < e; i++) task(ctx, (int)i, thread);
}

static void test_each_once(int threads) {
    qb_pool *p = qb_test_pool(threads);
    _Atomic int runs[200];
    int bad = 0;
    for (int round = 0; round < 2000; round++) {
        int n = round % 67 + 1;
        for (int i = 0; i < n; i++) runs[i] = 0;
        job j = {.runs = runs};
        if (round % 2) qb_pool_run(p, n, task, &j);
        else qb_pool_for(p, n, round % 5 + 1, range, &j);
        for (int i = 0; i < n; i++) bad += runs[i] != 1;
    }
    CHECK(bad == 0, "%d threads: %d tasks did not run exactly once", threads, bad);
    qb_pool_free(p);
}

/* Scheduling checks below depend on the OS giving the pool its CPUs: on
 * a machine busy with other work they fail with nothing wrong in the pool
 * (a team that waits on descheduled workers rightly goes solo).  So the
 * ladder and the grain get three fresh tries, each returning its first
 * failed expectation in `why`, and judge() fails the test only when the
 * machine is free: two threads spinning beside each other then each get
 * most of a CPU.  A broken pool fails on a free machine. */
static void *spin_50ms(void *share) {
    struct timespec c;
    double start = now_us();
    spin(50000);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c);
    *(double *)share = ((double)c.tv_sec * 1e6 + (double)c.tv_nsec * 1e-3) / (now_us() - start);
    return NULL;
}

/* The smaller share of a CPU that two spinning threads got. */
static double cpu_share(void) {
    double share[2] = {0, 0};
    pthread_t t;
    if (pthread_create(&t, NULL, spin_50ms, &share[1])) return 0;
    spin_50ms(&share[0]);
    pthread_join(t, NULL);
    return share[0] < share[1] ? share[0] : share[1];
}

enum { WHY_LEN = 256 }; /* a check's message */

static void judge(const char *name, bool ok, const char *why) {
    if (ok) {
        printf("%s: %s\n", name, why);
        return;
    }
    double share = cpu_share();
    if (share < 0.8)
        printf("%s: not judged, the machine is busy (two spinning threads got %.0f%% of a CPU): %s\n", name,
               share * 100, why);
    else CHECK(false, "%s: %s", name, why);
}

/* A pool of 4 run by teams of 1 to 4, the whole team last: each team's
 * jobs run on its members only, the whole team's on more than the owner,
 * and qb_pool_for cuts a range the same way for any team.  A team larger
 * than the machine's CPUs rightly sends the pool solo for QB_POOL_HOLD_NS
 * (1 s), longer than 300 rounds take, so a team that has not yet seen a
 * worker run goes on for up to 3 s: past two holds, it must. */
static void test_team(void) {
    qb_pool *p = qb_test_pool(4);
    _Atomic int runs[64];
    for (int size = 1; size <= 4; size++) {
        int bad = 0, parts = -1, cut_differs = 0;
        unsigned seen = 0;
        qb_pool_set_team(p, size);
        double deadline = now_us() + 3e6;
        for (int round = 0; round < 300 || (size > 1 && seen <= 1 && now_us() < deadline); round++) {
            job j = {.runs = runs, .spin_us = 20};
            for (int i = 0; i < 64; i++) runs[i] = 0;
            if (round % 2) qb_pool_run(p, 16, task, &j);
            else {
                qb_pool_for(p, 64, 1, range, &j);
                cut_differs += parts >= 0 && j.parts != parts;
                parts = j.parts;
            }
            for (int i = 0; i < (round % 2 ? 16 : 64); i++) bad += runs[i] != 1;
            seen |= atomic_load(&j.seen);
        }
        CHECK(bad == 0, "team of %d: %d tasks did not run exactly once", size, bad);
        CHECK(!(seen >> size), "team of %d: threads 0x%x ran tasks", size, seen);
        if (size > 1 && seen <= 1) {
            char why[WHY_LEN];
            snprintf(why, sizeof why, "team of %d: only the owner ran tasks", size);
            judge("team", false, why);
        }
        CHECK(parts == 16 && !cut_differs, "team of %d: qb_pool_for cut 64 items into %d runs, not 16", size, parts);
    }
    qb_pool_free(p);
}

/* Runs jobs of 4 tasks like `proto` until the pool's mode is `until` or
 * `limit_us` pass; returns the jobs the owner ran alone, or -1 if the
 * mode never came. */
static int run_until(qb_pool *p, job proto, qb_pool_mode until, double limit_us) {
    _Atomic int runs[4];
    int alone = 0;
    for (double end = now_us() + limit_us; qb_pool_get_mode(p) != until;) {
        if (now_us() > end) return -1;
        job j = proto;
        j.runs = runs;
        for (int i = 0; i < 4; i++) runs[i] = 0;
        qb_pool_run(p, 4, task, &j);
        for (int i = 0; i < 4; i++) CHECK(runs[i] == 1, "task %d ran %d times", i, runs[i]);
        alone += atomic_load(&j.by_worker) == 0;
    }
    return alone;
}

/* While p stays in `mode`, up to 200 jobs of 4 tasks of 20 us: in how many
 * of the *with_worker jobs a worker took part in, its affinity let it run
 * on the CPU the owner ran on when it published the job. */
static int jobs_on_owner_cpu(qb_pool *p, int *with_worker, qb_pool_mode mode) {
    _Atomic int runs[4];
    int on = 0;
    *with_worker = 0;
    for (int k = 0; k < 200 && qb_pool_get_mode(p) == mode; k++) {
        job j = {.runs = runs, .spin_us = 20, .check_cpu = true, .owner_cpu = sched_getcpu()};
        qb_pool_run(p, 4, task, &j);
        *with_worker += atomic_load(&j.cpu_ok) != 0;
        on += atomic_load(&j.cpu_ok) < 0;
    }
    return on;
}

#define EXPECT(cond, ...)                                                       \
    do {                                                                        \
        if (!(cond)) {                                                          \
            snprintf(why, WHY_LEN, __VA_ARGS__);                                \
            qb_pool_free(p);                                                    \
            return false;                                                       \
        }                                                                       \
    } while (0)

/* The ladder: a worker's task sleeps 3 ms and the owner's spins 100 us, so
 * the team stalls the owner most of each job.  Within a few 20 ms windows
 * the workers must sleep between jobs, off the owner's CPU; stalling on,
 * the owner must run a long streak alone; then, with no more stalls, the
 * team must come back with its workers spinning and on all their CPUs. */
static bool ladder(char *why) {
    qb_pool *p = qb_test_pool(2);
    cpu_set_t all;
    int cpus = sched_getaffinity(0, sizeof all, &all) ? 1 : CPU_COUNT(&all), with_worker;
    job stall = {.worker_sleep_us = 3000, .owner_spin_us = 100}, calm = {.spin_us = 20};
    EXPECT(qb_pool_get_mode(p) == QB_POOL_SPIN, "a new pool is in mode %d", qb_pool_get_mode(p));
    EXPECT(run_until(p, stall, QB_POOL_SLEEP, 1e6) >= 0, "a stalling worker: the workers never slept between jobs");
    /* the first job finds the worker placed for the last, and the owner
     * may move */
    int on = jobs_on_owner_cpu(p, &with_worker, QB_POOL_SLEEP);
    EXPECT(cpus < 2 || (with_worker > 0 && on * 10 < with_worker),
           "sleeping workers could run on the owner's CPU in %d of %d jobs", on, with_worker);
    int alone = run_until(p, stall, QB_POOL_SOLO, 1e6);
    EXPECT(alone >= 0, "stalling on: the owner never ran alone");
    alone = run_until(p, calm, QB_POOL_SPIN, 4e6);
    EXPECT(alone >= 200, "the owner ran %d jobs alone, not a long streak, before the team came back", alone);
    on = jobs_on_owner_cpu(p, &with_worker, QB_POOL_SPIN);
    EXPECT(cpus < 2 || on > 0, "back to spinning, the workers kept off the owner's CPU in all %d jobs", with_worker);
    snprintf(why, WHY_LEN, "workers slept off the owner's CPU, the owner ran %d jobs alone, then the team spun again",
             alone);
    qb_pool_free(p);
    return true;
}

/* Jobs of 8 tasks of 80 and 100 us on 2 threads, like a GEMM's parts of
 * 4 and 5 weight blocks: when the worker takes the last task, the owner
 * waits out most of one, though nothing stalls.  That wait is the job's
 * grain; counted as a stall, it sent this idle team solo for most of the
 * run (386-499 of ~600 jobs alone). */
static bool grain(char *why) {
    qb_pool *p = qb_test_pool(2);
    _Atomic int runs[8];
    int alone = 0, jobs = 0;
    for (double end = now_us() + 4e5; now_us() < end; jobs++) {
        job j = {.runs = runs, .spin_us = 80};
        for (int i = 0; i < 8; i++) runs[i] = 0;
        qb_pool_run(p, 8, task, &j);
        alone += atomic_load(&j.by_worker) == 0;
    }
    snprintf(why, WHY_LEN, "the owner ran %d of %d jobs alone", alone, jobs);
    qb_pool_free(p);
    return alone * 2 < jobs;
}

static void try_thrice(const char *name, bool (*check)(char *why)) {
    char why[WHY_LEN];
    bool ok = false;
    for (int t = 1; t <= 3 && !ok; t++) {
        ok = check(why);
        if (!ok && t < 3) printf("%s: try %d failed (%s)\n", name, t, why);
    }
    judge(name, ok, why);
}

int main(void) {
    test_each_once(2);
    test_each_once(4);
    test_team();
    try_thrice("ladder", ladder);
    try_thrice("uneven tasks", grain);
    return qb_test_done("test_pool");
}
