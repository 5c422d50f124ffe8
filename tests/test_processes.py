"""
Tests of the ``process`` kind: scope.popen() and scope.track_pid(), with real
processes, process groups and pids.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cleanroom import (
    CleanupError,
    CleanupTimeoutError,
    Disposition,
    Registry,
    Resource,
    Scope,
    ScopeStateError,
    State,
    get_kind,
)
from cleanroom.kinds.processes import PROCESSES

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="the process kind needs /proc"
)

SLEEP = ["sleep", "60"]
# A Python process that ignores SIGTERM and says when it is ready.
STUBBORN = [
    sys.executable,
    "-c",
    (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    ),
]
# A shell with two sleeping children that prints their pids.
FAMILY = ["sh", "-c", "sleep 60 & a=$!; sleep 60 & echo $a $!; wait"]


def stat_of(pid: int) -> list[str] | None:
    """Return the fields of /proc/PID/stat after the command name, or None."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rfind(b")") + 2 :].decode().split()


def start_time(pid: int) -> int:
    """Return the start time of a running process, in clock ticks since boot."""
    fields = stat_of(pid)
    assert fields is not None
    return int(fields[19])


def alive(pid: int, started: int | None = None) -> bool:
    """Tell whether *pid* runs (zombies count as ended), with that start time."""
    fields = stat_of(pid)
    if fields is None or fields[0] in {"Z", "X"}:
        return False
    return started is None or int(fields[19]) == started


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll *predicate* until it holds or *timeout* seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def free_pid() -> int:
    """Return a pid that no process has now."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    for pid in range(pid_max - 1, 1, -1):
        if not Path(f"/proc/{pid}").exists():
            return pid
    raise AssertionError("no free pid")  # pragma: no cover


def cleanup_threads_done() -> bool:
    """Tell whether cleanroom's cleanup worker threads have all ended."""
    return not any(t.name == "cleanroom-cleanup" for t in threading.enumerate())


class FailingListener:
    """A registry listener that fails when told a process was created."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def intent(self, scope: Scope, resource: Resource) -> None:
        pass

    def created(self, scope: Scope, resource: Resource) -> None:
        pid = resource.identity.get("pid")
        if isinstance(pid, int):
            self.pids.append(pid)
        raise RuntimeError("journal down")

    def settled(self, scope: Scope, disposition: Disposition) -> None:
        pass


@pytest.fixture
def strays() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test leaves running on purpose, killed and reaped after it."""
    found: list[subprocess.Popen[bytes]] = []
    yield found
    for process in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(process.pid) == process.pid:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()


class TestKind:
    def test_names(self) -> None:
        """The kind answers to process and processes, and is a runtime thing."""
        assert get_kind("process") is PROCESSES
        assert get_kind("Processes") is PROCESSES
        assert PROCESSES.category == "runtime"
        assert PROCESSES.external

    def test_identity_exists_and_describe(self) -> None:
        """A popen's resource records pid, start time, group and command line."""
        with Scope() as scope:
            process = scope.popen(SLEEP)
            (resource,) = scope.resources()
            identity = resource.identity
            assert identity["pid"] == process.pid
            assert identity["start_time"] == start_time(process.pid)
            assert identity["pgid"] == process.pid
            assert identity["group"] is True
            assert identity["argv"] == SLEEP
            assert resource.name == "sleep 60"
            assert PROCESSES.exists(resource)
            assert (
                PROCESSES.describe(resource)
                == f"process 'sleep 60' (pid {process.pid})"
            )
            assert PROCESSES.delete_hint(resource) == f"kill -s TERM -- -{process.pid}"
        assert not PROCESSES.exists(resource)

    def test_long_command_lines_are_shortened(self) -> None:
        """A resource's name is the command line, cut to a readable width."""
        with Scope() as scope:
            scope.popen(
                ["sleep", "60", *("x" * 20 for _ in range(5))],
                stderr=subprocess.DEVNULL,
            )
            (resource,) = scope.resources()
        assert len(resource.name) == 60
        assert resource.name.endswith("…")


class TestPopen:
    def test_new_session_and_terminated_on_close(self) -> None:
        """A process runs in a session of its own and is ended with SIGTERM."""
        with Scope() as scope:
            process = scope.popen(SLEEP)
            assert os.getpgid(process.pid) == process.pid
            assert os.getsid(process.pid) == process.pid
            started = start_time(process.pid)
        assert process.returncode == -signal.SIGTERM
        assert not alive(process.pid, started)
        assert scope.dispositions == ()

    def test_grandchildren_die_with_the_group(self) -> None:
        """Children and grandchildren in the process group end too."""
        with Scope() as scope:
            process = scope.popen(FAMILY, stdout=subprocess.PIPE)
            assert process.stdout is not None
            children = [int(pid) for pid in process.stdout.readline().split()]
            assert len(children) == 2
            assert all(alive(pid) for pid in children)
        assert all(wait_until(lambda pid=pid: not alive(pid)) for pid in children)
        assert process.returncode is not None

    def test_orphans_of_an_ended_leader_die(self) -> None:
        """Members left in the group after the leader was reaped are ended too."""
        with Scope() as scope:
            process = scope.popen(
                ["sh", "-c", "sleep 60 & echo $!"], stdout=subprocess.PIPE
            )
            assert process.stdout is not None
            orphan = int(process.stdout.readline())
            assert process.wait(timeout=10) == 0
            assert alive(orphan)
        assert wait_until(lambda: not alive(orphan))

    def test_kill_after_grace(self) -> None:
        """A process that ignores SIGTERM is killed once its grace is over."""
        with Scope() as scope:
            process = scope.popen(STUBBORN, stdout=subprocess.PIPE, grace=0.2)
            assert process.stdout is not None
            assert process.stdout.readline() == b"ready\n"
        assert process.returncode == -signal.SIGKILL

    def test_default_grace_follows_timeout(self) -> None:
        """The default grace is five seconds, or half of a shorter timeout."""
        with Scope() as scope:
            scope.popen(SLEEP)
            scope.popen(SLEEP, grace=1)
            graces = [r.identity["grace"] for r in scope.resources()]
        assert graces == [1.0, 5.0]
        with Scope(timeout=2) as scope:
            scope.popen(SLEEP)
            (resource,) = scope.resources()
        assert resource.identity["grace"] == 1.0

    def test_already_exited_is_reaped(self) -> None:
        """A process that ended by itself counts as cleaned, and is reaped."""
        with Scope() as scope:
            process = scope.popen(["true"])
            assert wait_until(lambda: not alive(process.pid))
        assert process.returncode == 0
        assert stat_of(process.pid) is None or not alive(process.pid)
        assert scope.dispositions == ()

    def test_already_waited(self) -> None:
        """A process the body already waited for counts as cleaned."""
        with Scope() as scope:
            process = scope.popen(["sh", "-c", "exit 3"])
            assert process.wait(timeout=10) == 3
        assert process.returncode == 3
        assert scope.dispositions == ()

    def test_pipes_are_closed(self) -> None:
        """Cleaning a process closes its pipes, as leaving `with Popen` does."""
        with Scope() as scope:
            process = scope.popen(
                ["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stdin.closed
        assert process.stdout.closed

    def test_shell_string(self) -> None:
        """A shell command line works, and its group ends with it."""
        with Scope() as scope:
            process = scope.popen("sleep 60 & sleep 60; wait", shell=True)
            (resource,) = scope.resources()
            assert resource.identity["argv"] == [
                "/bin/sh",
                "-c",
                "sleep 60 & sleep 60; wait",
            ]
        assert process.returncode is not None

    def test_process_group_zero(self) -> None:
        """process_group=0 also gives the process a group that is ended whole."""
        with Scope() as scope:
            process = scope.popen(SLEEP, process_group=0)
            (resource,) = scope.resources()
            assert resource.identity["group"] is True
            assert os.getsid(process.pid) == os.getsid(0)
        assert process.returncode == -signal.SIGTERM

    def test_own_group_is_never_signalled(self) -> None:
        """Without a group of its own, only the process is ended, never our group."""
        with Scope() as scope:
            process = scope.popen(SLEEP, start_new_session=False)
            (resource,) = scope.resources()
            assert resource.identity["group"] is False
            assert resource.identity["pgid"] == os.getpgrp()
            assert PROCESSES.delete_hint(resource) == f"kill -s TERM {process.pid}"
        assert process.returncode == -signal.SIGTERM

    def test_forged_group_record_spares_our_group(self) -> None:
        """A record that names our own group as the process's ends the process only."""
        process = subprocess.Popen(SLEEP)
        try:
            with Scope() as scope:
                scope.track(
                    "process",
                    "sleep",
                    pid=process.pid,
                    start_time=start_time(process.pid),
                    pgid=os.getpgrp(),
                    group=True,
                )
            assert wait_until(lambda: not alive(process.pid))
        finally:
            process.kill()
            process.wait()

    def test_many_at_once(self) -> None:
        """Many processes are all ended and reaped."""
        with Scope() as scope:
            processes = [scope.popen(SLEEP) for _ in range(10)]
        assert all(p.returncode == -signal.SIGTERM for p in processes)

    def test_bad_arguments(self) -> None:
        """Bad arguments fail at once; nothing is started or tracked."""
        with Scope() as scope:
            with pytest.raises(ValueError, match="must not be empty"):
                scope.popen([])
            with pytest.raises(ValueError, match="must not be empty"):
                scope.popen("")
            with pytest.raises(ValueError, match="program"):
                scope.popen(["", "x"])
            with pytest.raises(TypeError, match="args must be a sequence"):
                scope.popen(None)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=r"args\[1\] must be"):
                scope.popen(["sleep", 3])  # type: ignore[list-item]
            with pytest.raises(ValueError, match="grace"):
                scope.popen(SLEEP, grace=-1)
            with pytest.raises(ValueError, match="grace"):
                scope.popen(SLEEP, grace=float("nan"))
            with pytest.raises(TypeError, match="grace"):
                scope.popen(SLEEP, grace="1")
            with pytest.raises(TypeError, match="grace"):
                scope.popen(SLEEP, grace=True)
            assert scope.resources() == []

    def test_missing_program(self) -> None:
        """A program that cannot start raises as Popen does; nothing is tracked."""
        with Scope() as scope:
            with pytest.raises(FileNotFoundError):
                scope.popen(["/nonexistent/program"])
            assert scope.resources() == []
        forgotten = [d for d in scope.dispositions if d.state is State.FORGOTTEN]
        assert forgotten == []


class TestRegistrationFailure:
    def test_process_ended_when_it_cannot_be_tracked(self) -> None:
        """A process whose registration fails is ended at once, not leaked."""
        listener = FailingListener()
        registry = Registry.default()
        registry.subscribe(listener)
        try:
            with Scope() as scope, pytest.raises(RuntimeError, match="journal down"):
                scope.popen(SLEEP)
        finally:
            registry.unsubscribe(listener)
        (pid,) = listener.pids
        assert not alive(pid)
        assert scope.resources() == []


class TestHandles:
    def test_keep(self, strays: list[subprocess.Popen[bytes]]) -> None:
        """keep(popen) leaves the process running and reports how to end it."""
        with Scope() as scope:
            process = scope.popen(SLEEP)
            strays.append(process)
            scope.keep(process, "attach a debugger")
        assert alive(process.pid)
        (kept,) = scope.dispositions
        assert kept.state is State.KEPT
        assert kept.reason == "attach a debugger"
        assert kept.hint == f"kill -s TERM -- -{process.pid}"

    def test_release(self) -> None:
        """release(popen) ends the process at once."""
        with Scope() as scope:
            process = scope.popen(SLEEP)
            scope.release(process)
            assert process.returncode == -signal.SIGTERM
            assert scope.resources() == []
            with pytest.raises(ScopeStateError, match="not tracked"):
                scope.release(process)

    def test_forget(self, strays: list[subprocess.Popen[bytes]]) -> None:
        """forget(popen) stops tracking the process and leaves it running."""
        with Scope() as scope:
            process = scope.popen(SLEEP)
            strays.append(process)
            scope.forget(process)
        assert alive(process.pid)

    def test_resource_of_track_pid(self, strays: list[subprocess.Popen[bytes]]) -> None:
        """The Resource that track_pid returns is a handle."""
        process = subprocess.Popen(SLEEP, start_new_session=True)
        strays.append(process)
        with Scope() as scope:
            resource = scope.track_pid(process.pid)
            scope.keep(resource)
        assert alive(process.pid)


class TestOutcome:
    def test_failed_body_keeps(self, strays: list[subprocess.Popen[bytes]]) -> None:
        """A failed body keeps its processes, reported with a kill command."""
        with pytest.raises(ZeroDivisionError), Scope() as scope:
            process = scope.popen(SLEEP)
            strays.append(process)
            _ = 1 / 0
        assert alive(process.pid)
        (kept,) = scope.dispositions
        assert kept.hint == f"kill -s TERM -- -{process.pid}"
        assert "force=True" in (kept.reason or "")

    def test_force(self) -> None:
        """force=True ends a failed body's processes."""
        with pytest.raises(ZeroDivisionError), Scope(force=True) as scope:
            process = scope.popen(SLEEP)
            _ = 1 / 0
        assert process.returncode == -signal.SIGTERM

    def test_level_none_keeps(self, strays: list[subprocess.Popen[bytes]]) -> None:
        """Level none keeps processes."""
        with Scope(level="none") as scope:
            process = scope.popen(SLEEP)
            strays.append(process)
        assert alive(process.pid)

    def test_interrupted_cleans(self) -> None:
        """An interrupted body ends its processes."""
        with pytest.raises(KeyboardInterrupt), Scope() as scope:
            process = scope.popen(SLEEP)
            raise KeyboardInterrupt
        assert process.returncode == -signal.SIGTERM


class TestAsync:
    @pytest.mark.anyio
    async def test_aclose(self) -> None:
        """await scope.aclose() ends processes and their groups on asyncio and trio."""
        scope = Scope()
        process = scope.popen(FAMILY, stdout=subprocess.PIPE)
        assert process.stdout is not None
        children = [int(pid) for pid in process.stdout.readline().split()]
        await scope.aclose()
        assert process.returncode is not None
        assert all(wait_until(lambda pid=pid: not alive(pid)) for pid in children)

    @pytest.mark.anyio
    async def test_async_with_kill_after_grace(self) -> None:
        """async with kills a process that ignores SIGTERM."""
        async with Scope() as scope:
            process = scope.popen(STUBBORN, stdout=subprocess.PIPE, grace=0.2)
            assert process.stdout is not None
            process.stdout.readline()
        assert process.returncode == -signal.SIGKILL


class TestTimeout:
    def test_cleanup_bounded_by_timeout(self) -> None:
        """A cleanup longer than the timeout is abandoned and reported in time."""
        scope = Scope(timeout=0.3)
        process = scope.popen(STUBBORN, stdout=subprocess.PIPE, grace=2)
        assert process.stdout is not None
        process.stdout.readline()
        begun = time.monotonic()
        with pytest.raises(CleanupError) as info:
            scope.close()
        assert time.monotonic() - begun < 1.9
        assert info.group_contains(CleanupTimeoutError)
        # The abandoned cleanup still kills the process after its grace.
        assert process.wait(timeout=15) == -signal.SIGKILL
        assert wait_until(cleanup_threads_done)

    @pytest.mark.anyio
    async def test_async_cleanup_bounded_by_timeout(self) -> None:
        """aclose() abandons a cleanup past its timeout too."""
        scope = Scope(timeout=0.3)
        process = scope.popen(STUBBORN, stdout=subprocess.PIPE, grace=2)
        assert process.stdout is not None
        process.stdout.readline()
        with pytest.raises(CleanupError) as info:
            await scope.aclose()
        assert info.group_contains(CleanupTimeoutError)
        assert process.wait(timeout=15) == -signal.SIGKILL


class TestTrackPid:
    def test_ends_a_group_leader_and_its_group(self) -> None:
        """A tracked process that leads its own group is ended with the group."""
        process = subprocess.Popen(
            FAMILY, stdout=subprocess.PIPE, start_new_session=True
        )
        assert process.stdout is not None
        children = [int(pid) for pid in process.stdout.readline().split()]
        try:
            with Scope() as scope:
                resource = scope.track_pid(process.pid, grace=1)
                assert resource.identity["group"] is True
                assert resource.identity["grace"] == 1.0
                assert resource.identity["argv"] == FAMILY
            assert not alive(process.pid)
            assert all(wait_until(lambda pid=pid: not alive(pid)) for pid in children)
        finally:
            process.kill()
            process.wait()
            process.stdout.close()

    def test_ends_only_a_process_in_our_group(self) -> None:
        """A tracked process in our own group is ended alone."""
        process = subprocess.Popen(SLEEP)
        try:
            with Scope() as scope:
                resource = scope.track_pid(process.pid)
                assert resource.identity["group"] is False
                assert PROCESSES.delete_hint(resource) == f"kill -s TERM {process.pid}"
            assert not alive(process.pid)
            # Our own child was reaped: no zombie is left.
            assert stat_of(process.pid) is None
        finally:
            process.wait()

    def test_zombie_child_is_reaped(self) -> None:
        """A tracked child that already ended is reaped."""
        process = subprocess.Popen(["true"])
        try:
            assert wait_until(lambda: not alive(process.pid))
            with Scope() as scope:
                scope.track_pid(process.pid)
            assert stat_of(process.pid) is None
        finally:
            process.wait()

    def test_bad_pids(self) -> None:
        """Wrong types, impossible, missing and own pids fail with clear errors."""
        with Scope() as scope:
            with pytest.raises(TypeError, match="pid must be an int"):
                scope.track_pid("12")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="pid must be an int"):
                scope.track_pid(True)
            with pytest.raises(ValueError, match="positive"):
                scope.track_pid(0)
            with pytest.raises(ValueError, match="positive"):
                scope.track_pid(-4)
            with pytest.raises(ValueError, match="this process"):
                scope.track_pid(os.getpid())
            with pytest.raises(ValueError, match="ancestor"):
                scope.track_pid(os.getppid())
            with pytest.raises(ValueError, match="init"):
                scope.track_pid(1)
            pid = free_pid()
            with pytest.raises(ProcessLookupError, match=f"no process has pid {pid}"):
                scope.track_pid(pid)
            with pytest.raises(TypeError, match="grace"):
                scope.track_pid(os.getpid(), grace="x")  # type: ignore[arg-type]
            assert scope.resources() == []


class TestPidReuse:
    @pytest.mark.parametrize("group", [True, False])
    def test_wrong_start_time_is_not_killed(
        self, group: bool, strays: list[subprocess.Popen[bytes]]
    ) -> None:
        """A record whose start time differs from the pid's process kills nothing."""
        process = subprocess.Popen(SLEEP, start_new_session=True)
        strays.append(process)
        with Scope() as scope:
            resource = scope.track(
                "process",
                "sleep",
                pid=process.pid,
                start_time=start_time(process.pid) - 1,
                pgid=process.pid,
                group=group,
            )
            assert not PROCESSES.exists(resource)
        assert alive(process.pid)
        assert scope.dispositions == ()

    def test_other_boot_is_not_killed(
        self, strays: list[subprocess.Popen[bytes]]
    ) -> None:
        """A record from another boot of the machine kills nothing."""
        process = subprocess.Popen(SLEEP, start_new_session=True)
        strays.append(process)
        record = Resource(
            "process",
            "sleep",
            {
                "pid": process.pid,
                "start_time": start_time(process.pid),
                "pgid": process.pid,
                "group": True,
                "boot_id": "another-boot",
            },
        )
        assert not PROCESSES.exists(record)
        PROCESSES.delete(record, wait=True)
        assert alive(process.pid)

    @pytest.mark.parametrize(("offset", "survives"), [(1000, True), (-1, False)])
    def test_leftovers_of_a_gone_leader(self, offset: int, survives: bool) -> None:
        """A gone leader's group is ended only if no member is older than the leader."""
        shell = subprocess.Popen(
            ["sh", "-c", "sleep 60 & echo $!"],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert shell.stdout is not None
        orphan = int(shell.stdout.readline())
        shell.stdout.close()
        shell.wait()
        record = Resource(
            "process",
            "gone",
            {
                "pid": shell.pid,
                "start_time": start_time(orphan) + offset,
                "pgid": shell.pid,
                "group": True,
            },
        )
        try:
            assert PROCESSES.exists(record) is not survives
            PROCESSES.delete(record, wait=True)
            assert wait_until(lambda: alive(orphan) is survives)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGKILL)

    def test_group_needs_a_leader(self, strays: list[subprocess.Popen[bytes]]) -> None:
        """A record whose pgid is not its pid never signals that group."""
        other = subprocess.Popen(SLEEP, start_new_session=True)
        strays.append(other)
        record = Resource(
            "process",
            "gone",
            {"pid": free_pid(), "start_time": 1, "pgid": other.pid, "group": True},
        )
        assert not PROCESSES.exists(record)
        PROCESSES.delete(record, wait=True)
        assert alive(other.pid)

    def test_gone_process(self) -> None:
        """A record of a process that no longer exists is cleaned at once."""
        record = Resource(
            "process", "gone", {"pid": free_pid(), "start_time": 1, "group": True}
        )
        assert not PROCESSES.exists(record)
        PROCESSES.delete(record, wait=True)

    def test_record_without_pid(self) -> None:
        """A record without pid or start time fails clearly and kills nothing."""
        with pytest.raises(CleanupError) as info, Scope() as scope:
            scope.track("process", "nameless")
            scope.track("process", "no-start", pid=os.getpid())
        assert info.group_contains(ValueError, match="'pid'")
        assert info.group_contains(ValueError, match="'start_time'")
        hints = [d.hint or "" for d in scope.dispositions]
        assert all(hint.startswith("nothing — ") for hint in hints)

    def test_record_of_ourselves(self) -> None:
        """A record that names this very process is refused."""
        with pytest.raises(CleanupError) as info, Scope() as scope:
            scope.track(
                "process", "me", pid=os.getpid(), start_time=start_time(os.getpid())
            )
        assert info.group_contains(ValueError, match="this process")
        (failed,) = scope.dispositions
        assert failed.hint == (
            f"nothing — refusing to end pid {os.getpid()}: it is this process"
        )

    def test_hint_of_an_ended_process(self) -> None:
        """The hint of a process that ended, or whose pid was reused, kills nothing."""
        process = subprocess.Popen(SLEEP, start_new_session=True)
        identity = {
            "pid": process.pid,
            "start_time": start_time(process.pid),
            "pgid": process.pid,
            "group": True,
        }
        reused = {**identity, "start_time": identity["start_time"] - 1}
        assert PROCESSES.delete_hint(Resource("process", "x", identity)) == (
            f"kill -s TERM -- -{process.pid}"
        )
        assert PROCESSES.delete_hint(Resource("process", "x", reused)) == (
            f"nothing — process {process.pid} has ended"
        )
        process.kill()
        process.wait()
        assert PROCESSES.delete_hint(Resource("process", "x", identity)) == (
            f"nothing — process {process.pid} has ended"
        )
