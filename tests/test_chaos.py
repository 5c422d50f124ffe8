"""
Chaos and safety tests: owners killed at random instants, sweeps next to
live sessions and foreign things, processes sharing one journal, damaged
journals, and signals to ``cleanroom run``. Each is bounded in time.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanroom._core._session import pid_alive
from cleanroom._crash._journal import Journal
from procs import running

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="owners are tracked through /proc"
)

TESTS = Path(__file__).parent
SLEEPER = "import time; time.sleep(300)"


def env_for(journal: Path, **extra: str) -> dict[str, str]:
    """The environment of a child that is a session of its own, unless told."""
    environ = {k: v for k, v in os.environ.items() if k != "CLEANROOM_SESSION"}
    return {
        **environ,
        "CLEANROOM_JOURNAL": str(journal),
        "PYTHONPATH": str(TESTS),
        **extra,
    }


def kill_tagged(tag: str) -> None:
    for pid in running(tag):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def tag() -> Iterator[str]:
    """A word that marks this test's processes, which are killed afterwards."""
    word = f"chaos-{os.getpid()}-{time.monotonic_ns()}"
    yield word
    kill_tagged(word)


def wait_settled(journal: Path, pid: int, timeout: float = 30) -> None:
    """Wait until the reaper of the owner with *pid* has done its work."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not journal.exists():
            return
        with Journal(journal) as opened:
            owners = [o for o in opened.owners() if o.pid == pid]
            rows = opened.rows(owner=owners[0].id) if owners else []
        if not owners or not rows:
            return
        owner = owners[0]
        reaper_done = owner.reaper is None or not pid_alive(owner.reaper)
        if owner.closed is not None and reaper_done:
            return
        time.sleep(0.02)
    raise AssertionError(f"the reaper of pid {pid} did not finish in {timeout} s")


BUSY = """
import os, random, sys, time
from pathlib import Path
from cleanroom import Scope
root, tag = Path(sys.argv[1]), sys.argv[2]
session = Scope("busy").__enter__()
print("go", flush=True)
while True:
    with session.child("round") as scope:
        for _ in range(3):
            folder = scope.tempdir(dir=root)
            (folder / "data.txt").write_text("x" * 100)
            scope.tempfile(dir=root)
            process = scope.popen([sys.executable, "-c", {sleeper!r}, tag])
            if random.random() < 0.3:
                scope.release(process)
"""


class TestKilledAtRandom:
    def test_nothing_remains(self, tmp_path: Path, tag: str) -> None:
        """SIGKILL at random instants: after the reaper, nothing created remains."""
        seed = random.randrange(1 << 32)
        chance = random.Random(seed)
        trials, batch = 20, 4
        journaled = 0
        for first in range(0, trials, batch):
            children = []
            for number in range(first, first + batch):
                root = tmp_path / f"trial-{number}"
                root.mkdir()
                journal = tmp_path / f"journal-{number}.sqlite3"
                child = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        BUSY.format(sleeper=SLEEPER),
                        str(root),
                        f"{tag}-{number}",
                    ],
                    env=env_for(journal),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                children.append((child, root, journal, number))
            for child, _, _, _ in children:
                assert child.stdout is not None
                assert child.stdout.readline().strip() == "go"
            for child, _, _, _ in children:
                time.sleep(chance.uniform(0.0, 0.3))
                child.kill()
            for child, root, journal, number in children:
                child.wait()
                assert child.stdout is not None
                child.stdout.close()
                wait_settled(journal, child.pid)
                with Journal(journal) as opened:
                    journaled += len(opened.rows())
                left = sorted(p.name for p in root.iterdir())
                assert left == [], f"seed {seed}, trial {number}: left {left}"
                alive = running(f"{tag}-{number}")
                assert alive == [], f"seed {seed}, trial {number}: processes {alive}"
        # The kills landed while the children were busy creating.
        assert journaled >= trials * 2


LIVE = """
import sys, time
from pathlib import Path
import markerkinds
from cleanroom import Scope
root, tag, name = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
scope = Scope(name).__enter__()
folder = scope.tempdir(dir=root, prefix=f"{{name}}-")
markerkinds.make(scope, root / f"{{name}}.marker")
scope.popen([sys.executable, "-c", {sleeper!r}, tag])
print(folder, flush=True)
time.sleep(300)
"""


class TestSweepTree:
    def test_only_orphans_go(self, tmp_path: Path, tag: str) -> None:
        """A sweep next to foreign things and a live session removes only orphans."""
        journal = tmp_path / "journal.sqlite3"
        root = tmp_path / "tree"
        root.mkdir()
        (root / "foreign.txt").write_text("not ours", encoding="utf-8")
        (root / "foreign-dir").mkdir()
        foreign = subprocess.Popen([sys.executable, "-c", SLEEPER, f"{tag}-foreign"])

        def start(name: str, **extra: str) -> tuple[subprocess.Popen[str], Path]:
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    LIVE.format(sleeper=SLEEPER),
                    str(root),
                    f"{tag}-{name}",
                    name,
                ],
                env=env_for(journal, **extra),
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            return child, Path(child.stdout.readline().strip())

        live, live_dir = start("live")
        orphan, orphan_dir = start("orphan", CLEANROOM_REAPER="off")
        try:
            orphan.kill()
            orphan.wait()
            assert orphan_dir.exists()
            assert running(f"{tag}-orphan")
            result = subprocess.run(
                [sys.executable, "-m", "cleanroom", "sweep", "--json"],
                env=env_for(journal),
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            assert result.returncode == 0, result.stderr
            assert not orphan_dir.exists()
            assert not (root / "orphan.marker").exists()
            assert running(f"{tag}-orphan") == []
            assert sorted(p.name for p in root.iterdir()) == sorted(
                ["foreign.txt", "foreign-dir", live_dir.name, "live.marker"]
            )
            assert running(f"{tag}-live")
            assert foreign.poll() is None
        finally:
            live.terminate()
            live.wait(timeout=30)
            foreign.kill()
            foreign.wait()
            for child in (live, orphan):
                assert child.stdout is not None
                child.stdout.close()
        wait_settled(journal, live.pid)
        assert sorted(p.name for p in root.iterdir()) == ["foreign-dir", "foreign.txt"]


WORKER = """
import sys, time
from pathlib import Path
import markerkinds
from cleanroom import Scope
root, log, name = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
seconds = float(sys.argv[4])
made = 0
deadline = time.monotonic() + seconds
with Scope(name) as scope:
    while time.monotonic() < deadline:
        with scope.child("test") as test:
            for _ in range(5):
                markerkinds.make(test, root / f"{name}-{made}", log=log)
                made += 1
print(made, flush=True)
"""

SWEEPER = """
import sys, time
sys.path.insert(0, sys.argv[2])
import markerkinds
from cleanroom._crash._journal import Journal
from cleanroom._crash._sweep import sweep
removed = 0
deadline = time.monotonic() + float(sys.argv[3])
with Journal(sys.argv[1]) as journal:
    while time.monotonic() < deadline:
        removed += sweep(journal).removed
print(removed, flush=True)
"""

ORPHANS = """
import os, signal, sys
from pathlib import Path
import markerkinds
from cleanroom import Scope
root, log = Path(sys.argv[1]), sys.argv[2]
scope = Scope("doomed").__enter__()
for index in range(int(sys.argv[3])):
    markerkinds.make(scope, root / f"orphan-{index}", log=log)
os.kill(os.getpid(), signal.SIGKILL)
"""


class TestSharedJournal:
    def test_workers_and_sweeps(self, tmp_path: Path) -> None:
        """Two workers and two sweeps share a journal: nothing lost, nothing twice."""
        journal = tmp_path / "journal.sqlite3"
        root = tmp_path / "markers"
        root.mkdir()
        log = tmp_path / "deleted.log"
        orphans = subprocess.run(
            [sys.executable, "-c", ORPHANS, str(root), str(log), "40"],
            env=env_for(journal, CLEANROOM_REAPER="off", CLEANROOM_SESSION="old-run"),
            check=False,
        )
        assert orphans.returncode == -signal.SIGKILL
        env = env_for(journal, CLEANROOM_SESSION="xdist-run")
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(root), str(log), f"gw{i}", "1.5"],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        sweepers = [
            subprocess.Popen(
                [sys.executable, "-c", SWEEPER, str(journal), str(TESTS), "1.5"],
                env=env_for(journal),
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        made = 0
        for worker in workers:
            out, _ = worker.communicate(timeout=60)
            assert worker.returncode == 0
            made += int(out)
        swept = 0
        for sweeper in sweepers:
            out, _ = sweeper.communicate(timeout=60)
            assert sweeper.returncode == 0
            swept += int(out)
        assert swept == 40
        assert list(root.iterdir()) == []
        deleted = [line.split()[1] for line in log.read_text().splitlines()]
        assert len(deleted) == len(set(deleted)) == made + 40
        with Journal(journal) as opened:
            rows = opened.rows()
        assert len(rows) == made + 40
        assert {row.state for row in rows} == {"cleaned"}
        by_session = {(row.session, row.actor) for row in rows}
        assert by_session == {("xdist-run", "owner"), ("old-run", "sweep")}


DAMAGED = """
import sys
from pathlib import Path
import markerkinds
from cleanroom import Scope
root = Path(sys.argv[1])
with Scope("after-damage") as scope:
    markerkinds.make(scope, root / "a")
    markerkinds.make(scope, root / "b")
print("ok", flush=True)
"""


class TestDamagedJournal:
    @pytest.mark.parametrize("content", ["garbage", "foreign", "truncated"])
    def test_program_runs_on(self, tmp_path: Path, content: str) -> None:
        """
        The program works and exits 0 whatever the journal: a damaged one is
        set aside, a file that is no cleanroom journal is left as it was.
        """
        journal = tmp_path / "journal.sqlite3"
        if content == "garbage":
            journal.write_bytes(os.urandom(8192))
        elif content == "foreign":
            conn = sqlite3.connect(journal)
            conn.execute("CREATE TABLE accounts (id INTEGER)")
            conn.commit()
            conn.close()
        else:
            Journal(journal).close()
            journal.write_bytes(journal.read_bytes()[:1000])
        before = journal.read_bytes()
        root = tmp_path / "root"
        root.mkdir()
        result = subprocess.run(
            [sys.executable, "-W", "error", "-c", DAMAGED, str(root)],
            env=env_for(journal),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "ok"
        assert "Traceback" not in result.stderr
        assert list(root.iterdir()) == []
        if content != "truncated":
            assert "is not a cleanroom journal" in result.stderr
            assert journal.read_bytes() == before
            assert not list(tmp_path.glob("journal.sqlite3.corrupt-*"))
            return
        assert "moved to" in result.stderr
        assert len(list(tmp_path.glob("journal.sqlite3.corrupt-*"))) == 1
        with Journal(journal) as opened:
            assert {row.state for row in opened.rows()} == {"cleaned"}

    def test_damaged_while_running(self, tmp_path: Path) -> None:
        """A journal damaged mid-run is rebuilt, and still guards a kill."""
        journal = tmp_path / "journal.sqlite3"
        root = tmp_path / "root"
        root.mkdir()
        code = """
import sys, time
from pathlib import Path
import markerkinds
from cleanroom import Scope
root = Path(sys.argv[1])
scope = Scope("run").__enter__()
markerkinds.make(scope, root / "before")
print("made", flush=True)
sys.stdin.readline()
markerkinds.make(scope, root / "after")
print("made", flush=True)
time.sleep(300)
"""
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(root)],
            env=env_for(journal),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "made"
        header = journal.read_bytes()[:100]
        for suffix in ("", "-wal", "-shm"):
            Path(f"{journal}{suffix}").unlink(missing_ok=True)
        # Still a cleanroom journal by its header, damaged after it.
        journal.write_bytes(header + b"\0garbage" * 2000)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "made"
        child.kill()
        child.wait()
        child.stdin.close()
        child.stdout.close()
        wait_settled(journal, child.pid)
        assert list(root.iterdir()) == []


RUN_CHILD = """
import sys, time
from pathlib import Path
import markerkinds
from cleanroom import Scope
root = Path(sys.argv[1])
with Scope("run") as scope:
    scope.tempdir(dir=root)
    markerkinds.make(scope, root / "marker")
    scope.popen([sys.executable, "-c", {sleeper!r}, sys.argv[2]])
    print("ready", flush=True)
    time.sleep(300)
"""

PYTEST_CHILD = """
import sys, time
import markerkinds

def test_slow(cleanroom):
    root = {root!r}
    cleanroom.tempdir(dir=root)
    markerkinds.make(cleanroom, root + "/marker")
    cleanroom.popen([sys.executable, "-c", {sleeper!r}, {tag!r}])
    print("ready", flush=True)
    time.sleep(300)
"""


class TestRunSignals:
    @pytest.mark.parametrize(
        ("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)]
    )
    def test_signal_to_run(
        self, tmp_path: Path, tag: str, sig: int, status: int
    ) -> None:
        """SIGINT or SIGTERM to ``cleanroom run``: 130 or 143, and nothing left."""
        journal = tmp_path / "journal.sqlite3"
        root = tmp_path / "root"
        root.mkdir()
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cleanroom",
                "run",
                "--",
                sys.executable,
                "-c",
                RUN_CHILD.format(sleeper=SLEEPER),
                str(root),
                tag,
            ],
            env=env_for(journal),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert run.stdout is not None
        assert run.stdout.readline().strip() == "ready"
        assert running(tag)
        run.send_signal(sig)
        _, err = run.communicate(timeout=60)
        assert run.returncode == status, err
        assert list(root.iterdir()) == []
        assert running(tag) == []

    @pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
    def test_signal_in_the_middle_of_a_test(
        self, tmp_path: Path, tag: str, sig: int
    ) -> None:
        """A signal in the middle of a test under ``cleanroom run`` leaves nothing."""
        journal = tmp_path / "journal.sqlite3"
        root = tmp_path / "root"
        root.mkdir()
        test_file = tmp_path / "test_slow.py"
        test_file.write_text(
            PYTEST_CHILD.format(root=str(root), sleeper=SLEEPER, tag=tag),
            encoding="utf-8",
        )
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cleanroom",
                "run",
                "--",
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-s",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:randomly",
                str(test_file),
            ],
            env=env_for(journal),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert run.stdout is not None
        deadline = time.monotonic() + 60
        while "ready" not in run.stdout.readline():
            assert time.monotonic() < deadline
        run.send_signal(sig)
        out, err = run.communicate(timeout=60)
        assert run.returncode != 0, out + err
        assert list(root.iterdir()) == []
        assert running(tag) == []


STORM = """
import faulthandler, signal, subprocess, sys
faulthandler.register(signal.SIGUSR1, all_threads=True)
signal.signal(signal.SIGINT, signal.default_int_handler)
from pathlib import Path
from cleanroom import Scope
root = Path(sys.argv[1])
with Scope("storm") as session:
    print("go", flush=True)
    while True:
        with session.child("round") as scope:
            for _ in range(3):
                scope.tempdir(dir=root, prefix="storm-")
                # Not our pipes: a process left behind must not hold them open.
                scope.popen(["sleep", "300"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
                print("made", flush=True)
"""


def tagged(tag: str) -> list[int]:
    """Pids of live processes whose environment holds ``CHAOS_TAG=<tag>``."""
    needle = f"CHAOS_TAG={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state not in {"Z", "X"}:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
class TestSignalStorm:
    @pytest.mark.parametrize(
        ("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, -signal.SIGINT)]
    )
    def test_nothing_remains(
        self, tmp_path: Path, tag: str, sig: int, status: int
    ) -> None:
        """
        100 programs creating temp dirs and processes, each sent *sig* at a
        random instant of its first 0.3 s in its scope, clean up everything
        they made before exiting; 10 run at once.
        """
        seed = random.randrange(1 << 32)
        chance = random.Random(seed)
        trials, batch = 100, 10
        made = 0
        began = time.monotonic()
        for first in range(0, trials, batch):
            children = []
            for number in range(first, first + batch):
                root = tmp_path / f"trial-{number}"
                root.mkdir()
                journal = tmp_path / f"journal-{number}.sqlite3"
                child = subprocess.Popen(
                    [sys.executable, "-c", STORM, str(root)],
                    # No reaper: what the program leaves, it leaves for good.
                    env=env_for(
                        journal, CLEANROOM_REAPER="off", CHAOS_TAG=f"{tag}-{number}"
                    ),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                children.append((child, root, number))
            for child, _, _ in children:
                assert child.stdout is not None
                assert child.stdout.readline().strip() == "go"
            for child, _, _ in children:
                time.sleep(chance.uniform(0.0, 0.3))
                child.send_signal(sig)
            for child, root, number in children:
                where = f"seed {seed}, trial {number}"
                try:
                    out, err = child.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    child.send_signal(signal.SIGUSR1)
                    time.sleep(1)
                    child.kill()
                    _, err = child.communicate()
                    pytest.fail(f"{where}: still runs 60 s after the signal:\n{err}")
                assert child.returncode == status, f"{where}: {err}"
                assert "CleanupError" not in err, f"{where}: {err}"
                made += out.count("made")
                left = sorted(p.name for p in root.iterdir())
                assert left == [], f"{where}: left {left}"
                assert tagged(f"{tag}-{number}") == [], f"{where}: processes"
        seconds = time.monotonic() - began
        print(
            f"{trials} trials of {signal.Signals(sig).name}: {seconds:.1f} s,", end=""
        )
        print(f" {made} (dir, process) pairs made and cleaned, seed {seed}")
