"""
Watching the engine for containers that code under test creates without
cleanroom, and adopting those this process could have created.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import anyio.to_thread
import attrs

from cleanroom._core._session import current_owner, pid_alive

from ._client import SESSION_LABEL, engine_identity
from ._kinds import CONTAINERS

if TYPE_CHECKING:
    from cleanroom._core._resource import Resource

    from ._family import DockerFamily

_log = logging.getLogger("cleanroom.docker")


def _watch_dir() -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / "cleanroom-docker-watches"


@attrs.define(eq=False)
class Watch:
    """
    A window during which containers created on the engine are adopted into a
    scope; see :meth:`DockerFamily.watch`.

    Use it as a (sync or async) context manager to close the window early.

    Attributes:
        family: The ``scope.docker`` whose scope adopts the containers.
        filters: The engine's event filters that narrow what is adopted.
        adopted: The resources tracked when the window closed.

    .. versionadded:: 0.2.0
    """

    family: DockerFamily
    filters: dict[str, Any]
    adopted: list[Resource] = attrs.field(factory=list)
    _since: int = 0
    _until: int | None = None
    _marker: Path | None = None

    def start(self) -> None:
        """Open the window, and note it where other watchers on this host see it."""
        self._since = time.time_ns()
        folder = _watch_dir()
        folder.mkdir(exist_ok=True)
        owner = current_owner()
        marker = folder / f"{owner.pid}-{owner.start_time or 0}-{uuid.uuid4().hex[:8]}"
        marker.write_text(f"{self._since}\n", encoding="ascii")
        self._marker = marker

    def stop(self) -> list[Resource]:
        """
        Close the window and track the containers adopted from it (once).

        Returns:
            The adopted resources.
        """
        if self._until is not None:
            return self.adopted
        self._until = time.time_ns()
        try:
            others = self._other_windows(self._until)
            for ident, name, when in self._created(self._until):
                if any(start <= when <= end for start, end in others):
                    _log.warning(
                        "not adopting container %s (%s): another process on this "
                        "host watched the engine when it was created",
                        ident[:12],
                        name,
                    )
                    continue
                resource = self.family.scope.track(
                    CONTAINERS, name, id=ident, **engine_identity()
                )
                self.adopted.append(resource)
        finally:
            self._close_marker(self._until)
        return self.adopted

    def _created(self, until: int) -> list[tuple[str, str, int]]:
        """The unlabelled containers created in the window, oldest first."""
        scope = self.family.scope
        tracked = {r.identity.get("id") for r in scope.resources()}
        # The engine takes whole seconds: widen, then filter by the exact time.
        events = self.family.client.api.events(
            since=self._since // 1_000_000_000,
            until=until // 1_000_000_000 + 1,
            filters={**self.filters, "type": "container", "event": "create"},
            decode=True,
        )
        found: list[tuple[str, str, int]] = []
        try:
            for event in events:
                when = int(event.get("timeNano") or 0)
                actor = event.get("Actor") or {}
                ident = actor.get("ID") or event.get("id")
                attributes = actor.get("Attributes") or {}
                if (
                    self._since <= when <= until
                    and ident
                    and ident not in tracked
                    and SESSION_LABEL not in attributes
                ):
                    found.append((ident, attributes.get("name", ident[:12]), when))
        finally:
            with contextlib.suppress(Exception):
                events.close()
        return found

    def _other_windows(self, until: int) -> list[tuple[int, int]]:
        """The windows that other processes on this host had open."""
        windows: list[tuple[int, int]] = []
        with contextlib.suppress(OSError):
            for path in _watch_dir().iterdir():
                if path == self._marker:
                    continue
                with contextlib.suppress(OSError, ValueError):
                    pid, start_time, _ = path.name.split("-", 2)
                    times = [int(line) for line in path.read_text("ascii").split()]
                    if len(times) == 1 and not pid_alive(
                        int(pid), int(start_time) or None
                    ):
                        path.unlink()  # a dead watcher's window
                        continue
                    windows.append((times[0], times[1] if len(times) > 1 else until))
        return windows

    def _close_marker(self, until: int) -> None:
        """Record the window's end; drop the markers of windows closed long ago."""
        if self._marker is None:
            return
        with contextlib.suppress(OSError), self._marker.open("a") as file:
            file.write(f"{until}\n")
        # A closed window stays visible a while, for watchers that overlapped it.
        limit = time.time() - 3600
        with contextlib.suppress(OSError):
            for path in _watch_dir().iterdir():
                with contextlib.suppress(OSError):
                    if path.stat().st_mtime < limit:
                        path.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await anyio.to_thread.run_sync(self.stop)
