"""execve(2) a program with a hand-built environment, byte for byte.

Usage: inputs_execve.py ENVFILE PROGRAM [ARGS...]

ENVFILE holds the environment entries, each terminated by a NUL byte, exactly as they are to appear
in the new program's envp: entries without '=', duplicate names, non-UTF-8 bytes and entries that
start with '=' included. os.execve cannot build such an envp (it takes a mapping), so this goes
through libc directly. PROGRAM is used as a path (no PATH search).
"""

import ctypes
import os
import sys


def main():
    if len(sys.argv) < 3:
        sys.stderr.write("usage: inputs_execve.py ENVFILE PROGRAM [ARGS...]\n")
        return 2
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    entries = data.split(b"\0")
    if entries and entries[-1] == b"":
        entries.pop()
    args = [os.fsencode(a) for a in sys.argv[2:]]
    program = args[0]

    argv = (ctypes.c_char_p * (len(args) + 1))(*args, None)
    envp = (ctypes.c_char_p * (len(entries) + 1))(*entries, None)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.execve.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p)]
    libc.execve(program, argv, envp)
    err = ctypes.get_errno()
    sys.stderr.write("inputs_execve.py: execve %r: %s\n" % (program, os.strerror(err)))
    return 127


if __name__ == "__main__":
    sys.exit(main())
