/* burn MS: spins on the CPU until MS milliseconds of wall-clock time have passed, then prints the CPU
 * time it got. Under a cpu.max quota it gets only part of that wall time and the rest is throttling. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: burn MS\n");
        return 2;
    }
    long until = now_ms() + atol(argv[1]);
    volatile unsigned long spins = 0;
    while (now_ms() < until)
        for (int i = 0; i < 10000; i++)
            spins++;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("burn: cpu_user_ms=%ld cpu_system_ms=%ld\n", ru.ru_utime.tv_sec * 1000L + ru.ru_utime.tv_usec / 1000,
           ru.ru_stime.tv_sec * 1000L + ru.ru_stime.tv_usec / 1000);
    return 0;
}
