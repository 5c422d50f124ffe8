"""
Record kinds that free their runtime at level ``pods``: a stand-in for a
Kubernetes Job, a folder (the record) whose worker process is its runtime.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from cleanroom import (
    BaseKind,
    FreesRuntime,
    Resource,
    Scope,
    State,
    register_kind,
    unregister_kind,
)
from cleanroom._core._session import pid_alive, process_start_time


@attrs.define
class JobKind(BaseKind):
    """A job: its folder is the record, the process named in it its runtime."""

    def delete(self, resource: Resource, *, wait: bool) -> None:
        self.free_runtime(resource, wait=wait)
        folder = Path(resource.identity["folder"])
        (folder / "pid").unlink(missing_ok=True)
        if folder.exists():
            folder.rmdir()

    def free_runtime(self, resource: Resource, *, wait: bool) -> None:
        pid_file = Path(resource.identity["folder"]) / "pid"
        if not pid_file.exists():
            return
        pid, start = map(int, pid_file.read_text().split())
        if pid_alive(pid, start):
            os.kill(pid, signal.SIGKILL)
        pid_file.write_text("freed")

    def exists(self, resource: Resource) -> bool:
        return Path(resource.identity["folder"]).exists()


@pytest.fixture
def jobs() -> Iterator[JobKind]:
    kind = register_kind(JobKind("testjob", category="record"))
    try:
        yield kind
    finally:
        unregister_kind(kind)


def start_job(scope: Scope, folder: Path) -> subprocess.Popen[bytes]:
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    folder.mkdir()
    (folder / "pid").write_text(f"{worker.pid} {process_start_time(worker.pid)}")
    scope.track("testjob", folder.name, folder=str(folder))
    return worker


class TestFreesRuntime:
    def test_protocol(self, jobs: JobKind) -> None:
        """A kind with free_runtime() has the capability."""
        assert isinstance(jobs, FreesRuntime)

    @pytest.mark.parametrize(
        ("level", "record", "runtime"),
        [("pods", True, False), ("all", False, False), ("none", True, True)],
    )
    def test_levels(
        self, jobs: JobKind, tmp_path: Path, level: str, record: bool, runtime: bool
    ) -> None:
        """Level pods ends the runtime and keeps the record, reported as kept."""
        with Scope(level=level) as scope:
            worker = start_job(scope, tmp_path / "job-1")
        try:
            assert (tmp_path / "job-1").exists() is record
            if runtime:
                assert worker.poll() is None
            else:
                # SIGKILL was sent; the process is gone once it is reaped.
                assert worker.wait(timeout=10) == -signal.SIGKILL
        finally:
            worker.kill()
            worker.wait()
        if level == "pods":
            (disposition,) = scope.dispositions
            assert disposition.state is State.KEPT
            assert "runtime was freed" in (disposition.reason or "")

    @pytest.mark.anyio
    async def test_async(self, jobs: JobKind, tmp_path: Path) -> None:
        """An async scope frees the runtime too, and never bulk-deletes the record."""
        async with Scope(level="pods") as scope:
            workers = [start_job(scope, tmp_path / f"job-{i}") for i in range(3)]
        for worker in workers:
            assert worker.wait(timeout=10) == -signal.SIGKILL
        names = sorted(p.name for p in tmp_path.iterdir())  # noqa: ASYNC240
        assert names == ["job-0", "job-1", "job-2"]
        assert {d.state for d in scope.dispositions} == {State.KEPT}
