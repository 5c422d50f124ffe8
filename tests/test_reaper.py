"""
Tests of the reaper: what it does when its owner is killed, exits normally,
keeps resources, or dies between journaling an intent and creating.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cleanroom._core._session import pid_alive
from cleanroom._crash._journal import Journal, OwnerRow, Row
from procs import running

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(),
    reason="the reaper watches owners through /proc",
)

TESTS = Path(__file__).parent

PRELUDE = """
import os, signal, subprocess, sys, time
from pathlib import Path
import markerkinds
from cleanroom import Scope
root = Path(sys.argv[1])
def ready(*extra):
    print("ready", *extra, flush=True)
"""


class Child:
    """A Python process that journals resources, run for one test."""

    def __init__(self, tmp_path: Path, body: str, **env: str) -> None:
        self.journal = tmp_path / "journal.sqlite3"
        self.root = tmp_path / "root"
        self.root.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + body, str(self.root)],
            env={
                **{k: v for k, v in os.environ.items() if k != "CLEANROOM_SESSION"},
                "CLEANROOM_JOURNAL": str(self.journal),
                "PYTHONPATH": str(TESTS),
                **env,
            },
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.lines = [self.process.stdout.readline().split()]
        assert self.lines[0][:1] == ["ready"], self.lines

    def kill(self) -> None:
        self.process.kill()
        self.finish()

    def finish(self) -> int:
        code = self.process.wait(timeout=60)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code

    def owner(self) -> OwnerRow:
        with Journal(self.journal) as journal:
            (owner,) = [o for o in journal.owners() if o.pid == self.process.pid]
        return owner

    def wait_reaped(self, timeout: float = 30) -> OwnerRow:
        """Wait until the reaper has finished (it closes the owner, then exits)."""
        deadline = time.monotonic() + timeout
        while True:
            owner = self.owner()
            reaper_gone = owner.reaper is not None and not pid_alive(owner.reaper)
            if owner.closed is not None and reaper_gone:
                return owner
            assert time.monotonic() < deadline, f"the reaper did not finish: {owner}"
            time.sleep(0.02)

    def rows(self) -> dict[str, Row]:
        with Journal(self.journal) as journal:
            return {row.name: row for row in journal.rows()}


def ignores(pid: int, sig: int) -> bool:
    """Tell whether process *pid* ignores signal *sig*."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


SLEEPER = "import sys, time; time.sleep(120)"

#: A child body that makes one marker in a scope left open, then sleeps.
ONE_MARKER = """
scope = Scope("work").__enter__()
markerkinds.make(scope, root / "marker")
ready()
time.sleep(120)
"""


class TestKilledOwner:
    def test_sigkill_cleans_everything(self, tmp_path: Path) -> None:
        """After SIGKILL of its owner the reaper removes what it created."""
        tag = f"reaper-{os.getpid()}-{time.monotonic_ns()}"
        child = Child(
            tmp_path,
            f"""
scope = Scope("work").__enter__()
folder = scope.tempdir(dir=root)
(folder / "data").write_text("x")
markerkinds.make(scope, root / "marker")
scope.popen([sys.executable, "-c", {SLEEPER!r}, {tag!r}])
ready(folder)
time.sleep(120)
""",
        )
        folder = Path(child.lines[0][1])
        assert folder.is_dir()
        assert running(tag)
        child.kill()
        owner = child.wait_reaped()
        assert not folder.exists()
        assert not (child.root / "marker").exists()
        assert running(tag) == []
        rows = child.rows()
        assert {row.state for row in rows.values()} == {"cleaned"}
        assert {row.actor for row in rows.values()} == {"reaper"}
        assert owner.closed is not None

    def test_normal_exit(self, tmp_path: Path) -> None:
        """An owner that closes its scopes leaves its reaper nothing to do."""
        child = Child(
            tmp_path,
            """
with Scope("work") as scope:
    markerkinds.make(scope, root / "marker")
    scope.tempdir(dir=root)
ready()
""",
        )
        assert child.finish() == 0
        child.wait_reaped()
        rows = child.rows()
        assert {row.actor for row in rows.values()} == {"owner"}
        assert list(child.root.iterdir()) == []

    def test_scope_left_open_at_exit(self, tmp_path: Path) -> None:
        """What an unclosed scope still tracks at exit is cleaned by the reaper."""
        child = Child(
            tmp_path,
            """
import warnings
warnings.simplefilter("ignore", ResourceWarning)
scope = Scope("forgotten")
markerkinds.make(scope, root / "marker")
ready()
os._exit(0)
""",
        )
        assert child.finish() == 0
        child.wait_reaped()
        assert not (child.root / "marker").exists()
        assert child.rows()["marker"].actor == "reaper"

    def test_kept_resources_stay(self, tmp_path: Path) -> None:
        """Resources kept on purpose survive their owner's death."""
        child = Child(
            tmp_path,
            """
with Scope("work") as scope:
    handle = markerkinds.make(scope, root / "kept")
    scope.keep(handle, "inspect me")
    markerkinds.make(scope, root / "cleaned")
live = Scope("live").__enter__()
markerkinds.make(live, root / "live")
ready()
time.sleep(120)
""",
        )
        child.kill()
        child.wait_reaped()
        assert (child.root / "kept").exists()
        assert not (child.root / "live").exists()
        rows = child.rows()
        assert rows["kept"].state == "kept"
        assert rows["kept"].reason == "inspect me"
        assert rows["live"].actor == "reaper"

    def test_level_decides(self, tmp_path: Path) -> None:
        """A level that keeps a kind keeps it when the owner is killed."""
        child = Child(tmp_path, ONE_MARKER, CLEANROOM_LEVEL="none")
        child.kill()
        child.wait_reaped()
        assert (child.root / "marker").exists()
        row = child.rows()["marker"]
        assert row.state == "kept"
        assert row.on_interrupt == "keep"
        assert "interrupted" in (row.reason or "")

    def test_intents_are_reservations(self, tmp_path: Path) -> None:
        """Intent rows are deleted if they exist, and count as cleaned if not."""
        tag = f"token-{os.getpid()}-{time.monotonic_ns()}"
        child = Child(
            tmp_path,
            f"""
import contextlib
from cleanroom.kinds.processes import PROCESSES
from cleanroom._core._session import TOKEN_ENV
scope = Scope("work").__enter__()
# Creations left open, as when their owner is killed inside them.
open_creations = contextlib.ExitStack()
open_creations.enter_context(
    scope.creating(markerkinds.MARKERS, "made", path=str(root / "made"))
)
(root / "made").write_text("x")
open_creations.enter_context(
    scope.creating(markerkinds.MARKERS, "never", path=str(root / "never"))
)
# Killed after starting a process and before journaling its pid:
open_creations.enter_context(
    scope.creating(PROCESSES, "sleeper", argv=["sleep"], grace=1.0, token="t-{tag}")
)
subprocess.Popen(
    [sys.executable, "-c", {SLEEPER!r}, {tag!r}],
    env={{**os.environ, TOKEN_ENV: "t-{tag}"}},
    start_new_session=True,
)
ready()
time.sleep(120)
""",
        )
        assert running(tag)
        child.kill()
        child.wait_reaped()
        assert not (child.root / "made").exists()
        assert running(tag) == []
        rows = child.rows()
        assert {name: row.state for name, row in rows.items()} == {
            "made": "cleaned",
            "never": "cleaned",
            "sleeper": "cleaned",
        }


class TestReaperProcess:
    def test_survives_signals(self, tmp_path: Path) -> None:
        """The reaper ignores the signals that end test runs, and then does its job."""
        child = Child(tmp_path, ONE_MARKER)
        reaper = child.owner().reaper
        assert reaper is not None
        # Once started, the reaper ignores them (/proc shows the mask).
        deadline = time.monotonic() + 10
        while not ignores(reaper, signal.SIGTERM):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert os.getpgid(reaper) != os.getpgid(child.process.pid)
        assert os.getsid(reaper) != os.getsid(child.process.pid)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            os.kill(reaper, sig)
        time.sleep(0.2)
        assert pid_alive(reaper)
        child.kill()
        child.wait_reaped()
        assert not (child.root / "marker").exists()

    def test_forked_child_does_not_delay_it(self, tmp_path: Path) -> None:
        """A child forked by the owner does not keep the reaper's pipe open."""
        child = Child(
            tmp_path,
            """
scope = Scope("work").__enter__()
markerkinds.make(scope, root / "marker")
pid = os.fork()
if pid == 0:
    time.sleep(60)
    os._exit(0)
ready(pid)
time.sleep(120)
""",
        )
        forked = int(child.lines[0][1])
        try:
            child.kill()
            child.wait_reaped(timeout=20)
            assert pid_alive(forked)
            assert not (child.root / "marker").exists()
        finally:
            os.kill(forked, signal.SIGKILL)

    def test_not_started_without_declarative_resources(self, tmp_path: Path) -> None:
        """A process that only adds callbacks and objects never opens the journal."""
        child = Child(
            tmp_path,
            """
with Scope() as scope:
    scope.callback(os.getpid)
    scope.add(open(os.devnull), weak=False)
ready()
""",
        )
        assert child.finish() == 0
        assert not child.journal.exists()

    def test_reaper_off(self, tmp_path: Path) -> None:
        """CLEANROOM_REAPER=off journals without a reaper, for sweeps to find."""
        child = Child(tmp_path, ONE_MARKER, CLEANROOM_REAPER="off")
        assert child.owner().reaper is None
        child.kill()
        assert (child.root / "marker").exists()
        assert child.rows()["marker"].state == "created"
