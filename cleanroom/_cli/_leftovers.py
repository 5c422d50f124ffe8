"""
The ``run-session`` kind: what a ``cleanroom run`` session left behind.

``cleanroom run`` tracks one such resource for its session, before it starts
the command. When ``run`` ends normally it sweeps the session itself; when it
is killed (SIGKILL, an OOM kill), its reaper cleans this resource after
ending the command's process group: it waits for the session's other reapers
and sweeps what is left, as ``run`` would have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import attrs

from cleanroom._core._resource import BaseKind, Resource, register_kind

#: Seconds a reaper waits, at most, for the session's other reapers.
REAPER_WAIT: Final = 20.0


@attrs.define
class SessionLeftovers(BaseKind):
    """
    The leftovers of a ``cleanroom run`` session; the identity holds the
    ``journal`` path and the ``session`` id.

    .. versionadded:: 0.1.0
    """

    def delete(self, resource: Resource, *, wait: bool) -> None:  # noqa: ARG002
        """Sweep what the session's dead processes left (kept resources stay)."""
        from ._run import clean_session

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
