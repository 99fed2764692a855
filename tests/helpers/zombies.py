#!/usr/bin/env python3
"""Test workload: orphans N short-lived processes, waits, then prints how many of them were reparented
to its parent (sentinit) as 'reparented=R' and how many zombies sentinit has left as 'zombies=K'.
mode 'double-fork': each orphan is made by a child that forks and exits at once. mode 'burst': N
orphans that all exit at the same instant, so SIGCHLDs coalesce. argv[3] is a scratch file where
each orphan appends its new parent's pid."""
import os
import sys
import time

count = int(sys.argv[2])
mode = sys.argv[1]
parents = os.open(sys.argv[3], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
sentinit = os.getppid()
exit_at = time.time() + 0.5

for _ in range(count):
    pid = os.fork()
    if pid == 0:
        me = os.getpid()
        if os.fork() == 0:
            # Wait until the intermediate parent is gone, then record who adopted this orphan.
            while os.getppid() == me:
                time.sleep(0.005)
            os.write(parents, f"{os.getppid()}\n".encode())
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


with open(sys.argv[3]) as f:
    adopted = [int(line) for line in f if line.strip()]
reparented = sum(1 for parent in adopted if parent == sentinit)
print(f"reparented={reparented} zombies={zombies_of(sentinit)}", flush=True)
