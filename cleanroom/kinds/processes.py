"""
The ``process`` kind: processes, and the process groups they lead, that a
scope ends.

:func:`popen` starts a process in a new session (so in a process group of its
own) and records its pid, its start time (field 22 of ``/proc/PID/stat``,
which tells the process from a later one given the same pid), its process
group and its command line. Cleaning it:

1. does nothing to a pid that now belongs to another process: a pid is only
   reused once the process and every member of its group are gone;
2. sends ``SIGTERM`` (and ``SIGCONT``, so that a stopped process sees it) to
   the whole group, so that children and grandchildren end too — only a
   group the process leads, never cleanroom's own;
3. waits up to a grace period for the group to end, then sends ``SIGKILL``;
4. reaps the process, through its :class:`subprocess.Popen` when this process
   holds it (which also closes the pipes, as leaving ``with Popen(...)``
   does), or with :func:`os.waitpid` when it is a child of this process.

A process that already ended counts as cleaned. Processes are found through
``/proc``: this kind works on Linux, and fails with a clear error elsewhere.
"""

# /proc is read through plain strings; pathlib adds nothing there.
# ruff: noqa: PTH123, PTH208

from __future__ import annotations

import contextlib
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, NamedTuple, cast

import attrs

from cleanroom._core import new_id
from cleanroom._core._resource import (
    BaseKind,
    Resource,
    register_kind,
)
from cleanroom._core._session import TOKEN_ENV, pids_with_token, stat_fields
from cleanroom.exceptions import BackendUnavailableError, CleanroomError

if TYPE_CHECKING:
    from cleanroom._core._scope import Scope

__all__ = ["DEFAULT_GRACE", "PROCESSES", "ProcessKind", "popen", "track_pid"]

#: Seconds a process group gets between ``SIGTERM`` and ``SIGKILL`` by default
#: (less when the policy's timeout is short: at most half of it).
DEFAULT_GRACE: Final = 5.0

#: Seconds to wait, after ``SIGKILL``, for the processes to vanish.
_KILL_WAIT: Final = 5.0

_NAME_WIDTH: Final = 60
_GONE_STATES: Final = frozenset("ZXx")
_STAT_FIELDS: Final = 20

#: The Popen objects of processes started with popen(), by (pid, start time),
#: so that cleaning one reaps it through its Popen and sets its returncode.
_popens: weakref.WeakValueDictionary[tuple[int, int], subprocess.Popen[Any]] = (
    weakref.WeakValueDictionary()
)


# -- the kind ------------------------------------------------------------------


@attrs.define
class ProcessKind(BaseKind):
    """
    Processes and the process groups they lead.

    A resource's identity holds ``pid`` and ``start_time`` (required: the
    start time is what keeps a reused pid safe), and optionally ``pgid``,
    ``group`` (whether cleaning ends the whole group, which it does only for a
    group the process leads: ``pgid == pid``), ``grace``, ``boot_id`` and
    ``argv``.

    A :class:`subprocess.Popen` given to :meth:`Scope.add
    <cleanroom.Scope.add>` becomes a process resource: it is ended as
    :meth:`~cleanroom.Scope.track_pid` ends a process, and reaped through its
    ``Popen``, rather than waited for by ``Popen.__exit__``.

    .. versionadded:: 0.1.0
    """

    #: The types whose objects :meth:`Scope.add <cleanroom.Scope.add>` adopts.
    adopts: ClassVar[tuple[str, ...]] = ("subprocess.Popen",)

    def adopt(self, scope: Scope, obj: object, *, name: str | None) -> Resource:
        """Track the running :class:`subprocess.Popen` *obj* in *scope*."""
        process = cast("subprocess.Popen[Any]", obj)
        _require_proc()
        info = _read_stat(process.pid)
        if info is None:
            raise ProcessLookupError(
                f"process {process.pid} of {process!r} was reaped already"
            )
        argv = _cmdline(process.pid)
        resource = scope.track(
            self,
            name or _name(argv),
            argv=argv,
            grace=_grace(scope, None),
            **_identity(process.pid, info),
        )
        scope.alias(resource, process)
        _popens[process.pid, info.start_time] = process
        return resource

    def probe(self) -> str:
        """
        Say that processes can be tracked here (``/proc`` is readable).

        Raises:
            BackendUnavailableError: When the system has no ``/proc``.
        """
        try:
            _require_proc()
        except CleanroomError as exc:
            raise BackendUnavailableError(str(exc)) from None
        return "local processes, read through /proc"

    def roundtrip(self, scope: Scope) -> str:
        """Start a sleeping process in *scope*, then end and reap it."""
        sleep = shutil.which("sleep")
        argv = (
            [sleep, "60"]
            if sleep
            else [sys.executable, "-c", "import time; time.sleep(60)"]
        )
        process = popen(scope, argv)
        resource = scope.resource_of(process)
        scope.release(process)
        if self.exists(resource) or process.returncode is None:
            raise AssertionError(f"process {process.pid} still runs after release")
        name = os.path.basename(argv[0])  # noqa: PTH119
        return f"started {name} (pid {process.pid}), ended and reaped it"

    def delete(self, resource: Resource, *, wait: bool) -> None:
        """
        End the process (and its group): ``SIGTERM``, a grace period,
        ``SIGKILL``, then reap it. Ended processes and reused pids count as
        cleaned. The end is always waited for: an unreaped child is a leak too.

        Raises:
            ValueError: When the record lacks a pid or start time, or names this
                process or one of its ancestors.
            CleanroomError: When the system has no ``/proc``.
            TimeoutError: When the processes outlive ``SIGKILL``.
        """
        if "pid" not in resource.identity and "token" in resource.identity:
            for found in _by_token(resource):
                self.delete(found, wait=wait)
            return
        record = _Record.of(resource)
        _require_proc()
        if record.boot_id is not None and record.boot_id != _boot_id():
            # The machine restarted since: every process of then is gone.
            return
        if _end(record):
            _reap(record)
        _close_pipes(record)

    def exists(self, resource: Resource) -> bool:
        """Tell whether the process, or a member of the group it led, still runs."""
        if "pid" not in resource.identity and "token" in resource.identity:
            return bool(_by_token(resource))
        record = _Record.of(resource)
        _require_proc()
        if record.boot_id is not None and record.boot_id != _boot_id():
            return False
        info = _read_stat(record.pid)
        if info is not None and info.start_time != record.start_time:
            return False
        if _running(info):
            return True
        return record.kills_group and bool(_group_leftovers(record))

    def delete_hint(self, resource: Resource) -> str:
        """
        Return the ``kill`` command that ends the process (group) by hand, or
        ``"nothing — "`` and why there is nothing to end; either reads on from
        "delete it with:".
        """
        try:
            record = _Record.of(resource)
            _require_proc()
            _refuse_own(record.pid)
        except (ValueError, CleanroomError) as exc:
            return f"nothing — {exc}"
        info = _read_stat(record.pid)
        ended = f"nothing — process {record.pid} has ended"
        if record.boot_id is not None and record.boot_id != _boot_id():
            return ended
        if info is not None and info.start_time != record.start_time:
            return ended
        if record.kills_group and (info is not None or _group_leftovers(record)):
            return f"kill -s TERM -- -{record.pgid}"
        if _running(info):
            return f"kill -s TERM {record.pid}"
        return ended

    def describe(self, resource: Resource) -> str:
        """Return ``"process '<command>' (pid N)"``."""
        pid = resource.identity.get("pid")
        return f"{self.name} {resource.name!r} (pid {pid})"


#: Processes started with ``popen`` or tracked with ``track_pid``.
PROCESSES: Final = ProcessKind("process", aliases=("processes",))

register_kind(PROCESSES)


# -- helpers of Scope ------------------------------------------------------------


def popen(
    scope: Scope,
    args: Any,
    *,
    grace: float | None = None,
    **popen_kwargs: Any,
) -> subprocess.Popen[Any]:
    """
    Start a process like :class:`subprocess.Popen`, in a new session, and make
    *scope* end it — with its whole process group — when it closes.

    Args:
        scope: The scope that ends it.
        args: The program and its arguments, as for :class:`subprocess.Popen`.
        grace: Seconds between ``SIGTERM`` and ``SIGKILL``; by default
            :data:`DEFAULT_GRACE`, or half the policy's timeout when that is
            shorter.
        popen_kwargs: Passed to :class:`subprocess.Popen`. Pass
            ``start_new_session`` or ``process_group`` to choose the group
            yourself; when the process does not lead a group of its own, only
            the process is ended.

    Returns:
        The :class:`subprocess.Popen`; it is a handle for
        :meth:`~cleanroom.Scope.keep`, :meth:`~cleanroom.Scope.release` and
        :meth:`~cleanroom.Scope.forget`. The scope holds it until it is cleaned.

    Raises:
        TypeError: When *args* or *grace* has the wrong type.
        ValueError: When *args* is empty or *grace* negative.
        CleanroomError: When the system has no ``/proc``.

    .. versionadded:: 0.1.0
    """
    _require_proc()
    argv = _argv(args, shell=bool(popen_kwargs.get("shell")))
    seconds = _grace(scope, grace)
    if "start_new_session" not in popen_kwargs and "process_group" not in popen_kwargs:
        popen_kwargs["start_new_session"] = True
    # The token in the child's environment finds it should this process die
    # before the pid is journaled.
    token = new_id()
    env = popen_kwargs.get("env")
    popen_kwargs["env"] = {**(os.environ if env is None else env), TOKEN_ENV: token}
    with scope.creating(
        PROCESSES, _name(argv), argv=argv, grace=seconds, token=token
    ) as creation:
        # SIGINT and SIGTERM wait until the process is tracked; should Popen
        # or /proc fail, creating() ends the process through its token.
        process = subprocess.Popen(args, **popen_kwargs)
        info = _read_stat(process.pid)
        if info is None:
            raise CleanroomError(f"cannot read /proc/{process.pid}/stat")
        creation.update(**_identity(process.pid, info))
        creation.alias(process)
        _popens[process.pid, info.start_time] = process
    return process


def _by_token(resource: Resource) -> list[Resource]:
    """The running processes that carry the popen() token of *resource*."""
    found = []
    for pid in pids_with_token(str(resource.identity["token"])):
        info = _read_stat(pid)
        if _running(info) and info is not None:
            identity = {**resource.identity, **_identity(pid, info)}
            found.append(attrs.evolve(resource, identity=identity))
    return found


def _identity(pid: int, info: _Stat) -> dict[str, Any]:
    """What a record holds of running process *pid*, whose stat is *info*."""
    return {
        "pid": pid,
        "start_time": info.start_time,
        "boot_id": _boot_id(),
        "pgid": info.pgrp,
        # Only a group the process leads, never cleanroom's own, is ended whole.
        "group": info.pgrp == pid and info.pgrp != os.getpgrp(),
    }


def track_pid(scope: Scope, pid: int, *, grace: float | None = None) -> Resource:
    """
    Make *scope* end a running process, identified by its pid and start time.

    The process's group is ended with it only when the process leads a group
    other than cleanroom's own.

    Args:
        scope: The scope that ends it.
        pid: The process id.
        grace: Seconds between ``SIGTERM`` and ``SIGKILL``; see :func:`popen`.

    Returns:
        The resource, a handle for :meth:`~cleanroom.Scope.keep` and the like.

    Raises:
        TypeError: When *pid* is not an int.
        ValueError: When *pid* is not positive, or is this process, pid 1 or an
            ancestor of this process.
        ProcessLookupError: When no process has that pid.
        CleanroomError: When the system has no ``/proc``.

    .. versionadded:: 0.1.0
    """
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError(f"pid must be an int, not {type(pid).__name__}")
    if pid <= 0:
        raise ValueError(f"pid must be a positive int, not {pid}")
    seconds = _grace(scope, grace)
    _require_proc()
    _refuse_own(pid)
    info = _read_stat(pid)
    if info is None:
        raise ProcessLookupError(f"no process has pid {pid}")
    argv = _cmdline(pid)
    return scope.track(
        PROCESSES, _name(argv), argv=argv, grace=seconds, **_identity(pid, info)
    )


# -- reading /proc ---------------------------------------------------------------


class _Stat(NamedTuple):
    state: str
    ppid: int
    pgrp: int
    start_time: int


def _require_proc() -> None:
    if not os.path.isdir("/proc/self"):  # noqa: PTH112
        raise CleanroomError(
            "cleanroom tracks processes through /proc, which this system lacks; "
            "the process kind needs Linux"
        )


def _read_stat(pid: int) -> _Stat | None:
    """Return what ``/proc/PID/stat`` says, or ``None`` when there is no such pid."""
    fields = stat_fields(pid)
    if fields is None or len(fields) < _STAT_FIELDS:
        return None
    return _Stat(
        state=fields[0],
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        start_time=int(fields[19]),
    )


def _cmdline(pid: int) -> list[str]:
    """The command line of *pid*, or its name when it has none (a kernel thread)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            argv = [os.fsdecode(part) for part in file.read().split(b"\0") if part]
        if argv:
            return argv
        with open(f"/proc/{pid}/comm", "rb") as file:
            return [os.fsdecode(file.read().rstrip(b"\n"))]
    except OSError:
        return []


_boot_ids: list[str | None] = []


def _boot_id() -> str | None:
    if not _boot_ids:
        try:
            with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
                _boot_ids.append(file.read().strip() or None)
        except OSError:
            _boot_ids.append(None)
    return _boot_ids[0]


def _running(info: _Stat | None) -> bool:
    return info is not None and info.state not in _GONE_STATES


def _group_members(pgid: int) -> list[_Stat]:
    """The processes of group *pgid* that have not ended (zombies left out)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _read_stat(int(entry))
            if info is not None and info.pgrp == pgid and _running(info):
                members.append(info)
    return members


def _ancestors() -> set[int]:
    found = {os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        info = _read_stat(pid)
        pid = info.ppid if info is not None else 0
    return found


def _refuse_own(pid: int) -> None:
    if pid == 1 or pid in _ancestors():
        what = "this process" if pid == os.getpid() else "an ancestor of this process"
        if pid == 1:
            what = "the init process"
        raise ValueError(f"refusing to end pid {pid}: it is {what}")


# -- ending processes ------------------------------------------------------------


@attrs.frozen
class _Record:
    """What cleaning needs to know about a process, checked."""

    pid: int
    start_time: int
    pgid: int
    group: bool
    grace: float
    boot_id: str | None

    @classmethod
    def of(cls, resource: Resource) -> _Record:
        identity = resource.identity
        pid = _positive_int(resource, "pid")
        start_time = _positive_int(resource, "start_time")
        pgid = _positive_int(resource, "pgid") if "pgid" in identity else pid
        grace = identity.get("grace", DEFAULT_GRACE)
        boot_id = identity.get("boot_id")
        if not isinstance(grace, int | float) or not grace >= 0:
            raise ValueError(f"{resource!r} has a bad grace {grace!r}")
        return cls(
            pid=pid,
            start_time=start_time,
            pgid=pgid,
            group=bool(identity.get("group", False)),
            grace=float(grace),
            boot_id=boot_id if isinstance(boot_id, str) else None,
        )

    @property
    def kills_group(self) -> bool:
        """Whether cleaning signals the whole group: one it leads, not ours."""
        return (
            self.group
            and self.pgid == self.pid
            and self.pgid > 1
            and self.pgid != os.getpgrp()
        )


def _positive_int(resource: Resource, key: str) -> int:
    value = resource.identity.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"{resource!r} needs a positive int {key!r} in its identity, not "
            f"{value!r}; track processes with scope.popen() or scope.track_pid()"
        )
    return value


def _group_leftovers(record: _Record) -> list[_Stat]:
    """
    The members still running in the group of a leader that is gone, if the
    group is still the leader's: a member that started before the leader
    would show that the pgid now names another group.
    """
    members = _group_members(record.pgid)
    if any(member.start_time < record.start_time for member in members):
        return []
    return members


def _end(record: _Record) -> bool:
    """End the process (group); return ``False`` when its pid names another now."""
    pid, start_time = record.pid, record.start_time
    info = _read_stat(pid)
    if info is not None and info.start_time != start_time:
        # The pid was reused: ours, and every member of its group, ended before.
        return False
    _refuse_own(pid)

    def leader_runs() -> bool:
        now = _read_stat(pid)
        return _running(now) and now is not None and now.start_time == start_time

    if record.kills_group:
        if info is not None or _group_leftovers(record):
            pgid = record.pgid
            _terminate(
                lambda sig: _signal(os.killpg, pgid, sig),
                lambda: leader_runs() or bool(_group_members(pgid)),
                record.grace,
                f"process group {pgid}",
            )
    elif _running(info):
        _terminate(
            lambda sig: _signal(os.kill, pid, sig),
            leader_runs,
            record.grace,
            f"process {pid}",
        )
    return True


def _signal(send: Callable[[int, int], None], target: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        send(target, sig)


def _terminate(
    send: Callable[[int], None], busy: Callable[[], bool], grace: float, what: str
) -> None:
    send(signal.SIGTERM)
    send(signal.SIGCONT)
    if _wait_for(busy, grace):
        return
    send(signal.SIGKILL)
    if not _wait_for(busy, _KILL_WAIT):
        raise TimeoutError(f"{what} still runs {_KILL_WAIT} s after SIGKILL")


def _wait_for(busy: Callable[[], bool], timeout: float) -> bool:
    """Wait until ``busy()`` is false; return whether it became so in time."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while busy():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.1)
    return True


def _reap(record: _Record) -> None:
    process = _popens.get((record.pid, record.start_time))
    if process is not None:
        process.wait(timeout=_KILL_WAIT)
        return
    info = _read_stat(record.pid)
    if (
        info is not None
        and info.start_time == record.start_time
        and info.ppid == os.getpid()
    ):
        # Not reaping may be someone else's job (asyncio's child watcher).
        with contextlib.suppress(ChildProcessError):
            os.waitpid(record.pid, os.WNOHANG)


def _close_pipes(record: _Record) -> None:
    # As leaving ``with Popen(...)`` does: the process is gone, its pipes go too.
    process = _popens.get((record.pid, record.start_time))
    if process is not None:
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


# -- checking arguments ------------------------------------------------------------


def _argv(args: object, *, shell: bool) -> list[str]:
    if isinstance(args, str | bytes | os.PathLike):
        text = os.fsdecode(args)
        if not text:
            raise ValueError("args must not be empty")
        return ["/bin/sh", "-c", text] if shell else [text]
    if not isinstance(args, Sequence):
        raise TypeError(
            "args must be a sequence of str, bytes or os.PathLike, or one of "
            f"them, not {type(args).__name__}"
        )
    if not args:
        raise ValueError("args must not be empty: name the program to run")
    argv = []
    for index, arg in enumerate(args):
        if not isinstance(arg, str | bytes | os.PathLike):
            raise TypeError(
                f"args[{index}] must be a str, bytes or os.PathLike, "
                f"not {type(arg).__name__}: {arg!r}"
            )
        argv.append(os.fsdecode(arg))
    if not argv[0]:
        raise ValueError("args[0], the program, must not be empty")
    return argv


def _grace(scope: Scope, grace: object) -> float:
    if grace is None:
        timeout = scope.policy.timeout
        return DEFAULT_GRACE if timeout is None else min(DEFAULT_GRACE, timeout / 2)
    if isinstance(grace, bool) or not isinstance(grace, int | float):
        raise TypeError(f"grace must be a number of seconds, not {grace!r}")
    if math.isnan(grace) or grace < 0 or math.isinf(grace):
        raise ValueError(f"grace must be a finite number of seconds >= 0, not {grace}")
    return float(grace)


def _name(argv: Sequence[str]) -> str:
    name = shlex.join(argv)
    if len(name) > _NAME_WIDTH:
        name = name[: _NAME_WIDTH - 1] + "…"
    return name
