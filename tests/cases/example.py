"""
Conformance case of the example kind of ``docs/writing-a-kind.md``
(``tests/examplekind.py``): lock files in a folder.
"""

from __future__ import annotations

import os

import examplekind
from cleanroom import Resource, Scope
from conformance import KindCase


def _name() -> str:
    return f"conformance-{os.getpid()}-{os.urandom(4).hex()}"


class LockCase(KindCase):
    kind = "lock"

    def create(self, scope: Scope) -> Resource:
        return scope.resource_of(examplekind.acquire(scope, _name()))

    def exists(self, resource: Resource) -> bool:
        return (examplekind.LOCKS.folder() / f"{resource.name}.lock").exists()

    def destroy(self, resource: Resource) -> None:
        (examplekind.LOCKS.folder() / f"{resource.name}.lock").unlink()

    def child_source(self) -> str:
        return (
            "import os, examplekind\n"
            "name = f'conformance-{os.getpid()}-{os.urandom(4).hex()}'\n"
            "resource = examplekind.acquire(scope, name)"
        )


CASES = [LockCase()]
