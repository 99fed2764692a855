/* cgns PROG [ARGS]: runs PROG in a private cgroup namespace and mount namespace with cgroup2 mounted
 * at /sys/fs/cgroup, which is the view a container gets from Docker on cgroup v2 (`0::/`).
 * Busybox's unshare has no -C, hence this program. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: cgns PROG [ARGS]\n");
        return 2;
    }
    if (unshare(CLONE_NEWCGROUP | CLONE_NEWNS) != 0) {
        perror("cgns: unshare");
        return 1;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        perror("cgns: make / private");
        return 1;
    }
    /* The parent's cgroup2 mount is in the way (mounting the same superblock there again is EBUSY). */
    if (umount2("/sys/fs/cgroup", MNT_DETACH) != 0) {
        perror("cgns: unmount the parent's /sys/fs/cgroup");
        return 1;
    }
    /* CGNS_RO=1: read-only, as Docker and Kubernetes mount it in a container. */
    unsigned long flags = getenv("CGNS_RO") ? MS_RDONLY : 0;
    if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", flags, NULL) != 0) {
        perror("cgns: mount cgroup2");
        return 1;
    }
    execvp(argv[1], argv + 1);
    perror("cgns: exec");
    return 127;
}
