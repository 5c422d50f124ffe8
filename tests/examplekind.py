"""Lock files: a cleanroom kind for the ``*.lock`` files of one folder."""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from collections.abc import Iterator
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
from cleanroom.exceptions import BackendUnavailableError


@attrs.define
class LockKind(BaseKind):
    """Lock files, each holding the ownership labels of the scope that made it."""

    def folder(self) -> Path:
        default = Path(tempfile.gettempdir(), "cleanroom-locks")
        return Path(os.environ.get("LOCKS_DIR", default))

    def path(self, resource: Resource) -> Path:
        return self.folder() / f"{resource.name}.lock"

    def delete(self, resource: Resource, *, wait: bool) -> None:
        self.path(resource).unlink(missing_ok=True)  # gone already: success

    def exists(self, resource: Resource) -> bool:
        return self.path(resource).exists()

    def delete_hint(self, resource: Resource) -> str:
        return f"rm -f -- {shlex.quote(str(self.path(resource)))}"

    def list_names(self, prefix: str) -> list[str]:  # ListsNames
        names = (path.stem for path in self.folder().glob("*.lock"))
        return sorted(name for name in names if name.startswith(prefix))

    def list_owned(self) -> Iterator[Owned]:  # ListsOwned
        for path in sorted(self.folder().glob("*.lock")):
            try:
                ownership = Ownership.from_labels(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # not a lock of ours, or half written
            if ownership is not None:
                yield Owned(Resource(self.name, path.stem), ownership)

    def probe(self) -> str:  # Probes
        if not os.access(self.folder().parent, os.W_OK):
            raise BackendUnavailableError(f"cannot write in {self.folder().parent}")
        return f"lock files in {self.folder()}"

    def roundtrip(self, scope: Scope) -> str:
        lock = acquire(scope, f"roundtrip-{os.getpid()}")
        scope.release(lock)
        return f"made and deleted {lock}"


LOCKS = LockKind("lock", aliases=("locks",))
register_kind(LOCKS)


def acquire(scope: Scope, name: str) -> Path:
    """Create the lock file *name*, deleted when *scope* closes."""
    path = LOCKS.folder() / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with scope.creating(LOCKS, name) as creation:
        try:
            file = path.open("x", encoding="utf-8")
        except FileExistsError:
            creation.abandon("another holds the lock")  # theirs: keep it
            raise
        with file:
            json.dump(ownership_labels(scope), file)
        creation.alias(path)
    return path


def family(scope: Scope) -> object:
    """What ``scope.locks`` is, when an entry point installs this module."""
    return lambda name: acquire(scope, name)
