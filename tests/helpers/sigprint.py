#!/usr/bin/env python3
"""Test workload: records every catchable signal it receives, one number per line, in the file given as
argv[1]. Writes 'ready' to argv[1] + '.ready' once its handlers are installed. On SIGTERM it records the
signal and exits 42, so a test can tell "TERM arrived" from "killed by TERM" (143)."""
import os
import signal
import sys

# A raw O_APPEND descriptor: one os.write per signal is atomic and safe when handlers interrupt each other
# under a storm (a buffered file object would raise "reentrant call").
out = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def handler(signum, _frame):
    os.write(out, f"{signum}\n".encode())
    if signum == signal.SIGTERM:
        os._exit(42)


for sig in range(1, 65):
    if sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, 32, 33):
        continue
    try:
        signal.signal(sig, handler)
    except (OSError, ValueError):
        pass

with open(sys.argv[1] + ".ready", "w") as ready:
    ready.write(f"{os.getpid()} {os.getpgrp()}\n")
while True:
    signal.pause()
