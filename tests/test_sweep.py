"""
Tests of the sweep engine: which journaled resources are orphans, filters,
kept resources and retention, prefix rules, claims, and the session-start sweep.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest

from cleanroom import (
    BaseKind,
    Ownership,
    Resource,
    Scope,
    ownership_labels,
    register_kind,
    unregister_kind,
)
from cleanroom._core._session import (
    Owner,
    current_owner,
)
from cleanroom._crash._journal import Journal
from cleanroom._crash._retention import Retention, parse_duration
from cleanroom._crash._sweep import (
    PrefixRule,
    SweepReport,
    is_orphan,
    session_start_sweep,
)
from cleanroom._crash._sweep import (
    sweep as sweep_everything,
)
from cleanroom.exceptions import UnknownKindError
from procs import dead_owner

TESTS = Path(__file__).parent


def sweep(journal: Journal | None, **options: Any) -> SweepReport:
    """
    Sweep what the journal knows: the labelled objects that backends list
    (real containers of other test sessions) are TestOwnedObjects' subject.
    """
    options.setdefault("owned", False)
    return sweep_everything(journal, **options)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    """A journal of this test's own."""
    with Journal(tmp_path / "journal.sqlite3") as opened:
        yield opened


@attrs.define
class Place:
    """A folder of marker files and the log of their deletions."""

    folder: Path
    log: Path

    def add(
        self,
        journal: Journal,
        owner: Owner,
        name: str,
        *,
        state: str = "created",
        **extra: object,
    ) -> int:
        path = self.folder / name
        if state != "never":
            path.write_text("x", encoding="utf-8")
        return journal.insert(
            owner,
            scope="test",
            kind="marker",
            module="markerkinds",
            name=name,
            identity={"path": str(path), "log": str(self.log)},
            state="intent" if state == "never" else state,
            **extra,  # type: ignore[arg-type]
        )

    def names(self) -> list[str]:
        return sorted(entry.name for entry in self.folder.iterdir())

    def deleted(self) -> list[str]:
        if not self.log.exists():
            return []
        return sorted(line.split()[1] for line in self.log.read_text().splitlines())


@pytest.fixture
def place(tmp_path: Path, markers: ModuleType) -> Place:
    folder = tmp_path / "markers"
    folder.mkdir()
    return Place(folder, tmp_path / "deleted.log")


class TestDuration:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("90", 90),
            ("90s", 90),
            ("15m", 900),
            ("2h", 7200),
            ("7d", 604800),
            ("1w", 604800),
            ("1.5h", 5400),
            (30, 30),
        ],
    )
    def test_valid(self, text: str, seconds: float) -> None:
        """Durations are seconds or a number with a unit."""
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["", "abc", "5y", "-1", "1 h 2"])
    def test_invalid(self, text: str) -> None:
        """A bad duration names itself and shows valid ones."""
        with pytest.raises(ValueError, match="90s, 15m"):
            parse_duration(text)


class TestRetention:
    def test_defaults_and_sources(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Arguments win over the environment, over ini values, over pyproject."""
        monkeypatch.chdir(tmp_path)
        for name in ("CLEANROOM_RETENTION_COUNT", "CLEANROOM_RETENTION_AGE"):
            monkeypatch.delenv(name, raising=False)
        assert Retention.resolve() == Retention(3, None)
        (tmp_path / "pyproject.toml").write_text(
            '[tool.cleanroom]\nretention_count = 5\nretention_age = "2d"\n'
        )
        assert Retention.resolve() == Retention(5, 172800)
        assert Retention.resolve(config={"count": "4"}) == Retention(4, 172800)
        monkeypatch.setenv("CLEANROOM_RETENTION_COUNT", "none")
        monkeypatch.setenv("CLEANROOM_RETENTION_AGE", "2h")
        assert Retention.resolve(config={"count": "4"}) == Retention(None, 7200)
        assert Retention.resolve(count=0, age="none") == Retention(0, None)

    @pytest.mark.parametrize(
        ("setting", "value", "message"),
        [
            ("count", "-1", "CLEANROOM_RETENTION_COUNT must be a number of sessions"),
            ("count", "few", "'few'"),
            ("age", "soon", "CLEANROOM_RETENTION_AGE: not a duration: 'soon'"),
        ],
    )
    def test_bad_values(
        self, monkeypatch: pytest.MonkeyPatch, setting: str, value: str, message: str
    ) -> None:
        """A bad value names itself, its source and the valid ones."""
        monkeypatch.setenv(f"CLEANROOM_RETENTION_{setting.upper()}", value)
        with pytest.raises(ValueError, match=message) as info:
            Retention.resolve()
        assert "none" in str(info.value)


class TestOrphans:
    def test_dead_owner_swept_live_owner_kept(
        self, journal: Journal, place: Place
    ) -> None:
        """Only the dead owner's resources go."""
        dead, live = dead_owner(), current_owner()
        journal.add_owner(dead)
        journal.add_owner(live)
        place.add(journal, dead, "orphan")
        place.add(journal, dead, "never", state="never")
        place.add(journal, live, "mine")
        report = sweep(journal)
        assert place.names() == ["mine"]
        assert report.removed == 2
        assert report.failed == 0
        rows = {row.name: row for row in journal.rows()}
        assert rows["orphan"].state == "cleaned"
        assert rows["orphan"].actor == "sweep"
        assert rows["never"].state == "cleaned"
        assert rows["mine"].state == "created"

    def test_live_session_protects_its_dead_processes(
        self, journal: Journal, place: Place
    ) -> None:
        """A live session keeps its dead processes' resources from other sweeps."""
        live = current_owner()
        dead = dead_owner(live.session)
        journal.add_owner(live)
        journal.add_owner(dead)
        place.add(journal, dead, "worker-crashed")
        assert sweep(journal).removed == 0
        assert place.names() == ["worker-crashed"]
        assert sweep(journal, session=live.session).removed == 1
        assert place.names() == []

    def test_dry_run(self, journal: Journal, place: Place) -> None:
        """A dry run reports orphans and removes nothing."""
        dead = dead_owner()
        journal.add_owner(dead)
        place.add(journal, dead, "orphan")
        report = sweep(journal, dry_run=True)
        assert [(r.action, r.name) for r in report.results] == [
            ("would-remove", "orphan")
        ]
        assert report.removed == 1
        assert place.names() == ["orphan"]
        assert journal.rows()[0].state == "created"
        assert report.as_dict()["dry_run"] is True

    def test_filters(self, journal: Journal, place: Place) -> None:
        """Kinds (any alias), age and session narrow a sweep."""
        old, other = dead_owner("s1"), dead_owner("s2")
        journal.add_owner(old)
        journal.add_owner(other)
        place.add(journal, old, "aged", created=time.time() - 7200)
        place.add(journal, old, "fresh")
        place.add(journal, other, "elsewhere")
        assert sweep(journal, kinds=["tempdir"]).removed == 0
        assert [
            r.name for r in sweep(journal, kinds=["markers"], older_than=3600).results
        ] == ["aged"]
        assert [r.name for r in sweep(journal, session="s2").results] == ["elsewhere"]
        assert place.names() == ["fresh"]

    def test_kept_for_the_last_sessions(self, journal: Journal, place: Place) -> None:
        """Kept resources stay until three newer sessions have started."""
        ended = dead_owner("kept-here")
        journal.add_owner(ended)
        place.add(journal, ended, "inspect-me", state="kept")
        place.add(journal, ended, "leaked")
        report = sweep(journal, current_session="second")
        assert [r.name for r in report.results] == ["leaked"]
        assert report.results[0].reason == "orphaned: its owner died"
        for session in ("second", "third"):
            journal.add_owner(dead_owner(session))
        assert sweep(journal, current_session="third").removed == 0
        report = sweep(journal, current_session="fourth")
        assert [r.name for r in report.results] == ["inspect-me"]
        assert report.results[0].reason == "kept; 3 newer sessions ran (retention: 3)"
        assert place.names() == []

    def test_kept_by_age_and_expiry(self, journal: Journal, place: Place) -> None:
        """An age or a recorded expiry removes kept resources whatever the count."""
        dead = dead_owner()
        journal.add_owner(dead)
        place.add(journal, dead, "recent", state="kept")
        place.add(journal, dead, "later", state="kept", expires=time.time() + 3600)
        place.add(journal, dead, "expired", state="kept", expires=time.time() - 1)
        old = place.add(journal, dead, "old", state="kept")
        journal.update(old, updated=time.time() - 7200)
        assert sweep(journal, include_kept=False).removed == 0
        report = sweep(journal, retention=Retention(count=None, age=3600))
        assert sorted(r.name for r in report.results) == ["expired", "old"]
        assert place.names() == ["later", "recent"]
        report = sweep(journal, retention=Retention(count=0))
        assert sorted(r.name for r in report.results) == ["later", "recent"]

    def test_all_kept_on_demand(self, journal: Journal, place: Place) -> None:
        """all_kept removes every kept resource of ended sessions, not live ones."""
        dead, live = dead_owner(), current_owner()
        journal.add_owner(dead)
        journal.add_owner(live)
        place.add(journal, dead, "kept-dead", state="kept")
        place.add(journal, live, "kept-live", state="kept")
        assert sweep(journal).removed == 0
        report = sweep(journal, all_kept=True)
        assert [r.name for r in report.results] == ["kept-dead"]
        assert place.names() == ["kept-live"]

    def test_unknown_kind_left_for_later(self, journal: Journal) -> None:
        """A row whose kind cannot be imported here is skipped and left as it was."""
        dead = dead_owner()
        journal.add_owner(dead)
        journal.insert(
            dead,
            scope="s",
            kind="nosuch",
            module="no.such.module",
            name="x",
            identity={},
            state="created",
        )
        report = sweep(journal)
        (result,) = report.results
        assert result.action == "skipped"
        assert "no.such.module" in (result.reason or "")
        (row,) = journal.rows()
        assert row.state == "created"
        assert row.claim is None

    def test_failures_are_recorded_and_retried(
        self, journal: Journal, tmp_path: Path
    ) -> None:
        """A failed removal is recorded with why, and tried again next time."""
        fail = {"yes"}

        @attrs.define
        class Fickle(BaseKind):
            def delete(self, resource: Resource, *, wait: bool) -> None:
                if fail:
                    raise OSError("busy")

        kind = register_kind(Fickle("fickle"))
        try:
            dead = dead_owner()
            journal.add_owner(dead)
            journal.insert(
                dead,
                scope="s",
                kind="fickle",
                module=None,
                name="f",
                identity={},
                state="created",
            )
            first = sweep(journal)
            assert first.failed == 1
            (row,) = journal.rows()
            assert row.state == "failed"
            assert row.reason == "OSError: busy"
            assert row.attempts == 1
            fail.clear()
            assert sweep(journal).removed == 1
            assert journal.rows()[0].state == "cleaned"
        finally:
            unregister_kind(kind)

    def test_claims(self, journal: Journal, place: Place) -> None:
        """A dead sweeper's claim is taken over; a live one's is respected."""
        dead = dead_owner()
        journal.add_owner(dead)
        place.add(journal, dead, "stale")
        place.add(journal, dead, "taken")
        gone = dead_owner()
        journal.claim(f"sweep:{gone.claim}", lambda rows: rows[:1])
        journal.claim(f"sweep:{current_owner().claim}", lambda rows: rows[:1])
        now = time.time()
        stale, taken = journal.rows()
        assert is_orphan(stale, include_kept=True, now=now)
        assert not is_orphan(taken, include_kept=True, now=now)
        report = sweep(journal)
        assert [r.name for r in report.results] == ["stale"]
        assert place.names() == ["taken"]

    def test_concurrent_sweeps_delete_once(
        self, journal: Journal, place: Place
    ) -> None:
        """Sweeps racing over the same orphans delete each exactly once."""
        dead = dead_owner()
        journal.add_owner(dead)
        names = [f"m{index:03}" for index in range(150)]
        for name in names:
            place.add(journal, dead, name)
        removed: list[int] = []

        def run() -> None:
            with Journal(journal.path) as mine:
                removed.append(sweep(mine).removed)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(removed) == len(names)
        assert place.deleted() == names
        assert place.names() == []


@attrs.define
class Opaque(BaseKind):
    """A kind that cannot list its resources."""

    def delete(self, resource: Resource, *, wait: bool) -> None:
        pass


class TestPrefixRules:
    def test_only_unowned_prefixed_resources(
        self, journal: Journal, place: Place, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A prefix rule removes unowned matches and orphans, not live or other ones."""
        monkeypatch.setenv("MARKERKINDS_DIR", str(place.folder))
        monkeypatch.setenv("MARKERKINDS_LOG", str(place.log))
        dead, live = dead_owner(), current_owner()
        journal.add_owner(dead)
        journal.add_owner(live)
        place.add(journal, dead, "test-orphan")
        place.add(journal, live, "test-live")
        (place.folder / "test-foreign").write_text("x", encoding="utf-8")
        (place.folder / "other").write_text("x", encoding="utf-8")
        rules = [PrefixRule("markers", "test-")]
        preview = sweep(journal, prefix_rules=rules, dry_run=True)
        assert sorted((r.action, r.name) for r in preview.results) == [
            ("skipped", "test-live"),
            ("would-remove", "test-foreign"),
            ("would-remove", "test-orphan"),
        ]
        assert len(place.names()) == 4
        report = sweep(journal, prefix_rules=rules)
        assert sorted((r.action, r.name, r.row is None) for r in report.results) == [
            ("removed", "test-foreign", True),
            ("removed", "test-orphan", False),
            ("skipped", "test-live", True),
        ]
        assert place.names() == ["other", "test-live"]
        assert place.deleted() == ["test-foreign", "test-orphan"]

    def test_without_journal(
        self, place: Place, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Prefix rules work when there is no journal at all."""
        monkeypatch.setenv("MARKERKINDS_DIR", str(place.folder))
        (place.folder / "vm-1").write_text("x", encoding="utf-8")
        report = sweep(None, prefix_rules=[PrefixRule("marker", "vm-")])
        assert report.removed == 1
        assert place.names() == []

    def test_kind_must_list(self, journal: Journal) -> None:
        """A kind without list_names cannot take a prefix rule."""
        kind = register_kind(Opaque("opaque"))
        try:
            with pytest.raises(TypeError, match="list_names"):
                sweep(journal, prefix_rules=[PrefixRule("opaque", "x")])
        finally:
            unregister_kind(kind)
        with pytest.raises(UnknownKindError):
            sweep(journal, prefix_rules=[PrefixRule("nosuch", "x")])
        with pytest.raises(ValueError, match="non-empty"):
            PrefixRule("marker", " ")


class TestOwnedObjects:
    """Labelled objects that a backend lists, found even without journal rows."""

    def write(self, place: Place, name: str, labels: dict[str, str] | None) -> None:
        text = json.dumps(labels) if labels is not None else "not labelled"
        (place.folder / name).write_text(text, encoding="utf-8")

    def test_dead_sessions_objects_go(
        self, journal: Journal, place: Place, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A dead owner's labelled object unknown to the journal goes; no other."""
        monkeypatch.setenv("MARKERKINDS_DIR", str(place.folder))
        monkeypatch.setenv("MARKERKINDS_LOG", str(place.log))
        dead = dead_owner("gone-session")
        now = time.time()
        self.write(
            place,
            "orphan",
            Ownership(
                "gone-session", "t", dead.host, dead.pid, dead.start_time, now
            ).labels(),
        )
        with Scope("live") as scope:
            self.write(place, "mine", ownership_labels(scope))
        self.write(place, "foreign", None)
        self.write(
            place,
            "elsewhere",
            Ownership("far-session", "t", "another-host", 1, None, now).labels(),
        )
        preview = sweep(journal, dry_run=True, kinds=["marker"], owned=True)
        assert [(r.action, r.name) for r in preview.results] == [
            ("would-remove", "orphan")
        ]
        report = sweep(journal, kinds=["marker"], owned=True)
        assert [(r.action, r.name) for r in report.results] == [("removed", "orphan")]
        assert place.names() == ["elsewhere", "foreign", "mine"]
        assert place.deleted() == ["orphan"]

    def test_journaled_objects_are_the_journals(
        self, journal: Journal, place: Place, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A labelled object with a journal row is swept by the row, once."""
        monkeypatch.setenv("MARKERKINDS_DIR", str(place.folder))
        monkeypatch.setenv("MARKERKINDS_LOG", str(place.log))
        dead = dead_owner("gone-session")
        journal.add_owner(dead)
        place.add(journal, dead, "journaled")
        self.write(
            place,
            "journaled",
            Ownership(
                "gone-session", "t", dead.host, dead.pid, dead.start_time, 0
            ).labels(),
        )
        report = sweep(journal, kinds=["marker"], owned=True)
        assert [(r.action, r.name, r.row is None) for r in report.results] == [
            ("removed", "journaled", False)
        ]
        assert place.deleted() == ["journaled"]


class TestSessionStart:
    def test_sweeps_and_counts(
        self, tmp_path: Path, place: Place, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The session-start sweep removes orphans and says how many."""
        path = tmp_path / "journal.sqlite3"
        monkeypatch.setenv("CLEANROOM_JOURNAL", str(path))
        with Journal(path) as journal:
            dead = dead_owner()
            journal.add_owner(dead)
            place.add(journal, dead, "a")
            place.add(journal, dead, "b")
        report = session_start_sweep()
        assert report is not None
        assert report.removed == 2
        again = session_start_sweep()
        assert again is not None
        assert again.removed == 0

    def test_never_raises(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No journal, a foreign file, or an unusable path: None, no exception."""
        missing = tmp_path / "missing.sqlite3"
        monkeypatch.setenv("CLEANROOM_JOURNAL", str(missing))
        assert session_start_sweep() is None
        assert not missing.exists()
        damaged = tmp_path / "damaged.sqlite3"
        damaged.write_bytes(os.urandom(5000))
        monkeypatch.setenv("CLEANROOM_JOURNAL", str(damaged))
        assert session_start_sweep() is None
        blocked = tmp_path / "file"
        blocked.write_text("", encoding="utf-8")
        monkeypatch.setenv("CLEANROOM_JOURNAL", str(blocked / "journal.sqlite3"))
        assert session_start_sweep() is None
        monkeypatch.setenv("CLEANROOM_JOURNAL", "off")
        assert session_start_sweep() is None


class TestStoppedDockerEngine:
    def test_stale_socket_passed_by_and_closed(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """
        A stopped engine's socket file refuses every connection: listing
        Docker's owned objects says the backend is unavailable, and no socket
        is left open (warnings are errors here, ResourceWarning included).
        """
        pytest.importorskip("docker")
        import gc
        import socket

        from cleanroom.exceptions import BackendUnavailableError
        from cleanroom.kinds import docker as docker_kind

        path = tmp_path / "docker.sock"
        with socket.socket(socket.AF_UNIX) as stale:
            stale.bind(str(path))  # the file stays; nobody listens on it
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        for kind in (docker_kind.CONTAINERS, docker_kind.NETWORKS, docker_kind.VOLUMES):
            with pytest.raises(BackendUnavailableError, match="no Docker engine"):
                list(kind.list_owned())
        gc.collect()
