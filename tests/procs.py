"""
Helpers of the crash-safety tests that look at processes.

``tests/`` is on ``sys.path`` (``pythonpath`` in ``pyproject.toml``), so test
modules import this as ``procs``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cleanroom._core import new_id
from cleanroom._core._session import Owner, hostname, process_start_time


def running(tag: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line holds *tag*."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if tag.encode() in cmdline and state not in {"Z", "X"}:
            found.append(int(entry.name))
    return found


def dead_owner(session: str = "old") -> Owner:
    """An owner whose process has ended."""
    process = subprocess.Popen(["sleep", "0"])
    start = process_start_time(process.pid)
    process.wait()
    return Owner(new_id(), session, hostname(), process.pid, start)
