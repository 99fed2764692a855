/* alloc MIB [HOLD_MS]: allocates and touches MIB MiB, 1 MiB at a time, then keeps it for HOLD_MS.
 * The guest's memory-limit scenarios use it as the workload that reaches (or stays under) memory.max. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: alloc MIB [HOLD_MS]\n");
        return 2;
    }
    long mib = atol(argv[1]);
    long hold_ms = argc > 2 ? atol(argv[2]) : 0;
    for (long i = 1; i <= mib; i++) {
        char *chunk = malloc(1 << 20);
        if (!chunk) {
            fprintf(stderr, "alloc: malloc failed after %ld MiB\n", i - 1);
            return 1;
        }
        memset(chunk, 0x5a, 1 << 20); /* touch every page so it is charged */
        if (i % 16 == 0) {
            printf("alloc: %ld MiB touched\n", i);
            fflush(stdout);
        }
    }
    printf("alloc: done, %ld MiB held\n", mib);
    fflush(stdout);
    if (hold_ms > 0) {
        struct timespec ts = {hold_ms / 1000, (hold_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}
