"""``--detach`` and ``--pidfile`` for ``celeriac worker`` and ``celeriac beat``: start this
same command again as a daemon (without ``--detach``) and return once it has started; hold
the pid file. Their errors are one-line CLI errors (exit 73 when the pid file is held by a
live process, as Celery)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from celeriac.cli.base import CLIError
from celeriac.utils import daemon
from celeriac.utils.pidfile import AlreadyRunning, PidfileError, claim


def detach_command(
    echo: Callable[[str], None],
    what: str,
    *,
    logfile: str | None,
    pidfile: str | None,
    uid: str | None = None,
    gid: str | None = None,
    umask: str | None = None,
    executable: str | None = None,
    workdir: str | None = None,
) -> None:
    """Detach the running command (``what``: "worker" or "beat"); print the daemon's pid."""
    try:
        daemon.drop_privileges(uid, gid)
        pid = daemon.detach(
            daemon.argv_without_detach(sys.argv[1:]),
            executable=executable,
            logfile=logfile,
            pidfile_path=pidfile,
            umask=daemon.parse_umask(umask),
            workdir=workdir,
        )
    except AlreadyRunning as exc:
        raise CLIError(f"ERROR: {exc}", exit_code=73) from None  # Celery's EX_CANTCREAT
    except (daemon.DetachError, PidfileError, OSError) as exc:
        raise CLIError(str(exc)) from None
    echo(f"Detached {what} started (pid {pid}).")


def claim_pidfile(path: str | None) -> None:
    """Hold the pid file (if any) for the service's lifetime; ``release`` it at the end."""
    if not path:
        return
    try:
        claim(path)
    except AlreadyRunning as exc:
        raise CLIError(f"ERROR: {exc}", exit_code=73) from None
    except PidfileError as exc:
        raise CLIError(str(exc)) from None


__all__ = ["claim_pidfile", "detach_command"]
