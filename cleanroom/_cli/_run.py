"""
``cleanroom run``: run a command under a fresh session, then clean what the
session left behind however the command ended.
"""

# A command-line tool prints.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from cleanroom._core._session import SESSION_ENV, TOKEN_ENV, new_id
from cleanroom._crash._journal import JOURNAL_ENV, open_existing

from ._args import add_journal, wrap

if TYPE_CHECKING:
    from pathlib import Path

    from cleanroom._crash._sweep import SweepReport

T = TypeVar("T")

# si_code of a signal the kernel sent, as a terminal does to its whole
# foreground process group on Ctrl+C; Python does not name it.
_SI_KERNEL: Final = 0x80

_FORWARDED: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_TERMINAL: Final = frozenset({signal.SIGINT, signal.SIGQUIT, signal.SIGHUP})

#: Seconds ``run`` waits, at most, for the session's reapers to finish.
CLEANUP_WAIT: Final = 120.0

_POLICY_OPTIONS: Final = (
    ("level", "LEVEL", "which kinds are cleaned: none, pods, all or a custom level"),
    ("on_failure", "{keep,clean}", "keep (default) or clean a failed test's resources"),
    ("timeout", "SECONDS", "how long one cleanup may take ('none': no bound)"),
    ("wait_after", "SECONDS", "seconds to wait after cleaning"),
    ("concurrency", "N", "how many cleanups of one kind run at once"),
    ("on_error", "{raise,warn}", "raise cleanup failures, or only warn"),
)


def add_run_parser(commands: Any) -> None:
    """Add the ``run`` command to the ``cleanroom`` parser's *commands*."""
    run = commands.add_parser(
        "run",
        help="run a command under a session, then clean what it left behind",
        usage="cleanroom run [options] -- COMMAND [ARG ...]",
        description=wrap(
            "Run COMMAND under a fresh session (CLEANROOM_SESSION is exported, "
            "with the policy options below as CLEANROOM_* variables), then clean "
            "whatever that session left behind, however the command ended: a "
            "non-zero exit, Ctrl+C, SIGTERM or even SIGKILL. SIGINT, SIGTERM, "
            "SIGHUP and SIGQUIT sent to this command are forwarded (a terminal's "
            "Ctrl+C reaches the command directly). Kept resources stay, for "
            "`cleanroom list` and the next sweep. The exit status is the "
            "command's, or 128 + the signal's number when a signal ended it "
            "(130 for SIGINT, 143 for SIGTERM)."
        ),
        epilog="example:\n  cleanroom run --level pods -- pytest -x tests/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_journal(run)
    for name, metavar, text in _POLICY_OPTIONS:
        run.add_argument(
            f"--{name.replace('_', '-')}", dest=name, metavar=metavar, help=text
        )
    run.add_argument(
        "--force",
        action="store_const",
        const="true",
        default=None,
        help="clean even a failed test's resources",
    )
    run.add_argument(
        "--no-wait",
        dest="wait",
        action="store_const",
        const="false",
        default=None,
        help="do not wait for backends to confirm deletions",
    )
    run.add_argument(
        "command", nargs=argparse.REMAINDER, help="the command to run, after --"
    )


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def run_command(
    args: argparse.Namespace, parser: argparse.ArgumentParser, journal: Path | None
) -> int:
    """
    Run ``cleanroom run``; return the command's exit status.

    .. versionadded:: 0.1.0
    """
    from cleanroom._core._policy import POLICY_FIELDS, Policy
    from cleanroom.exceptions import PolicyError

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error(
            "run needs a command: cleanroom run [options] -- COMMAND [ARG ...]"
        )
    settings = {
        name: getattr(args, name)
        for name in POLICY_FIELDS
        if getattr(args, name, None) is not None
    }
    try:
        Policy.resolve(settings)
    except PolicyError as exc:
        parser.error(str(exc))
    session = new_id()
    env = dict(os.environ)
    env[SESSION_ENV] = session
    env.pop(TOKEN_ENV, None)
    if journal is not None:
        env[JOURNAL_ENV] = str(journal)
    else:
        print(
            "cleanroom: journaling is off; what a killed command leaves behind "
            "cannot be found",
            file=sys.stderr,
        )
    for name, value in settings.items():
        env[f"CLEANROOM_{name.upper()}"] = str(value)

    try:
        returncode, report = _supervise(
            command, env, lambda: clean_session(journal, session)
        )
    except FileNotFoundError:
        print(f"cleanroom: command not found: {command[0]}", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"cleanroom: cannot run {command[0]}: permission denied", file=sys.stderr)
        return 126
    status = _exit_status(returncode)
    _summarize(report, session, status)
    return status


def _supervise(
    command: list[str], env: dict[str, str], cleanup: Callable[[], T]
) -> tuple[int, T]:
    """
    Run *command*, forwarding signals to it, then *cleanup*; return the
    command's return code and what *cleanup* returned.
    """
    if hasattr(signal, "sigtimedwait"):
        return _supervise_blocked(command, env, cleanup)
    return _supervise_handlers(command, env, cleanup)


def _supervise_blocked(
    command: list[str], env: dict[str, str], cleanup: Callable[[], T]
) -> tuple[int, T]:
    """Block the signals and take them with sigtimedwait(), which says who sent them."""
    watched = {*_FORWARDED, signal.SIGCHLD}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    try:
        child = subprocess.Popen(
            command,
            env=env,
            # The child starts with the signal mask this process had.
            preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, old_mask),  # noqa: PLW1509
        )
        returncode = _wait(child, watched)
        # Signals stay blocked while the session is cleaned: a second Ctrl+C
        # does not abort the cleanup.
        result = cleanup()
        while signal.sigtimedwait(watched, 0) is not None:
            pass
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return returncode, result


def _wait(child: subprocess.Popen[Any], watched: set[signal.Signals]) -> int:
    """Wait for *child*, forwarding the signals this process receives."""
    while True:
        returncode = child.poll()
        if returncode is not None:
            return returncode
        info = signal.sigtimedwait(watched, 0.5)
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        if info.si_signo in _TERMINAL and info.si_code == _SI_KERNEL:
            # The terminal signalled its whole foreground group: the child
            # has it already.
            continue
        if child.poll() is None:
            child.send_signal(info.si_signo)


def _supervise_handlers(
    command: list[str], env: dict[str, str], cleanup: Callable[[], T]
) -> tuple[int, T]:
    """Forward signals from handlers, where sigtimedwait() is missing (macOS)."""
    children: list[subprocess.Popen[Any]] = []
    early: list[int] = []

    def forward(signum: int, _: object) -> None:
        if signum in _TERMINAL and _foreground():
            # Most likely the terminal, which signalled the child too.
            return
        if not children:
            early.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        child = subprocess.Popen(command, env=env)
        children.append(child)
        for signum in early:
            child.send_signal(signum)
        returncode = child.wait()
        result = cleanup()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return returncode, result


def _foreground() -> bool:
    """Tell whether this process is in its terminal's foreground process group."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def clean_session(
    journal_path: Path | None, session: str, *, wait: float = CLEANUP_WAIT
) -> SweepReport:
    """
    Clean what *session* left behind: what dead owners left (kept resources
    stay), after waiting up to *wait* seconds for the session's reapers.

    .. versionadded:: 0.1.0
    """
    from cleanroom._crash._sweep import SweepReport, SweepResult, sweep

    report = SweepReport(str(journal_path) if journal_path is not None else None)
    with open_existing(journal_path) as journal:
        if journal is None:
            return report
        deadline = time.monotonic() + wait
        delay = 0.01
        while True:
            done = sweep(journal, session=session, include_kept=False)
            report.results.extend(done.results)
            pending = [
                row
                for row in journal.rows(
                    session=session, states=("intent", "created", "sweeping")
                )
                if not row.owner_alive()
            ]
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        reaped = journal.rows(session=session, states=("cleaned", "failed", "kept"))
        swept = {result.row for result in report.results}
        for row in reaped:
            if row.id in swept or row.actor != "reaper":
                continue
            action = {"cleaned": "removed"}.get(row.state, row.state)
            report.results.append(SweepResult.of(row, action, row.reason))
    return report


def _summarize(report: SweepReport, session: str, status: int) -> None:
    removed = report.count("removed")
    failed = report.count("failed")
    kept = report.count("kept")
    if not (removed or failed or kept):
        return
    parts = []
    if removed:
        parts.append(f"cleaned {removed} leftover{'s' if removed != 1 else ''}")
    if kept:
        parts.append(f"kept {kept}")
    if failed:
        parts.append(f"failed to clean {failed}")
    print(
        f"cleanroom: the command exited with {status}; {', '.join(parts)} of session "
        f"{session[:12]} (see `cleanroom list --session {session[:12]}`)",
        file=sys.stderr,
    )
    for result in report.results:
        if result.action == "failed":
            print(
                f"  failed: {result.kind} {result.name!r}: {result.reason}",
                file=sys.stderr,
            )
