"""
Tests of the ``cleanroom`` command: help, ``check``, ``list``, ``sweep`` and ``run``.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import socket
import sqlite3
import subprocess
import sys
import termios
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanroom import __version__
from cleanroom._cli import main
from cleanroom._core._session import (
    Owner,
    current_owner,
)
from cleanroom._crash._journal import Journal
from procs import dead_owner

TESTS = Path(__file__).parent


def cleanroom(
    *args: str, journal: Path | None = None, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cleanroom`` with *args*."""
    environ = {**os.environ, "PYTHONPATH": str(TESTS), **env}
    if journal is not None:
        environ["CLEANROOM_JOURNAL"] = str(journal)
    return subprocess.run(
        [sys.executable, "-m", "cleanroom", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def at_terminal(args: list[str], journal: Path, answer: str) -> tuple[str, int]:
    """Run ``python -m cleanroom`` on a pseudo-terminal, answering its question."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cleanroom", *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, "PYTHONPATH": str(TESTS), "CLEANROOM_JOURNAL": str(journal)},
        close_fds=True,
    )
    os.close(secondary)
    output = b""
    answered = False
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        if not answered and b"[y/N]" in output:
            os.write(primary, answer.encode())
            answered = True
    os.close(primary)
    return output.decode(errors="replace").replace("\r\n", "\n"), process.wait(60)


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


def marker(
    journal: Journal,
    owner: Owner,
    folder: Path,
    name: str,
    state: str = "created",
    **extra: object,
) -> None:
    path = folder / name
    path.write_text("x", encoding="utf-8")
    journal.insert(
        owner,
        scope="test",
        kind="marker",
        module="markerkinds",
        name=name,
        identity={"path": str(path)},
        state=state,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def populated(journal: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A journal with live, leaked, kept, failed and cleaned resources."""
    monkeypatch.syspath_prepend(str(TESTS))
    with Journal(journal) as opened:
        live, dead = current_owner(), dead_owner("deadsession")
        opened.add_owner(live, command="pytest tests")
        opened.add_owner(dead, command="pytest -x")
        marker(opened, live, folder, "live-one")
        marker(opened, dead, folder, "leaked-one")
        marker(
            opened, dead, folder, "kept-one", "kept", reason="inspect me", hint="rm it"
        )
        marker(opened, dead, folder, "failed-one", "failed", reason="OSError: busy")
        marker(opened, dead, folder, "cleaned-one", "cleaned")
    (folder / "cleaned-one").unlink()
    return journal


class TestHelp:
    def test_commands(self) -> None:
        """The top-level help lists every command and where the journal is."""
        result = cleanroom("--help")
        assert result.returncode == 0
        for word in ("check", "list", "sweep", "run", "CLEANROOM_JOURNAL"):
            assert word in result.stdout

    @pytest.mark.parametrize(
        ("command", "words"),
        [
            ("check", ["round trip", "--json"]),
            ("list", ["leaked", "--session", "--all", "--json"]),
            (
                "sweep",
                [
                    "--dry-run",
                    "--kind",
                    "--older-than",
                    "--session",
                    "--prefix",
                    "--yes",
                    "--json",
                    "--import",
                ],
            ),
            ("run", ["--level", "--on-failure", "--force", "130", "143", "SIGKILL"]),
        ],
    )
    def test_command_help(self, command: str, words: list[str]) -> None:
        """Each command's help explains its options."""
        result = cleanroom(command, "--help")
        assert result.returncode == 0
        text = " ".join(result.stdout.split())
        for word in words:
            assert word in text

    def test_version(self) -> None:
        """--version prints the version."""
        result = cleanroom("--version")
        assert result.stdout.strip() == f"cleanroom {__version__}"

    def test_no_command(self) -> None:
        """A command is required."""
        result = cleanroom()
        assert result.returncode == 2
        assert "COMMAND" in result.stderr


class TestCheck:
    def test_all_good(self, journal: Path) -> None:
        """check runs a round trip per kind and ends with a verdict."""
        result = cleanroom("check", journal=journal)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"cleanroom {__version__}" in result.stdout
        for line in ("files", "processes", "tasks"):
            assert line in result.stdout
        assert "orphans: 0 would be removed" in result.stdout
        assert result.stdout.rstrip().endswith(
            "OK: cleanroom creates and cleans resources here"
        )

    def test_json(self, journal: Path) -> None:
        """check --json reports the same as data."""
        result = cleanroom("check", "--json", "--journal", str(journal))
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["ok"] is True
        trips = {trip["name"]: trip["ok"] for trip in report["roundtrips"]}
        # A backend takes part where its service answers, and must pass then.
        assert trips.pop("docker", True) is True
        assert trips == {"files": True, "processes": True, "tasks": True}
        assert report["journal"]["ok"] is True
        assert str(journal) in report["journal"]["detail"]
        assert report["orphans"] == 0
        with Journal(journal) as opened:
            assert {row.state for row in opened.rows()} == {"cleaned"}

    def test_failed_round_trip(self, journal: Path, tmp_path: Path) -> None:
        """A failing round trip makes check exit 1 and say which."""
        code = (
            "import tempfile, sys\n"
            f"tempfile.tempdir = {str(tmp_path / 'missing')!r}\n"
            "from cleanroom._cli import main\n"
            "sys.exit(main(['check']))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, "CLEANROOM_JOURNAL": str(journal)},
            check=False,
        )
        assert result.returncode == 1
        assert "FAIL" in result.stdout
        assert "FAILED: the files round trip failed" in result.stdout

    def test_orphans_counted(self, populated: Path) -> None:
        """check says how many orphans a sweep would remove."""
        result = cleanroom("check", journal=populated)
        assert "orphans: 2 would be removed" in result.stdout

    def test_journal_off(self) -> None:
        """check works with journaling off, and says so."""
        result = cleanroom("check", CLEANROOM_JOURNAL="off")
        assert result.returncode == 0
        assert "off (CLEANROOM_JOURNAL=off)" in result.stdout


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Path]:
    """A unix socket that answers Docker's ping, like a local engine."""
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    server.close()
    thread.join(timeout=5)


class TestList:
    def test_human(self, populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """list shows sessions, owners and resources by status, with how to delete."""
        assert main(["list", "--journal", str(populated)]) == 0
        out = capsys.readouterr().out
        assert "live      marker 'live-one'" in out
        assert "leaked    marker 'leaked-one'" in out
        assert "kept      marker 'kept-one' — inspect me; delete with: rm it" in out
        assert "failed    marker 'failed-one' — OSError: busy" in out
        assert "cleaned-one" not in out
        assert "session deadsession" in out
        assert "dead" in out
        assert "alive" in out
        assert "2 sessions: 1 failed, 1 kept, 1 leaked, 1 live" in out

    def test_all_and_session(
        self, populated: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--all shows settled resources; --session picks one session by prefix."""
        assert (
            main(["list", "--journal", str(populated), "--all", "--session", "deadses"])
            == 0
        )
        out = capsys.readouterr().out
        assert "cleaned   marker 'cleaned-one'" in out
        assert "live-one" not in out

    def test_json(self, populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """list --json gives sessions, owners and resources as data."""
        assert main(["list", "--json", "--journal", str(populated)]) == 0
        document = json.loads(capsys.readouterr().out)
        assert document["journal"] == str(populated)
        by_id = {session["id"]: session for session in document["sessions"]}
        dead = by_id["deadsession"]
        assert dead["counts"] == {"leaked": 1, "kept": 1, "failed": 1}
        assert {owner["status"] for owner in dead["owners"]} == {"dead"}
        statuses = {r["name"]: r["status"] for r in dead["resources"]}
        assert statuses == {
            "leaked-one": "leaked",
            "kept-one": "kept",
            "failed-one": "failed",
        }

    def test_empty(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing journal lists nothing and is not created."""
        path = tmp_path / "none.sqlite3"
        assert main(["list", "--journal", str(path)]) == 0
        assert "no sessions" in capsys.readouterr().out
        assert not path.exists()


def foreign_database(path: Path) -> bytes:
    """Make *path* another program's sqlite file; return its bytes."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.commit()
    conn.close()
    return path.read_bytes()


class TestUnusableJournal:
    @pytest.mark.parametrize(
        "args", [["list"], ["sweep", "--dry-run"], ["sweep", "--yes"]]
    )
    def test_foreign_file_refused_never_moved(
        self, journal: Path, args: list[str]
    ) -> None:
        """Another program's sqlite file is refused by every command, never moved."""
        before = foreign_database(journal)
        result = cleanroom(*args, journal=journal)
        assert result.returncode == 1
        assert "is not a cleanroom journal" in result.stderr
        assert "another program" in result.stderr
        assert journal.read_bytes() == before
        assert [p.name for p in journal.parent.iterdir()] == [journal.name]

    def test_damaged_journal_moved_only_by_writers(
        self, journal: Path, tmp_path: Path
    ) -> None:
        """Reading commands report a damaged journal; a sweep sets it aside."""
        Journal(journal).close()
        conn = sqlite3.connect(journal)
        conn.execute("ALTER TABLE resources DROP COLUMN attempts")
        conn.close()
        for args in (["list"], ["sweep", "--dry-run"]):
            result = cleanroom(*args, journal=journal)
            assert result.returncode == 1
            assert "is damaged" in result.stderr
            assert [p.name for p in tmp_path.iterdir()] == [journal.name]
        assert cleanroom("sweep", "--yes", journal=journal).returncode == 0
        assert list(tmp_path.glob("journal.sqlite3.corrupt-*"))

    def test_directory_or_unwritable(self, tmp_path: Path) -> None:
        """list fails when the journal is a directory or could never be created."""
        folder = tmp_path / "folder"
        folder.mkdir()
        result = cleanroom("list", journal=folder)
        assert result.returncode == 1
        assert f"cannot open the journal {folder}" in result.stderr
        blocker = tmp_path / "file"
        blocker.write_text("")
        below = blocker / "journal.sqlite3"
        result = cleanroom("list", journal=below)
        assert result.returncode == 1
        assert f"{blocker} is not a directory" in result.stderr

    def test_unknown_session_listed(self, populated: Path) -> None:
        """list --session with an id that no session has says so."""
        result = cleanroom("list", "--session", "zzz", journal=populated)
        assert result.returncode == 1
        assert "no session 'zzz' in the journal" in result.stderr


class TestSweepCommand:
    def test_dry_run_then_sweep(self, populated: Path, folder: Path) -> None:
        """--dry-run shows the orphans; a sweep removes them and no more."""
        preview = cleanroom("sweep", "--dry-run", journal=populated)
        assert preview.returncode == 0
        assert "would remove  marker 'leaked-one'" in preview.stdout
        assert "2 orphans would be removed" in preview.stdout
        assert len(list(folder.iterdir())) == 4
        result = cleanroom("sweep", journal=populated)
        assert result.returncode == 0, result.stderr
        assert "removed 2 orphans" in result.stdout
        assert sorted(p.name for p in folder.iterdir()) == ["kept-one", "live-one"]

    def test_kept_on_demand(self, populated: Path, folder: Path) -> None:
        """Kept resources stay for their retention; --kept removes them now."""
        assert cleanroom("sweep", journal=populated).returncode == 0
        assert (folder / "kept-one").exists()
        result = cleanroom("sweep", "--kept", journal=populated)
        assert result.returncode == 0, result.stderr
        assert "removed       marker 'kept-one'" in result.stdout
        assert "kept; removed on demand" in result.stdout
        assert sorted(p.name for p in folder.iterdir()) == ["live-one"]
        both = cleanroom("sweep", "--kept", "--keep-kept", journal=populated)
        assert both.returncode == 2
        assert "--kept and --keep-kept" in both.stderr

    def test_json_and_filters(self, populated: Path, folder: Path) -> None:
        """--json reports results; --keep-kept and --kind narrow the sweep."""
        result = cleanroom(
            "sweep", "--json", "--keep-kept", "--kind", "markers", journal=populated
        )
        report = json.loads(result.stdout)
        assert sorted(r["name"] for r in report["results"]) == [
            "failed-one",
            "leaked-one",
        ]
        assert report["removed"] == 2
        assert (folder / "kept-one").exists()
        other = cleanroom("sweep", "--json", "--kind", "tempdir", journal=populated)
        assert json.loads(other.stdout)["removed"] == 0

    def test_prefix_rules(self, journal: Path, folder: Path) -> None:
        """Prefix rules need --kind, --yes outside a terminal, and a known kind."""
        (folder / "vm-1").write_text("x", encoding="utf-8")
        (folder / "keep-me").write_text("x", encoding="utf-8")
        env = {"MARKERKINDS_DIR": str(folder), "PYTHONPATH": ""}
        no_kind = cleanroom("sweep", "--prefix", "vm-", journal=journal, **env)
        assert no_kind.returncode == 2
        assert "--prefix needs --kind" in no_kind.stderr
        unknown = cleanroom(
            "sweep",
            "--yes",
            "--prefix",
            "vm-",
            "--kind",
            "marker",
            journal=journal,
            **env,
        )
        assert unknown.returncode == 2
        assert "unknown kind 'marker'" in unknown.stderr
        args = [
            "sweep",
            "--prefix",
            "vm-",
            "--kind",
            "marker",
            "--import",
            "markerkinds",
        ]
        unconfirmed = cleanroom(*args, journal=journal, cwd=TESTS, **env)
        assert unconfirmed.returncode == 2
        assert "--yes" in unconfirmed.stderr
        assert (folder / "vm-1").exists()
        done = cleanroom(*args, "--yes", journal=journal, cwd=TESTS, **env)
        assert done.returncode == 0, done.stderr
        assert "removed       marker 'vm-1' (prefix 'vm-')" in done.stdout
        assert sorted(p.name for p in folder.iterdir()) == ["keep-me"]

    def test_terminal(self, journal: Path, folder: Path) -> None:
        """At a terminal, sweep lists the orphans, asks first, and shows progress."""
        with Journal(journal) as opened:
            dead = dead_owner("s")
            opened.add_owner(dead)
            for index in range(30):
                marker(opened, dead, folder, f"m{index:02}")
        # Only its kind: a plain sweep also counts what this machine's Docker
        # engine or cluster holds of dead sessions (another test's, say).
        declined, _ = at_terminal(["sweep", "--kind", "marker"], journal, answer="n\n")
        assert "would remove  marker 'm00'" in declined
        assert "remove 30 resources? [y/N]" in declined
        assert "nothing removed" in declined
        assert len(list(folder.iterdir())) == 30
        accepted, status = at_terminal(
            ["sweep", "--kind", "marker"], journal, answer="y\n"
        )
        assert status == 0
        assert "sweeping [" in accepted
        assert "30/30" in accepted
        assert "removed 30 orphans" in accepted
        assert list(folder.iterdir()) == []
        listing = cleanroom("list", "--all", journal=journal)
        assert "cleaned   marker 'm00' (by the sweep)" in listing.stdout

    def test_bad_arguments(self, journal: Path) -> None:
        """Bad durations and imports are usage errors."""
        bad = cleanroom("sweep", "--older-than", "soon", journal=journal)
        assert bad.returncode == 2
        assert "--older-than" in bad.stderr
        missing = cleanroom("sweep", "--import", "no_such_module_here", journal=journal)
        assert missing.returncode == 2
        assert "no_such_module_here" in missing.stderr

    def test_empty_prefix(self, journal: Path) -> None:
        """An empty --prefix is a usage error, not a traceback."""
        result = cleanroom(
            "sweep", "--prefix", "", "--kind", "path", "--yes", journal=journal
        )
        assert result.returncode == 2
        assert "--prefix: a prefix rule needs a non-empty prefix" in result.stderr
        assert "Traceback" not in result.stderr

    def test_unknown_kind(self, populated: Path) -> None:
        """An unknown --kind is an error naming the known ones, journaled included."""
        result = cleanroom("sweep", "--kind", "nope", journal=populated)
        assert result.returncode == 2
        assert "unknown kind 'nope'; known: " in result.stderr
        for known in ("'marker'", "'path'", "'process'", "'tempdir'"):
            assert known in result.stderr
        alias = cleanroom("sweep", "--dry-run", "--kind", "markers", journal=populated)
        assert alias.returncode == 0, alias.stderr

    def test_unknown_session(self, populated: Path) -> None:
        """A --session that names no session of the journal says so."""
        result = cleanroom("sweep", "--session", "zzz", journal=populated)
        assert result.returncode == 1
        assert "no session 'zzz' in the journal" in result.stderr

    def test_watch_named_by_what_goes(self, journal: Path, tmp_path: Path) -> None:
        """A watch's sweep line names the new paths under its root, not the root."""
        workspace = tmp_path / "workspace"
        workspace.mkdir()
        (workspace / "mine.txt").write_text("keep me")
        script = tmp_path / "leave.py"
        script.write_text(
            "import os, signal, sys\n"
            "from cleanroom import Scope\n"
            "scope = Scope('leave')\n"
            "scope.watch(sys.argv[1])\n"
            "open(os.path.join(sys.argv[1], 'new.txt'), 'w').close()\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n"
        )
        subprocess.run(
            [sys.executable, str(script), str(workspace)],
            env={
                **os.environ,
                "CLEANROOM_JOURNAL": str(journal),
                "CLEANROOM_REAPER": "off",
            },
            check=False,
            timeout=60,
        )
        preview = cleanroom("sweep", "--dry-run", journal=journal)
        assert f"would remove  new paths under '{workspace}'" in preview.stdout
        result = cleanroom("sweep", journal=journal)
        assert f"removed       new paths under '{workspace}'" in result.stdout
        assert [p.name for p in workspace.iterdir()] == ["mine.txt"]

    def test_failure_exit_status(self, journal: Path, folder: Path) -> None:
        """A removal that fails makes sweep exit 1 and say why."""
        with Journal(journal) as opened:
            dead = dead_owner("s")
            opened.add_owner(dead)
            opened.insert(
                dead,
                scope="s",
                kind="marker",
                module="markerkinds",
                name="bad",
                identity={"path": str(folder / "sub" / "..")},
                state="created",
            )
        (folder / "sub").mkdir()
        result = cleanroom("sweep", journal=journal)
        assert result.returncode == 1
        assert "FAILED" in result.stdout
        assert "1 failed" in result.stdout


CHILD = """
import os, signal, sys
from pathlib import Path
import markerkinds
from cleanroom import Scope
root = Path(sys.argv[1])
mode = sys.argv[2]
print(os.environ.get("CLEANROOM_SESSION"), os.environ.get("CLEANROOM_LEVEL"),
      os.environ.get("CLEANROOM_JOURNAL"), flush=True)
scope = Scope("run").__enter__()
markerkinds.make(scope, root / "made")
scope.tempdir(dir=root)
if mode == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "fail":
    scope.keep(reason="failed")
    scope.close()
    sys.exit(1)
sys.exit(int(mode))
"""


def alive(pid: int) -> bool:
    """Tell whether *pid* runs (a zombie has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def run_child(
    journal: Path, folder: Path, mode: str, *options: str
) -> subprocess.CompletedProcess[str]:
    """Run CHILD under ``cleanroom run`` with *options*; *mode* says how it ends."""
    return cleanroom(
        "run",
        *options,
        "--",
        sys.executable,
        "-c",
        CHILD,
        str(folder),
        mode,
        journal=journal,
    )


class TestRun:
    def test_exit_status_and_cleanup(self, journal: Path, folder: Path) -> None:
        """The command's exit status passes through and its leftovers are cleaned."""
        result = run_child(journal, folder, "3")
        assert result.returncode == 3, result.stderr
        assert list(folder.iterdir()) == []

    def test_killed_command(self, journal: Path, folder: Path) -> None:
        """A command killed by SIGKILL exits 137, and nothing it made remains."""
        result = run_child(journal, folder, "kill", "--level", "all")
        assert result.returncode == 137
        assert list(folder.iterdir()) == []
        assert "cleaned 2 leftovers" in result.stderr
        session, level, path = result.stdout.split()
        assert level == "all"
        assert path == str(journal)
        with Journal(journal) as opened:
            rows = [
                row
                for row in opened.rows(session=session)
                if row.scope != "cleanroom run"
            ]
        assert len(rows) == 2
        assert {row.state for row in rows} == {"cleaned"}

    def test_killed_run_ends_the_command(self, journal: Path, tmp_path: Path) -> None:
        """
        SIGKILL of run itself: its reaper ends the command's process group
        within seconds, then the rest of the session is cleaned.
        """
        script = tmp_path / "leave.py"
        script.write_text(
            textwrap.dedent(
                """
                import os, pathlib, subprocess, sys, time
                from cleanroom import Scope

                folder = pathlib.Path(sys.argv[1])
                scope = Scope("leave").__enter__()
                made = scope.tempdir(dir=folder)
                tracked = scope.popen(["sleep", "300"])
                grouped = subprocess.Popen(["sleep", "301"])
                pids = f"{os.getpid()} {tracked.pid} {grouped.pid}"
                (folder / "pids").write_text(pids)
                (folder / "ready").write_text(str(made))
                time.sleep(60)
                """
            )
        )
        command_line = [sys.executable, str(script), str(tmp_path)]
        run = subprocess.Popen(
            [sys.executable, "-m", "cleanroom", "run", "--", *command_line],
            env={**os.environ, "CLEANROOM_JOURNAL": str(journal)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ready = tmp_path / "ready"
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert run.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.02)
        command, *others = map(int, (tmp_path / "pids").read_text().split())
        made = Path(ready.read_text())
        killed = time.monotonic()
        run.kill()
        assert run.wait() == -signal.SIGKILL
        while alive(command):
            assert time.monotonic() - killed < 30, "the command still runs"
            time.sleep(0.02)
        ended = time.monotonic() - killed
        # The issue asks for 5 s at most; 10 leaves room for a loaded machine.
        assert ended <= 10, f"the command ended {ended:.1f} s after run was killed"
        while any(map(alive, others)) or made.exists():
            assert time.monotonic() - killed < 60, "the session was not cleaned"
            time.sleep(0.05)

    def test_command_process_group(self, journal: Path) -> None:
        """
        The command leads a process group of its own, which can be ended
        whole; at a terminal's foreground it stays in run's, keeping the
        terminal.
        """
        show = "import os; print('pid', os.getpid(), 'pgid', os.getpgrp())"
        args = ["run", "--", sys.executable, "-c", show]
        result = cleanroom(*args, journal=journal)
        assert result.returncode == 0, result.stderr
        _, pid, _, pgid = result.stdout.split()
        assert pid == pgid
        primary, secondary = pty.openpty()

        def take_terminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        process = subprocess.Popen(
            [sys.executable, "-m", "cleanroom", *args],
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            env={**os.environ, "CLEANROOM_JOURNAL": str(journal)},
            preexec_fn=take_terminal,  # noqa: PLW1509
        )
        os.close(secondary)
        output = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        os.close(primary)
        assert process.wait(60) == 0
        _, pid, _, pgid = output.decode().split()[:4]
        assert pid != pgid
        assert int(pgid) == process.pid

    def test_kept_resources_stay(self, journal: Path, folder: Path) -> None:
        """What a failed command kept on purpose stays, for list and the next sweep."""
        result = run_child(journal, folder, "fail")
        assert result.returncode == 1
        assert (folder / "made").exists()
        listing = cleanroom("list", journal=journal)
        assert "kept      marker 'made' — failed" in listing.stdout
        assert cleanroom("sweep", journal=journal).returncode == 0
        assert (folder / "made").exists()
        assert cleanroom("sweep", "--kept", journal=journal).returncode == 0
        assert list(folder.iterdir()) == []

    def test_policy_checked(self, journal: Path) -> None:
        """A bad policy value fails at once, naming the valid ones."""
        result = cleanroom("run", "--level", "most", "--", "true", journal=journal)
        assert result.returncode == 2
        assert "'none', 'pods', 'all'" in result.stderr

    def test_usage(self, journal: Path) -> None:
        """run needs a command, and says when it cannot be found."""
        assert cleanroom("run", journal=journal).returncode == 2
        missing = cleanroom("run", "--", "no-such-command-here", journal=journal)
        assert missing.returncode == 127
        assert "command not found" in missing.stderr

    def test_fresh_session_each_time(self, journal: Path, folder: Path) -> None:
        """Each run is a session of its own, named in the child's environment."""
        sessions = set()
        for _ in range(2):
            sessions.add(run_child(journal, folder, "0").stdout.split()[0])
        assert len(sessions) == 2
        assert "None" not in sessions

    def test_forwarding_without_sigtimedwait(self) -> None:
        """Where sigtimedwait() is missing, handlers forward signals instead."""
        code = (
            "import os, sys\n"
            "from cleanroom._cli._run import _supervise_handlers\n"
            "print('ready', flush=True)\n"
            "code, result = _supervise_handlers(\n"
            "    ['sleep', '60'], dict(os.environ), lambda: 'cleaned')\n"
            "print(code, result, flush=True)\n"
        )
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        deadline = time.monotonic() + 30
        while not children.read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
        assert out.split() == [str(-signal.SIGTERM), "cleaned"]
        assert process.returncode == 0
