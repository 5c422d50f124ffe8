"""
Open file descriptors and what each points to: a path, a socket and its
peer, a pipe. Read from ``/proc/self/fd`` (Linux) or ``/dev/fd``; without
either, psutil.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from . import _tasks
from ._records import Allow, Leak

Baseline = dict[int, str]

_PROC = "/proc/self/fd"
_DEV = "/dev/fd"


def available() -> str | None:
    """``None`` when open descriptors can be listed, else why not."""
    if os.path.isdir(_PROC) or os.path.isdir(_DEV):  # noqa: PTH112
        return None
    try:
        import psutil  # noqa: F401
    except ImportError:
        return "listing open file descriptors here needs psutil"
    return None


def take() -> Baseline:
    """Return each open descriptor with the raw name of what it points to."""
    if os.path.isdir(_PROC):  # noqa: PTH112
        found: Baseline = {}
        listing = _PROC
        for name in os.listdir(listing):  # noqa: PTH208
            fd = int(name)
            try:
                found[fd] = os.readlink(f"{listing}/{name}")  # noqa: PTH115
            except OSError:
                # Closed between the listing and the readlink (the listing's
                # own descriptor among them).
                continue
        return found
    if os.path.isdir(_DEV):  # noqa: PTH112
        found = {}
        for name in os.listdir(_DEV):  # noqa: PTH208
            fd = int(name)
            try:
                info = os.fstat(fd)
            except OSError:
                continue
            found[fd] = f"{info.st_dev}:{info.st_ino}:{info.st_mode}"
        return found
    import psutil

    process = psutil.Process()
    found = {item.fd: item.path for item in process.open_files()}
    for conn in process.net_connections(kind="all"):
        if conn.fd >= 0:
            found.setdefault(conn.fd, f"socket:{conn.laddr}->{conn.raddr}")
    return found


def new_since(
    before: Baseline, allow: Allow, own: set[int], *, detail: bool = True
) -> list[tuple[object, Leak]]:
    """
    Return the descriptors open now that *before* did not hold, as leaks;
    with *detail*, name the Python objects that hold them (slower).
    """
    leaks: list[tuple[object, Leak]] = []
    own = own | _running_loop()
    for fd, raw in take().items():
        if before.get(fd) == raw or fd in own:
            continue
        target = describe_target(fd, raw)
        if allow.fd(target):
            continue
        holders = tuple(_holders(fd)) if detail else ()
        leaks.append(((fd, raw), Leak("fd", f"fd {fd}: {target}", holders)))
    return leaks


def _running_loop() -> set[int]:
    """
    The descriptors of the running asyncio loop itself (its selector and
    self-pipe), which live as long as the loop, not the code it runs.
    """
    asyncio = sys.modules.get("asyncio")
    loop = None if asyncio is None else _tasks.running_loop(asyncio)
    if loop is None:
        return set()
    found = set()
    # Private attributes of asyncio's selector loops; other loops lack them.
    for name in ("_selector", "_ssock", "_csock"):
        part = getattr(loop, name, None)
        fileno = getattr(part, "fileno", None)
        if fileno is not None:
            with contextlib.suppress(Exception):
                found.add(int(fileno()))
    return found


def _address(value: Any) -> str:
    if isinstance(value, tuple):
        host, port = value[0], value[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return str(value) or "(unnamed)"


def _socket(fd: int) -> str:
    """Describe the socket on *fd*: family, local address and peer."""
    import socket

    families = {socket.AF_INET: "tcp", socket.AF_INET6: "tcp6"}
    if hasattr(socket, "AF_UNIX"):
        families[socket.AF_UNIX] = "unix"
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return "socket"
    try:
        family = families.get(sock.family, sock.family.name)
        if sock.type == socket.SOCK_DGRAM and family != "unix":
            family = family.replace("tcp", "udp")
        local = _address(sock.getsockname())
        try:
            peer = _address(sock.getpeername())
        except OSError:
            listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            peer = "(listening)" if listening else "(not connected)"
    except OSError:
        return "socket"
    else:
        return f"socket {family} {local} -> {peer}"
    finally:
        sock.close()


def describe_target(fd: int, raw: str) -> str:
    """What *fd* points to, as reports show it and allow-lists match it."""
    if raw.startswith("socket:") or (
        not raw.startswith(("/", "pipe:", "anon_inode:")) and _is_socket(fd)
    ):
        return _socket(fd)
    if raw.startswith("pipe:"):
        return "pipe"
    return raw


def _is_socket(fd: int) -> bool:
    import stat

    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def _holders(fd: int) -> list[str]:
    """Name the Python file and socket objects that still hold *fd* open."""
    import gc
    import io
    import socket

    found = []
    for obj in gc.get_objects():
        if isinstance(obj, socket.socket | io.FileIO):
            try:
                if obj.fileno() == fd:
                    found.append(f"held by {_short(obj)}")
            except (OSError, ValueError):
                continue
    if not found:
        found.append("no Python object holds it (leaked through os-level calls)")
    return found


def _short(obj: object) -> str:
    text = repr(obj)
    return text if len(text) <= 200 else text[:197] + "..."  # noqa: PLR2004
