/* Small static helpers for tests/hostile.rs.
 *
 *   hostile_tools exit N                 exit with N at once (a workload that fits in a tiny RLIMIT_AS)
 *   hostile_tools flood PID SIG SECONDS  send SIG to PID in a tight loop for SECONDS, or until PID is
 *                                        gone (ESRCH); a full real-time queue (EAGAIN) is retried
 *   hostile_tools no-vfork PROG ARGS...  exec PROG under a seccomp filter that fails every clone asking
 *                                        for CLONE_VFORK with EPERM (a sandbox that refuses posix_spawn's
 *                                        way of starting a child; fork and threads still work). x86_64.
 *
 * Built with `gcc -O2 -static` by the test, so that it runs under the same tight limits as sentinit. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
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
    if (argc >= 3 && strcmp(argv[1], "no-vfork") == 0) {
        struct sock_filter filter[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 1, 0),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
            BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_VFORK, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog program = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
            perror("hostile_tools no-vfork: seccomp");
            return 125;
        }
        execvp(argv[2], argv + 2);
        perror("hostile_tools no-vfork: exec");
        return 127;
    }
    fprintf(stderr, "usage: hostile_tools exit N | flood PID SIG SECONDS | no-vfork PROG ARGS...\n");
    return 2;
}
