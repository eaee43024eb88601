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
    const char *paths[2];
} interrupt;

static void *await_signal(void *arg) {
    interrupt *in = arg;
    int sig;
    if (sigwait(&in->set, &sig) != 0) return NULL;
    fprintf(stderr, "qbert %s: %s: removing the unfinished output\n", in->cmd, strsignal(sig));
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

void qb_cli_discard_on_interrupt(const char *cmd, const char *out, const char *also) {
    interrupt *in = calloc(1, sizeof *in);
    if (!in) return;
    *in = (interrupt){.cmd = cmd, .paths = {out, also}};
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
