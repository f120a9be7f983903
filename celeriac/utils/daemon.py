"""Running in the background (``beat --detach``): the classic double fork."""

from __future__ import annotations

import os
import sys


def detach(workdir: str | None = None, umask: int | None = None) -> None:
    """Leave the terminal: fork, start a new session, fork again (so no terminal can be
    acquired), then point stdin, stdout and stderr at /dev/null. Returns in the daemon only;
    the caller's process exits with status 0."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    if workdir:
        os.chdir(workdir)
    if umask is not None:
        os.umask(umask)
    sys.stdout.flush()
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


__all__ = ["detach"]
