"""
A real kind for the crash-safety tests: its resources are marker files.

Importing this module registers the kind ``marker``. The tests of the journal,
the reaper, sweeps and the CLI import it in the test process and in child
processes (with this directory on ``PYTHONPATH``), so a reaper or a sweep in
another process can clean markers the way the process that made them would.

Every deletion appends the marker's name to the file named by the identity's
``log``, so that tests can tell that nothing was deleted twice.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import attrs

from cleanroom import BaseKind, Resource, Scope, register_kind

#: The variable naming the directory that ``list_names`` looks in.
DIR_ENV = "MARKERKINDS_DIR"


@attrs.define
class MarkerKind(BaseKind):
    """Marker files: created by :func:`make`, deleted by unlinking them."""

    def delete(self, resource: Resource, *, wait: bool) -> None:
        path = Path(resource.identity["path"])
        log = resource.identity.get("log")
        if log:
            with Path(log).open("a", encoding="utf-8") as file:
                file.write(f"{os.getpid()} {resource.name}\n")
        path.unlink(missing_ok=True)

    def exists(self, resource: Resource) -> bool:
        return Path(resource.identity["path"]).exists()

    def delete_hint(self, resource: Resource) -> str:
        return f"rm {resource.identity['path']}"

    def list_names(self, prefix: str) -> Sequence[Resource]:
        """Return the markers in ``$MARKERKINDS_DIR`` whose name has *prefix*."""
        folder = Path(os.environ[DIR_ENV])
        log = os.environ.get("MARKERKINDS_LOG")
        return [
            Resource(
                self.name,
                entry.name,
                {"path": str(entry), **({"log": log} if log else {})},
            )
            for entry in sorted(folder.iterdir())
            if entry.name.startswith(prefix)
        ]


MARKERS = register_kind(MarkerKind("marker", aliases=("markers",)))


def make(
    scope: Scope, path: str | os.PathLike[str], log: str | None = None
) -> Resource:
    """Journal the intent, create the marker file, and track it in *scope*."""
    identity = {"path": os.fspath(path)}
    if log is not None:
        identity["log"] = log
    with scope.creating(MARKERS, Path(path).name, **identity) as creation:
        Path(path).write_text("marker\n", encoding="utf-8")
    return creation.resource
