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

import json
import os
from pathlib import Path

import attrs

from cleanroom import (
    BaseKind,
    Owned,
    Ownership,
    Resource,
    Scope,
    ownership_labels,
    register_kind,
)

#: The variable naming the directory that ``list_names`` looks in.
DIR_ENV = "MARKERKINDS_DIR"


@attrs.define
class MarkerKind(BaseKind):
    """Marker files: created by :func:`make`, deleted by unlinking them."""

    def delete(self, resource: Resource, *, wait: bool) -> None:
        path = _path(resource)
        log = resource.identity.get("log") or os.environ.get("MARKERKINDS_LOG")
        if log:
            with Path(log).open("a", encoding="utf-8") as file:
                file.write(f"{os.getpid()} {resource.name}\n")
        path.unlink(missing_ok=True)

    def exists(self, resource: Resource) -> bool:
        return _path(resource).exists()

    def delete_hint(self, resource: Resource) -> str:
        return f"rm {resource.identity['path']}"

    def list_names(self, prefix: str) -> list[str]:
        """Return the names of the markers in ``$MARKERKINDS_DIR`` with *prefix*."""
        folder = Path(os.environ[DIR_ENV])
        return [
            entry.name
            for entry in sorted(folder.iterdir())
            if entry.name.startswith(prefix)
        ]

    def list_owned(self) -> list[Owned]:
        """Return the markers in ``$MARKERKINDS_DIR`` that hold ownership labels."""
        folder = Path(os.environ.get(DIR_ENV) or "/nonexistent")
        found = []
        for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
            try:
                labels = json.loads(entry.read_text(encoding="utf-8"))
            except ValueError:
                continue
            ownership = Ownership.from_labels(
                labels if isinstance(labels, dict) else None
            )
            if ownership is not None:
                identity = {"path": str(entry), **self._log()}
                found.append(
                    Owned(Resource(self.name, entry.name, identity), ownership)
                )
        return found

    def _log(self) -> dict[str, str]:
        log = os.environ.get("MARKERKINDS_LOG")
        return {"log": log} if log else {}

    def resource(self, name: str) -> Resource:
        """The resource of the marker *name* in ``$MARKERKINDS_DIR``."""
        path = Path(os.environ[DIR_ENV]) / name
        return Resource(self.name, name, {"path": str(path), **self._log()})


def _path(resource: Resource) -> Path:
    """A marker's file: its identity's path, or its name in ``$MARKERKINDS_DIR``."""
    if "path" in resource.identity:
        return Path(resource.identity["path"])
    return Path(os.environ[DIR_ENV]) / resource.name


MARKERS = register_kind(MarkerKind("marker", aliases=("markers",)))


def make(
    scope: Scope, path: str | os.PathLike[str], log: str | None = None
) -> Resource:
    """Journal the intent, create the marker file, and track it in *scope*."""
    identity = {"path": os.fspath(path)}
    if log is not None:
        identity["log"] = log
    with scope.creating(MARKERS, Path(path).name, **identity) as creation:
        labels = ownership_labels(scope)
        Path(path).write_text(json.dumps(labels), encoding="utf-8")
    return creation.resource
