"""
Tests of sessions and owners: ids, process start times and liveness.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cleanroom._core import new_id
from cleanroom._core._session import (
    STALE_AFTER,
    TOKEN_ENV,
    current_owner,
    hostname,
    owner_alive,
    pid_alive,
    pids_with_token,
    process_start_time,
    session_id,
)

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="owners are tracked through /proc"
)


def stat_start(pid: int) -> int:
    data = Path(f"/proc/{pid}/stat").read_bytes()
    return int(data[data.rfind(b")") + 2 :].split()[19])


def dead_pid() -> tuple[int, int]:
    """Return the pid and start time of a process that has ended and was reaped."""
    process = subprocess.Popen(["sleep", "0"])
    start = stat_start(process.pid)
    process.wait()
    return process.pid, start


class TestSession:
    def test_session_from_environment(self) -> None:
        """A process joins the session named by CLEANROOM_SESSION."""
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "from cleanroom._core._session import session_id; print(session_id())",
            ],
            env={**os.environ, "CLEANROOM_SESSION": "run-42"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip() == "run-42"

    def test_new_session_without_environment(self) -> None:
        """Without CLEANROOM_SESSION each process has a new random session."""
        env = {k: v for k, v in os.environ.items() if k != "CLEANROOM_SESSION"}
        code = (
            "from cleanroom._core._session import session_id\n"
            "print(session_id(), session_id())"
        )
        ids = [
            subprocess.run(
                [sys.executable, "-c", code],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            for _ in range(2)
        ]
        assert ids[0][0] == ids[0][1]
        assert ids[0][0] != ids[1][0]
        assert len(ids[0][0]) == 32

    def test_current_owner(self) -> None:
        """This process as an owner: its session, host, pid and start time."""
        owner = current_owner()
        assert owner.session == session_id()
        assert owner.pid == os.getpid()
        assert owner.host == hostname()
        assert owner.start_time == stat_start(os.getpid())
        assert current_owner() is owner
        assert owner.claim == f"{owner.host}:{owner.pid}:{owner.start_time}"

    def test_forked_child_is_another_owner(self) -> None:
        """A forked child is an owner of its own within the same session."""
        parent = current_owner()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            child = current_owner()
            os.write(write, f"{child.id} {child.pid} {child.session}".encode())
            os._exit(0)
        os.close(write)
        data = os.read(read, 200).decode().split()
        os.close(read)
        os.waitpid(pid, 0)
        assert data[0] != parent.id
        assert int(data[1]) == pid
        assert data[2] == parent.session


class TestLiveness:
    def test_start_time_of_missing_process(self) -> None:
        """A pid with no process has no start time."""
        pid, _ = dead_pid()
        assert process_start_time(pid) is None

    def test_alive(self) -> None:
        """A running process with its start time is alive."""
        assert pid_alive(os.getpid(), stat_start(os.getpid()))
        assert pid_alive(os.getpid())

    def test_reused_pid(self) -> None:
        """Another start time means the pid now names another process."""
        assert not pid_alive(os.getpid(), stat_start(os.getpid()) - 1)

    def test_dead(self) -> None:
        """An ended, reaped process is gone; so are pids that cannot exist."""
        pid, start = dead_pid()
        assert not pid_alive(pid, start)
        assert not pid_alive(0)
        assert not pid_alive(-5)

    def test_zombie_is_dead(self) -> None:
        """An ended process that nobody reaped yet counts as gone."""
        process = subprocess.Popen(["sleep", "0"])
        start = stat_start(process.pid)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{process.pid}/stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        try:
            assert not pid_alive(process.pid, start)
        finally:
            process.wait()

    def test_other_host_by_heartbeat(self) -> None:
        """On another host an owner lives while its heartbeat is fresh."""
        now = time.time()
        assert owner_alive("elsewhere.example", 1, None, now - 1, now=now)
        assert not owner_alive(
            "elsewhere.example", 1, None, now - STALE_AFTER - 1, now=now
        )
        assert not owner_alive("elsewhere.example", 1, None, None, now=now)

    def test_same_host_ignores_heartbeat(self) -> None:
        """On this host only the pid and its start time count."""
        pid, start = dead_pid()
        assert not owner_alive(hostname(), pid, start, time.time())
        assert owner_alive(hostname(), os.getpid(), stat_start(os.getpid()), 0.0)


class TestToken:
    def test_find_processes_by_token(self) -> None:
        """Processes whose environment holds the token are found; others are not."""
        token = new_id()
        tagged = subprocess.Popen(["sleep", "30"], env={**os.environ, TOKEN_ENV: token})
        other = subprocess.Popen(
            ["sleep", "30"], env={**os.environ, TOKEN_ENV: token + "x"}
        )
        try:
            assert pids_with_token(token) == [tagged.pid]
        finally:
            for process in (tagged, other):
                process.kill()
                process.wait()
        assert pids_with_token(token) == []
