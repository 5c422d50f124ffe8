"""
The ``run-session`` kind: what a ``cleanroom run`` session left behind.

``cleanroom run`` tracks one such resource for its session, before it starts
the command. When ``run`` ends normally it sweeps the session itself; when it
is killed (SIGKILL, an OOM kill), its reaper cleans this resource after
ending the command's process group: it waits for the session's other reapers
and sweeps what is left, as ``run`` would have.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs

from cleanroom._core._resource import BaseKind, Resource, register_kind
from cleanroom._crash._journal import open_existing

if TYPE_CHECKING:
    from cleanroom._crash._sweep import SweepReport

#: Seconds ``run`` waits, at most, for the session's reapers to finish.
CLEANUP_WAIT: Final = 120.0

#: Seconds a reaper waits, at most, for the session's other reapers.
REAPER_WAIT: Final = 20.0


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


@attrs.define
class SessionLeftovers(BaseKind):
    """
    The leftovers of a ``cleanroom run`` session; the identity holds the
    ``journal`` path and the ``session`` id.

    .. versionadded:: 0.1.0
    """

    def delete(self, resource: Resource, *, wait: bool) -> None:  # noqa: ARG002
        """Sweep what the session's dead processes left (kept resources stay)."""
        identity = resource.identity
        clean_session(
            Path(str(identity["journal"])), str(identity["session"]), wait=REAPER_WAIT
        )

    def describe(self, resource: Resource) -> str:
        """Return ``"the leftovers of session <id>"``."""
        return f"the leftovers of session {resource.name[:12]}"


#: The leftovers of ``cleanroom run`` sessions.
RUN_SESSIONS: Final = SessionLeftovers("run-session", concurrent=False)

register_kind(RUN_SESSIONS)
