"""
Tests of the kind-author seam: ``Scope.creating`` and ``acreating``, aliases,
``add()`` of adopted types, strong and weak holding, and kinds found through
the ``cleanroom.kinds`` entry-point group.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanroom import Scope, ScopeStateError, get_kind
from cleanroom._core import _discovery, new_id
from cleanroom._core._session import TOKEN_ENV
from cleanroom._crash import _recorder
from cleanroom._crash._journal import Journal
from procs import running

TESTS = Path(__file__).parent


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A journal of this test's own, which this process journals into."""
    path = tmp_path / "journal.sqlite3"
    monkeypatch.setenv("CLEANROOM_JOURNAL", str(path))
    _recorder.reset()
    yield path
    _recorder.reset()


def journal_rows(journal: Path, name: str) -> list[str]:
    """The states *journal* holds for resources named *name*."""
    with Journal(journal) as opened:
        return [row.state for row in opened.rows() if row.name == name]


def started(tag: str) -> list[int]:
    """The processes whose command line holds *tag*, once one has exec'd."""
    deadline = time.monotonic() + 30
    while not (found := running(tag)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


def sleeper(tag: str) -> list[str]:
    return [sys.executable, "-c", "import time; time.sleep(300)", tag]


@pytest.fixture
def tag() -> Iterator[str]:
    """A word in the command line of this test's processes, killed afterwards."""
    word = f"seam-{os.getpid()}-{new_id()}"
    yield word
    for pid in running(word):
        os.kill(pid, signal.SIGKILL)


class TestCreating:
    def test_registers_on_success(self, tmp_path: Path, journal: Path) -> None:
        """A thing made in the body is tracked, journaled as created, then cleaned."""
        folder = tmp_path / f"made-{new_id()}"
        with Scope("seam") as scope:
            with scope.creating("tempdir", folder.name, path=str(folder)) as creation:
                assert journal_rows(journal, folder.name) == ["intent"]
                folder.mkdir()
            assert creation.resource in scope.resources()
            assert journal_rows(journal, folder.name) == ["created"]
            assert folder.is_dir()
        assert not folder.exists()
        assert journal_rows(journal, folder.name) == ["cleaned"]

    def test_deletes_and_abandons_on_exception(
        self, tmp_path: Path, journal: Path
    ) -> None:
        """A body that raises: what it made is deleted, and nothing is tracked."""
        folder = tmp_path / f"half-made-{new_id()}"
        with Scope("seam") as scope:
            with (
                pytest.raises(OSError, match="disk full"),
                scope.creating("tempdir", folder.name, path=str(folder)),
            ):
                folder.mkdir()
                (folder / "part").write_text("x")
                raise OSError("disk full")
            assert not folder.exists()
            assert scope.resources() == []
        assert journal_rows(journal, folder.name) == ["forgotten"]

    def test_process_deleted_through_its_token(self, tag: str) -> None:
        """A process started in a failing body is ended, found by its token."""
        token = new_id()
        with Scope("seam") as scope:
            with (
                pytest.raises(RuntimeError, match="pid not read"),
                scope.creating("process", "sleeper", token=token),
            ):
                process = subprocess.Popen(
                    sleeper(tag), env={**os.environ, TOKEN_ENV: token}
                )
                assert started(tag)
                raise RuntimeError("pid not read")
            assert running(tag) == []
            process.wait()

    def test_abandon_drops_the_intent(self, tmp_path: Path, journal: Path) -> None:
        """abandon(): nothing is deleted, tracked or left journaled as intent."""
        theirs = tmp_path / f"theirs-{new_id()}"
        theirs.mkdir()
        with Scope("seam") as scope:
            with (
                pytest.raises(FileExistsError),
                scope.creating("tempdir", theirs.name, path=str(theirs)) as made,
            ):
                made.abandon("taken")
                theirs.mkdir()
            with scope.creating("tempdir", theirs.name, path=str(theirs)) as again:
                again.abandon("taken")
            assert again.abandoned == "taken"
            assert scope.resources() == []
        assert theirs.is_dir()
        assert journal_rows(journal, theirs.name) == ["forgotten", "forgotten"]

    @pytest.mark.parametrize(
        ("sig", "error"),
        [("SIGTERM", "Terminated"), ("SIGINT", "KeyboardInterrupt")],
    )
    def test_signal_in_the_body_waits_for_registration(
        self, tmp_path: Path, sig: str, error: str
    ) -> None:
        """SIGTERM or SIGINT raised in the body arrives once the thing is tracked."""
        # In a process of its own: a SIGTERM that reached the test run would
        # make pytest's run end with SIGTERM's exit status.
        program = f"""
import signal, sys
from pathlib import Path
import pytest
from cleanroom import Scope, Terminated

folder = Path(sys.argv[1])
finished = False
with Scope("seam") as scope:
    with pytest.raises({error}), scope.creating(
        "tempdir", "made", path=str(folder)
    ) as made:
        folder.mkdir()
        signal.raise_signal(signal.{sig})
        finished = True
    assert finished
    assert made.resource in scope.resources()
    assert folder.is_dir()
assert not folder.exists()
print("ok")
"""
        result = subprocess.run(
            [sys.executable, "-c", program, str(tmp_path / "made")],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.stdout.strip() == "ok", result.stderr

    def test_update_and_alias(self, tmp_path: Path) -> None:
        """update() adds identity learned on creation; alias() makes handles."""
        folder = tmp_path / "aliased"
        handle = object()
        with Scope("seam") as scope:
            with scope.creating("tempdir", folder.name) as creation:
                folder.mkdir()
                creation.update(path=str(folder))
                creation.alias(handle, folder)
            resource = creation.resource
            assert resource.identity["path"] == str(folder)
            assert scope.resource_of(handle) == resource
            assert scope.resource_of(str(folder)) == resource
            scope.release(handle)
            assert not folder.exists()
            with pytest.raises(ScopeStateError):
                scope.resource_of(handle)

    def test_unknown_kind(self) -> None:
        """creating() of a kind nobody registered fails before the body runs."""
        with (
            Scope("seam") as scope,
            pytest.raises(LookupError, match="no-such-kind"),
            scope.creating("no-such-kind", "x"),
        ):
            pytest.fail("the body ran")


class TestAcreating:
    @pytest.mark.anyio
    async def test_registers_or_deletes(self, tmp_path: Path) -> None:
        """acreating() tracks what the body made, or deletes it when it raises."""
        kept, failed = tmp_path / "kept", tmp_path / "failed"
        async with Scope("seam") as scope:
            async with scope.acreating("tempdir", "kept", path=str(kept)) as made:
                kept.mkdir()
            assert made.resource in scope.resources()
            with pytest.raises(ValueError, match="bad"):
                async with scope.acreating("tempdir", "failed", path=str(failed)):
                    failed.mkdir()
                    raise ValueError("bad")
            assert not failed.exists()
            assert kept.is_dir()
        assert not kept.exists()


class TestAliases:
    def test_alias_and_resource_of(self, tmp_path: Path) -> None:
        """alias() makes more handles of a tracked resource; strangers are refused."""
        path = tmp_path / "tracked"
        path.write_text("x")
        handle = object()
        with Scope("seam") as scope:
            resource = scope.track("path", "tracked", path=str(path))
            scope.alias(resource, handle)
            assert scope.resource_of(handle) is resource
            assert scope.resource_of(resource) is resource
            with pytest.raises(ScopeStateError):
                scope.alias(object(), handle)
            with pytest.raises(ScopeStateError):
                scope.resource_of(object())
            scope.forget(handle)
            assert path.exists()


class Conn:
    """A connection-like object that records its closing."""

    def __init__(self, log: list[str], name: str = "conn") -> None:
        self.log = log
        self.name = name

    def close(self) -> None:
        self.log.append(self.name)


class TestAdd:
    def test_popen_is_ended(self, tag: str) -> None:
        """add(Popen) ends and reaps the process rather than waiting for it."""
        with Scope("seam") as scope:
            process = scope.add(subprocess.Popen(sleeper(tag)))
            assert scope.resource_of(process).kind == "process"
        assert process.returncode is not None
        assert running(tag) == []

    def test_popen_held_only_by_the_scope(self, tag: str) -> None:
        """add(Popen) of an object nobody else holds still ends and reaps it."""
        with Scope("seam") as scope:
            scope.add(subprocess.Popen(sleeper(tag)))
            gc.collect()
            assert started(tag)
        assert running(tag) == []

    def test_temporary_directory(self) -> None:
        """add(TemporaryDirectory) deletes the directory; no warning at collection."""
        with Scope("seam") as scope:
            directory = scope.add(tempfile.TemporaryDirectory())
            name = directory.name
            assert scope.resource_of(name).kind == "path"
            assert Path(name).is_dir()
        assert not Path(name).exists()
        del directory
        gc.collect()

    @pytest.mark.parametrize("anyio_backend", ["asyncio"])
    @pytest.mark.anyio
    async def test_asyncio_task(self, anyio_backend: str) -> None:
        """add(asyncio.Task) cancels the task and waits for its end."""
        ended: list[str] = []

        async def work() -> None:
            try:
                await asyncio.sleep(300)
            finally:
                ended.append("work")

        async with Scope("seam") as scope:
            task = scope.add(asyncio.create_task(work()))
            assert scope.resource_of(task).kind == "task"
            await asyncio.sleep(0)
        assert task.cancelled()
        assert ended == ["work"]

    def test_strong_by_default(self) -> None:
        """An added object nobody else holds is held, and closed, by its scope."""
        log: list[str] = []
        with Scope("seam") as scope:
            scope.add(Conn(log))
            gc.collect()
        assert log == ["conn"]

    def test_weak_object_collected_warns(self) -> None:
        """weak=True: a collected object's lost cleanup warns with its type and line."""
        log: list[str] = []
        with (
            pytest.warns(ResourceWarning, match=r"Conn .*test_seam\.py:\d+"),
            Scope("seam") as scope,
        ):
            scope.add(Conn(log), weak=True)
            gc.collect()
        assert log == []
        assert scope.collected == 1

    def test_weak_object_alive_is_cleaned(self) -> None:
        """weak=True: an object still alive at exit is cleaned as usual."""
        log: list[str] = []
        conn = Conn(log)
        with Scope("seam") as scope:
            scope.add(conn, weak=True)
        assert log == ["conn"]


KIND_MODULE = (TESTS / "examplekind.py").read_text(encoding="utf-8")

DIST_INFO = {
    "METADATA": "Metadata-Version: 2.1\nName: thirdparty-locks\nVersion: 1.0\n",
    "entry_points.txt": "[cleanroom.kinds]\nlocks = thirdparty_locks\n",
}


@pytest.fixture
def third_party(tmp_path: Path) -> dict[str, str]:
    """
    A third-party kind module, installed as a distribution would be (a
    ``.dist-info`` with an entry point of the ``cleanroom.kinds`` group) in a
    folder that child processes get on their path; their environment.
    """
    site = tmp_path / "site"
    info = site / "thirdparty_locks-1.0.dist-info"
    info.mkdir(parents=True)
    for name, text in DIST_INFO.items():
        (info / name).write_text(text, encoding="utf-8")
    (site / "thirdparty_locks.py").write_text(KIND_MODULE, encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if k != "CLEANROOM_SESSION"}
    return {
        **environ,
        "PYTHONPATH": str(site),
        "LOCKS_DIR": str(tmp_path / "locks"),
        "CLEANROOM_JOURNAL": str(tmp_path / "journal.sqlite3"),
    }


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


class TestDiscovery:
    def test_builtin_entry_points(self) -> None:
        """The installed cleanroom names its kind modules in the entry-point group."""
        points = _discovery.entry_points()
        assert {"files", "processes", "tasks"} <= set(points)
        assert points["processes"].value == "cleanroom.kinds.processes"
        assert _discovery.load("processes") is sys.modules["cleanroom.kinds.processes"]
        assert _discovery.load("no-such-backend") is None

    def test_get_kind_loads_modules(self) -> None:
        """get_kind() finds every built-in kind by name, importing its module."""
        for name in ("path", "tempdir", "process", "task"):
            assert get_kind(name).name == name

    def test_scope_without_family(self) -> None:
        """scope.<name> of no installed family says which families there are."""
        with Scope("seam") as scope, pytest.raises(AttributeError, match="nothing"):
            _ = scope.nothing

    def test_third_party_family_and_kind(self, third_party: dict[str, str]) -> None:
        """An installed module is found by kind name and by family, on first use."""
        result = python(
            """
            import sys
            import cleanroom
            assert "thirdparty_locks" not in sys.modules
            assert cleanroom.get_kind("locks").name == "lock"
            with cleanroom.managed_resources() as scope:
                lock = scope.locks("by-family")
                assert lock.exists()
            assert not lock.exists()
            print("ok")
            """,
            third_party,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "ok"

    def test_journaled_rows_resolve_in_a_fresh_process(
        self, third_party: dict[str, str], tmp_path: Path
    ) -> None:
        """A killed owner's lock is swept by a fresh process that never imported it."""
        child = python(
            """
            import os, signal
            import cleanroom, thirdparty_locks
            scope = cleanroom.Scope("doomed").__enter__()
            thirdparty_locks.acquire(scope, "orphan")
            os.kill(os.getpid(), signal.SIGKILL)
            """,
            {**third_party, "CLEANROOM_REAPER": "off"},
        )
        assert child.returncode == -signal.SIGKILL, child.stderr
        lock = tmp_path / "locks" / "orphan.lock"
        assert lock.exists()
        swept = subprocess.run(
            [sys.executable, "-m", "cleanroom", "sweep", "--kind", "lock"],
            env=third_party,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert swept.returncode == 0, swept.stderr
        assert not lock.exists()
        with Journal(third_party["CLEANROOM_JOURNAL"]) as journal:
            (row,) = journal.rows()
        assert (row.kind, row.name, row.state) == ("lock", "orphan", "cleaned")
