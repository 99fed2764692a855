/*
 * execlat: time from starting an init shim to its workload's execve, for bench/run.sh.
 *
 *   execlat run N FILE -- COMMAND...   run COMMAND (the shim, whose command ends with
 *                                      `execlat stamp FILE`) N times, one after the other;
 *                                      print the latencies.
 *   execlat stamp FILE                 the workload: stamps the time as its first action, exits 0.
 *
 * Both sides share FILE through mmap. The runner stamps CLOCK_MONOTONIC just before fork();
 * the workload stamps CLOCK_MONOTONIC first thing in main(). Built static (gcc -static), the
 * workload's main() runs a few µs after its execve returns, so the difference is the time the
 * shim takes to get its workload exec'd (plus the fork and exec that any launcher pays, which
 * running COMMAND = `execlat stamp FILE` alone measures: the no-shim baseline). The runner
 * waits for COMMAND to exit before the next run; what the shim does after the exec is not timed.
 *
 * Output (one line on stdout): n=N missed=M median_us=A p10_us=B p90_us=C
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct shared {
    volatile int64_t stamp; /* CLOCK_MONOTONIC ns at the workload's main(), 0 until then */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct shared *map_file(const char *path, int create)
{
    int fd = open(path, O_RDWR | (create ? O_CREAT | O_TRUNC : 0), 0600);
    if (fd < 0 || (create && ftruncate(fd, sizeof(struct shared)) < 0)) {
        fprintf(stderr, "execlat: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    struct shared *sh = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sh == MAP_FAILED) {
        fprintf(stderr, "execlat: mmap %s: %s\n", path, strerror(errno));
        exit(2);
    }
    close(fd);
    return sh;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "stamp") == 0) {
        int64_t t = now_ns();
        map_file(argv[2], 0)->stamp = t;
        return 0;
    }
    if (argc < 6 || strcmp(argv[1], "run") != 0 || strcmp(argv[4], "--") != 0) {
        fprintf(stderr, "usage: execlat run N FILE -- COMMAND... | execlat stamp FILE\n");
        return 2;
    }
    int n = atoi(argv[2]);
    if (n < 1 || n > 1000000) {
        fprintf(stderr, "execlat: N must be 1..1000000\n");
        return 2;
    }
    struct shared *sh = map_file(argv[3], 1);
    double *us = calloc((size_t)n, sizeof(double));
    int got = 0;
    for (int i = 0; i < n; i++) {
        sh->stamp = 0;
        int64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid < 0) {
            perror("execlat: fork");
            return 2;
        }
        if (pid == 0) {
            execvp(argv[5], argv + 5);
            fprintf(stderr, "execlat: exec %s: %s\n", argv[5], strerror(errno));
            _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (sh->stamp > 0)
            us[got++] = (double)(sh->stamp - t0) / 1000.0;
    }
    if (got == 0) {
        printf("n=0 missed=%d\n", n);
        return 1;
    }
    qsort(us, (size_t)got, sizeof(double), cmp);
    double median = got % 2 ? us[got / 2] : (us[got / 2 - 1] + us[got / 2]) / 2;
    printf("n=%d missed=%d median_us=%.1f p10_us=%.1f p90_us=%.1f\n", got, n - got, median,
           us[(int)(got * 0.1)], us[(int)(got * 0.9) < got ? (int)(got * 0.9) : got - 1]);
    return 0;
}
