/* Ctrl-C, or a kill, while a command writes its output: the signal waits
 * in a thread of its own, which removes what the command had begun (a
 * signal handler could not: that lists and removes directories), then
 * the process dies of the signal, as the shell that sent it expects. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/fs.h"

typedef struct {
    sigset_t set;
    const char *cmd;
    void (*cleanup)(void *ctx); /* NULL: discard the staging of paths */
    void *ctx;
    const char *paths[2];
} interrupt;

static void *await_signal(void *arg) {
    interrupt *in = arg;
    int sig;
    if (sigwait(&in->set, &sig) != 0) return NULL;
    fprintf(stderr, "qbert %s: %s: removing the unfinished output\n", in->cmd, strsignal(sig));
    if (in->cleanup) in->cleanup(in->ctx);
    for (int k = 0; k < 2; k++)
        if (in->paths[k]) qb_staging_discard_own(in->paths[k]);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    signal(sig, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    raise(sig);
    return NULL;
}

/* The thread, waiting with what proto asks of it. */
static void start_waiting(interrupt proto) {
    interrupt *in = malloc(sizeof *in);
    if (!in) return;
    *in = proto;
    sigemptyset(&in->set);
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t k = 0; k < sizeof sigs / sizeof *sigs; k++) {
        struct sigaction was;
        /* one ignored when qbert started (nohup, a script's background job) stays ignored */
        if (sigaction(sigs[k], NULL, &was) == 0 && was.sa_handler != SIG_IGN) sigaddset(&in->set, sigs[k]);
    }
    pthread_t t;
    pthread_sigmask(SIG_BLOCK, &in->set, NULL);
    if (pthread_create(&t, NULL, await_signal, in) != 0) {
        pthread_sigmask(SIG_UNBLOCK, &in->set, NULL);
        free(in);
        return;
    }
    pthread_detach(t);
}

void qb_cli_discard_on_interrupt(const char *cmd, const char *out, const char *also) {
    start_waiting((interrupt){.cmd = cmd, .paths = {out, also}});
}

void qb_cli_on_interrupt(const char *cmd, void (*cleanup)(void *ctx), void *ctx) {
    start_waiting((interrupt){.cmd = cmd, .cleanup = cleanup, .ctx = ctx});
}
