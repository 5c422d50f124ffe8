"""
Conformance cases of the task kind: a background task started with
``scope.start_soon``, on asyncio and on trio. Tasks live in their process, so
what is about processes and backends (bulk deletes by resource, hints, the
reaper, sweeps) does not apply.
"""

from __future__ import annotations

import anyio

from cleanroom import Resource, Scope
from conformance import KindCase

#: The tasks started and not yet ended, by name.
RUNNING: set[str] = set()
#: What ends each task by itself, by name.
STOPS: dict[str, anyio.Event] = {}

_IN_PROCESS = "a task lives and dies with its process"


async def _work(name: str) -> None:
    try:
        await STOPS[name].wait()
    finally:
        RUNNING.discard(name)
        STOPS.pop(name, None)


class TaskCase(KindCase):
    kind = "task"
    not_applicable = {
        "clean_sync": "start_soon() needs a running event loop",
        "bulk": "a task is cleaned through the object its scope holds, "
        "not by a resource alone",
        "hint": f"nothing to delete by hand: {_IN_PROCESS}",
        "reaper": _IN_PROCESS,
        "sweep": _IN_PROCESS,
    }

    def __init__(self, loop: str) -> None:
        self.loop = loop
        self._count = 0

    @property
    def id(self) -> str:
        return f"task-{self.loop}"

    def create(self, scope: Scope) -> Resource:
        self._count += 1
        name = f"conformance-{self.loop}-{self._count}"
        STOPS[name] = anyio.Event()
        RUNNING.add(name)
        return scope.start_soon(_work, name, name=name)

    def exists(self, resource: Resource) -> bool:
        return resource.name in RUNNING

    def destroy(self, resource: Resource) -> None:
        STOPS[resource.name].set()


CASES = [TaskCase("asyncio"), TaskCase("trio")]
