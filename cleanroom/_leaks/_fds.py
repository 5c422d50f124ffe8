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

#: Each open descriptor and the identity of what it points to: device and
#: inode (a socket's, a pipe's, a file's), which fstat() reads faster than
#: readlink() reads a name.
Baseline = dict[int, tuple[int, int]]

_PROC = "/proc/self/fd"
_DEV = "/dev/fd"
_listing: str | None = None
_reason: str | None = None
_checked = False


def available() -> str | None:
    """``None`` when open descriptors can be listed, else why not."""
    global _listing, _reason, _checked  # noqa: PLW0603
    if not _checked:
        for folder in (_PROC, _DEV):
            if os.path.isdir(folder):  # noqa: PTH112
                _listing = folder
                break
        else:
            try:
                import psutil  # noqa: F401
            except ImportError:
                _reason = "listing open file descriptors here needs psutil"
        _checked = True
    return _reason


def _numbers() -> list[int]:
    if _listing is not None:
        return [int(name) for name in os.listdir(_listing)]  # noqa: PTH208
    import psutil

    process = psutil.Process()
    numbers = {item.fd for item in process.open_files()}
    numbers.update(c.fd for c in process.net_connections(kind="all") if c.fd >= 0)
    return sorted(numbers)


def take() -> Baseline:
    """Return each open descriptor with the identity of what it points to."""
    if not _checked:
        available()
    found: Baseline = {}
    fstat = os.fstat
    for fd in _numbers():
        try:
            info = fstat(fd)
        except OSError:
            # Closed since the listing (the listing's own descriptor among them).
            continue
        found[fd] = (info.st_dev, info.st_ino)
    return found


def _raw(fd: int) -> str:
    """The kernel's name for what *fd* points to, such as ``socket:[1234]``."""
    if _listing == _PROC:
        try:
            return os.readlink(f"{_PROC}/{fd}")  # noqa: PTH115
        except OSError:
            return "?"
    import stat

    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return "?"
    if stat.S_ISSOCK(mode):
        return "socket:"
    if stat.S_ISFIFO(mode):
        return "pipe:"
    return _path(fd) or f"fd {fd}"


def _path(fd: int) -> str | None:
    import fcntl

    getpath = getattr(fcntl, "F_GETPATH", None)
    if getpath is not None:
        try:
            return os.fsdecode(fcntl.fcntl(fd, getpath, bytes(1024)).rstrip(b"\0"))
        except OSError:
            return None
    return None


def new_since(
    before: Baseline, allow: Allow, own: set[int], *, detail: bool = True
) -> list[tuple[object, Leak]]:
    """
    Return the descriptors open now that *before* did not hold, as leaks;
    with *detail*, name the Python objects that hold them (slower).
    """
    leaks: list[tuple[object, Leak]] = []
    own = own | _running_loop()
    for fd, identity in take().items():
        if before.get(fd) == identity or fd in own:
            continue
        target = describe_target(fd, _raw(fd))
        if allow.fd(target):
            continue
        holders = tuple(_holders(fd)) if detail else ()
        leaks.append(((fd, identity), Leak("fd", f"fd {fd}: {target}", holders)))
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
    if raw.startswith("socket:"):
        return _socket(fd)
    if raw.startswith("pipe:"):
        return "pipe"
    return raw


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
