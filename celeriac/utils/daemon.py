"""``worker --detach`` and ``beat --detach``: Celery's daemonization (double fork, new
session, umask, workdir), the one implementation both commands use.

The command line process checks the pid file and the log file, then forks; the first child
starts a new session and forks again, and the grandchild (the daemon: no controlling
terminal, stdin and stdout on ``/dev/null``, stderr appended to the log file) executes the
same command without ``--detach``. Unlike Celery, the command that detached waits until the
daemon has claimed its pid file (it calls :func:`notify_started`), so its exit code says
whether the service started: 0, or 1 with the reason (a failure before logging starts is
written to the log file). Relative paths are read from the daemon's working directory
(``workdir``), as Celery reads them.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import select
import sys
import time
from collections.abc import Sequence

from celeriac.utils import pidfile

#: The pipe (a file descriptor number) on which a detached worker says it has started.
NOTIFY_ENV = "CELERIAC_DETACH_NOTIFY_FD"

#: How long the detaching command waits for the daemon to claim its pid file.
STARTUP_TIMEOUT = 60.0


class DetachError(Exception):
    """The worker could not be detached, or the daemon exited before it started."""


def parse_umask(value: str | int | None) -> int | None:
    """Celery's rule: octal when written with a leading zero (``0o22``/``022``), else decimal."""
    if value is None or isinstance(value, int):
        return value
    text = value.strip()
    try:
        if text.lower().startswith("0o"):
            return int(text[2:], 8)
        return int(text, 8 if text.startswith("0") else 10)
    except ValueError:
        raise DetachError(f"--umask: not a number: {value!r}") from None


def parse_uid(value: str) -> int:
    """A user id, or a user name looked up in the password database."""
    if value.isdigit():
        return int(value)
    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        raise DetachError(f"--uid: no such user: {value!r}") from None


def parse_gid(value: str) -> int:
    """A group id, or a group name looked up in the group database."""
    if value.isdigit():
        return int(value)
    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise DetachError(f"--gid: no such group: {value!r}") from None


def drop_privileges(uid: str | None, gid: str | None) -> None:
    """Become ``uid`` / ``gid`` (the group first, while we may still change it)."""
    if gid:
        os.setgid(parse_gid(gid))
    if uid:
        user = parse_uid(uid)
        if not gid:
            with contextlib.suppress(KeyError):
                os.setgid(pwd.getpwuid(user).pw_gid)
        with contextlib.suppress(KeyError, PermissionError):
            os.initgroups(pwd.getpwuid(user).pw_name, os.getgid())
        os.setuid(user)


def detach(
    argv: Sequence[str],
    *,
    executable: str | None = None,
    logfile: str | None = None,
    pidfile_path: str | None = None,
    umask: int | None = None,
    workdir: str | None = None,
) -> int:
    """Start ``executable -m celeriac *argv`` as a daemon in ``workdir`` (default: here);
    return its pid once it has started.

    Raises :class:`DetachError` (or :class:`~celeriac.utils.pidfile.AlreadyRunning`) when it
    cannot start; nothing is left running then.
    """
    directory = os.path.abspath(workdir or os.getcwd())
    if not os.path.isdir(directory):
        raise DetachError(f"--workdir {workdir}: no such directory")
    if pidfile_path:
        pidfile.remove_if_stale(os.path.join(directory, pidfile_path))
    if logfile:
        logfile = os.path.join(directory, logfile)
        try:
            open(logfile, "a").close()
        except OSError as exc:
            raise DetachError(f"Cannot open logfile {logfile}: {exc.strerror}") from None
    command = [executable or sys.executable, "-m", "celeriac", *argv]
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:  # pragma: no cover - the child processes never return here
        try:
            os.close(read_end)
            os.setsid()
            if os.fork() > 0:
                os._exit(0)
            _become_daemon(command, write_end, directory, umask, logfile)
        finally:
            os._exit(1)
    os.close(write_end)
    os.waitpid(first, 0)
    return _await_start(read_end, logfile)


def _become_daemon(
    command: list[str], notify: int, workdir: str, umask: int | None, logfile: str | None
) -> None:  # pragma: no cover - runs in the daemon, then executes the worker
    os.chdir(workdir)
    if umask is not None:
        os.umask(umask)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    if logfile:
        err = os.open(logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(err, 2)
        os.close(err)
    else:
        os.dup2(null, 2)
    os.close(null)
    os.set_inheritable(notify, True)
    env = dict(os.environ, **{NOTIFY_ENV: str(notify)})
    os.execve(command[0], command, env)


def _await_start(read_end: int, logfile: str | None) -> int:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    data = b""
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(read_end, 64)
            if not chunk:
                break
            data += chunk
            if data.endswith(b"\n"):
                break
    finally:
        os.close(read_end)
    text = data.decode(errors="replace").strip()
    if text.isdigit():
        return int(text)
    where = f"; see {logfile}" if logfile else " (pass --logfile to see why)"
    raise DetachError(f"The detached process exited before it started{where}")


def notify_started() -> None:
    """In a detached worker or beat: tell the command that detached it that we have started
    (call it once the pid file is held)."""
    value = os.environ.pop(NOTIFY_ENV, None)
    if value is None or not value.isdigit():
        return
    fd = int(value)
    with contextlib.suppress(OSError):
        os.write(fd, f"{os.getpid()}\n".encode())
    with contextlib.suppress(OSError):
        os.close(fd)


def argv_without_detach(argv: Sequence[str]) -> list[str]:
    """The command line again for the daemon: without ``-D``/``--detach`` (and ``--workdir``,
    which the daemon starts in already)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("-D", "--detach"):
            continue
        if arg == "--workdir":
            skip = True
            continue
        if arg.startswith("--workdir="):
            continue
        out.append(arg)
    return out


__all__ = [
    "NOTIFY_ENV",
    "DetachError",
    "argv_without_detach",
    "detach",
    "drop_privileges",
    "notify_started",
    "parse_umask",
]
