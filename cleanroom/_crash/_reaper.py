"""
The reaper: one watchdog process per owner process, cleaning after it when it
dies without closing its session (SIGKILL, an OOM kill, a crash).

The owner starts its reaper with the first journaled resource and keeps the
write end of a pipe whose read end is the reaper's standard input. When the
owner dies, the kernel closes that end and the reaper reads end-of-file; it
then waits until the owner's pid is really gone, takes the owner's rows that
may still exist and cleans them by the policy recorded in each (kept rows
stay kept), records what it did and exits. An owner that closed its session
normally has nothing left in the journal, so its reaper exits doing nothing.

The reaper runs in a session of its own (a terminal's Ctrl+C or hang-up does
not reach it), ignores SIGINT, SIGHUP and SIGTERM, and refreshes its owner's
heartbeat for hosts that share the journal.

It starts in the time of a bare interpreter: without ``site`` (``-S``),
without cleanroom's package (which needs attrs and anyio), and importing
only what watching needs; a small bootstrap loads this module. The journal,
``site`` and the package are imported when there is something to do.
"""

from __future__ import annotations

import os
import select
import sys
import time

# Not typing.TYPE_CHECKING: importing typing would slow the reaper's start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from importlib.machinery import ModuleSpec
    from typing import Any, Final
else:
    # The C module: the signal module's enums would slow the start too.
    import _signal

#: Seconds between heartbeats; as :data:`cleanroom._core._session.HEARTBEAT_INTERVAL`.
HEARTBEAT_INTERVAL: Final = 15.0

#: The variable that turns reapers off (``off``); for debugging only.
REAPER_ENV: Final = "CLEANROOM_REAPER"

#: The variable naming a file the reaper logs to; by default it logs nowhere.
REAPER_LOG_ENV: Final = "CLEANROOM_REAPER_LOG"

# Makes cleanroom's package object without running its __init__, so that the
# reaper starts in the time of a bare interpreter; main() runs the __init__
# later, when it has something to clean.
BOOTSTRAP: Final = """\
import sys
from importlib.machinery import ModuleSpec, SourceFileLoader
d = sys.argv[1]
f = d + "/__init__.py"
s = ModuleSpec("cleanroom", SourceFileLoader("cleanroom", f), origin=f, is_package=True)
s.submodule_search_locations = [d]
s.has_location = True
m = type(sys)("cleanroom")
m.__spec__, m.__loader__, m.__file__, m.__path__ = s, s.loader, f, [d]
m.__package__ = "cleanroom"
sys.modules["cleanroom"] = m
from cleanroom._crash import _reaper
sys.exit(_reaper.main(sys.argv[2:], s))
"""


def enabled() -> bool:
    """Tell whether reapers are started (``CLEANROOM_REAPER=off`` turns them off)."""
    return os.environ.get(REAPER_ENV, "").strip().lower() not in {
        "off",
        "0",
        "no",
        "false",
    }


def command(journal: str, owner: Any) -> list[str]:
    """
    Return the command line that starts the reaper of *owner*.

    Args:
        journal: The journal file.
        owner: The owner (a :class:`~cleanroom._core._session.Owner`).

    .. versionadded:: 0.1.0
    """
    # cleanroom's package folder: this module lives in its _crash subpackage.
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # noqa: PTH100, PTH120
    cwd = os.getcwd()  # noqa: PTH109
    search = os.pathsep.join(
        os.path.join(cwd, entry) if entry else cwd  # noqa: PTH118
        for entry in sys.path
    )
    return [
        sys.executable,
        "-S",
        "-c",
        BOOTSTRAP,
        package,
        journal,
        owner.id,
        str(owner.pid),
        str(owner.start_time or 0),
        search,
    ]


def _log(level: str, message: str, *args: object) -> None:
    if os.environ.get(REAPER_LOG_ENV, "").strip():
        import logging

        getattr(logging.getLogger("cleanroom.reaper"), level)(message, *args)


def _ignore_signals() -> None:
    names = ("SIGINT", "SIGHUP", "SIGTERM", "SIGQUIT", "SIGTSTP", "SIGTTIN", "SIGTTOU")
    for name in names:
        number = getattr(_signal, name, None)
        if number is not None:
            _signal.signal(number, _signal.SIG_IGN)


#: What an owner writes to its reaper's pipe before closing it, when it stops
#: journaling while it lives on: the reaper then exits without cleaning.
BYE: Final = b"bye\n"


def _watch(pid: int, start_time: int | None, beat: Any) -> bool:
    """
    Return once process *pid* is gone (``True``) or said goodbye (``False``),
    calling *beat* every heartbeat interval.
    """
    next_beat = time.monotonic() + HEARTBEAT_INTERVAL
    received = b""
    pid_alive: Any = None
    while True:
        timeout = max(0.0, next_beat - time.monotonic())
        ready, _, _ = select.select([0], [], [], timeout)
        if ready:
            data = os.read(0, 512)
            if not data:
                break
            received = (received + data)[-16:]
            if BYE in received:
                return False
            continue
        if pid_alive is None:
            from cleanroom._core._session import pid_alive
        if not pid_alive(pid, start_time):
            return True
        beat()
        next_beat = time.monotonic() + HEARTBEAT_INTERVAL
    # End-of-file comes as the owner exits; wait until it has really gone.
    from cleanroom._core._session import pid_alive

    delay = 0.005
    while pid_alive(pid, start_time):
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    return True


def main(argv: list[str], spec: ModuleSpec | None = None) -> int:
    """
    Run a reaper: watch the owner named on the command line, then clean.

    Args:
        argv: The journal path, the owner's id, pid and start time, and the
            owner's module search path.
        spec: The spec of cleanroom's package, not yet executed, when started
            by the bootstrap.

    Returns:
        The exit status: 0, or 1 when something could not be cleaned.

    .. versionadded:: 0.1.0
    """
    _ignore_signals()
    journal_path, owner_id, pid_text, start_text, search = argv
    if os.environ.get(REAPER_LOG_ENV, "").strip():
        import logging

        logging.basicConfig(
            level=logging.INFO,
            format=f"%(asctime)s reaper[{os.getpid()}] %(levelname)s %(message)s",
        )
    pid = int(pid_text)
    start_time = int(start_text) or None
    journal: Any = None

    def beat() -> None:
        nonlocal journal
        try:
            if journal is None:
                from ._journal import Journal

                journal = Journal(journal_path, create=False)
            journal.heartbeat(owner_id)
        except Exception as exc:
            _log("warning", "cannot record the heartbeat of %s: %s", owner_id, exc)

    if not _watch(pid, start_time, beat):
        _log("info", "owner %s stopped journaling; nothing to do", owner_id)
        return 0
    died = time.time()
    _log("info", "owner %s (pid %d) is gone", owner_id, pid)
    return reap(journal_path, owner_id, died=died, spec=spec, search=search)


def reap(
    journal_path: str,
    owner_id: str,
    *,
    died: float,
    spec: ModuleSpec | None = None,
    search: str = "",
) -> int:
    """
    Clean what the dead owner *owner_id* left in the journal, by policy.

    Returns:
        0 when everything was cleaned or kept, 1 otherwise.

    .. versionadded:: 0.1.0
    """
    from cleanroom._core._session import current_owner

    from ._journal import Journal, JournalUnavailable

    try:
        journal = Journal(journal_path, create=False)
    except (FileNotFoundError, JournalUnavailable) as exc:
        _log("warning", "no journal to reap from: %s", exc)
        return 0
    with journal:
        claimant = f"reaper:{current_owner().claim}"
        rows = journal.claim(
            claimant,
            list,
            owner=owner_id,
            states=("intent", "created", "failed"),
        )
        status = 0
        if rows:
            _load_package(spec, search)
            from ._sweep import clean_rows

            owner = journal.owner(owner_id)
            # The owner's policy timeout; None there means no limit.
            timeout = owner.policy.get("timeout", 30.0) if owner is not None else 30.0
            results = clean_rows(
                journal,
                rows,
                actor="reaper",
                honor_keep=True,
                died=died,
                timeout=None if timeout is None else float(timeout),
            )
            status = int(any(result.action == "failed" for result in results))
            _log(
                "info",
                "reaped %d resources of %s: %s",
                len(results),
                owner_id,
                ", ".join(f"{r.kind} {r.name!r} {r.action}" for r in results),
            )
        journal.close_owner(owner_id, when=died)
    return status


def _load_package(spec: ModuleSpec | None, search: str) -> None:
    """Finish importing cleanroom's package, and see the owner's modules."""
    if "site" not in sys.modules:
        # Started with -S: .pth files may install import hooks the owner has.
        import site

        site.main()
    for entry in search.split(os.pathsep):
        if entry and entry not in sys.path:
            sys.path.append(entry)
    package = sys.modules.get("cleanroom")
    if (
        spec is not None
        and spec.loader is not None
        and package is not None
        and not hasattr(package, "Scope")
    ):
        spec.loader.exec_module(package)


if __name__ == "__main__":  # pragma: no cover - started through BOOTSTRAP
    sys.exit(main(sys.argv[1:]))
