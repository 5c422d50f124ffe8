"""
Tests for ``cleanroom.leaks``: real threads, tasks, sockets, files, child
processes, objects and caches left behind, each found with its detail; the same
code without the leak passes.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import subprocess
import sys
import threading
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import anyio
import pytest

import cleanroom
from cleanroom import LeakError, no_leaks
from cleanroom._core._context import CheckLeaks
from cleanroom.exceptions import LeakWarning
from cleanroom.leaks import DEFAULT_ALLOW, Allow, Leak, LeakCheck, memory_growth
from cleanroom.unittest import CleanroomTestCase, IsolatedAsyncioCleanroomTestCase

# Module-level: what keeps objects alive after their scope closed.
KEPT: list[object] = []
CACHE: list[bytes] = []


class Connection:
    """A stand-in for a client connection: closes, and says so."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    """An event that ends the threads a test left running, after the test."""
    event = threading.Event()
    yield event
    event.set()


def only(leaks: tuple[Leak, ...] | list[Leak], category: str) -> Leak:
    found = [leak for leak in leaks if leak.category == category]
    assert len(found) == 1, leaks
    return found[0]


class TestThreads:
    def test_a_thread_left_running_is_reported(self, stop: threading.Event) -> None:
        """A running thread is reported with its name, target and origin."""

        def poll_forever() -> None:
            stop.wait()

        with pytest.raises(LeakError) as caught, no_leaks(grace=0.05):
            threading.Thread(target=poll_forever, name="poller").start()
        leak = only(caught.value.leaks, "thread")
        assert leak.summary.startswith("thread 'poller' running")
        assert "poll_forever" in leak.summary
        text = "\n".join(leak.details)
        assert f"started at: {__file__}:" in text
        assert "test_a_thread_left_running_is_reported" in text
        assert "poll_forever" in text
        assert "poller" in str(caught.value)

    def test_a_joined_thread_passes(self) -> None:
        """A thread that was joined inside the block is no leak."""
        with no_leaks(grace=0) as check:
            worker = threading.Thread(target=len, args=((),), name="short")
            worker.start()
            worker.join()
        assert check.leaks == []

    def test_a_straggler_within_the_grace_passes(self) -> None:
        """A thread that ends during the grace period is no leak."""
        release = threading.Event()
        with no_leaks(grace=30) as check:
            threading.Thread(target=release.wait, name="straggler").start()
            threading.Timer(0.01, release.set).start()
        assert check.leaks == []

    def test_threads_from_before_are_not_reported(self, stop: threading.Event) -> None:
        """A thread started before the block is in the baseline."""
        early = threading.Thread(target=stop.wait, name="early")
        early.start()
        with no_leaks(grace=0) as check:
            pass
        assert check.leaks == []
        stop.set()
        early.join()

    def test_allowed_names_and_daemons(self, stop: threading.Event) -> None:
        """Allow-listed names, and daemon threads when asked, pass."""
        with no_leaks(grace=0, allow=Allow(threads="pool-*")):
            threading.Thread(target=stop.wait, name="pool-1").start()
        with no_leaks(grace=0, allow=Allow(daemon_threads=True)):
            threading.Thread(target=stop.wait, name="bg", daemon=True).start()
        with (
            pytest.raises(LeakError, match="'fg'"),
            no_leaks(grace=0, allow=Allow(daemon_threads=True)),
        ):
            threading.Thread(target=stop.wait, name="fg").start()

    def test_warn_mode_warns(self, stop: threading.Event) -> None:
        """on_leak='warn' turns the error into a LeakWarning with the report."""
        with (
            pytest.warns(LeakWarning, match="thread 'noisy'"),
            no_leaks(grace=0, on_leak="warn") as check,
        ):
            threading.Thread(target=stop.wait, name="noisy").start()
        assert [leak.category for leak in check.leaks] == ["thread"]

    def test_a_failing_block_keeps_its_error(self, stop: threading.Event) -> None:
        """The block's own exception propagates, the leaks noted on it."""
        with pytest.raises(KeyError) as caught, no_leaks(grace=0):
            threading.Thread(target=stop.wait, name="orphan").start()
            raise KeyError("boom")
        assert "thread 'orphan'" in "\n".join(caught.value.__notes__)

    def test_threads_off(self, stop: threading.Event) -> None:
        """threads=False does not look at threads."""
        with no_leaks(grace=0, threads=False):
            threading.Thread(target=stop.wait, name="ignored").start()


class TestFileDescriptors:
    def test_a_socket_left_open_is_reported_with_its_peer(self) -> None:
        """A connected socket is reported with its local address and its peer."""
        server = socket.create_server(("127.0.0.1", 0))
        port = server.getsockname()[1]
        try:
            with pytest.raises(LeakError) as caught, no_leaks(grace=0):
                client = socket.create_connection(("127.0.0.1", port))
                accepted, _ = server.accept()
            summaries = [leak.summary for leak in caught.value.leaks]
            assert any(
                s.endswith(f"-> 127.0.0.1:{port}") and "socket tcp 127.0.0.1:" in s
                for s in summaries
            ), summaries
            leak = next(
                leak
                for leak in caught.value.leaks
                if leak.summary.endswith(f"-> 127.0.0.1:{port}")
            )
            assert f"fd {client.fileno()}:" in leak.summary
            assert any("held by <socket.socket" in line for line in leak.details)
            assert len(caught.value.leaks) == 2  # both ends
        finally:
            client.close()
            accepted.close()
            server.close()

    def test_a_listening_socket_is_reported(self) -> None:
        """A server socket left open is reported as listening."""
        with (
            pytest.raises(
                LeakError, match=r"socket tcp 127\.0\.0\.1:\d+ -> \(listening"
            ),
            no_leaks(grace=0),
        ):
            server = socket.create_server(("127.0.0.1", 0))
        server.close()

    def test_a_file_left_open_is_reported_with_its_path(self, tmp_path: Path) -> None:
        """An open file is reported with its path and the object holding it."""
        path = tmp_path / "data.txt"
        path.write_text("x", encoding="utf-8")
        with pytest.raises(LeakError) as caught, no_leaks(grace=0):
            handle = path.open(encoding="utf-8")
        fd = handle.fileno()
        handle.close()
        leak = only(caught.value.leaks, "fd")
        assert leak.summary == f"fd {fd}: {path}"
        assert any("FileIO" in line and str(path) in line for line in leak.details)

    def test_closed_files_and_sockets_pass(self, tmp_path: Path) -> None:
        """What is closed inside the block is no leak."""
        with (
            no_leaks(grace=0) as check,
            (tmp_path / "f").open("w", encoding="utf-8") as handle,
        ):
            handle.write("x")
            server = socket.create_server(("127.0.0.1", 0))
            server.close()
        assert check.leaks == []

    def test_a_pipe_is_reported_and_allowed_by_pattern(self) -> None:
        """A pipe is reported as one; a pattern lets it pass."""
        with pytest.raises(LeakError, match=r"fd \d+: pipe"), no_leaks(grace=0):
            read, write = os.pipe()
        with no_leaks(grace=0, allow=Allow(fds="pipe")):
            read2, write2 = os.pipe()
        for fd in (read, write, read2, write2):
            os.close(fd)


class TestProcesses:
    def test_a_child_left_running_is_reported(self) -> None:
        """A child process left running is reported with its pid and command line."""
        command = [sys.executable, "-c", "import time; time.sleep(60)"]
        with pytest.raises(LeakError) as caught, no_leaks(grace=0, fds=False):
            child = subprocess.Popen(command)
        child.kill()
        child.wait()
        leak = only(caught.value.leaks, "process")
        assert leak.summary == f"process {child.pid} still running: {' '.join(command)}"

    def test_a_waited_child_passes(self) -> None:
        """A child that ended and was waited for is no leak."""
        with no_leaks(grace=0) as check:
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        assert check.leaks == []

    def test_an_unwaited_child_is_reported(self) -> None:
        """A child that ended but was never waited for is reported as such."""
        with (
            pytest.raises(LeakError, match="exited but was never waited for"),
            no_leaks(grace=0.05, fds=False),
        ):
            child = subprocess.Popen([sys.executable, "-c", "pass"])
            # Let it end without reaping it.
            os.waitid(
                os.P_PID,
                child.pid,
                os.WEXITED | os.WNOWAIT,
            )
        child.wait()

    def test_an_allowed_command_passes(self) -> None:
        """A command-line pattern lets a child pass."""
        allow = Allow(processes=("* -c import time; time.sleep(60)",))
        with no_leaks(grace=0, fds=False, allow=allow):
            child = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(60)"]
            )
        child.kill()
        child.wait()


class TestObjects:
    def test_an_object_kept_alive_by_a_module_list_is_reported(self) -> None:
        """A cleaned object that a module-level list still holds is reported."""
        with (
            pytest.raises(LeakError) as caught,
            no_leaks(grace=0),
            cleanroom.managed_resources("conns") as scope,
        ):
            KEPT.append(scope.add(Connection()))
        KEPT.clear()
        leak = only(caught.value.leaks, "object")
        assert leak.summary == (
            f"{__name__}.Connection object still alive after its scope closed"
        )
        assert "cleaned by scope 'conns'" in leak.details
        assert any("global" in line and ".KEPT" in line for line in leak.details)

    def test_a_collected_object_passes(self) -> None:
        """A cleaned object that nothing holds is no leak, even behind a cycle."""
        with (
            no_leaks(grace=0) as check,
            cleanroom.managed_resources() as scope,
        ):
            conn = scope.add(Connection())
            conn.me = conn  # type: ignore[attr-defined]
            del conn
        assert check.leaks == []

    def test_a_local_variable_does_not_count(self) -> None:
        """An object that only the running code names is no leak: it goes with it."""
        with no_leaks(grace=0) as check, cleanroom.managed_resources() as scope:
            conn = scope.add(Connection())
        assert conn.closed
        assert check.leaks == []

    def test_watch_cleaned_does_nothing_without_a_check(self) -> None:
        """Outside a check, watch_cleaned neither holds nor reports anything."""
        cleanroom.leaks.watch_cleaned(Connection(), "nowhere")
        with no_leaks(grace=0) as check:
            pass
        assert check.leaks == []


class TestMemory:
    def test_a_growing_cache_is_reported(self) -> None:
        """Memory kept by a cache that grows past the limit is reported, with where."""

        def remember() -> None:
            CACHE.append(bytes(2 * 1024 * 1024))

        try:
            with (
                pytest.raises(LeakError) as caught,
                no_leaks(grace=0, memory_mb=1),
            ):
                remember()
        finally:
            CACHE.clear()
        leak = only(caught.value.leaks, "memory")
        assert leak.summary.startswith("memory grew by 2.0")
        assert "(limit 1 MiB)" in leak.summary
        assert any(f"{__file__}:" in line for line in leak.details)

    def test_memory_freed_passes(self) -> None:
        """Memory allocated and freed inside the block is no leak."""
        with no_leaks(grace=0, memory_mb=1) as check:
            data = bytes(8 * 1024 * 1024)
            del data
        assert check.leaks == []

    def test_growth_over_repeated_runs(self) -> None:
        """A cache growing every run measures its growth; a bounded one about 0."""

        def grows() -> None:
            CACHE.append(bytes(512 * 1024))

        @functools.lru_cache(maxsize=1)
        def bounded(_: int) -> bytes:
            return bytes(4 * 1024 * 1024)

        try:
            assert 0.45 < memory_growth(grows, runs=4) < 0.6
        finally:
            CACHE.clear()
        assert memory_growth(lambda: bounded(1), runs=4) < 0.01
        with pytest.raises(ValueError, match="runs must be at least 1"):
            memory_growth(grows, runs=0)


class TestSettings:
    def test_bad_values_fail_at_once(self) -> None:
        """Bad settings name the value and the valid ones."""
        with pytest.raises(ValueError, match="on_leak must be one of 'raise', 'warn'"):
            no_leaks(on_leak="loud")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="grace must be"):
            no_leaks(grace=-1)
        with pytest.raises(ValueError, match="memory_mb must be"):
            no_leaks(memory_mb=-2)

    def test_allow_lists_combine(self) -> None:
        """Allow-lists add up with |, and add the defaults unless told not to."""
        both = Allow(threads="a") | Allow(fds="b", daemon_threads=True)
        assert both.threads == ("a",)
        assert both.fds == ("b",)
        assert both.daemon_threads
        assert both.effective().thread("AnyIO worker thread", daemon=False)
        bare = Allow(threads="a", defaults=False)
        assert not bare.effective().thread("AnyIO worker thread", daemon=False)
        assert DEFAULT_ALLOW.thread("Trio thread 3", daemon=True)

    def test_a_check_runs_once_at_a_time(self) -> None:
        """start() twice, or stop() before start(), is an error."""
        check = LeakCheck(grace=0)
        with pytest.raises(RuntimeError, match="not started"):
            check.stop()
        with check, pytest.raises(RuntimeError, match="already running"):
            check.start()

    def test_the_report_reads_well(self, stop: threading.Event) -> None:
        """The message names what was checked, the count, the grace and each leak."""
        with (
            pytest.raises(LeakError) as caught,
            no_leaks(grace=0, name="test_demo"),
        ):
            threading.Thread(target=stop.wait, name="one").start()
            threading.Thread(target=stop.wait, name="two").start()
        lines = str(caught.value).splitlines()
        assert lines[0] == "test_demo left 2 things behind (after a 0 s grace period):"
        assert sum(line.startswith("- thread ") for line in lines) == 2
        assert "LeakError" in repr(caught.value)
        assert isinstance(caught.value, AssertionError)


@pytest.mark.anyio
class TestTasks:
    async def test_a_task_never_awaited_is_reported(self, anyio_backend: str) -> None:
        """A pending task is reported with its coroutine and where it was created."""

        async def heartbeat() -> None:
            await anyio.sleep_forever()

        async with anyio.create_task_group() as group:
            with pytest.raises(LeakError) as caught:
                async with no_leaks(grace=0.01):
                    if anyio_backend == "asyncio":
                        task = asyncio.get_running_loop().create_task(
                            heartbeat(), name="beat"
                        )
                    else:
                        group.start_soon(heartbeat, name="beat")
            group.cancel_scope.cancel()
        if anyio_backend == "asyncio":
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        leak = only(caught.value.leaks, "task")
        assert (
            leak.summary
            == f"{anyio_backend} task 'beat' running {heartbeat.__qualname__}()"
        )
        text = "\n".join(leak.details)
        assert f"created at: {__file__}:" in text
        assert "test_a_task_never_awaited_is_reported" in text
        assert f"waiting at: {__file__}:" in text

    async def test_a_finished_task_passes(self) -> None:
        """A task that finished within the block is no leak."""
        async with (
            no_leaks(grace=0) as check,
            anyio.create_task_group() as group,
        ):
            group.start_soon(anyio.sleep, 0)
        assert check.leaks == []

    async def test_a_straggler_within_the_grace_passes(self) -> None:
        """A task that ends during the grace period is no leak."""
        async with (
            anyio.create_task_group() as group,
            no_leaks(grace=30) as check,
        ):
            group.start_soon(anyio.sleep, 0.01)
        assert check.leaks == []

    async def test_allowed_task_names_pass(self) -> None:
        """A task name pattern lets a task pass."""
        async with (
            anyio.create_task_group() as group,
            no_leaks(grace=0, allow=Allow(tasks="keepalive-*")),
        ):
            group.start_soon(anyio.sleep_forever, name="keepalive-1")
            group.cancel_scope.cancel()


class TestScopes:
    def test_a_scope_checks_what_its_body_left(self, stop: threading.Event) -> None:
        """check_leaks=True on a scope raises LeakError naming the scope."""
        with (
            pytest.raises(LeakError, match="scope 'web' left 1 thing behind") as caught,
            cleanroom.managed_resources("web", check_leaks={"grace": 0}),
        ):
            threading.Thread(target=stop.wait, name="server").start()
        assert only(caught.value.leaks, "thread").summary.startswith("thread 'server'")

    def test_a_scope_checks_after_cleaning(self) -> None:
        """What the scope cleans is no leak: the check runs after the cleanups."""
        with cleanroom.managed_resources(check_leaks=True) as scope:
            server = scope.add(socket.create_server(("127.0.0.1", 0)))
        assert server.fileno() == -1

    def test_with_cleanup_checks_each_call(self) -> None:
        """with_cleanup(check_leaks='warn') warns about an object kept by a global."""

        @cleanroom.with_cleanup(check_leaks={"on_leak": "warn", "grace": 0})
        def connect(scope: cleanroom.Scope) -> None:
            KEPT.append(scope.add(Connection()))

        try:
            with pytest.warns(LeakWarning, match=r"scope '.*connect' left 1 thing"):
                connect()
        finally:
            KEPT.clear()

    def test_off_and_bad_settings(self) -> None:
        """False and 'off' check nothing; a bad setting lists the valid ones."""
        for off in (False, "off", None):
            with cleanroom.managed_resources(check_leaks=off) as scope:
                KEPT.append(scope.add(Connection()))
            KEPT.clear()
        with pytest.raises(cleanroom.PolicyError, match="'raise', 'warn', 'off'"):
            cleanroom.managed_resources(check_leaks="loud")
        with pytest.raises(cleanroom.PolicyError, match="bad check_leaks settings"):
            cleanroom.with_cleanup(check_leaks={"gracious": 1})

    def test_the_body_error_stays_the_error(self, stop: threading.Event) -> None:
        """When the body raises, the leaks are a note on its exception."""
        with (
            pytest.raises(ZeroDivisionError) as caught,
            cleanroom.managed_resources(check_leaks={"grace": 0}),
        ):
            threading.Thread(target=stop.wait, name="orphan").start()
            _ = 1 / 0
        assert "thread 'orphan'" in caught.value.__notes__[0]

    @pytest.mark.anyio
    async def test_an_async_scope_checks_tasks(self) -> None:
        """An async scope's check sees the task its body left pending."""
        async with anyio.create_task_group() as group:
            with pytest.raises(LeakError, match="task 'pinger'"):
                async with cleanroom.managed_resources(check_leaks={"grace": 0}):
                    group.start_soon(anyio.sleep_forever, name="pinger")
            group.cancel_scope.cancel()

    @pytest.mark.anyio
    async def test_an_async_scope_cleans_before_checking(self) -> None:
        """Tasks the scope started are cancelled by it, so they are no leak."""
        async with cleanroom.managed_resources(check_leaks=True) as scope:
            scope.start_soon(anyio.sleep_forever)


class TestOwnThings:
    def test_the_reaper_and_the_journal_are_not_leaks(self, tmp_path: Path) -> None:
        """The reaper, its pipe and the journal, started by a check's body, pass."""
        script = """
import cleanroom
from cleanroom._crash import _recorder

with cleanroom.no_leaks(grace=0):
    with cleanroom.managed_resources() as scope:
        scope.tempdir()
found = _recorder.existing()
assert found is not None and found.reaper is not None, "no reaper was started"
print("reaper", found.reaper.pid)
"""
        env = {**os.environ, "CLEANROOM_JOURNAL": str(tmp_path / "journal.sqlite3")}
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("reaper ")


class TestUnittest:
    def run_case(self, case: type[unittest.TestCase]) -> unittest.TestResult:
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
        result = unittest.TestResult()
        suite.run(result)
        return result

    def test_a_leaky_test_case_errors(self, stop: threading.Event) -> None:
        """cleanroom_check_leaks makes a leak a failure of the test that left it."""

        class Case(CleanroomTestCase):
            cleanroom_check_leaks: ClassVar[CheckLeaks] = {"grace": 0}

            def test_leaks(self) -> None:
                threading.Thread(target=stop.wait, name="from-unittest").start()

            def test_clean(self) -> None:
                self.cleanroom.add(socket.create_server(("127.0.0.1", 0)), weak=False)

            def test_keeps_on_self(self) -> None:
                # The test case outlives its test: what it holds is not freed.
                self.server = self.cleanroom.add(socket.create_server(("127.0.0.1", 0)))

        result = self.run_case(Case)
        assert result.testsRun == 3
        # LeakError is an AssertionError: unittest counts a failure.
        assert result.errors == []
        failures = {test.id().rsplit(".", 1)[1]: text for test, text in result.failures}
        assert sorted(failures) == ["test_keeps_on_self", "test_leaks"]
        assert "LeakError" in failures["test_leaks"]
        assert "Case.test_leaks left 1 thing behind" in failures["test_leaks"]
        assert "thread 'from-unittest'" in failures["test_leaks"]
        assert (
            "socket.socket object still alive after its scope closed"
            in failures["test_keeps_on_self"]
        )
        assert "testMethod=test_keeps_on_self>" in failures["test_keeps_on_self"]

    def test_an_async_test_case_sees_its_tasks(self) -> None:
        """The asyncio TestCase checks the tasks a test left, in its own loop."""

        class Case(IsolatedAsyncioCleanroomTestCase):
            cleanroom_check_leaks: ClassVar[CheckLeaks] = {"grace": 0}

            async def test_leaks(self) -> None:
                self.task = asyncio.get_running_loop().create_task(
                    asyncio.sleep(3600), name="from-async-unittest"
                )

            async def test_clean(self) -> None:
                await asyncio.sleep(0)

        result = self.run_case(Case)
        assert result.testsRun == 2
        assert len(result.failures) == 1, result.failures
        assert "asyncio task 'from-async-unittest'" in result.failures[0][1]

    def test_a_bad_setting_fails_at_class_definition(self) -> None:
        """A bad cleanroom_check_leaks fails where the class is written."""
        with pytest.raises(cleanroom.PolicyError, match="check_leaks must be"):

            class Case(CleanroomTestCase):
                cleanroom_check_leaks: ClassVar[CheckLeaks] = "loud"
