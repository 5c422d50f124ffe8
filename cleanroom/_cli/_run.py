"""
``cleanroom run``: run a command under a fresh session, then clean what the
session left behind however the command ended.
"""

# A command-line tool prints.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar

from cleanroom._core import new_id
from cleanroom._core._session import SESSION_ENV, TOKEN_ENV
from cleanroom._crash._location import JOURNAL_ENV

from ._args import add_journal, add_policy_options, wrap
from ._leftovers import RUN_SESSIONS, clean_session

if TYPE_CHECKING:
    from pathlib import Path

    from cleanroom._crash._sweep import SweepReport

T = TypeVar("T")

# si_code of a signal the kernel sent, as a terminal does to its whole
# foreground process group on Ctrl+C; Python does not name it.
_SI_KERNEL: Final = 0x80

_FORWARDED: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_TERMINAL: Final = frozenset({signal.SIGINT, signal.SIGQUIT, signal.SIGHUP})

#: Seconds the command's process group gets between SIGTERM and SIGKILL when
#: ``run`` was killed and its reaper ends the command.
COMMAND_GRACE: Final = 2.0


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
            "Ctrl+C reaches the command directly). Should run itself be killed, "
            "even with SIGKILL, its reaper ends the command's process group "
            "within seconds and then cleans the session. The command leads a "
            "process group of its own, except in a terminal's foreground, where "
            "it stays in run's to keep the terminal. Kept resources stay, for "
            "`cleanroom list` and the next sweep. The exit status is the "
            "command's, or 128 + the signal's number when a signal ended it "
            "(130 for SIGINT, 143 for SIGTERM)."
        ),
        epilog="example:\n  cleanroom run --level pods -- pytest -x tests/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_journal(run)
    add_policy_options(run)
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
    from cleanroom._core._policy import Policy
    from cleanroom._core._settings import POLICY_FIELDS
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
    # This process joins the session, and journals where the command does:
    # should it be killed, its reaper ends the command and cleans the rest.
    os.environ[SESSION_ENV] = session
    if journal is not None:
        os.environ[JOURNAL_ENV] = str(journal)

    try:
        with _command_scope(journal, session) as start:
            returncode, report = _supervise(
                command, env, lambda: clean_session(journal, session), start=start
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


Start = Callable[..., "subprocess.Popen[Any]"]


@contextlib.contextmanager
def _command_scope(journal: Path | None, session: str) -> Iterator[Start]:
    """
    Hold the scope that journals the command and the session's leftovers;
    yield what starts the command in it.

    The command runs in a process group of its own, which the scope (or,
    when this process is killed, its reaper) ends: SIGTERM, a short grace,
    SIGKILL. Only when this process is in its terminal's foreground does the
    command stay in its group, so that it keeps the terminal (reading from
    it, Ctrl+C, Ctrl+Z); then the command alone is ended.
    """
    from cleanroom._core._policy import Policy
    from cleanroom._core._scope import Scope

    policy = Policy(level="all", force=True, on_failure="clean", timeout=None)
    with Scope("cleanroom run", policy=policy) as scope:
        leftovers = None
        if journal is not None:
            leftovers = scope.track(
                RUN_SESSIONS, session, journal=str(journal), session=session
            )

        def start(args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
            if _foreground():
                kwargs["start_new_session"] = False
            else:
                kwargs["process_group"] = 0
            if not os.path.isdir("/proc/self"):  # noqa: PTH112
                # The process kind needs /proc (Linux): run the command
                # untracked, as a killed run's reaper could not end it.
                return subprocess.Popen(args, **kwargs)
            return scope.popen(args, grace=COMMAND_GRACE, **kwargs)

        yield start
        if leftovers is not None:
            # Swept already, by the cleanup that _supervise ran.
            scope.forget(leftovers)


def _supervise(
    command: list[str],
    env: dict[str, str],
    cleanup: Callable[[], T],
    *,
    start: Start = subprocess.Popen,
) -> tuple[int, T]:
    """
    Run *command* (started by *start*, :class:`subprocess.Popen` by
    default), forwarding signals to it, then *cleanup*; return the command's
    return code and what *cleanup* returned.
    """
    if hasattr(signal, "sigtimedwait"):
        return _supervise_blocked(command, env, cleanup, start)
    return _supervise_handlers(command, env, cleanup, start)


def _supervise_blocked(
    command: list[str],
    env: dict[str, str],
    cleanup: Callable[[], T],
    start: Start = subprocess.Popen,
) -> tuple[int, T]:
    """Block the signals and take them with sigtimedwait(), which says who sent them."""
    watched = {*_FORWARDED, signal.SIGCHLD}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    try:
        child = start(
            command,
            env=env,
            # The child starts with the signal mask this process had.
            preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, old_mask),
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
    command: list[str],
    env: dict[str, str],
    cleanup: Callable[[], T],
    start: Start = subprocess.Popen,
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
        child = start(command, env=env)
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
