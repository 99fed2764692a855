#!/usr/bin/env python3
"""Test workload: orphans N short-lived processes, waits, then prints how many zombies are children of
its parent (sentinit) as 'zombies=K'. mode 'double-fork': each orphan is made by a child that forks and
exits at once. mode 'burst': N orphans that all exit at the same instant, so SIGCHLDs coalesce."""
import os
import sys
import time

count = int(sys.argv[2])
mode = sys.argv[1]
sentinit = os.getppid()
exit_at = time.time() + 0.5

for _ in range(count):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            if mode == "burst":
                time.sleep(max(0.0, exit_at - time.time()))
            else:
                time.sleep(0.05)
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)

time.sleep(1.5)


def zombies_of(parent):
    found = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] == "Z" and int(fields[1]) == parent:
            found += 1
    return found


print(f"zombies={zombies_of(sentinit)}", flush=True)
