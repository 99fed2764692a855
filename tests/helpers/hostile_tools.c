/* Small static helpers for tests/hostile.rs.
 *
 *   hostile_tools exit N                 exit with N at once (a workload that fits in a tiny RLIMIT_AS)
 *   hostile_tools flood PID SIG SECONDS  send SIG to PID in a tight loop for SECONDS, or until PID is
 *                                        gone (ESRCH); a full real-time queue (EAGAIN) is retried
 *
 * Built with `gcc -O2 -static` by the test, so that it runs under the same tight limits as sentinit. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "exit") == 0) {
        return atoi(argv[2]);
    }
    if (argc == 5 && strcmp(argv[1], "flood") == 0) {
        pid_t pid = (pid_t)atoi(argv[2]);
        int sig = atoi(argv[3]);
        double end = now() + atof(argv[4]);
        unsigned long sent = 0;
        for (unsigned long i = 0;; i++) {
            if (kill(pid, sig) == 0) {
                sent++;
            } else if (errno == ESRCH) {
                break;
            }
            if ((i & 255) == 0 && now() >= end) {
                break;
            }
        }
        printf("%lu\n", sent);
        return 0;
    }
    fprintf(stderr, "usage: hostile_tools exit N | flood PID SIG SECONDS\n");
    return 2;
}
