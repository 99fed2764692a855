/*
 * siglat: signal-forwarding latency of an init shim, for bench/run.sh.
 *
 *   siglat send N FILE -- COMMAND...   start COMMAND (the shim, whose command ends with
 *                                      `siglat recv FILE`), send it N SIGUSR1s one at a
 *                                      time, then SIGTERM; print the latencies.
 *   siglat recv FILE                   the workload: its SIGUSR1 handler stamps the time.
 *
 * Both sides share FILE through mmap. The sender stamps CLOCK_MONOTONIC just before
 * kill(shim, SIGUSR1); the workload's handler stamps CLOCK_MONOTONIC as its first action.
 * CLOCK_MONOTONIC is one clock for the whole machine (PID namespaces do not change it), so
 * the difference is the time from "signal sent to the shim" to "the workload's handler
 * runs". The sender waits for each signal to arrive before sending the next one (signals
 * of one kind coalesce), and pauses 2 ms between signals so each one meets an idle shim.
 * Run with COMMAND = `siglat recv FILE` alone, it gives the no-shim baseline.
 *
 * Output (one line on stdout): n=N lost=L min_us=A median_us=B p90_us=C max_us=D
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIGNALS 100000

struct shared {
    volatile int ready; /* the workload's pid once its handler is installed */
    volatile int count; /* handler runs so far */
    int64_t received[MAX_SIGNALS];
};

static struct shared *sh;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ns(long ns)
{
    struct timespec ts = {ns / 1000000000, ns % 1000000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static struct shared *map_file(const char *path, int create)
{
    int fd = open(path, O_RDWR | (create ? O_CREAT | O_TRUNC : 0), 0600);
    if (fd < 0 || (create && ftruncate(fd, sizeof(struct shared)) < 0)) {
        fprintf(stderr, "siglat: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    void *p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "siglat: mmap %s: %s\n", path, strerror(errno));
        exit(2);
    }
    close(fd);
    return p;
}

static void on_usr1(int sig)
{
    (void)sig;
    int64_t t = now_ns(); /* first: this is the instant being measured */
    int i = sh->count;
    if (i < MAX_SIGNALS)
        sh->received[i] = t;
    __atomic_store_n(&sh->count, i + 1, __ATOMIC_RELEASE);
}

static void __attribute__((noreturn)) recv_main(const char *path)
{
    sh = map_file(path, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    __atomic_store_n(&sh->ready, (int)getpid(), __ATOMIC_RELEASE);
    for (;;)
        pause(); /* SIGTERM (default action) ends it */
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int send_main(int n, const char *path, char **command)
{
    if (n <= 0 || n > MAX_SIGNALS) {
        fprintf(stderr, "siglat: N must be 1..%d\n", MAX_SIGNALS);
        return 2;
    }
    sh = map_file(path, 1);
    pid_t shim = fork();
    if (shim < 0) {
        perror("siglat: fork");
        return 2;
    }
    if (shim == 0) {
        execvp(command[0], command);
        fprintf(stderr, "siglat: exec %s: %s\n", command[0], strerror(errno));
        _exit(127);
    }

    int64_t give_up = now_ns() + 10LL * 1000000000;
    while (!__atomic_load_n(&sh->ready, __ATOMIC_ACQUIRE) && now_ns() < give_up)
        sleep_ns(1000000);
    int64_t *latency = calloc((size_t)n, sizeof(int64_t));
    int sent = 0, lost = 0;
    if (sh->ready) {
        sleep_ns(100000000); /* let the shim settle into its wait */
        for (sent = 0; sent < n; sent++) {
            int64_t t_send = now_ns();
            kill(shim, SIGUSR1);
            int64_t deadline = t_send + 1000000000LL;
            while (__atomic_load_n(&sh->count, __ATOMIC_ACQUIRE) <= sent && now_ns() < deadline)
                sleep_ns(20000);
            if (__atomic_load_n(&sh->count, __ATOMIC_ACQUIRE) <= sent) {
                lost = 1; /* not delivered within 1 s: stop, later stamps would not pair up */
                break;
            }
            latency[sent] = sh->received[sent] - t_send;
            sleep_ns(2000000);
        }
    }
    kill(shim, SIGTERM);
    int status;
    alarm(10);
    waitpid(shim, &status, 0);

    if (sent == 0) {
        printf("n=0 lost=%d\n", lost);
        return 1;
    }
    qsort(latency, (size_t)sent, sizeof(int64_t), cmp_i64);
    printf("n=%d lost=%d min_us=%.1f median_us=%.1f p90_us=%.1f max_us=%.1f\n", sent, lost,
           latency[0] / 1e3, latency[sent / 2] / 1e3, latency[(sent * 9) / 10] / 1e3,
           latency[sent - 1] / 1e3);
    return lost;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "recv") == 0)
        recv_main(argv[2]);
    if (argc >= 6 && strcmp(argv[1], "send") == 0 && strcmp(argv[4], "--") == 0)
        return send_main(atoi(argv[2]), argv[3], argv + 5);
    fprintf(stderr, "usage: siglat send N FILE -- COMMAND... | siglat recv FILE\n");
    return 2;
}
