"""
Conformance case of the process kind: a process started with ``scope.popen``,
leading a process group of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from cleanroom import Resource, Scope
from conformance import KindCase

SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)", "conformance"]


class ProcessCase(KindCase):
    kind = "process"

    def create(self, scope: Scope) -> Resource:
        return scope.resource_of(scope.popen(SLEEPER))

    def exists(self, resource: Resource) -> bool:
        """Whether the pid still runs the same process, and is not a zombie."""
        try:
            stat = Path(f"/proc/{resource.identity['pid']}/stat").read_text()
        except OSError:
            return False
        fields = stat.rsplit(")", 1)[1].split()
        same = int(fields[19]) == resource.identity["start_time"]
        return same and fields[0] not in {"Z", "X"}

    def destroy(self, resource: Resource) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(resource.identity["pgid"], signal.SIGKILL)

    def child_source(self) -> str:
        return f"resource = scope.popen({SLEEPER!r})"


CASES = [ProcessCase()]
