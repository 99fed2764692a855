#!/usr/bin/env python3
"""Runs argv[2:] under a new pseudo-terminal and plays a script against it.

scenario 'jobcontrol': checks that an interactive `bash -m` has job control ('m' in $-) and that it is the
terminal's foreground process group, then exits 0 through the shell.
scenario 'ctrl-c': waits for the workload to print 'ready', sends ^C through the terminal.
scenario 'plain': only runs the command under the terminal.
Prints the lines it saw and 'exit=N' with the exit status (128+n for a signal)."""
import os
import pty
import select
import sys
import time

scenario = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])

seen = b""


def read_until(token, timeout=15.0):
    global seen
    end = time.time() + timeout
    while token not in seen and time.time() < end:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return token in seen


if scenario == "jobcontrol":
    time.sleep(0.5)
    os.write(fd, b"echo flags=[$-]; echo fg=$(ps -o tpgid= -p $$ | tr -d ' ') pg=$(ps -o pgid= -p $$ | tr -d ' ')\n")
    read_until(b"pg=", 10)
    read_until(b"\n", 2)
    time.sleep(0.3)
    os.write(fd, b"exit 0\n")
elif scenario == "ctrl-c":
    read_until(b"ready")
    time.sleep(0.3)
    os.write(fd, b"\x03")

end = time.time() + 15
status = None
while time.time() < end:
    ready, _, _ = select.select([fd], [], [], 0.1)
    if ready:
        try:
            chunk = os.read(fd, 4096)
            seen += chunk
        except OSError:
            pass
    done, raw = os.waitpid(pid, os.WNOHANG)
    if done:
        status = raw
        break
if status is None:
    os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace").replace("\r", ""))
code = os.waitstatus_to_exitcode(status)
print(f"\nexit={code if code >= 0 else 128 - code}")
