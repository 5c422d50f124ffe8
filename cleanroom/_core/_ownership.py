"""
Ownership labels: what cleanroom writes on the things it creates in a backend
(Docker labels, Kubernetes labels) so that sweeps know whose they are.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, Literal

import attrs

from ._session import current_owner, hostname, pid_alive

if TYPE_CHECKING:
    from ._scope import Scope

#: The label style of a backend: Docker takes any text, Kubernetes wants
#: prefixed keys and short values of letters, digits, ``-``, ``_`` and ``.``.
LabelStyle = Literal["docker", "kubernetes"]

_PREFIX: Final = {"docker": "cleanroom.", "kubernetes": "cleanroom.dev/"}
_FIELDS: Final = (
    "session",
    "scope",
    "owner-host",
    "owner-pid",
    "owner-start",
    "created",
)
_NOT_LABEL: Final = re.compile(r"[^A-Za-z0-9_.-]+")
_MANAGED_BY: Final = "app.kubernetes.io/managed-by"


def _label_value(text: str) -> str:
    # Kubernetes: at most 63 characters, alphanumeric at both ends.
    return _NOT_LABEL.sub("-", text)[:63].strip("-_.")


def label_key(field: str, style: LabelStyle = "docker") -> str:
    """
    Return the label key of one ownership *field* (``"session"``, ...) in *style*.

    .. versionadded:: 0.2.0
    """
    return _PREFIX[style] + field


@attrs.frozen
class Ownership:
    """
    Who created a thing, as its ownership labels say.

    Attributes:
        session: The id of the session (the run) that created it.
        scope: The name of the scope that tracked it (shortened in Kubernetes).
        host: The host of the owner process.
        pid: The owner process's id.
        start_time: The owner process's start time in clock ticks since boot,
            or ``None``; it tells a reused pid from the owner.
        created: When it was created, as a Unix timestamp.

    .. versionadded:: 0.2.0
    """

    session: str
    scope: str
    host: str
    pid: int
    start_time: int | None
    created: float

    @classmethod
    def current(cls, scope: Scope) -> Ownership:
        """Return the ownership of a thing created now by *scope*."""
        owner = current_owner()
        return cls(
            owner.session,
            scope.name,
            owner.host,
            owner.pid,
            owner.start_time,
            time.time(),
        )

    @classmethod
    def from_labels(
        cls, labels: Mapping[str, str] | None, style: LabelStyle = "docker"
    ) -> Ownership | None:
        """
        Read ownership from a thing's *labels*; ``None`` when it is not cleanroom's.
        """
        if not labels:
            return None
        prefix = _PREFIX[style]
        try:
            session = labels[prefix + "session"]
            pid = int(labels[prefix + "owner-pid"])
            start = int(labels.get(prefix + "owner-start") or 0) or None
            created = float(labels.get(prefix + "created") or 0)
        except (KeyError, ValueError):
            return None
        if not session:
            return None
        return cls(
            session,
            labels.get(prefix + "scope", ""),
            labels.get(prefix + "owner-host", ""),
            pid,
            start,
            created,
        )

    def labels(self, style: LabelStyle = "docker") -> dict[str, str]:
        """Return the labels that say this ownership, in *style*."""
        values = (
            self.session,
            self.scope,
            self.host,
            str(self.pid),
            str(self.start_time or 0),
            str(int(self.created)),
        )
        prefix = _PREFIX[style]
        if style == "kubernetes":
            labels = {
                prefix + field: _label_value(value)
                for field, value in zip(_FIELDS, values, strict=True)
            }
            labels[_MANAGED_BY] = "cleanroom"
            return labels
        return {
            prefix + field: value for field, value in zip(_FIELDS, values, strict=True)
        }

    def alive(self) -> bool | None:
        """
        Tell whether the owner process still runs: ``True`` or ``False`` on
        this host, ``None`` for another host's owner, whose session's
        heartbeat (the journal's, or a Kubernetes Lease) decides instead.
        """
        if self.host != hostname() and _label_value(hostname()) != self.host:
            return None
        return pid_alive(self.pid, self.start_time)


def ownership_labels(scope: Scope, style: LabelStyle = "docker") -> dict[str, str]:
    """
    Return the ownership labels for a thing that *scope* creates now.

    Args:
        scope: The scope that will track the thing.
        style: ``"docker"`` (keys ``cleanroom.session``, ...) or
            ``"kubernetes"`` (keys ``cleanroom.dev/session``, ..., label-safe
            values, and ``app.kubernetes.io/managed-by: cleanroom``).

    .. versionadded:: 0.2.0
    """
    return Ownership.current(scope).labels(style)
