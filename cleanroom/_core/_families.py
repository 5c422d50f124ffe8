"""
The kinds' helpers on a scope: the built-in ones and the backends' families.
"""

from __future__ import annotations

import os
from collections.abc import (
    Awaitable,
    Callable,
    Sequence,
)
from typing import TYPE_CHECKING, Any, cast

from . import _discovery
from ._exceptions import ScopeStateError
from ._resource import (
    Resource,
)
from ._state import ScopeState

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path


class Families(ScopeState):
    """The part of :class:`~cleanroom.Scope` that does this."""

    def __getattr__(self, name: str) -> Any:
        # Only called for names the class lacks: the installed backends'
        # family accessors, found by entry-point name.
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._families[name]
        except KeyError:
            pass
        module = _discovery.load(name)
        factory = getattr(module, "family", None)
        if factory is None:
            installed = ", ".join(
                family
                for family in _discovery.families()
                if hasattr(_backend(family), "family")
            )
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}; the "
                f"installed backends' families are: {installed or 'none'}"
            )
        family = self._families[name] = factory(self)
        return family

    def tempdir(
        self,
        suffix: str | None = None,
        prefix: str | None = None,
        dir: str | os.PathLike[str] | None = None,  # noqa: A002
    ) -> Path:
        """
        Create a temporary directory that the scope deletes; return its path.

        Arguments are those of :func:`tempfile.mkdtemp`.
        """
        return cast(
            "Path",
            _backend("files").tempdir(self, suffix=suffix, prefix=prefix, dir=dir),
        )

    def tempfile(
        self,
        suffix: str | None = None,
        prefix: str | None = None,
        dir: str | os.PathLike[str] | None = None,  # noqa: A002
    ) -> Path:
        """
        Create an empty temporary file that the scope deletes; return its path.

        Arguments are those of :func:`tempfile.mkstemp`.
        """
        return cast(
            "Path",
            _backend("files").tempfile(self, suffix=suffix, prefix=prefix, dir=dir),
        )

    def track_path(
        self,
        path: str | os.PathLike[str],
        *,
        root: str | os.PathLike[str] | None = None,
    ) -> Path:
        """
        Delete *path* (a file, link or directory tree) when the scope closes.

        Raises:
            UnsafePathError: When the path is not inside an allowed root (*root*,
                the temporary directory or the current directory), or is ``/``,
                a home directory or a root itself.
        """
        return cast("Path", _backend("files").track_path(self, path, root=root))

    def track_glob(self, pattern: str, root: str | os.PathLike[str]) -> Resource:
        """
        Delete, when the scope closes, what matches *pattern* under *root* and
        did not exist when this was called.
        """
        return cast("Resource", _backend("files").track_glob(self, pattern, root))

    def watch(
        self, root: str | os.PathLike[str], patterns: Sequence[str] | None = None
    ) -> Resource:
        """
        Delete, when the scope closes, what appeared under *root* (matching any
        of *patterns*, if given) while the scope was open.
        """
        return cast("Resource", _backend("files").watch(self, root, patterns))

    def popen(
        self, args: Sequence[str | os.PathLike[str]], **kwargs: Any
    ) -> subprocess.Popen[Any]:
        """
        Start a process in a new process group, like :class:`subprocess.Popen`;
        the scope terminates the group, waits, kills and reaps it.

        The keyword ``grace`` sets the seconds between ``SIGTERM`` and
        ``SIGKILL``; the others go to :class:`subprocess.Popen`.
        """
        return cast(
            "subprocess.Popen[Any]", _backend("processes").popen(self, args, **kwargs)
        )

    def track_pid(self, pid: int, *, grace: float | None = None) -> Resource:
        """
        Track a running process by pid (its start time guards against pid reuse).

        *grace* is the seconds between ``SIGTERM`` and ``SIGKILL``.
        """
        return cast("Resource", _backend("processes").track_pid(self, pid, grace=grace))

    def start_soon(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> Resource:
        """
        Start ``fn(*args)`` as a background task of the running event loop; the
        scope cancels and awaits it when it closes.

        Raises:
            ScopeStateError: When no event loop is running in this thread.
        """
        return cast(
            "Resource", _backend("tasks").start_soon(self, fn, *args, name=name)
        )


def _backend(name: str) -> Any:
    """Return the module of the installed backend *name* (an entry point's name)."""
    module = _discovery.load(name)
    if module is None:
        raise ScopeStateError(
            f"the cleanroom backend {name!r} is not installed: no entry point "
            f"of group {_discovery.GROUP!r} has that name; reinstall cleanroom"
        )
    return module
