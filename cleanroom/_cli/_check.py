"""
``cleanroom check``: is cleanroom usable here?

It reports the version, which optional backends are installed and reachable
(contacting only 127.0.0.1 and unix sockets), runs a live create-then-clean
round trip for every available kind, reports the journal's location and
health and how many orphans a sweep would remove, and ends with a verdict.

A backend module (``cleanroom.kinds.<backend>``) takes part in the round
trips by defining ``roundtrip(scope) -> Callable[[], bool]``: create one
resource in *scope* and return a function that tells whether it still exists.
"""

# A command-line tool prints.
# ruff: noqa: T201

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import platform
import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlparse

import attrs

from cleanroom._crash._journal import JOURNAL_ENV, open_existing
from cleanroom._version import __version__

if TYPE_CHECKING:
    from cleanroom._core._capabilities import Probes
    from cleanroom._core._scope import Scope

_LOCAL_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_TIMEOUT: Final = 2.0


@attrs.define
class Line:
    """One finding of the check."""

    name: str
    ok: bool | None
    detail: str
    seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return plain data for ``--json``."""
        return attrs.asdict(self)


# -- backends -----------------------------------------------------------------------


def _version_of(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _http_ping(sock: socket.socket, host: str, path: str) -> str:
    sock.settimeout(_TIMEOUT)
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while len(data) < 4096:  # noqa: PLR2004
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode("latin-1").split("\r\n", 1)[0]


def docker_endpoint(environ: dict[str, str] | None = None) -> tuple[str, str]:
    """
    Return ``("unix", path)``, ``("tcp", "host:port")`` or ``("remote", url)``:
    where the Docker engine is, from ``DOCKER_HOST`` or the usual sockets.
    """
    env = os.environ if environ is None else environ
    host = env.get("DOCKER_HOST", "").strip()
    if not host:
        candidates = ["/var/run/docker.sock"]
        runtime = env.get("XDG_RUNTIME_DIR")
        if runtime:
            candidates.append(os.path.join(runtime, "docker.sock"))  # noqa: PTH118
        candidates.append(os.path.expanduser("~/.docker/run/docker.sock"))  # noqa: PTH111
        for path in candidates:
            if os.path.exists(path):  # noqa: PTH110
                return "unix", path
        return "unix", candidates[0]
    parsed = urlparse(host)
    if parsed.scheme == "unix":
        return "unix", parsed.path
    if parsed.scheme in {"tcp", "http"} and parsed.hostname in _LOCAL_HOSTS:
        return "tcp", f"{parsed.hostname}:{parsed.port or 2375}"
    return "remote", host


def check_docker() -> Line:
    """Report the docker package and whether a local engine answers (``ok``)."""
    version = _version_of("docker")
    installed = (
        f"docker {version} installed" if version else "docker package not installed"
    )
    how, where = docker_endpoint()
    if how == "remote":
        return Line(
            "docker", None, f"{installed}; engine {where} not checked (not local)"
        )
    if how == "unix" and not os.path.exists(where):  # noqa: PTH110
        return Line("docker", None, f"{installed}; no engine ({where} is missing)")
    try:
        if how == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(_TIMEOUT)
                sock.connect(where)
                status = _http_ping(sock, "docker", "/_ping")
        else:
            host, _, port = where.rpartition(":")
            with socket.create_connection(
                (host.strip("[]"), int(port)), _TIMEOUT
            ) as sock:
                status = _http_ping(sock, host, "/_ping")
    except OSError as exc:
        return Line(
            "docker", None, f"{installed}; engine at {where} unreachable: {exc}"
        )
    reachable = " 200 " in f"{status} "
    detail = f"{installed}; engine at {where}: {status or 'no answer'}"
    return Line("docker", reachable if version else None, detail)


def check_kubernetes() -> Line:
    """Report the kubernetes package and whether a local API server answers."""
    version = _version_of("kubernetes")
    if not version:
        return Line("kubernetes", None, "kubernetes package not installed")
    ok, detail = _kubernetes_cluster()
    return Line("kubernetes", ok, f"kubernetes {version} installed; {detail}")


def _kubernetes_cluster() -> tuple[bool | None, str]:
    listed = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    config_file = Path(listed) if listed else Path.home() / ".kube" / "config"
    if not config_file.exists():
        return None, f"no kubeconfig ({config_file})"
    try:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(config_file), client_configuration=configuration
        )
    except Exception as exc:
        return None, f"kubeconfig unusable: {exc}"
    host = configuration.host
    if urlparse(host).hostname not in _LOCAL_HOSTS:
        return None, f"cluster {host} not checked (not local)"
    try:
        with client.ApiClient(configuration) as api:
            info = client.VersionApi(api).get_code(_request_timeout=_TIMEOUT)
    except Exception as exc:
        return None, f"cluster {host} unreachable: {exc}"
    return True, f"cluster {host}: {info.git_version}"


# -- round trips ----------------------------------------------------------------------


def _scope() -> Scope:
    from cleanroom._core._scope import Scope

    # Independent of the environment's policy: the check must clean.
    return Scope(
        "cleanroom-check", level="all", force=True, on_failure="clean", timeout=30
    )


def _timed(name: str, trip: Callable[[], str]) -> Line:
    began = time.perf_counter()
    try:
        detail = trip()
    except Exception as exc:
        return Line(
            name, False, f"{type(exc).__name__}: {exc}", time.perf_counter() - began
        )
    return Line(name, True, detail, time.perf_counter() - began)


def _files() -> str:
    with _scope() as scope:
        path = scope.tempdir(prefix="cleanroom-check-")
        (path / "probe.txt").write_text("cleanroom check\n", encoding="utf-8")
        single = scope.tempfile(prefix="cleanroom-check-")
    if path.exists() or single.exists():
        raise AssertionError(f"{path} or {single} still exists after its scope closed")
    return f"created and removed a temporary directory and file under {path.parent}"


def _processes() -> str:
    from cleanroom._core._session import pid_alive, process_start_time

    sleep = shutil.which("sleep")
    argv = (
        [sleep, "60"]
        if sleep
        else [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    with _scope() as scope:
        process = scope.popen(argv)
        pid = process.pid
        start = process_start_time(pid)
    if pid_alive(pid, start) or process.returncode is None:
        raise AssertionError(f"process {pid} still runs after its scope closed")
    return f"started {os.path.basename(argv[0])} (pid {pid}), ended and reaped it"  # noqa: PTH119


def _tasks() -> str:
    import anyio
    import anyio.lowlevel

    seen: list[bool] = []

    async def forever() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            seen.append(True)

    async def trip() -> None:
        async with _scope() as scope:
            scope.start_soon(forever)
            await anyio.lowlevel.checkpoint()

    anyio.run(trip)
    if not seen:
        raise AssertionError("the task was not cancelled when its scope closed")
    return "started a task and cancelled it when its scope closed"


def _backend_trip(module_name: str) -> Callable[[], str] | None:
    if importlib.util.find_spec(module_name) is None:
        return None
    module = importlib.import_module(module_name)
    hook = getattr(module, "roundtrip", None)
    if not callable(hook):
        return None

    def trip() -> str:
        with _scope() as scope:
            exists = hook(scope)
            if not exists():
                raise AssertionError("the resource was not created")
        if exists():
            raise AssertionError("the resource still exists after its scope closed")
        return "created one resource and removed it"

    return trip


def _probe_kinds() -> tuple[list[Line], list[Line]]:
    """Probe every kind that can be probed; round-trip those that answer."""
    from cleanroom._core._capabilities import Probes
    from cleanroom._core._resource import get_kind, kind_names
    from cleanroom.exceptions import BackendUnavailableError

    backends: list[Line] = []
    trips: list[Line] = []
    for kind in map(get_kind, kind_names()):
        if not isinstance(kind, Probes):
            continue
        try:
            detail = kind.probe()
        except BackendUnavailableError as exc:
            backends.append(Line(kind.name, None, f"unavailable: {exc}"))
            continue
        except Exception as exc:
            backends.append(Line(kind.name, False, f"{type(exc).__name__}: {exc}"))
            continue
        backends.append(Line(kind.name, True, detail))
        trips.append(_kind_trip(kind))
    return backends, trips


def _kind_trip(kind: Probes) -> Line:
    name = getattr(kind, "name", type(kind).__name__)
    cannot: list[str] = []

    def trip() -> str:
        done = ""
        try:
            with _scope() as scope:
                done = kind.roundtrip(scope)
        except NotImplementedError as exc:
            # A kind that cannot make things has no round trip: not a failure.
            cannot.append(str(exc))
        return done

    line = _timed(name, trip)
    return Line(name, None, cannot[0]) if cannot else line


def _journal_line(path: Path | None) -> tuple[Line, int | None]:
    from cleanroom._crash._sweep import sweep

    if path is None:
        return Line(
            "journal",
            None,
            f"off ({JOURNAL_ENV}=off): a killed run's leftovers cannot be found",
        ), None
    with open_existing(path) as journal:
        if journal is None:
            if path.exists():
                return Line(
                    "journal", False, f"{path} cannot be used (see the log above)"
                ), None
            return Line("journal", True, f"{path} (not created yet)"), 0
        info = journal.health()
        counts = journal.counts()
        orphans = sweep(journal, dry_run=True).removed
    ok = info["integrity"] == "ok" and info["mode"] == "0600"
    rows = sum(counts.values())
    detail = (
        f"{path}: integrity {info['integrity']}, {info['journal_mode']} mode, "
        f"file mode {info['mode']}, {rows} resource{'s' if rows != 1 else ''} "
        f"in {info['owners']} owner process{'es' if info['owners'] != 1 else ''}"
    )
    if info["set_aside"]:
        detail += f"; a damaged journal was moved to {', '.join(info['set_aside'])}"
    return Line("journal", ok, detail), orphans


@attrs.define
class Report:
    """Everything ``cleanroom check`` found."""

    backends: list[Line]
    trips: list[Line]
    journal: Line
    orphans: int | None

    @property
    def failed(self) -> list[str]:
        """The kinds whose round trip failed."""
        return [line.name for line in self.trips if line.ok is False]

    @property
    def verdict(self) -> str:
        """One line: OK, or what failed."""
        failed = self.failed
        if failed:
            plural = "s" if len(failed) > 1 else ""
            return f"FAILED: the {', '.join(failed)} round trip{plural} failed"
        verdict = "OK: cleanroom creates and cleans resources here"
        if self.journal.ok is False:
            verdict += " (but the journal needs attention)"
        return verdict

    def as_dict(self) -> dict[str, Any]:
        """Return plain data for ``--json``."""
        return {
            "version": __version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "backends": [line.as_dict() for line in self.backends],
            "roundtrips": [line.as_dict() for line in self.trips],
            "journal": self.journal.as_dict(),
            "orphans": self.orphans,
            "ok": not self.failed,
            "verdict": self.verdict,
        }

    def print(self) -> None:
        """Print the report for people."""
        mark = {True: "ok", False: "FAIL", None: "--"}
        python = platform.python_version()
        print(f"cleanroom {__version__} (Python {python}, {platform.system()})")
        print("\nbackends:")
        for line in self.backends:
            print(f"  {mark[line.ok]:<4} {line.name:<11} {line.detail}")
        print("\nround trips:")
        for line in self.trips:
            took = "" if line.seconds is None else f" ({line.seconds * 1000:.0f} ms)"
            print(f"  {mark[line.ok]:<4} {line.name:<11} {line.detail}{took}")
        print("\njournal:")
        print(f"  {mark[self.journal.ok]:<4} {self.journal.detail}")
        if self.orphans is not None:
            status = "ok" if not self.orphans else "--"
            print(
                f"  {status:<4} orphans: {self.orphans} would be removed "
                "by `cleanroom sweep`"
            )
        print(f"\n{self.verdict}")


def check(journal: Path | None) -> Report:
    """
    Run every check; *journal* is where this process journals.

    .. versionadded:: 0.1.0
    """
    if journal is not None:
        os.environ[JOURNAL_ENV] = str(journal)
    backends = [check_docker(), check_kubernetes()]
    trips = [
        _timed("files", _files),
        _timed("processes", _processes),
        _timed("tasks", _tasks),
    ]
    for backend in backends:
        # A backend takes part when its package is installed and its server answers.
        trip = _backend_trip(f"cleanroom.kinds.{backend.name}") if backend.ok else None
        if trip is not None:
            trips.append(_timed(backend.name, trip))
    probed, probed_trips = _probe_kinds()
    backends.extend(probed)
    trips.extend(probed_trips)
    journal_line, orphans = _journal_line(journal)
    return Report(backends, trips, journal_line, orphans)


def run_check(journal: Path | None, *, as_json: bool = False) -> int:
    """
    Run ``cleanroom check``; return 0, or 1 when a round trip failed.

    .. versionadded:: 0.1.0
    """
    report = check(journal)
    if as_json:
        json.dump(report.as_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        report.print()
    return 1 if report.failed else 0
