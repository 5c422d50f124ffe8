"""
What a leak check reports (:class:`Leak`) and what it lets pass (:class:`Allow`).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal

import attrs

#: The things a leak check looks at, in the order reports list them.
Category = Literal["thread", "task", "fd", "process", "object", "memory"]
CATEGORIES: tuple[Category, ...] = (
    "thread",
    "task",
    "fd",
    "process",
    "object",
    "memory",
)


@attrs.frozen
class Leak:
    """
    One thing a checked block left behind.

    Attributes:
        category: ``"thread"``, ``"task"``, ``"fd"``, ``"process"``,
            ``"object"`` or ``"memory"``.
        summary: One line naming the thing: ``thread 'poller' running
            poll()``, ``fd 7: socket tcp 127.0.0.1:5000 -> 127.0.0.1:8080``.
        details: Further lines: where it came from, what holds it.
        phase: The test phase it appeared in (``"setup"``, ``"call"``,
            ``"teardown"``) when pytest's plugin checked it, else ``None``.

    .. versionadded:: 0.2.0
    """

    category: Category
    summary: str
    details: tuple[str, ...] = ()
    phase: str | None = None

    def __str__(self) -> str:
        head = self.summary if self.phase is None else f"{self.summary} [{self.phase}]"
        return "\n".join([head, *(f"    {line}" for line in self.details)])


def _patterns(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@attrs.frozen
class Allow:
    """
    The things a leak check lets pass, by ``fnmatch`` patterns (``*``, ``?``,
    ``[ab]``, case-sensitive) matched against the names of what is left behind.

    Combine allow-lists with ``|``. A check always adds :data:`DEFAULT_ALLOW`
    unless the list it is given says ``defaults=False``.

    Args:
        threads: Patterns for thread names (``"my-pool-*"``).
        daemon_threads: Let every daemon thread pass, whatever its name.
        tasks: Patterns for task names or their coroutine's qualified name
            (``"Task-*"``, ``"*.heartbeat"``).
        fds: Patterns for what a file descriptor points to, as reports show
            it: ``"/var/log/*"``, ``"socket tcp * -> 127.0.0.1:6379"``,
            ``"pipe*"``, ``"anon_inode:[eventpoll]"``.
        processes: Patterns for child processes' command lines, their
            arguments joined by spaces.
        defaults: Whether checks add :data:`DEFAULT_ALLOW` to this list.

    .. versionadded:: 0.2.0
    """

    threads: tuple[str, ...] = attrs.field(default=(), converter=_patterns)
    daemon_threads: bool = False
    tasks: tuple[str, ...] = attrs.field(default=(), converter=_patterns)
    fds: tuple[str, ...] = attrs.field(default=(), converter=_patterns)
    processes: tuple[str, ...] = attrs.field(default=(), converter=_patterns)
    defaults: bool = True

    def __or__(self, other: Allow) -> Allow:
        if not isinstance(other, Allow):
            return NotImplemented
        return Allow(
            threads=(*self.threads, *other.threads),
            daemon_threads=self.daemon_threads or other.daemon_threads,
            tasks=(*self.tasks, *other.tasks),
            fds=(*self.fds, *other.fds),
            processes=(*self.processes, *other.processes),
            defaults=self.defaults and other.defaults,
        )

    def effective(self) -> Allow:
        """Return this list with :data:`DEFAULT_ALLOW` added, if it asks for it."""
        return DEFAULT_ALLOW | self if self.defaults else self

    def thread(self, name: str, *, daemon: bool) -> bool:
        """Whether a thread of this *name* may be left running."""
        return (daemon and self.daemon_threads) or _match(name, self.threads)

    def task(self, name: str, coroutine: str) -> bool:
        """Whether a task of this *name*, running *coroutine*, may be left pending."""
        return _match(name, self.tasks) or _match(coroutine, self.tasks)

    def fd(self, target: str) -> bool:
        """Whether a file descriptor pointing to *target* may be left open."""
        return _match(target, self.fds)

    def process(self, command: str) -> bool:
        """Whether a child process running *command* may be left running."""
        return _match(command, self.processes)


def _match(text: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(text, pattern) for pattern in patterns)


#: What every check lets pass unless told otherwise: threads that the
#: interpreter, anyio, trio, asyncio and debuggers keep for reuse or for the
#: whole run, which a test only happens to start first.
DEFAULT_ALLOW = Allow(
    threads=(
        # anyio and trio keep idle worker threads for a while, for reuse.
        "AnyIO worker thread",
        "Trio thread *",
        "Trio thread",
        # asyncio's default executor lives as long as its loop.
        "asyncio_*",
        # Debuggers and coverage tools.
        "pydevd.*",
        "Dummy-*",
    ),
    defaults=False,
)
