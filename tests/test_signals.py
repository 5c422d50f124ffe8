"""
Tests for signal handling: SIGTERM unwinds to pending cleanups in any program
(exit status 143), interrupts during cleanup wait for it, handlers chain, and
pytest runs end with 130 or 143 having cleaned what the tests created.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanroom import Outcome
from cleanroom._core._signals import Cleaning, Terminated

TIMEOUT = 60


class Program:
    """A Python program or pytest run in a child process, driven by signals."""

    def __init__(self, folder: Path, args: list[str], env: dict[str, str]) -> None:
        self.folder = folder
        self.process = subprocess.Popen(
            [sys.executable, *args],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout = ""
        self.stderr = ""

    def wait_for(self, name: str) -> None:
        """Wait until the program creates the file *name*."""
        deadline = time.monotonic() + TIMEOUT
        while not (self.folder / name).exists():
            if self.process.poll() is not None:
                self.finish()
                pytest.fail(
                    f"the program ended ({self.process.returncode}) before {name} "
                    f"appeared:\n{self.stdout}\n{self.stderr}"
                )
            if time.monotonic() > deadline:
                self.process.kill()
                self.finish()
                pytest.fail(f"{name} did not appear:\n{self.stdout}\n{self.stderr}")
            time.sleep(0.02)

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def finish(self) -> int:
        """Wait for the program to end; return its exit status."""
        self.stdout, self.stderr = self.process.communicate(timeout=TIMEOUT)
        return self.process.returncode

    def exists(self, name: str) -> bool:
        return (self.folder / name).exists()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of child programs: a journal of their own."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CLEANROOM_") and key != "PYTEST_ADDOPTS"
    }
    environ["CLEANROOM_JOURNAL"] = str(tmp_path / "journal.sqlite")
    return environ


@pytest.fixture
def start(tmp_path: Path, env: dict[str, str]) -> Iterator[type[Program]]:
    """Start programs in tmp_path; kill any left running."""
    started: list[Program] = []

    def start(
        source: str, *args: str, environ: dict[str, str] | None = None
    ) -> Program:
        script = tmp_path / "program.py"
        script.write_text(textwrap.dedent(source))
        program = Program(
            tmp_path, [str(script), *args], env if environ is None else environ
        )
        started.append(program)
        return program

    yield start  # type: ignore[misc]
    for program in started:
        if program.process.poll() is None:
            program.process.kill()
            program.finish()


# A program that holds a scope whose cleanup writes "cleaned", then waits.
WAIT_IN_SCOPE = """
import pathlib
import time

from cleanroom import managed_resources

with managed_resources("main") as scope:
    scope.callback(pathlib.Path("cleaned").write_text, "yes")
    pathlib.Path("ready").write_text("")
    time.sleep(60)
"""

# A program whose cleanup takes a while, to be interrupted during it.
SLOW_CLEANUP = """
import pathlib
import time

from cleanroom import managed_resources

def slow():
    pathlib.Path("started").write_text("")
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        time.sleep(0.01)
    pathlib.Path("finished").write_text("")

with managed_resources("main") as scope:
    scope.callback(slow)
    pathlib.Path("ready").write_text("")
    time.sleep(60)
"""


class TestTerminated:
    def test_is_an_interrupt_and_an_exit(self) -> None:
        """Terminated is a KeyboardInterrupt and a SystemExit with code 143."""
        exc = Terminated()
        assert isinstance(exc, KeyboardInterrupt)
        assert isinstance(exc, SystemExit)
        assert exc.code == 143
        assert str(exc) == "received SIGTERM"

    def test_is_an_interrupted_outcome(self) -> None:
        """A scope unwound by Terminated was interrupted."""
        assert Outcome.from_exception(Terminated()) is Outcome.INTERRUPTED

    def test_pickles(self) -> None:
        """Terminated survives pickling (xdist ships exceptions between processes)."""
        copy = pickle.loads(pickle.dumps(Terminated()))
        assert isinstance(copy, Terminated)
        assert copy.code == 143


class TestCleaning:
    def test_holds_sigint_until_the_end(self) -> None:
        """SIGINT inside the guard is raised when the guard exits."""
        reached = []
        with pytest.raises(KeyboardInterrupt), Cleaning():
            signal.raise_signal(signal.SIGINT)
            reached.append("after the signal")
        assert reached == ["after the signal"]

    def test_nested_guards_deliver_at_the_outermost(self) -> None:
        """A held interrupt waits for the outermost guard."""
        reached = []
        with pytest.raises(KeyboardInterrupt), Cleaning():
            with Cleaning():
                signal.raise_signal(signal.SIGINT)
            reached.append("between the guards")
        assert reached == ["between the guards"]

    def test_drop(self) -> None:
        """A dropping guard forgets what it held."""
        with Cleaning(drop=True):
            signal.raise_signal(signal.SIGINT)

    def test_restores_the_handler(self) -> None:
        """The SIGINT handler is the same after the guard as before."""
        before = signal.getsignal(signal.SIGINT)
        with Cleaning():
            assert signal.getsignal(signal.SIGINT) is not before
        assert signal.getsignal(signal.SIGINT) is before

    def test_no_new_interrupt_while_one_propagates(self) -> None:
        """A held SIGINT is not raised again over a KeyboardInterrupt."""
        with pytest.raises(KeyboardInterrupt) as info, Cleaning():
            signal.raise_signal(signal.SIGINT)
            raise KeyboardInterrupt("first")
        assert str(info.value) == "first"


class TestPrograms:
    def test_sigterm_runs_cleanups(self, start: type[Program]) -> None:
        """SIGTERM unwinds the main thread: the scope cleans, the status is 143."""
        program = start(WAIT_IN_SCOPE)
        program.wait_for("ready")
        program.send(signal.SIGTERM)
        assert program.finish() == 143
        assert program.exists("cleaned")
        assert program.stderr == ""

    def test_sigint_runs_cleanups(self, start: type[Program]) -> None:
        """Ctrl+C cleans too, and the program ends by SIGINT (130 in a shell)."""
        program = start(WAIT_IN_SCOPE)
        program.wait_for("ready")
        program.send(signal.SIGINT)
        assert program.finish() == -signal.SIGINT
        assert program.exists("cleaned")

    def test_chains_to_the_previous_handler(self, start: type[Program]) -> None:
        """A SIGTERM handler installed before cleanroom's still runs."""
        program = start(
            textwrap.dedent(
                """
                import pathlib
                import signal

                signal.signal(
                    signal.SIGTERM,
                    lambda *_: pathlib.Path("previous").write_text("ran"),
                )
                """
            )
            + WAIT_IN_SCOPE
        )
        program.wait_for("ready")
        program.send(signal.SIGTERM)
        assert program.finish() == 143
        assert program.exists("previous")
        assert program.exists("cleaned")

    def test_ignored_stays_ignored(self, start: type[Program]) -> None:
        """A program that ignores SIGTERM keeps ignoring it."""
        program = start(
            """
            import pathlib
            import signal
            import time

            from cleanroom import managed_resources

            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            with managed_resources("main") as scope:
                scope.callback(pathlib.Path("cleaned").write_text, "yes")
                pathlib.Path("ready").write_text("")
                while not pathlib.Path("go").exists():
                    time.sleep(0.01)
            """
        )
        program.wait_for("ready")
        program.send(signal.SIGTERM)
        time.sleep(0.2)
        (program.folder / "go").write_text("")
        assert program.finish() == 0
        assert program.exists("cleaned")

    def test_forked_child_dies_of_sigterm(self, start: type[Program]) -> None:
        """A forked child keeps the default SIGTERM behaviour."""
        program = start(
            """
            import os
            import signal
            import time

            from cleanroom import Scope

            Scope("root")  # installs the handler
            pid = os.fork()
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            time.sleep(0.2)
            os.kill(pid, signal.SIGTERM)
            _, status = os.waitpid(pid, 0)
            print(os.WTERMSIG(status) if os.WIFSIGNALED(status) else "exited")
            """
        )
        assert program.finish() == 0
        assert program.stdout.strip() == str(int(signal.SIGTERM))

    def test_opt_out(self, start: type[Program], env: dict[str, str]) -> None:
        """CLEANROOM_SIGNALS=0 leaves SIGTERM's default behaviour alone."""
        program = start(WAIT_IN_SCOPE, environ={**env, "CLEANROOM_SIGNALS": "0"})
        program.wait_for("ready")
        program.send(signal.SIGTERM)
        assert program.finish() == -signal.SIGTERM
        assert not program.exists("cleaned")

    def test_importing_installs_nothing(self, start: type[Program]) -> None:
        """Importing cleanroom alone leaves SIGTERM's default behaviour."""
        program = start(
            """
            import signal

            import cleanroom

            print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
            cleanroom.Scope()
            print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
            """
        )
        assert program.finish() == 0
        assert program.stdout.split() == ["True", "False"]

    def test_second_sigint_waits_for_the_cleanup(self, start: type[Program]) -> None:
        """A second Ctrl+C during cleanup lets it finish, then interrupts."""
        program = start(SLOW_CLEANUP)
        program.wait_for("ready")
        program.send(signal.SIGINT)
        program.wait_for("started")
        program.send(signal.SIGINT)
        assert program.finish() == -signal.SIGINT
        assert program.exists("finished")
        assert "cleanroom: cleaning up" in program.stderr

    def test_sigterm_during_cleanup_waits(self, start: type[Program]) -> None:
        """SIGTERM during a cleanup is delivered after it: status 143."""
        program = start(SLOW_CLEANUP)
        program.wait_for("ready")
        program.send(signal.SIGINT)
        program.wait_for("started")
        program.send(signal.SIGTERM)
        assert program.finish() == 143
        assert program.exists("finished")

    def test_three_more_interrupts_abort(self, start: type[Program]) -> None:
        """Three more Ctrl+C abort a cleanup after all."""
        program = start(SLOW_CLEANUP)
        program.wait_for("ready")
        program.send(signal.SIGINT)
        program.wait_for("started")
        for _ in range(3):
            program.send(signal.SIGINT)
            time.sleep(0.05)
        assert program.finish() == -signal.SIGINT
        assert not program.exists("finished")

    def test_asyncio(self, start: type[Program]) -> None:
        """SIGTERM during asyncio.run cleans the async scope; status 143."""
        program = start(
            """
            import asyncio
            import pathlib

            from cleanroom import managed_resources

            async def close():
                await asyncio.sleep(0)
                pathlib.Path("cleaned").write_text("yes")

            async def main():
                async with managed_resources("main") as scope:
                    scope.push_async_callback(close)
                    pathlib.Path("ready").write_text("")
                    await asyncio.sleep(60)

            asyncio.run(main())
            """
        )
        program.wait_for("ready")
        program.send(signal.SIGTERM)
        assert program.finish() == 143
        assert program.exists("cleaned")

    def test_trio(self, start: type[Program]) -> None:
        """Under Trio, SIGTERM arrives as Trio delivers Ctrl+C, and the scope cleans."""
        program = start(
            """
            import pathlib

            import trio

            from cleanroom import managed_resources

            async def close():
                await trio.sleep(0)
                pathlib.Path("cleaned").write_text("yes")

            async def main():
                async with managed_resources("main") as scope:
                    scope.push_async_callback(close)
                    pathlib.Path("ready").write_text("")
                    await trio.sleep(60)

            trio.run(main)
            """
        )
        program.wait_for("ready")
        program.send(signal.SIGTERM)
        assert program.finish() == -signal.SIGINT
        assert program.exists("cleaned")


# Kinds whose resources are files in ``left/``; "ready" tells the driver that
# the test is running.
CONFTEST = """
import pathlib

import pytest

from cleanroom import BaseKind, register_kind

LEFT = pathlib.Path(__file__).parent / "left"


class FileKind(BaseKind):
    def delete(self, resource, *, wait):
        pathlib.Path(resource.identity["path"]).unlink(missing_ok=True)


register_kind(FileKind("fake-pod", category="runtime"), replace=True)


@pytest.fixture
def make():
    def make(scope, name):
        LEFT.mkdir(exist_ok=True)
        path = LEFT / name
        path.write_text("")
        return scope.track("fake-pod", name, path=str(path))

    return make
"""

WAITING_TEST = """
import pathlib
import time

def test_waits(cleanroom, make):
    make(cleanroom, "pod-1")
    pathlib.Path("ready").write_text("")
    time.sleep(60)
"""


class TestPytest:
    @pytest.fixture
    def run(self, tmp_path: Path, env: dict[str, str]) -> Iterator[type[Program]]:
        """Start pytest on the given test module in tmp_path."""
        (tmp_path / "conftest.py").write_text(CONFTEST)
        (tmp_path / "pytest.ini").write_text(
            "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        )
        started: list[Program] = []

        def run(source: str, *args: str) -> Program:
            (tmp_path / "test_it.py").write_text(textwrap.dedent(source))
            program = Program(
                tmp_path,
                ["-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
                env,
            )
            started.append(program)
            return program

        yield run  # type: ignore[misc]
        for program in started:
            if program.process.poll() is None:
                program.process.kill()
                program.finish()

    def left(self, program: Program) -> list[str]:
        folder = program.folder / "left"
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []

    def terminate(self, program: Program) -> None:
        """SIGTERM once the test runs: the run ends with 143, everything cleaned."""
        program.wait_for("ready")
        program.send(signal.SIGTERM)
        assert program.finish() == 143, program.stdout
        assert self.left(program) == []

    def test_sigterm(self, run: type[Program]) -> None:
        """SIGTERM in the middle of a test cleans it up and exits with 143."""
        program = run(WAITING_TEST)
        self.terminate(program)
        assert "Terminated: received SIGTERM" in program.stdout

    def test_sigterm_in_a_scope_of_its_own(self, run: type[Program]) -> None:
        """
        A test that makes its own scope, without the fixtures or the marker,
        is cleaned on SIGTERM too: making the scope installs the handler.
        """
        program = run(
            """
            import pathlib
            import time

            from cleanroom import managed_resources

            def test_waits(make):
                with managed_resources() as scope:
                    make(scope, "pod-1")
                    pathlib.Path("ready").write_text("")
                    time.sleep(60)
            """
        )
        self.terminate(program)

    def test_a_run_without_cleanroom_keeps_sigterm(self, run: type[Program]) -> None:
        """A run that never uses cleanroom dies of SIGTERM, as pytest does alone."""
        program = run(
            """
            import pathlib
            import signal
            import time

            def test_waits():
                assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
                pathlib.Path("ready").write_text("")
                time.sleep(60)
            """
        )
        program.wait_for("ready")
        program.send(signal.SIGTERM)
        assert program.finish() == -signal.SIGTERM, program.stdout

    def test_sigint(self, run: type[Program]) -> None:
        """Ctrl+C in the middle of a test cleans it up and exits with 130."""
        program = run(WAITING_TEST)
        program.wait_for("ready")
        program.send(signal.SIGINT)
        assert program.finish() == 130, program.stdout
        assert self.left(program) == []

    def test_broad_scopes_clean_on_sigterm(self, run: type[Program]) -> None:
        """The module's and the session's scopes are cleaned on SIGTERM too."""
        program = run(
            """
            import pathlib
            import time

            def test_waits(cleanroom_module, cleanroom_session, make):
                make(cleanroom_module, "module-pod")
                make(cleanroom_session, "session-pod")
                pathlib.Path("ready").write_text("")
                time.sleep(60)
            """
        )
        self.terminate(program)

    def test_failed_tests_keep_on_sigterm(self, run: type[Program]) -> None:
        """A test that failed before the signal keeps its resources."""
        program = run(
            """
            import pathlib
            import time

            def test_fails(cleanroom, make):
                make(cleanroom, "failed-pod")
                assert False

            def test_waits(cleanroom, make):
                make(cleanroom, "pod-1")
                pathlib.Path("ready").write_text("")
                time.sleep(60)
            """
        )
        program.wait_for("ready")
        program.send(signal.SIGTERM)
        assert program.finish() == 143, program.stdout
        assert self.left(program) == ["failed-pod"]

    def test_second_sigint_waits_for_the_cleanup(self, run: type[Program]) -> None:
        """A second Ctrl+C while the test's scope cleans does not abort it."""
        program = run(
            """
            import pathlib
            import time

            def slow():
                pathlib.Path("started").write_text("")
                deadline = time.monotonic() + 1.5
                while time.monotonic() < deadline:
                    time.sleep(0.01)
                pathlib.Path("finished").write_text("")

            def test_waits(cleanroom, make):
                make(cleanroom, "pod-1")
                cleanroom.callback(slow)
                pathlib.Path("ready").write_text("")
                time.sleep(60)
            """
        )
        program.wait_for("ready")
        program.send(signal.SIGINT)
        program.wait_for("started")
        program.send(signal.SIGINT)
        assert program.finish() == 130, program.stdout
        assert program.exists("finished")
        assert self.left(program) == []

    def test_xdist_sigterm(self, run: type[Program]) -> None:
        """SIGTERM to an xdist run's processes cleans every worker's tests; 143."""
        program = run(
            WAITING_TEST
            + textwrap.dedent(
                """
                def test_waits_too(cleanroom, make):
                    make(cleanroom, "pod-2")
                    pathlib.Path("ready-2").write_text("")
                    time.sleep(60)
                """
            ),
            "-n",
            "2",
            "-p",
            "xdist",
        )
        program.wait_for("ready")
        program.wait_for("ready-2")
        # As a terminal or CI runner does: the whole process group.
        for pid in _children(program.process.pid):
            os.kill(pid, signal.SIGTERM)
        program.send(signal.SIGTERM)
        assert program.finish() == 143, program.stdout
        assert self.left(program) == []

    def test_xdist_sigterm_to_the_controller_only(self, run: type[Program]) -> None:
        """
        SIGTERM to an xdist run's controller alone reaches its workers at
        once: each cleans its processes and temporary directories, and the
        run ends with 143 well before xdist's 10 s wait for its workers.
        """
        program = run(
            """
            import os
            import pathlib
            import time

            import pytest

            @pytest.mark.parametrize("n", [1, 2])
            def test_holds(cleanroom, n):
                child = cleanroom.popen(["sleep", "60"])
                folder = cleanroom.tempdir()
                pathlib.Path(f"held-{n}").write_text(f"{child.pid} {folder}")
                pathlib.Path(f"ready-{n}").write_text("")
                time.sleep(60)
            """,
            "-n",
            "2",
            "-p",
            "xdist",
        )
        program.wait_for("ready-1")
        program.wait_for("ready-2")
        held = [(program.folder / f"held-{n}").read_text().split() for n in (1, 2)]
        sent = time.monotonic()
        program.send(signal.SIGTERM)
        assert program.finish() == 143, program.stdout
        elapsed = time.monotonic() - sent
        # The issue asks for 3 s on a quiet machine (bench/xdist_sigterm.py
        # measures it); xdist alone waits 10 s, so 7 s tells the two apart
        # on a loaded one.
        assert elapsed < 7, f"the run took {elapsed:.1f} s to end"
        for pid, folder in held:
            assert not Path(f"/proc/{pid}").exists() or _zombie(int(pid))
            assert not Path(folder).exists()


def _zombie(pid: int) -> bool:
    """Tell whether *pid* has ended but is not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


def _children(pid: int) -> list[int]:
    """Return the pids of *pid*'s child processes (Linux)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in children.read_text().split()]
