"""
Conformance cases of command kinds: tmux sessions, on a tmux server of their
own, standing in for VMs.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess

from cleanroom import Resource, Scope
from conformance import KindCase
from vms import CONFORMANCE, conformance_tmux


class CommandCase(KindCase):
    """The ``conformance-tmux`` command kind of ``tests/vms.py``."""

    kind = CONFORMANCE.name
    marks = ()

    def available(self) -> str | None:
        return None if shutil.which("tmux") else "tmux is not installed"

    def create(self, scope: Scope) -> Resource:
        name = f"conformance-{secrets.token_hex(4)}"
        return scope.commands.create(self.kind, name)  # type: ignore[no-any-return]

    def exists(self, resource: Resource) -> bool:
        done = subprocess.run(
            conformance_tmux("has-session", "-t", f"={resource.name}"),
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def destroy(self, resource: Resource) -> None:
        subprocess.run(
            conformance_tmux("kill-session", "-t", f"={resource.name}"),
            capture_output=True,
            check=False,
        )

    def child_source(self) -> str:
        name = f"conformance-child-{secrets.token_hex(4)}"
        return (
            f"import vms\nresource = scope.commands.create({self.kind!r}, {name!r})\n"
        )


CASES = [CommandCase()]
