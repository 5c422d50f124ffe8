"""
Child processes, direct or not, known by pid and start time (pids are
reused), reported with their command line. Read from ``/proc`` on Linux;
elsewhere through psutil.
"""

from __future__ import annotations

import os
import time

from ._records import Allow, Leak

Baseline = dict[tuple[int, str], str]


def _proc_children(pid: int) -> list[int] | None:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")  # noqa: PTH208
    except OSError:
        return None
    found: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as file:  # noqa: PTH123
                found.extend(int(part) for part in file.read().split())
        except FileNotFoundError:
            # A kernel without CONFIG_PROC_CHILDREN, or the thread just ended.
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):  # noqa: PTH110
                continue
            return None
        except OSError:
            continue
    return found


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """The start time and state of *pid*, from ``/proc/PID/stat``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:  # noqa: PTH123
            text = file.read().decode(errors="replace")
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[19], fields[0]


def _proc_command(pid: int) -> str:
    # A child that has just been started may not show its arguments yet:
    # Popen returns once exec is past its point of no return, a moment before
    # the kernel records them.
    for _ in range(100):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:  # noqa: PTH123
                raw = file.read()
        except OSError:
            return "?"
        if raw:
            parts = raw.rstrip(b"\0").split(b"\0")
            return " ".join(part.decode(errors="replace") for part in parts)
        stat = _proc_stat(pid)
        if stat is None or stat[1] in {"Z", "X"}:
            break
        time.sleep(0.001)
    return "?"


_use_proc: bool | None = None


def available() -> str | None:
    """``None`` when child processes can be listed, else why not."""
    global _use_proc  # noqa: PLW0603
    if _use_proc is None:
        _use_proc = _proc_children(os.getpid()) is not None
    if _use_proc:
        return None
    try:
        import psutil  # noqa: F401
    except ImportError:
        return "listing child processes here needs psutil"
    return None


def take() -> Baseline:
    """Return each descendant process, by (pid, start time), with its state."""
    if _use_proc is None:
        available()
    found: Baseline = {}
    if _use_proc:
        todo = [os.getpid()]
        while todo:
            for child in _proc_children(todo.pop()) or ():
                stat = _proc_stat(child)
                if stat is not None:
                    found[child, stat[0]] = stat[1]
                    todo.append(child)
        return found
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            found[child.pid, str(child.create_time())] = child.status()
        except psutil.Error:
            continue
    return found


def command(pid: int) -> str:
    """The command line of *pid*, its arguments joined by spaces."""
    if _use_proc:
        return _proc_command(pid)
    import psutil

    try:
        return " ".join(psutil.Process(pid).cmdline()) or "?"
    except psutil.Error:
        return "?"


def new_since(
    before: Baseline, allow: Allow, own: set[int]
) -> list[tuple[object, Leak]]:
    """Return the child processes alive now that *before* did not hold, as leaks."""
    leaks: list[tuple[object, Leak]] = []
    for (pid, started), state in take().items():
        if (pid, started) in before or pid in own:
            continue
        cmd = command(pid)
        if allow.process(cmd):
            continue
        zombie = state in {"Z", "zombie"}
        summary = (
            f"process {pid} exited but was never waited for: {cmd}"
            if zombie
            else f"process {pid} still running: {cmd}"
        )
        leaks.append(((pid, started), Leak("process", summary, (f"state {state}",))))
    return leaks
