"""
Sessions and owners: who created a journaled resource, and whether it lives.

A *session* is one run: a pytest run with all its xdist workers, or one
``cleanroom run`` command and everything it starts. Processes join a session
through the ``CLEANROOM_SESSION`` variable; a process without it starts a
session of its own. Each process that journals resources is an *owner* within
its session, known by host, pid and the process's start time (so that a
reused pid is not mistaken for the owner).

This module uses the standard library only: the reaper imports it at start.
"""

# /proc is read through plain strings; pathlib adds nothing there.
# ruff: noqa: PTH123, PTH208

from __future__ import annotations

import os
import time
from typing import Final, NamedTuple

from . import new_id

#: The variable through which processes of one run share a session id.
SESSION_ENV: Final = "CLEANROOM_SESSION"

#: The variable that ``scope.popen()`` sets in a child, naming its journal row.
TOKEN_ENV: Final = "CLEANROOM_TOKEN"  # noqa: S105 - a variable's name

#: Seconds between heartbeats of an owner (written by its reaper).
HEARTBEAT_INTERVAL: Final = 15.0

#: An owner on another host is dead when its heartbeat is older than this.
STALE_AFTER: Final = 4 * HEARTBEAT_INTERVAL

_session: str | None = None
_owner: Owner | None = None
_command: str | None = None


class Owner(NamedTuple):
    """
    One process that journals resources within a session.

    Attributes:
        id: A random id, unique to this process's use of the journal.
        session: The id of the session it belongs to.
        host: The host name.
        pid: The process id.
        start_time: When the process started, in clock ticks since boot
            (``/proc/PID/stat`` field 22); ``None`` where that is unknown.

    .. versionadded:: 0.1.0
    """

    id: str
    session: str
    host: str
    pid: int
    start_time: int | None

    @property
    def claim(self) -> str:
        """How journal rows name this process when it works on them."""
        return f"{self.host}:{self.pid}:{self.start_time or 0}"


def session_id() -> str:
    """
    Return the id of the session this process belongs to.

    It is ``CLEANROOM_SESSION`` when that is set (xdist workers, children of
    ``cleanroom run``); otherwise a new random id, the same for the rest of
    the process's life.

    .. versionadded:: 0.1.0
    """
    global _session  # noqa: PLW0603
    if _session is None:
        given = os.environ.get(SESSION_ENV, "").strip()
        _session = given or new_id()
    return _session


def current_owner() -> Owner:
    """
    Return this process as an owner; a forked child gets an owner of its own.

    .. versionadded:: 0.1.0
    """
    global _owner  # noqa: PLW0603
    owner = _owner
    pid = os.getpid()
    if owner is None or owner.pid != pid:
        owner = _owner = Owner(
            id=new_id(),
            session=session_id(),
            host=hostname(),
            pid=pid,
            start_time=process_start_time(pid),
        )
    return owner


def command() -> str:
    """
    Return the command line that journal rows show for this process: its
    own, or what :func:`set_command` said (an xdist worker, whose own is
    ``-c``, names its run's command).

    .. versionadded:: 0.1.0
    """
    if _command is not None:
        return _command
    import sys

    return " ".join(sys.argv)[:1000]


def set_command(text: str | None) -> None:
    """
    Say which command line this process runs on behalf of (``None`` for its own).

    .. versionadded:: 0.1.0
    """
    global _command  # noqa: PLW0603
    _command = None if text is None else text[:1000]


_hostname: list[str] = []


def hostname() -> str:
    """Return this host's name as owners record it."""
    if not _hostname:
        import socket

        _hostname.append(socket.gethostname())
    return _hostname[0]


def stat_fields(pid: int) -> list[str] | None:
    """
    Return the fields of ``/proc/PID/stat`` after the command name (the
    process state first), or ``None`` when the process cannot be read.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after
    # the last ")".
    end = data.rfind(b")")
    if end < 0:
        return None
    return data[end + 2 :].decode("ascii", "replace").split()


def process_start_time(pid: int) -> int | None:
    """
    Return when process *pid* started, in clock ticks since boot.

    Args:
        pid: A process id.

    Returns:
        Field 22 of ``/proc/PID/stat``, or ``None`` when the process does not
        exist or the system has no ``/proc``.

    .. versionadded:: 0.1.0
    """
    fields = stat_fields(pid)
    if fields is None or len(fields) < 20:  # noqa: PLR2004
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    """
    Tell whether process *pid* runs, and is the one that started at *start_time*.

    A zombie (ended, not yet reaped) counts as gone.

    Args:
        pid: A process id.
        start_time: The start time recorded for it, if any; a different one
            means the pid was reused by another process.

    .. versionadded:: 0.1.0
    """
    if pid <= 0:
        return False
    fields = stat_fields(pid)
    if fields is None:
        return _signal_alive(pid)
    if fields and fields[0] in {"Z", "X", "x"}:
        return False
    if not start_time or len(fields) < 20:  # noqa: PLR2004
        return True
    return fields[19] == str(start_time)


def _signal_alive(pid: int) -> bool:
    """Without ``/proc`` for *pid*: on Linux it is gone; elsewhere, ask kill()."""
    if os.path.isdir("/proc/self"):  # noqa: PTH112
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(
    host: str,
    pid: int,
    start_time: int | None,
    heartbeat: float | None,
    *,
    now: float | None = None,
) -> bool:
    """
    Tell whether an owner process still runs.

    On this host, its pid must run with the recorded start time. On another
    host, its heartbeat must be younger than :data:`STALE_AFTER` seconds.

    .. versionadded:: 0.1.0
    """
    if host == hostname():
        return pid_alive(pid, start_time)
    if heartbeat is None:
        return False
    return (time.time() if now is None else now) - heartbeat < STALE_AFTER


def pids_with_token(token: str) -> list[int]:
    """
    Return the processes whose environment holds ``CLEANROOM_TOKEN=<token>``.

    ``scope.popen()`` puts the token of its journal row into the child's
    environment before the child's pid is known, so that a process started
    just before its creator died can still be found. Processes of other users
    cannot be read and are never returned.

    .. versionadded:: 0.1.0
    """
    needle = f"{TOKEN_ENV}={token}".encode()
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    own = os.getpid()
    for entry in entries:
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as file:
                environ = file.read()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry))
    return found
