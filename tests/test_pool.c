/* The thread pool (core/pool.h): every task of every job runs exactly once,
 * whatever the team and the job's size; qb_pool_for covers [0, n) once;
 * a team set smaller runs tasks on its members only, cut as before;
 * and a worker that stalls the owner (here it sleeps in its tasks, as one
 * the OS has stopped does) makes the owner run jobs alone for a while,
 * then try the team again; but a worker that only finishes the job's last
 * task does not. */
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

/* A pool of 4 run by teams of 1 to 4, the whole team last: each team's
 * jobs run on its members only, the whole team's on more than the owner,
 * and qb_pool_for cuts a range the same way for any team. */
static void test_team(void) {
    qb_pool *p = qb_test_pool(4);
    _Atomic int runs[64];
    for (int size = 1; size <= 4; size++) {
        int bad = 0, parts = -1, cut_differs = 0;
        unsigned seen = 0;
        qb_pool_set_team(p, size);
        for (int round = 0; round < 300; round++) {
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
        CHECK(size == 1 || seen > 1, "team of %d: only the owner ran tasks", size);
        CHECK(parts == 16 && !cut_differs, "team of %d: qb_pool_for cut 64 items into %d runs, not 16", size, parts);
    }
    qb_pool_free(p);
}

/* Jobs of 4 tasks; a worker's task sleeps 3 ms, the owner's spins 100 us.
 * The team stalls the owner most of each job, so within a few windows the
 * owner must run a long streak alone, and after that try the team again. */
static void test_solo(void) {
    qb_pool *p = qb_test_pool(2);
    _Atomic int runs[4];
    int streak = 0, longest = 0, team_after = 0, jobs = 0;
    for (double end = now_us() + 3e6; now_us() < end && !team_after; jobs++) {
        job j = {.runs = runs, .worker_sleep_us = 3000, .owner_spin_us = 100};
        for (int i = 0; i < 4; i++) runs[i] = 0;
        qb_pool_run(p, 4, task, &j);
        for (int i = 0; i < 4; i++) CHECK(runs[i] == 1, "task %d ran %d times", i, runs[i]);
        if (atomic_load(&j.by_worker) == 0) streak++;
        else {
            if (longest >= 200) team_after = 1;
            streak = 0;
        }
        longest = streak > longest ? streak : longest;
    }
    CHECK(longest >= 200, "the owner never ran alone for long: longest streak %d jobs of %d", longest, jobs);
    CHECK(team_after, "the team was not tried again after the owner ran alone (%d jobs)", jobs);
    printf("stalling worker: %d jobs, the longest run alone %d jobs, the team tried again: %s\n", jobs, longest,
           team_after ? "yes" : "no");
    qb_pool_free(p);
}

/* Jobs of 8 tasks of 80 and 100 us on 2 threads, like a GEMM's parts of
 * 4 and 5 weight blocks: when the worker takes the last task, the owner
 * waits out most of one, though nothing stalls.  That wait is the job's
 * grain; counted as a stall, it sent this idle team solo for most of the
 * run (386-499 of ~600 jobs alone). */
static void test_grain(void) {
    qb_pool *p = qb_test_pool(2);
    _Atomic int runs[8];
    int alone = 0, jobs = 0;
    for (double end = now_us() + 4e5; now_us() < end; jobs++) {
        job j = {.runs = runs, .spin_us = 80};
        for (int i = 0; i < 8; i++) runs[i] = 0;
        qb_pool_run(p, 8, task, &j);
        alone += atomic_load(&j.by_worker) == 0;
    }
    CHECK(alone * 2 < jobs, "uneven tasks: the owner ran %d of %d jobs alone", alone, jobs);
    printf("uneven tasks: the owner ran %d of %d jobs alone\n", alone, jobs);
    qb_pool_free(p);
}

int main(void) {
    test_each_once(2);
    test_each_once(4);
    test_team();
    test_solo();
    test_grain();
    return qb_test_done("test_pool");
}
