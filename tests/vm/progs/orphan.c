/* orphan N: makes N orphans. For each, a middle child forks a grandchild and exits at once; the
 * grandchild waits until it has been reparented, reports its new parent, and exits. Whoever it was
 * reparented to (PID 1 of the namespace, or a child subreaper) must reap it, or it stays a zombie.
 * This process waits (pipe EOF) until every grandchild has exited, then prints the new parents. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    int fds[2];
    if (pipe(fds) != 0) {
        perror("orphan: pipe");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        pid_t middle = fork();
        if (middle < 0) {
            perror("orphan: fork");
            return 1;
        }
        if (middle == 0) {
            pid_t me = getpid();
            pid_t grandchild = fork();
            if (grandchild == 0) {
                close(fds[0]);
                while (getppid() == me) {
                    struct timespec ts = {0, 5000000L};
                    nanosleep(&ts, NULL);
                }
                char line[64];
                int len = snprintf(line, sizeof line, "%d\n", (int)getppid());
                if (write(fds[1], line, len) != len)
                    _exit(1);
                _exit(0);
            }
            _exit(grandchild < 0 ? 1 : 0);
        }
        waitpid(middle, NULL, 0);
    }
    close(fds[1]);
    char buf[4096];
    ssize_t total = 0, got;
    while ((got = read(fds[0], buf + total, sizeof buf - 1 - total)) > 0)
        total += got;
    buf[total] = 0;
    printf("orphan: grandchildren reparented to:");
    for (char *p = buf; *p; p++)
        putchar(*p == '\n' ? ' ' : *p);
    printf("\n");
    return 0;
}
