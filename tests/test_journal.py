"""
Tests of the journal: its file, its rows, damaged files, several processes at
once, and the recorder that journals a process's declarative resources.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import cleanroom
from cleanroom import Scope
from cleanroom._core import new_id
from cleanroom._core._session import Owner, current_owner
from cleanroom._crash import _recorder
from cleanroom._crash._journal import (
    APPLICATION_ID,
    Journal,
    JournalUnavailable,
    open_existing,
)
from cleanroom._crash._location import default_path, journal_path

TESTS = Path(__file__).parent


@pytest.fixture
def fresh_recorder() -> Iterator[None]:
    """
    A recorder that reads ``CLEANROOM_JOURNAL`` again, as this test sets it,
    and is closed after the test.
    """
    _recorder.reset()
    yield
    _recorder.reset()


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_recorder: None) -> Path:
    """A journal of this test's own, which this process journals into."""
    journal = tmp_path / "state" / "journal.sqlite3"
    monkeypatch.setenv("CLEANROOM_JOURNAL", str(journal))
    return journal


def owner_for(session: str = "s") -> Owner:
    return Owner(new_id(), session, "host", os.getpid(), None)


def insert(journal: Journal, owner: Owner, name: str) -> int:
    """Record that *owner* created the resource *name* of kind ``k``."""
    return journal.insert(
        owner,
        scope="s",
        kind="k",
        module=None,
        name=name,
        identity={},
        state="created",
    )


def rows_of(path: Path) -> list[tuple[str, str, str]]:
    with Journal(path) as journal:
        return [(row.kind, row.name, row.state) for row in journal.rows()]


class TestPath:
    def test_environment_wins(self, tmp_path: Path) -> None:
        """CLEANROOM_JOURNAL names the file."""
        target = tmp_path / "j.sqlite3"
        assert journal_path({"CLEANROOM_JOURNAL": str(target)}) == target

    @pytest.mark.parametrize("value", ["off", "OFF", "none", "0", "false", "no"])
    def test_off(self, value: str) -> None:
        """CLEANROOM_JOURNAL=off turns journaling off."""
        assert journal_path({"CLEANROOM_JOURNAL": value}) is None

    def test_default_in_cache_dir(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """By default the journal lives in the user's cache directory."""
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        monkeypatch.chdir(tmp_path)
        assert default_path() == tmp_path / "cache" / "cleanroom" / "journal.sqlite3"
        assert journal_path({}) == default_path()
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert (
            default_path() == Path.home() / ".cache" / "cleanroom" / "journal.sqlite3"
        )

    def test_pyproject(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """``journal`` in [tool.cleanroom] is relative to its pyproject.toml."""
        (tmp_path / "pyproject.toml").write_text(
            '[tool.cleanroom]\njournal = ".cleanroom/journal.sqlite3"\n',
            encoding="utf-8",
        )
        sub = tmp_path / "sub"
        sub.mkdir()
        monkeypatch.chdir(sub)
        assert journal_path({}) == tmp_path / ".cleanroom" / "journal.sqlite3"


class TestFile:
    def test_created_private(self, tmp_path: Path) -> None:
        """A new journal is mode 0600 in a 0700 directory, in WAL mode."""
        target = tmp_path / "new" / "journal.sqlite3"
        with Journal(target) as journal:
            health = journal.health()
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
        assert health["integrity"] == "ok"
        assert health["journal_mode"] == "wal"
        conn = sqlite3.connect(target)
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        conn.close()

    def test_missing_not_created(self, tmp_path: Path) -> None:
        """Readers do not create a journal that does not exist."""
        target = tmp_path / "journal.sqlite3"
        with pytest.raises(FileNotFoundError):
            Journal(target, create=False)
        with open_existing(target) as journal:
            assert journal is None
        assert not target.exists()

    def test_rows(self, tmp_path: Path) -> None:
        """Rows are inserted, updated, filtered, and read back with their owner."""
        owner = current_owner()
        with Journal(tmp_path / "j.sqlite3") as journal:
            journal.add_owner(owner, command="pytest", policy={"timeout": 3.0})
            first = journal.insert(
                owner,
                scope="s",
                kind="marker",
                module="markerkinds",
                name="a",
                identity={"path": "/tmp/a", "odd": Path("/x")},
                state="intent",
            )
            journal.insert(
                owner,
                scope="s",
                kind="tempdir",
                module=None,
                name="b",
                identity={},
                state="created",
            )
            journal.update(first, state="created", identity={"path": "/tmp/a2"})
            (row,) = journal.rows(kinds=["marker"])
            assert row.state == "created"
            assert row.identity == {"path": "/tmp/a2"}
            assert row.pid == os.getpid()
            assert row.owner_alive()
            assert row.module == "markerkinds"
            assert [r.name for r in journal.rows(states=["created"])] == ["a", "b"]
            assert journal.rows(session="other") == []
            recorded = journal.owner(owner.id)
            assert recorded is not None
            assert recorded.policy == {"timeout": 3.0}
            assert recorded.alive()
            assert journal.counts() == {"created": 2}
            with pytest.raises(ValueError, match="cannot change"):
                journal.update(first, owner="x")

    def test_claims_are_exclusive(self, tmp_path: Path) -> None:
        """Rows claimed by one process are not claimed again by another."""
        target = tmp_path / "j.sqlite3"
        owner = owner_for()
        with Journal(target) as journal:
            journal.add_owner(owner)
            for index in range(200):
                insert(journal, owner, str(index))
        claimed: list[list[int]] = []

        def claim(name: str) -> None:
            with Journal(target) as journal:
                mine: list[int] = []
                while True:
                    rows = journal.claim(name, lambda rows: rows[:7])
                    if not rows:
                        break
                    mine += [row.id for row in rows]
                claimed.append(mine)

        threads = [
            threading.Thread(target=claim, args=(f"t{i}:h:1:1",)) for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        everything = [row_id for mine in claimed for row_id in mine]
        assert sorted(everything) == list(range(1, 201))
        with Journal(target) as journal:
            assert journal.counts() == {"sweeping": 200}
            row = journal.rows()[0]
            assert row.prior == "created"
            assert row.settled_state == "created"

    def test_prune(self, tmp_path: Path) -> None:
        """Old settled rows are pruned; live ones stay."""
        owner = owner_for()
        with Journal(tmp_path / "j.sqlite3") as journal:
            journal.add_owner(owner)
            old = insert(journal, owner, "old")
            insert(journal, owner, "live")
            journal.update(old, state="cleaned", updated=time.time() - 10)
            assert journal.prune(older_than=5) == 1
            assert [row.name for row in journal.rows()] == ["live"]


class TestDamage:
    def test_other_files_are_refused_never_moved(self, tmp_path: Path) -> None:
        """A file that is not sqlite is refused, and left where and as it was."""
        target = tmp_path / "journal.sqlite3"
        target.write_bytes(b"this is not a database" * 100)
        with pytest.raises(JournalUnavailable, match="is not a cleanroom journal"):
            Journal(target)
        assert target.read_bytes().startswith(b"this is not a database")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.sqlite3"]

    def test_foreign_database_is_refused_never_moved(self, tmp_path: Path) -> None:
        """Another program's sqlite file is never written to nor moved."""
        target = tmp_path / "journal.sqlite3"
        conn = sqlite3.connect(target)
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.execute("INSERT INTO notes VALUES ('mine')")
        conn.commit()
        conn.close()
        with pytest.raises(JournalUnavailable, match="another program") as info:
            Journal(target)
        assert "CLEANROOM_JOURNAL" in str(info.value)
        kept = sqlite3.connect(target)
        assert kept.execute("SELECT text FROM notes").fetchall() == [("mine",)]
        kept.close()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.sqlite3"]

    def test_readers_never_set_aside(self, tmp_path: Path) -> None:
        """A damaged cleanroom journal opened only to read is reported, not moved."""
        target = tmp_path / "journal.sqlite3"
        Journal(target).close()
        conn = sqlite3.connect(target)
        conn.execute("ALTER TABLE resources DROP COLUMN attempts")
        conn.close()
        with pytest.raises(JournalUnavailable, match="is damaged") as info:
            Journal(target, create=False, repair=False)
        assert "missing resources.attempts" in str(info.value)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.sqlite3"]

    def test_same_version_other_layout_is_set_aside(self, tmp_path: Path) -> None:
        """A journal that claims this schema but lacks its columns is moved aside."""
        target = tmp_path / "journal.sqlite3"
        Journal(target).close()
        conn = sqlite3.connect(target)
        conn.execute("ALTER TABLE resources DROP COLUMN attempts")
        conn.close()
        owner = owner_for()
        with Journal(target) as journal:
            (aside,) = journal.set_aside
            journal.add_owner(owner)
            insert(journal, owner, "after")
            assert [row.name for row in journal.rows()] == ["after"]
        assert aside.name.startswith("journal.sqlite3.corrupt-")

    def test_corrupted_pages_are_set_aside(self, tmp_path: Path) -> None:
        """A journal whose pages are damaged is moved aside."""
        target = tmp_path / "journal.sqlite3"
        owner = owner_for()
        with Journal(target) as journal:
            journal.add_owner(owner)
            for index in range(300):
                insert(journal, owner, f"r{index}" * 20)
        conn = sqlite3.connect(target)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        data = bytearray(target.read_bytes())
        page = 4096
        data[page * 2 : page * 2 + 400] = b"\xff" * 400
        target.write_bytes(bytes(data))
        with Journal(target) as journal:
            assert len(journal.set_aside) == 1
            assert journal.health()["integrity"] == "ok"

    def test_newer_schema_is_left_alone(self, tmp_path: Path) -> None:
        """A journal of a newer cleanroom is not touched."""
        target = tmp_path / "journal.sqlite3"
        Journal(target).close()
        conn = sqlite3.connect(target)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
        before = target.read_bytes()
        with pytest.raises(JournalUnavailable, match="newer cleanroom"):
            Journal(target)
        assert target.read_bytes() == before

    def test_replaced_file_is_reopened(self, tmp_path: Path) -> None:
        """A journal file removed while in use is recreated on the next write."""
        target = tmp_path / "journal.sqlite3"
        owner = owner_for()
        with Journal(target) as journal:
            journal.add_owner(owner)
            target.unlink()
            insert(journal, owner, "after")
            assert journal.generation == 1
        assert rows_of(target) == [("k", "after", "created")]


class TestRecorder:
    def test_lifecycle(self, path: Path, markers: ModuleType, tmp_path: Path) -> None:
        """A declarative resource is journaled as intent, created, then cleaned."""
        marker = tmp_path / "m1"
        with Scope("rec") as scope:
            with scope.creating(markers.MARKERS, "m1", path=str(marker)):
                assert rows_of(path) == [("marker", "m1", "intent")]
                marker.touch()
            assert rows_of(path) == [("marker", "m1", "created")]
        assert not marker.exists()
        assert rows_of(path) == [("marker", "m1", "cleaned")]
        with Journal(path) as journal:
            (row,) = journal.rows()
            owner = journal.owner(row.owner)
        assert row.module == "markerkinds"
        assert row.scope == "rec"
        assert row.session == current_owner().session
        assert row.actor == "owner"
        assert owner is not None
        assert owner.pid == os.getpid()

    def test_kept_failed_forgotten(
        self, path: Path, markers: ModuleType, tmp_path: Path
    ) -> None:
        """Kept, failed and forgotten resources are journaled with why."""
        kept = tmp_path / "kept"
        gone = tmp_path / "forgotten"
        with Scope("rec", on_error="warn") as scope:
            handle = markers.make(scope, kept)
            scope.keep(handle, "for debugging")
            forgotten = markers.make(scope, gone)
            scope.forget(forgotten)
            scope.track("marker", "broken", path=None)
            with pytest.warns(cleanroom.CleanupWarning):
                scope.close()
        with Journal(path) as journal:
            rows = {row.name: row for row in journal.rows()}
        assert rows["kept"].state == "kept"
        assert rows["kept"].reason == "for debugging"
        assert rows["kept"].hint == f"rm {kept}"
        assert rows["forgotten"].state == "forgotten"
        assert rows["broken"].state == "failed"
        assert "TypeError" in (rows["broken"].reason or "")
        assert kept.exists()
        assert gone.exists()

    def test_reserved(self, path: Path, markers: ModuleType, tmp_path: Path) -> None:
        """A reserved name is an intent row until it is cleaned."""
        with Scope() as scope:
            scope.reserve("marker", "later", path=str(tmp_path / "later"))
            assert rows_of(path) == [("marker", "later", "intent")]
        assert rows_of(path) == [("marker", "later", "cleaned")]

    def test_objects_and_callbacks_not_journaled(self, path: Path) -> None:
        """Plain callbacks and added objects are not journaled; no journal is opened."""

        class Thing:
            def close(self) -> None:
                pass

        with Scope() as scope:
            scope.add(Thing(), weak=False)
            scope.add(Thing(), kind="websocket", weak=False)
            scope.callback(print, end="")
        assert not path.exists()
        recorder = _recorder.recorder()
        assert recorder is not None
        assert recorder.reaper is None

    def test_reaper_started_lazily(
        self, path: Path, markers: ModuleType, tmp_path: Path
    ) -> None:
        """The first journaled resource starts this process's reaper, once."""
        recorder = _recorder.recorder()
        assert recorder is not None
        scope = Scope()
        markers.make(scope, tmp_path / "a")
        reaper = recorder.reaper
        assert reaper is not None
        assert reaper.poll() is None
        markers.make(scope, tmp_path / "b")
        assert recorder.reaper is reaper
        scope.close()
        with Journal(path) as journal:
            (owner,) = journal.owners()
        assert owner.reaper == reaper.pid
        _recorder.reset()
        assert reaper.wait(timeout=10) == 0

    def test_journaling_off(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        markers: ModuleType,
        fresh_recorder: None,
    ) -> None:
        """With CLEANROOM_JOURNAL=off nothing is written and cleanup still works."""
        monkeypatch.setenv("CLEANROOM_JOURNAL", "off")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        with Scope() as scope:
            markers.make(scope, tmp_path / "m")
        assert not (tmp_path / "m").exists()
        assert _recorder.recorder() is None
        assert not (tmp_path / "cache").exists()

    def test_unwritable_journal(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        markers: ModuleType,
        caplog: pytest.LogCaptureFixture,
        fresh_recorder: None,
    ) -> None:
        """A journal that cannot be created is logged, never raised."""
        blocker = tmp_path / "file"
        blocker.write_text("", encoding="utf-8")
        monkeypatch.setenv("CLEANROOM_JOURNAL", str(blocker / "journal.sqlite3"))
        with caplog.at_level(logging.ERROR, logger="cleanroom"), Scope() as scope:
            markers.make(scope, tmp_path / "m")
            markers.make(scope, tmp_path / "n")
        assert not (tmp_path / "m").exists()
        assert caplog.text.count("cannot journal") == 1

    def test_rejournal_after_damage(
        self, path: Path, markers: ModuleType, tmp_path: Path
    ) -> None:
        """Live rows are written again when the journal had to be replaced."""
        with Scope() as scope:
            markers.make(scope, tmp_path / "a")
            markers.make(scope, tmp_path / "b")
            path.unlink()
            Path(f"{path}-wal").unlink(missing_ok=True)
            Path(f"{path}-shm").unlink(missing_ok=True)
            path.write_bytes(damaged_journal(tmp_path))
            markers.make(scope, tmp_path / "c")
            assert sorted(rows_of(path)) == [
                ("marker", "a", "created"),
                ("marker", "b", "created"),
                ("marker", "c", "created"),
            ]
        assert sorted(rows_of(path)) == [
            ("marker", "a", "cleaned"),
            ("marker", "b", "cleaned"),
            ("marker", "c", "cleaned"),
        ]
        assert list(path.parent.glob("journal.sqlite3.corrupt-*"))


def damaged_journal(folder: Path) -> bytes:
    """The bytes of a cleanroom journal whose every page after its header is garbage."""
    fresh = folder / "fresh.sqlite3"
    Journal(fresh).close()
    data = fresh.read_bytes()
    fresh.unlink()
    return data[:100] + b"garbage" * 1000


WORKER = """
import sys
from pathlib import Path
import markerkinds
from cleanroom import Scope
folder, count = Path(sys.argv[1]), int(sys.argv[2])
with Scope("worker") as scope:
    for index in range(count):
        markerkinds.make(scope, folder / f"{sys.argv[3]}-{index}")
        if index % 3 == 0:
            with scope.child("inner") as inner:
                markerkinds.make(inner, folder / f"{sys.argv[3]}-inner-{index}")
"""


class TestProcesses:
    def test_workers_share_one_journal(self, tmp_path: Path) -> None:
        """Several processes of one session journal at once; no row is lost."""
        target = tmp_path / "journal.sqlite3"
        folder = tmp_path / "markers"
        folder.mkdir()
        env = {
            **os.environ,
            "CLEANROOM_JOURNAL": str(target),
            "CLEANROOM_SESSION": "xdist-run",
            "PYTHONPATH": str(TESTS),
        }
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(folder), "60", f"w{i}"], env=env
            )
            for i in range(4)
        ]
        for worker in workers:
            assert worker.wait(timeout=120) == 0
        with Journal(target) as journal:
            rows = journal.rows()
            owners = journal.owners()
        assert len(rows) == 4 * 80
        assert {row.state for row in rows} == {"cleaned"}
        assert {row.session for row in rows} == {"xdist-run"}
        assert len(owners) == 4
        assert all(owner.closed for owner in owners)
        assert list(folder.iterdir()) == []
