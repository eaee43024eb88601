/* Running this program again as a child, without a shell: arguments go
 * to execve as they are, so a path with a quote or a space in it is just
 * a path. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

/* Exit status of a finished child, or -1 if it did not exit normally. */
static int qb_cli_wait(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int qb_cli_run_self(char *const argv[], const char *log_path, _Atomic int *running) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) return -1;
    atomic_store(running, (int)pid);
    int status = qb_cli_wait(pid);
    atomic_store(running, 0);
    return status;
}

FILE *qb_cli_open_self(char *const argv[], int *pid) {
    pid_t child = -1;
    int fd[2];
    /* close-on-exec: the child keeps only the dup2'd write end */
    if (pipe(fd)) return NULL;
    fcntl(fd[0], F_SETFD, FD_CLOEXEC);
    fcntl(fd[1], F_SETFD, FD_CLOEXEC);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], STDOUT_FILENO);
    int rc = posix_spawn(&child, "/proc/self/exe", &fa, NULL, argv, environ);
    *pid = (int)child;
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    FILE *f = rc ? NULL : fdopen(fd[0], "r");
    if (rc) errno = rc;
    if (!f) {
        close(fd[0]);
        if (!rc) qb_cli_wait(child);
    }
    return f;
}

int qb_cli_close_self(FILE *f, int pid) {
    fclose(f);
    return qb_cli_wait((pid_t)pid);
}
