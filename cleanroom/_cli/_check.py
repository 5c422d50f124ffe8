"""
``cleanroom check``: is cleanroom usable here?

It reports the version, asks every installed kind that can tell (the
:class:`~cleanroom.Probes` capability) whether its backend is reachable, runs
a live create-then-clean round trip for each reachable one, reports the
journal's location and health and how many orphans a sweep would remove, and
ends with a verdict. It names no backend: the kinds' probes contact only what
is local (127.0.0.1 and unix sockets).
"""

# A command-line tool prints.
# ruff: noqa: T201

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from cleanroom._crash._journal import JOURNAL_ENV, JournalUnavailable, open_existing
from cleanroom._version import __version__

if TYPE_CHECKING:
    from cleanroom._core._capabilities import Probes
    from cleanroom._core._scope import Scope


@attrs.define
class Line:
    """One finding of the check."""

    name: str
    ok: bool | None
    detail: str
    seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return plain data for ``--json``."""
        return attrs.asdict(self)


# -- backends -----------------------------------------------------------------------


# -- round trips ----------------------------------------------------------------------


def _scope() -> Scope:
    from cleanroom._core._scope import Scope

    # Independent of the environment's policy: the check must clean.
    return Scope(
        "cleanroom-check", level="all", force=True, on_failure="clean", timeout=30
    )


def _timed(name: str, trip: Callable[[], str]) -> Line:
    began = time.perf_counter()
    try:
        detail = trip()
    except Exception as exc:
        return Line(
            name, False, f"{type(exc).__name__}: {exc}", time.perf_counter() - began
        )
    return Line(name, True, detail, time.perf_counter() - began)


def _probing() -> list[tuple[str, Probes]]:
    """
    Return the kinds that probe their backend, each with the name of its line:
    the backend's (its entry point's) name, and the kind's name after a colon
    when a backend has several.
    """
    from cleanroom._core import _discovery
    from cleanroom._core._capabilities import Probes
    from cleanroom._core._resource import kind_origin, registered_kinds

    _discovery.load_all()
    families = {module.__name__: name for name, module in _discovery.loaded().items()}
    found = [
        (families.get(kind_origin(kind) or "", kind.name), kind.name, kind)
        for kind in registered_kinds()
        if isinstance(kind, Probes)
    ]
    order = list(_discovery.families())
    found.sort(key=lambda item: order.index(item[0]) if item[0] in order else 999)
    counts = Counter(family for family, _, _ in found)
    return [
        (family if counts[family] == 1 else f"{family}:{name}", kind)
        for family, name, kind in found
    ]


def _probe(name: str, kind: Probes) -> Line:
    from cleanroom.exceptions import BackendUnavailableError

    try:
        return Line(name, True, kind.probe())
    except BackendUnavailableError as exc:
        return Line(name, None, str(exc))
    except Exception as exc:
        return Line(name, False, f"{type(exc).__name__}: {exc}")


def _roundtrip(kind: Probes) -> Callable[[], str]:
    def trip() -> str:
        with _scope() as scope:
            detail = kind.roundtrip(scope)
        # Returned once the scope has closed, so that its cleanup counts too.
        return detail  # noqa: RET504

    return trip


def _journal_line(path: Path | None) -> tuple[Line, int | None]:
    from cleanroom._crash._sweep import sweep

    if path is None:
        return Line(
            "journal",
            None,
            f"off ({JOURNAL_ENV}=off): a killed run's leftovers cannot be found",
        ), None
    try:
        with open_existing(path, repair=False, strict=True) as journal:
            if journal is None:
                return Line("journal", True, f"{path} (not created yet)"), 0
            info = journal.health()
            counts = journal.counts()
            orphans = sweep(journal, dry_run=True).removed
    except JournalUnavailable as exc:
        return Line("journal", False, str(exc)), None
    ok = info["integrity"] == "ok" and info["mode"] == "0600"
    rows = sum(counts.values())
    detail = (
        f"{path}: integrity {info['integrity']}, {info['journal_mode']} mode, "
        f"file mode {info['mode']}, {rows} resource{'s' if rows != 1 else ''} "
        f"in {info['owners']} owner process{'es' if info['owners'] != 1 else ''}"
    )
    if info["set_aside"]:
        detail += f"; a damaged journal was moved to {', '.join(info['set_aside'])}"
    return Line("journal", ok, detail), orphans


@attrs.define
class Report:
    """Everything ``cleanroom check`` found."""

    backends: list[Line]
    trips: list[Line]
    journal: Line
    orphans: int | None

    @property
    def failed(self) -> list[str]:
        """The kinds whose round trip failed."""
        return [line.name for line in self.trips if line.ok is False]

    @property
    def verdict(self) -> str:
        """One line: OK, or what failed."""
        failed = self.failed
        if failed:
            plural = "s" if len(failed) > 1 else ""
            return f"FAILED: the {', '.join(failed)} round trip{plural} failed"
        verdict = "OK: cleanroom creates and cleans resources here"
        if self.journal.ok is False:
            verdict += " (but the journal needs attention)"
        return verdict

    def as_dict(self) -> dict[str, Any]:
        """Return plain data for ``--json``."""
        return {
            "version": __version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "backends": [line.as_dict() for line in self.backends],
            "roundtrips": [line.as_dict() for line in self.trips],
            "journal": self.journal.as_dict(),
            "orphans": self.orphans,
            "ok": not self.failed,
            "verdict": self.verdict,
        }

    def print(self) -> None:
        """Print the report for people."""
        mark = {True: "ok", False: "FAIL", None: "--"}
        python = platform.python_version()
        print(f"cleanroom {__version__} (Python {python}, {platform.system()})")
        print("\nbackends:")
        for line in self.backends:
            print(f"  {mark[line.ok]:<4} {line.name:<11} {line.detail}")
        print("\nround trips:")
        for line in self.trips:
            took = "" if line.seconds is None else f" ({line.seconds * 1000:.0f} ms)"
            print(f"  {mark[line.ok]:<4} {line.name:<11} {line.detail}{took}")
        print("\njournal:")
        print(f"  {mark[self.journal.ok]:<4} {self.journal.detail}")
        if self.orphans is not None:
            status = "ok" if not self.orphans else "--"
            print(
                f"  {status:<4} orphans: {self.orphans} would be removed "
                "by `cleanroom sweep`"
            )
        print(f"\n{self.verdict}")


def check(journal: Path | None) -> Report:
    """
    Run every check; *journal* is where this process journals.

    .. versionadded:: 0.1.0
    """
    if journal is not None:
        os.environ[JOURNAL_ENV] = str(journal)
    backends: list[Line] = []
    trips: list[Line] = []
    for name, kind in _probing():
        line = _probe(name, kind)
        backends.append(line)
        if line.ok:
            trips.append(_timed(name, _roundtrip(kind)))
    journal_line, orphans = _journal_line(journal)
    return Report(backends, trips, journal_line, orphans)


def run_check(journal: Path | None, *, as_json: bool = False) -> int:
    """
    Run ``cleanroom check``; return 0, or 1 when a round trip failed.

    .. versionadded:: 0.1.0
    """
    report = check(journal)
    if as_json:
        json.dump(report.as_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        report.print()
    return 1 if report.failed else 0
