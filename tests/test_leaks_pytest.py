"""
Tests for leak checks in pytest: ``--cleanroom-check-leaks``, the
``cleanroom_check_leaks`` ini key and the marker's ``check_leaks``, each run
with ``pytester`` against tests that really leak.
"""

from __future__ import annotations

import collections
import re

import pytest

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
"""


# What the tests leave behind is released once the session is over, after the
# last leak check.
CONFTEST = """
import threading

STOP = threading.Event()
SERVERS = []


def pytest_sessionfinish():
    STOP.set()
    for server in SERVERS:
        server.close()
"""


@pytest.fixture
def pytester(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """A pytester whose runs journal under its directory, asyncio settled."""
    monkeypatch.setenv("CLEANROOM_JOURNAL", str(pytester.path / "journal.sqlite"))
    monkeypatch.delenv("CLEANROOM_SESSION", raising=False)
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    return pytester


LEAKY = """
import socket
import threading

import pytest
from conftest import SERVERS, STOP


@pytest.fixture
def server():
    server = socket.create_server(("127.0.0.1", 0))
    SERVERS.append(server)
    yield server  # never closed


def test_thread():
    threading.Thread(target=STOP.wait, name="left-running").start()


def test_fixture(server):
    pass


def test_clean():
    pass

"""


class TestModes:
    def test_off_by_default(self, pytester: pytest.Pytester) -> None:
        """Without the option, ini key or marker, nothing is checked."""
        pytester.makepyfile(LEAKY)
        result = pytester.runpytest()
        result.assert_outcomes(passed=3)
        result.stdout.no_fnmatch_line("*cleanroom: leaks*")

    def test_raise_fails_the_teardown_of_leaky_tests(
        self, pytester: pytest.Pytester
    ) -> None:
        """raise: a leaky test errors at teardown, naming each leak and its phase."""
        pytester.makepyfile(LEAKY)
        result = pytester.runpytest("--cleanroom-check-leaks=raise")
        result.assert_outcomes(passed=3, errors=2)
        result.stdout.fnmatch_lines(
            [
                "*ERROR at teardown of test_thread*",
                (
                    "E   cleanroom.LeakError: *::test_thread left 1 thing behind "
                    "(after a 1 s grace period):"
                ),
                "    - thread 'left-running' running Event.wait [[]call[]]",
                "*started at: *test_raise_fails_the_teardown_of_leaky_tests.py:*",
                "*ERROR at teardown of test_fixture*",
                "    - fd *: socket tcp 127.0.0.1:* -> (listening) [[]setup[]]",
            ]
        )
        result.stdout.fnmatch_lines(
            [
                "*= cleanroom: leaks =*",
                "2 leaks in 2 tests",
                "*::test_thread:",
                "    - thread 'left-running' running Event.wait [[]call[]]",
                "*::test_fixture:",
                "    - fd *: socket tcp 127.0.0.1:* -> (listening) [[]setup[]]",
            ]
        )

    def test_warn_lists_leaks_without_failing(self, pytester: pytest.Pytester) -> None:
        """warn: every test passes; the summary lists the leaks per test."""
        pytester.makepyfile(LEAKY)
        result = pytester.runpytest("--cleanroom-check-leaks=warn")
        result.assert_outcomes(passed=3)
        result.stdout.fnmatch_lines(["*= cleanroom: leaks =*", "2 leaks in 2 tests"])

    def test_the_ini_key(self, pytester: pytest.Pytester) -> None:
        """The cleanroom_check_leaks ini key sets the mode; the option wins over it."""
        pytester.makepyfile(LEAKY)
        pytester.makeini(INI + "cleanroom_check_leaks = raise\n")
        pytester.runpytest().assert_outcomes(passed=3, errors=2)
        pytester.runpytest("--cleanroom-check-leaks=off").assert_outcomes(passed=3)

    def test_bad_modes_stop_the_run(self, pytester: pytest.Pytester) -> None:
        """A bad ini value is a usage error listing the valid ones."""
        pytester.makepyfile(LEAKY)
        pytester.makeini(INI + "cleanroom_check_leaks = loud\n")
        result = pytester.runpytest()
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*check_leaks must be one of off, warn, raise*"])


class TestMarker:
    def test_the_marker_checks_one_test(self, pytester: pytest.Pytester) -> None:
        """check_leaks on the marker checks that test; the closest marker wins."""
        pytester.makepyfile(
            """
            import threading

            import pytest

            from conftest import STOP

            pytestmark = pytest.mark.cleanroom(check_leaks={"grace": 0})


            def test_checked():
                threading.Thread(target=STOP.wait, name="checked").start()


            @pytest.mark.cleanroom(check_leaks=False)
            def test_not_checked():
                threading.Thread(target=STOP.wait, name="unchecked").start()

            """
        )
        result = pytester.runpytest()
        result.assert_outcomes(passed=2, errors=1)
        result.stdout.fnmatch_lines(["*ERROR at teardown of test_checked*"])
        result.stdout.no_fnmatch_line("*unchecked*")

    def test_a_failed_test_is_listed_not_errored(
        self, pytester: pytest.Pytester
    ) -> None:
        """A failed test's leaks are listed; its failure is the only error."""
        pytester.makepyfile(
            """
            import threading

            import pytest

            from conftest import STOP


            @pytest.mark.cleanroom(check_leaks={"grace": 0})
            def test_fails():
                threading.Thread(target=STOP.wait, name="orphan").start()
                assert False

            """
        )
        result = pytester.runpytest()
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*= cleanroom: leaks =*", "*thread 'orphan'*"])

    def test_a_stragglers_within_the_grace_pass(
        self, pytester: pytest.Pytester
    ) -> None:
        """A thread that ends shortly after the test is no leak."""
        pytester.makepyfile(
            """
            import threading

            import pytest


            @pytest.mark.cleanroom(check_leaks={"grace": 30})
            def test_straggler():
                done = threading.Event()
                threading.Thread(target=done.wait, name="straggler").start()
                threading.Timer(0.01, done.set).start()
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)

    def test_broader_fixtures_own_what_they_set_up(
        self, pytester: pytest.Pytester
    ) -> None:
        """A module fixture's socket is not the leak of the first test that used it."""
        pytester.makepyfile(
            """
            import socket

            import pytest


            @pytest.fixture(scope="module")
            def server():
                with socket.create_server(("127.0.0.1", 0)) as server:
                    yield server


            def test_one(server):
                pass


            def test_two(server):
                pass
            """
        )
        pytester.runpytest("--cleanroom-check-leaks=raise").assert_outcomes(passed=2)

    def test_a_test_case_class(self, pytester: pytest.Pytester) -> None:
        """The marker on a unittest TestCase checks its tests under pytest."""
        pytester.makepyfile(
            """
            import threading
            import unittest

            import pytest

            from conftest import STOP


            @pytest.mark.cleanroom(check_leaks={"grace": 0})
            class TestCase(unittest.TestCase):
                def test_leaks(self):
                    threading.Thread(target=STOP.wait, name="from-testcase").start()

                def test_clean(self):
                    pass
            """
        )
        result = pytester.runpytest()
        result.assert_outcomes(passed=2, errors=1)
        result.stdout.fnmatch_lines(["*thread 'from-testcase'*"])

    def test_a_cleanroom_test_case_under_pytest(
        self, pytester: pytest.Pytester
    ) -> None:
        """cleanroom_check_leaks of a CleanroomTestCase works when pytest runs it."""
        pytester.makepyfile(
            """
            import threading

            from conftest import STOP

            from cleanroom.unittest import CleanroomTestCase


            class TestCase(CleanroomTestCase):
                cleanroom_check_leaks = {"grace": 0}

                def test_leaks(self):
                    threading.Thread(target=STOP.wait, name="case-thread").start()

                def test_clean(self):
                    pass
            """
        )
        result = pytester.runpytest()
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(
            ["*LeakError: *test_leaks left 1 thing behind*", "*thread 'case-thread'*"]
        )


class TestXdist:
    @pytest.mark.slow
    def test_workers_leaks_reach_the_summary(self, pytester: pytest.Pytester) -> None:
        """Under pytest-xdist, the controller's summary lists the workers' leaks."""
        pytester.makepyfile(LEAKY)
        result = pytester.runpytest_subprocess(
            "-n", "2", "--cleanroom-check-leaks=warn"
        )
        result.assert_outcomes(passed=3)
        result.stdout.fnmatch_lines(["*= cleanroom: leaks =*", "2 leaks in 2 tests"])


# Seed 004: WebSocket fixtures held connections that their teardown never
# closed. A real asyncio server on 127.0.0.1, in a thread of its own, stands in
# for the WebSocket server; the connections are held in an async fixture.
SEED_CONFTEST = '''
import asyncio
import threading

import pytest


class EchoServer:
    """An asyncio echo server on 127.0.0.1, run by a thread of its own."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.handlers = set()
        self.thread = threading.Thread(target=self._run, name="echo-server")

    def _run(self):
        server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        # Stop serving, and end the connections of clients still there.
        self.loop.run_until_complete(self._stop(server))
        self.loop.close()

    async def _stop(self, server):
        server.close()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await server.wait_closed()

    async def _handle(self, reader, writer):
        # asyncio holds tasks weakly: keep each handler until its client leaves.
        task = asyncio.current_task()
        self.handlers.add(task)
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            self.handlers.discard(task)
            await asyncio.sleep(0)  # let the transport close its socket

    def __enter__(self):
        self.thread.start()
        self.ready.wait()
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


class WebSocketManager:
    """Like the seed's manager: it remembers connections and messages."""

    def __init__(self):
        self.connections = []
        self.messages = []


MANAGER = WebSocketManager()


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def server():
    with EchoServer() as server:
        yield server
'''

SEED_BEFORE = """
import asyncio

import pytest
from conftest import MANAGER

pytestmark = pytest.mark.anyio


@pytest.fixture
async def connections(server):
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"hello\\n")
        await reader.readline()
        MANAGER.connections.append(writer)
    yield MANAGER.connections
    MANAGER.messages.clear()  # the seed's teardown: only the messages


async def test_broadcast(connections):
    for writer in connections:
        writer.write(b"event\\n")
        await writer.drain()


def test_server_still_up(server):
    assert server.port
"""

SEED_AFTER = """
import asyncio

import pytest
from conftest import MANAGER

import cleanroom

pytestmark = pytest.mark.anyio


async def close(writer):
    writer.close()
    await writer.wait_closed()


@pytest.fixture
async def connections(server):
    async with cleanroom.managed_resources("websockets") as scope:
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            scope.add(writer, close, kind="websocket")
            writer.write(b"hello\\n")
            await reader.readline()
            MANAGER.connections.append(writer)
        yield MANAGER.connections
        MANAGER.connections.clear()


async def test_broadcast(connections):
    for writer in connections:
        writer.write(b"event\\n")
        await writer.drain()


def test_server_still_up(server):
    assert server.port
"""


class TestSeed004:
    @pytest.fixture
    def seed(self, pytester: pytest.Pytester) -> pytest.Pytester:
        pytester.makeconftest(SEED_CONFTEST)
        return pytester

    def test_the_leaky_fixture_is_caught(self, seed: pytest.Pytester) -> None:
        """The seed's fixture leaks both ends of each connection and the handlers."""
        seed.makepyfile(test_before=SEED_BEFORE)
        result = seed.runpytest_subprocess(
            "--cleanroom-check-leaks=raise", "-W", "ignore::ResourceWarning"
        )
        result.assert_outcomes(passed=2, errors=1)
        error = result.stdout.str().split("= cleanroom: leaks =", 1)[0]
        sockets = re.findall(
            r"socket tcp 127\.0\.0\.1:(\d+) -> 127\.0\.0\.1:(\d+) \[(\w+)\]", error
        )
        # Both ends of three connections: the server's port is in all six.
        ports = collections.Counter(port for pair in sockets for port in pair[:2])
        server_port, count = ports.most_common(1)[0]
        assert count == 6, error
        clients = [phase for _, peer, phase in sockets if peer == server_port]
        assert clients == ["setup"] * 3, error
        # The server's handlers wait for clients that never leave.
        assert error.count("running EchoServer._handle()") == 3, error
        assert "left 9 things behind" in error
        result.stdout.fnmatch_lines(["*= cleanroom: leaks =*", "* leaks in 1 test"])

    def test_the_cleanroom_fixture_leaves_nothing(self, seed: pytest.Pytester) -> None:
        """Connections added to an async scope are closed; the check passes."""
        seed.makepyfile(test_after=SEED_AFTER)
        result = seed.runpytest_subprocess("--cleanroom-check-leaks=raise")
        result.assert_outcomes(passed=2)
        result.stdout.no_fnmatch_line("*cleanroom: leaks*")
