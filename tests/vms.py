"""
Real command-line programs standing in for a VM manager, for the tests of
command kinds: ``tests/slowvm.py`` (slow creates, a first delete that fails)
and tmux sessions on a private socket (never the user's tmux server).

``tests/`` is on ``sys.path`` (``pythonpath`` in ``pyproject.toml``), so test
modules import this as ``vms``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cleanroom import register_kind, unregister_kind
from cleanroom.kinds.commands import CommandKind
from procs import running

SLOWVM = str(Path(__file__).with_name("slowvm.py"))

#: The tmux server of the conformance cases: a socket label of its own.
CONFORMANCE_SOCKET = f"cleanroom-conformance-{os.getuid()}"


def conformance_tmux(*args: str) -> list[str]:
    """A tmux command line on the conformance cases' server."""
    return ["tmux", "-L", CONFORMANCE_SOCKET, *args]


#: The kind of the conformance cases (``tests/cases/commands.py``), registered
#: at import so that a child process, its reaper and a sweep that import this
#: module all know it.
CONFORMANCE = register_kind(
    CommandKind(
        "conformance-tmux",
        create=conformance_tmux("new-session", "-d", "-s", "{name}"),
        delete=conformance_tmux("kill-session", "-t", "={name}"),
        exists=conformance_tmux("has-session", "-t", "={name}"),
        list=conformance_tmux(
            "list-sessions", "-F", "#{{session_name}}\t#{{session_created}}"
        ),
        timeout=10,
        grace=2,
    ),
    replace=True,
)


class SlowVM:
    """A state folder of ``slowvm.py`` and the command kinds that drive it."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.state.mkdir(parents=True, exist_ok=True)
        self.kinds: list[CommandKind] = []

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, SLOWVM, str(self.state), *args]

    def spec(self, **overrides: Any) -> dict[str, Any]:
        """The keyword arguments (or pyproject table) of a slowvm kind."""
        spec: dict[str, Any] = {
            "delete": self.argv("delete", "{name}"),
            "exists": self.argv("exists", "{name}"),
            "list": self.argv("list"),
            "create": self.argv("create", "{name}"),
            "not_found_codes": [3],
            "grace": 5.0,
            "timeout": 20.0,
        }
        spec.update(overrides)
        return {key: value for key, value in spec.items() if value is not None}

    def kind(self, **overrides: Any) -> CommandKind:
        """Register a slowvm kind of a fresh name; unregistered after the test."""
        kind = CommandKind(f"slowvm-{secrets.token_hex(4)}", **self.spec(**overrides))
        register_kind(kind)
        self.kinds.append(kind)
        return kind

    def make(self, name: str) -> None:
        """Create the VM *name* now."""
        subprocess.run(self.argv("_materialize", name, "0"), check=True)

    def names(self) -> list[str]:
        return sorted(
            json.loads(path.read_text())["name"] for path in self.state.glob("*.vm")
        )

    def exists(self, name: str) -> bool:
        return (self.state / (quote(name, safe="") + ".vm")).exists()

    def log(self, command: str | None = None) -> list[list[str]]:
        path = self.state / "log"
        if not path.exists():
            return []
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        return [line for line in lines if command is None or line[0] == command]

    def wait_for(self, name: str, seconds: float = 10.0) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.exists(name):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        """Unregister the kinds; end the slowvm processes still at work."""
        for kind in self.kinds:
            unregister_kind(kind)
        for pid in running(str(self.state)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class Tmux:
    """tmux sessions on a private socket, and the command kinds that drive them."""

    def __init__(self) -> None:
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed")
        # A short path: a unix socket's path must fit in 108 bytes.
        self.folder = tempfile.mkdtemp(prefix="cleanroom-tmux-")
        self.socket = str(Path(self.folder) / "sock")
        self.kinds: list[CommandKind] = []

    def argv(self, *args: str) -> list[str]:
        return ["tmux", "-S", self.socket, *args]

    def spec(self, **overrides: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "delete": self.argv("kill-session", "-t", "={name}"),
            "exists": self.argv("has-session", "-t", "={name}"),
            "list": self.argv(
                "list-sessions", "-F", "#{{session_name}}\t#{{session_created}}"
            ),
            "create": self.argv("new-session", "-d", "-s", "{name}"),
            "timeout": 10.0,
            "grace": 2.0,
        }
        spec.update(overrides)
        return {key: value for key, value in spec.items() if value is not None}

    def kind(self, **overrides: Any) -> CommandKind:
        kind = CommandKind(f"tmux-{secrets.token_hex(4)}", **self.spec(**overrides))
        register_kind(kind)
        self.kinds.append(kind)
        return kind

    def new(self, name: str) -> None:
        subprocess.run(self.argv("new-session", "-d", "-s", name), check=True)

    def sessions(self) -> list[str]:
        done = subprocess.run(
            self.argv("list-sessions", "-F", "#{session_name}"),
            capture_output=True,
            text=True,
            check=False,
        )
        return sorted(done.stdout.splitlines()) if done.returncode == 0 else []

    def close(self) -> None:
        for kind in self.kinds:
            unregister_kind(kind)
        subprocess.run(
            self.argv("kill-server"), capture_output=True, check=False, timeout=10
        )
        shutil.rmtree(self.folder, ignore_errors=True)
