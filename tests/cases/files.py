"""
Conformance cases of the file kinds: a temporary directory with a file in it
(``tempdir``) and a temporary file (``path``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cleanroom import Resource, Scope
from conformance import KindCase


class TempdirCase(KindCase):
    kind = "tempdir"

    def create(self, scope: Scope) -> Resource:
        folder = scope.tempdir(prefix="conformance-")
        (folder / "data.txt").write_text("data\n", encoding="utf-8")
        return scope.resource_of(folder)

    def exists(self, resource: Resource) -> bool:
        return os.path.lexists(resource.identity["path"])

    def destroy(self, resource: Resource) -> None:
        shutil.rmtree(resource.identity["path"])

    def child_source(self) -> str:
        return """
resource = scope.tempdir(prefix="conformance-")
(resource / "data.txt").write_text("data")
"""


class PathCase(KindCase):
    kind = "path"

    def create(self, scope: Scope) -> Resource:
        return scope.resource_of(scope.tempfile(prefix="conformance-"))

    def exists(self, resource: Resource) -> bool:
        return os.path.lexists(resource.identity["path"])

    def destroy(self, resource: Resource) -> None:
        Path(resource.identity["path"]).unlink()

    def child_source(self) -> str:
        return 'resource = scope.tempfile(prefix="conformance-")'


CASES = [TempdirCase(), PathCase()]
