/*
 * orphans: the zombie-reaping workload of bench/run.sh.
 *
 * Usage: orphans N
 *
 * Run as the workload of an init shim that is PID 1 of a new PID namespace. It forks a
 * helper that forks N children which exit at once; the helper never waits for them and
 * then exits itself, so the kernel hands all N zombies to PID 1 (the shim) in one go.
 * The workload then polls with kill(pid, 0) (which succeeds on a zombie and fails with
 * ESRCH once it has been reaped) until every one of them is gone, and prints how long
 * that took, measured from the instant just before the helper exited. Only then does it
 * exit, so every shim is judged on reaping alone, not on how it behaves when its main
 * child exits with zombies left (dumb-init exits at once; others wait).
 *
 * Output (one line on stdout): orphans=N reaped=M reap_ms=X fork_ms=Y
 * Exit status: 0 when all were reaped, 1 otherwise (60 s limit).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct shared {
    double fork_start;
    double helper_exit; /* CLOCK_MONOTONIC seconds, just before the helper's _exit */
    int count;
    pid_t pids[];
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 2 || atoi(argv[1]) <= 0) {
        fprintf(stderr, "usage: orphans N\n");
        return 2;
    }
    int n = atoi(argv[1]);
    size_t size = sizeof(struct shared) + (size_t)n * sizeof(pid_t);
    struct shared *sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("orphans: mmap");
        return 2;
    }
    /* Zombies only exist if SIGCHLD is not ignored; make sure of it whatever the shim left. */
    signal(SIGCHLD, SIG_DFL);

    pid_t helper = fork();
    if (helper < 0) {
        perror("orphans: fork");
        return 2;
    }
    if (helper == 0) {
        sh->fork_start = now();
        for (int i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0)
                _exit(0);
            if (p < 0) {
                perror("orphans: fork");
                break;
            }
            sh->pids[sh->count++] = p;
        }
        sh->helper_exit = now();
        _exit(0);
    }
    int status;
    while (waitpid(helper, &status, 0) < 0 && errno == EINTR)
        ;

    int remaining = sh->count;
    pid_t *left = malloc((size_t)remaining * sizeof(pid_t));
    for (int i = 0; i < remaining; i++)
        left[i] = sh->pids[i];
    double deadline = sh->helper_exit + 60.0;
    while (remaining > 0 && now() < deadline) {
        int kept = 0;
        for (int i = 0; i < remaining; i++)
            if (kill(left[i], 0) == 0 || errno != ESRCH)
                left[kept++] = left[i];
        remaining = kept;
        if (remaining > 0)
            usleep(500); /* leave the CPU to the shim between sweeps */
    }
    double done = now();
    printf("orphans=%d reaped=%d reap_ms=%.2f fork_ms=%.2f\n", sh->count, sh->count - remaining,
           (done - sh->helper_exit) * 1e3, (sh->helper_exit - sh->fork_start) * 1e3);
    return remaining == 0 && sh->count == n ? 0 : 1;
}
