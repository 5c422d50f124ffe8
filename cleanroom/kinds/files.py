"""
The ``path`` and ``tempdir`` kinds: files and directory trees that a scope deletes.

Deleting files is where a cleanup library can do the most harm, so every
deletion passes the same checks, when a path is tracked and again when it is
deleted (a journal may replay the deletion in another process, long after):

- the path must lie strictly inside an *allowed root*: the system temporary
  directory, the current directory, a ``root=`` (or ``dir=``) given with the
  call, the ``allowed_roots`` of ``[tool.cleanroom]`` in ``pyproject.toml``
  (relative to that file's folder) and the entries of the
  ``CLEANROOM_ALLOWED_ROOTS`` environment variable (``os.pathsep``-separated);
- ``/``, the home directory, the current directory and every allowed root are
  refused, and so is any ancestor of them;
- containment is judged on the *resolved parent* of the path, so a symbolic
  link to a directory outside the roots does not let a path escape them;
- a path's last part is never followed: deleting a link removes the link,
  and a tree is removed with :func:`shutil.rmtree`'s file-descriptor walk,
  which removes links inside the tree without entering them;
- the root of :func:`watch` and :func:`track_glob` is resolved once, when
  they are called; when it is reached through a link, the directory it
  leads to must lie inside an allowed root. Below the root, links are never
  entered;
- a path that starts with ``~`` is expanded as a shell would (``~`` itself,
  the home directory, stays refused).

A refusal raises :class:`~cleanroom.exceptions.UnsafePathError`, which names
the path, the reason and the allowed roots; nothing is deleted.

Besides single paths, a scope can delete what *appears* under a root:
:func:`track_glob` and :func:`watch` snapshot the matching entries when they
are called and, at cleanup, delete the entries that were not in the snapshot,
never the root itself nor anything that existed before. Patterns are relative
to the root, with ``/`` between segments; a segment is matched like
:func:`fnmatch.fnmatchcase` (``*`` also matches names that start with a dot)
and a ``**`` segment matches any number of directories.
"""

# Paths are handled as strings on purpose: resolving only the parent, working
# relative to a directory descriptor and comparing prefixes need os.path.
# ruff: noqa: PTH100, PTH102, PTH109, PTH111, PTH112, PTH117, PTH118, PTH120

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import shlex
import stat
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import attrs

from cleanroom._core._policy import project_config
from cleanroom._core._resource import (
    BaseKind,
    Resource,
    register_kind,
)
from cleanroom._core._settings import find_pyproject
from cleanroom.exceptions import PolicyError, UnsafePathError

if TYPE_CHECKING:
    import tempfile as _tempfile

    from cleanroom._core._scope import Scope

__all__ = [
    "ENV_ALLOWED_ROOTS",
    "PATHS",
    "TEMPDIRS",
    "PathKind",
    "TempdirKind",
    "allowed_roots",
    "tempdir",
    "tempfile",
    "track_glob",
    "track_path",
    "watch",
]

#: The environment variable that adds allowed roots, separated by ``os.pathsep``.
ENV_ALLOWED_ROOTS: Final = "CLEANROOM_ALLOWED_ROOTS"

#: The prefix of the names :func:`tempdir` and :func:`tempfile` make up.
_DEFAULT_PREFIX: Final = "cleanroom-"

_NAME_CHARS: Final = "abcdefghijklmnopqrstuvwxyz0123456789_"
_NAME_LENGTH: Final = 12
_NAME_ATTEMPTS: Final = 100
_RECURSIVE: Final = "**"


# -- the kind ------------------------------------------------------------------


@attrs.define
class PathKind(BaseKind):
    """
    Files, links and directory trees, deleted without following links and
    only inside allowed roots.

    A resource's identity holds either ``path`` (one path; the resource's name
    is used when it is missing) and ``root`` (the allowed root that contains
    it), or ``root``, ``patterns`` and ``before`` (what :func:`track_glob` and
    :func:`watch` saw when they were called).

    The kind ``path`` adopts :class:`tempfile.TemporaryDirectory` objects
    given to :meth:`Scope.add <cleanroom.Scope.add>`: their directory is
    tracked as a path (and journaled), and the object's own finalizer is
    detached so that it does not try to delete it a second time.

    .. versionadded:: 0.1.0
    """

    #: The types whose objects :meth:`Scope.add <cleanroom.Scope.add>` adopts.
    adopts: tuple[str, ...] = ()

    def adopt(self, scope: Scope, obj: object, *, name: str | None) -> Resource:  # noqa: ARG002
        """Track the directory of the :class:`tempfile.TemporaryDirectory` *obj*."""
        directory = cast("_tempfile.TemporaryDirectory[str]", obj)
        path = track_path(scope, directory.name)
        # The directory is the scope's to delete now, and the journal's.
        directory._finalizer.detach()  # type: ignore[attr-defined]  # noqa: SLF001
        return scope.resource_of(path)

    def delete(self, resource: Resource, *, wait: bool) -> None:  # noqa: ARG002
        """
        Delete the path (or the entries that appeared under the root); succeed
        when they are already gone.

        Raises:
            UnsafePathError: When a path is no longer safe to delete (a parent
                was replaced by a link out of its root, say); it is left alone.
        """
        if _is_tree_watch(resource):
            _delete_new(resource)
            return
        path, root = _single(resource)
        guards = _guard_roots(root)
        _remove(path, guards, [root] if root is not None else guards)

    def exists(self, resource: Resource) -> bool:
        """Tell whether the path exists (or something new appeared under the root)."""
        if _is_tree_watch(resource):
            return bool(_new_entries(resource))
        path, _ = _single(resource)
        return os.path.lexists(path)

    def delete_hint(self, resource: Resource) -> str:
        """
        Return the ``rm -rf`` command that deletes the path(s) by hand, or
        ``"nothing — "`` and why a path is better left alone; either reads on
        from "delete it with:".
        """
        try:
            if _is_tree_watch(resource):
                base, _, _ = _watched(resource)
                new = _new_entries(resource)
                if not new:
                    return f"nothing — no new path under {base!r} matches"
                paths = (os.path.join(base, rel) for rel in new)
                return "rm -rf -- " + " ".join(shlex.quote(path) for path in paths)
            path, root = _single(resource)
            target = _resolved(os.path.normpath(path))
            # A command is run from elsewhere: this process's current
            # directory does not matter to it.
            guards = _guard_roots(root, cwd=False)
            reason = _refusal(target, guards, [root] if root else guards, cwd=False)
        except (OSError, ValueError) as exc:
            return f"nothing — {exc}"
        if reason is not None:
            return f"nothing — {target!r} is not safe to delete: {reason}"
        return f"rm -rf -- {shlex.quote(target)}"

    def describe(self, resource: Resource) -> str:
        """Return ``"<kind> '<path>'"``, or what a glob or watch looks for."""
        if _is_tree_watch(resource):
            identity = resource.identity
            root = identity.get("root")
            patterns = identity.get("patterns")
            if identity.get("mode") == "glob" and patterns:
                return f"new matches of {patterns[0]!r} under {root!r}"
            if patterns:
                listed = ", ".join(map(repr, patterns))
                return f"new paths matching {listed} under {root!r}"
            return f"new paths under {root!r}"
        return f"{self.name} {resource.name!r}"


#: Paths tracked with ``track_path``, ``tempfile``, ``track_glob`` and ``watch``.
PATHS: Final = PathKind(
    "path", aliases=("paths",), adopts=("tempfile.TemporaryDirectory",)
)


#: Directories made with ``tempdir``.
@attrs.define
class TempdirKind(PathKind):
    """
    Temporary directories and files made by :meth:`Scope.tempdir
    <cleanroom.Scope.tempdir>` and :meth:`~cleanroom.Scope.tempfile`; it
    answers ``cleanroom check`` for the files backend.

    .. versionadded:: 0.2.0
    """

    def probe(self) -> str:
        """Name the temporary directory that temporary paths go to."""
        import tempfile as _tempfile

        return f"local paths under {_tempfile.gettempdir()}"

    def roundtrip(self, scope: Scope) -> str:
        """Create a temporary directory and file in *scope*, and release them."""
        path = tempdir(scope, prefix="cleanroom-check-", suffix=None, dir=None)
        (path / "probe.txt").write_text("cleanroom check\n", encoding="utf-8")
        single = tempfile(scope, prefix="cleanroom-check-", suffix=None, dir=None)
        scope.release(single)
        scope.release(path)
        if path.exists() or single.exists():
            raise AssertionError(f"{path} or {single} still exists after release")
        return f"created and removed a temporary directory and file under {path.parent}"


TEMPDIRS: Final = TempdirKind("tempdir", aliases=("tempdirs",))

register_kind(PATHS)
register_kind(TEMPDIRS)


# -- helpers of Scope ------------------------------------------------------------


def tempdir(
    scope: Scope,
    *,
    suffix: str | None = None,
    prefix: str | None = None,
    dir: str | os.PathLike[str] | None = None,  # noqa: A002
) -> Path:
    """
    Create a directory that *scope* deletes, with its whole contents.

    Like :func:`tempfile.mkdtemp`, the directory is new (created with mode
    ``0o700`` under a name nobody else had) and is made in *dir*, or in the
    system's temporary directory. The name is journaled before the directory
    is created, so a crash in between leaves nothing unknown behind.

    Args:
        scope: The scope that deletes it.
        suffix: The end of the name; empty by default.
        prefix: The start of the name; ``"cleanroom-"`` by default.
        dir: Where to create it; it counts as an allowed root.

    Returns:
        The directory's absolute path.

    Raises:
        UnsafePathError: When *dir* is ``/``, the home directory or one of
            its ancestors.
        TypeError: When an argument has the wrong type.
        ValueError: When *suffix* or *prefix* holds a path separator.

    .. versionadded:: 0.1.0
    """
    return _create(
        scope, TEMPDIRS, suffix=suffix, prefix=prefix, dir=dir, make=_make_dir
    )


def tempfile(
    scope: Scope,
    *,
    suffix: str | None = None,
    prefix: str | None = None,
    dir: str | os.PathLike[str] | None = None,  # noqa: A002
) -> Path:
    """
    Create an empty file (mode ``0o600``) that *scope* deletes.

    Like :func:`tempfile.mkstemp`, but the file is closed at once and its
    path returned; see :func:`tempdir` for the arguments.

    Returns:
        The file's absolute path.

    Raises:
        UnsafePathError: When *dir* is ``/``, the home directory or one of
            its ancestors.
        TypeError: When an argument has the wrong type.
        ValueError: When *suffix* or *prefix* holds a path separator.

    .. versionadded:: 0.1.0
    """
    return _create(scope, PATHS, suffix=suffix, prefix=prefix, dir=dir, make=_make_file)


def track_path(
    scope: Scope,
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """
    Make *scope* delete *path* — a file, a link or a directory tree — when it
    closes. The path need not exist yet; a missing path counts as deleted.

    Args:
        scope: The scope that deletes it.
        path: The path; a relative one is relative to the current directory.
        root: One more allowed root for this path.

    Returns:
        The absolute path. It, an equal :class:`~pathlib.Path` or the same
        string is a handle for :meth:`~cleanroom.Scope.keep`,
        :meth:`~cleanroom.Scope.release` and :meth:`~cleanroom.Scope.forget`.

    Raises:
        UnsafePathError: When the path is outside every allowed root, or is
            ``/``, the home directory, the current directory, an allowed root
            or an ancestor of one of them.
        TypeError: When *path* or *root* is not a string or path.
        ValueError: When *path* or *root* is empty.

    .. versionadded:: 0.1.0
    """
    text = _path_text(path, "path")
    explicit = None if root is None else _root(_path_text(root, "root"), "root=")
    roots = _roots(explicit)
    absolute = os.path.abspath(text)
    target = _resolved(absolute)
    _check(target, roots, roots, verb="track")
    if explicit is not None and _within(target, explicit):
        container = explicit
    else:
        container = max((r for r in roots if _within(target, r)), key=len)
    resource = scope.track(PATHS, target, path=target, root=container)
    scope.alias(resource, absolute, target)
    return Path(absolute)


def track_glob(scope: Scope, pattern: str, root: str | os.PathLike[str]) -> Resource:
    """
    Make *scope* delete, when it closes, the entries under *root* that match
    *pattern* and did not exist when this was called.

    Args:
        scope: The scope that deletes them.
        pattern: A pattern relative to *root*, such as ``".icotes_tmp*"`` or
            ``"**/*.log"``.
        root: An existing directory; it is never deleted itself.

    Returns:
        The resource, a handle for :meth:`~cleanroom.Scope.keep` and the like.

    Raises:
        UnsafePathError: When *root* is ``/``, the home directory or one of
            its ancestors, or a link to a directory outside the allowed roots.
        NotADirectoryError: When *root* is not a directory.
        TypeError: When *pattern* or *root* has the wrong type.
        ValueError: When *pattern* is empty, absolute or climbs with ``..``.

    .. versionadded:: 0.1.0
    """
    parts = _pattern_parts(pattern)
    base = _watch_root(root)
    before = _snapshot(base, [parts])
    name = os.path.join(base, pattern)
    return scope.track(
        PATHS, name, mode="glob", root=base, patterns=[pattern], before=before
    )


def watch(
    scope: Scope,
    root: str | os.PathLike[str],
    patterns: Sequence[str] | None = None,
) -> Resource:
    """
    Make *scope* delete, when it closes, what appeared under *root* while it
    was open: new files, links and directories at any depth (a new directory
    goes with its contents), never *root* nor anything that existed before.

    With *patterns*, only new entries whose path relative to *root* matches
    one of them are deleted; a directory that was new and holds nothing else
    once they are gone is deleted too, so ``watch(ws, [".cache/*.json"])``
    also removes a ``.cache`` that the run created.

    Args:
        scope: The scope that deletes the new entries.
        root: An existing directory.
        patterns: Patterns relative to *root*; all new entries when ``None``.

    Returns:
        The resource, a handle for :meth:`~cleanroom.Scope.keep` and the like.

    Raises:
        UnsafePathError: When *root* is ``/``, the home directory or one of
            its ancestors, or a link to a directory outside the allowed roots.
        NotADirectoryError: When *root* is not a directory.
        TypeError: When *patterns* is not a sequence of strings.
        ValueError: When *patterns* is empty or holds a bad pattern.

    .. versionadded:: 0.1.0
    """
    parts_list: list[tuple[str, ...]]
    if patterns is None:
        parts_list = [(_RECURSIVE,)]
        stored: list[str] | None = None
    else:
        if isinstance(patterns, str) or not isinstance(patterns, Sequence):
            raise TypeError(
                "patterns must be a sequence of strings or None, not "
                f"{type(patterns).__name__}"
            )
        if not patterns:
            raise ValueError(
                "patterns must not be empty; pass None to watch everything"
            )
        parts_list = [_pattern_parts(pattern) for pattern in patterns]
        stored = list(patterns)
    base = _watch_root(root)
    before = _snapshot(base, parts_list)
    return scope.track(
        PATHS, base, mode="watch", root=base, patterns=stored, before=before
    )


def allowed_roots(root: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """
    Return the allowed roots, resolved: *root* (if given), the system's
    temporary directory, the current directory, then those of
    ``CLEANROOM_ALLOWED_ROOTS`` and of ``allowed_roots`` in ``[tool.cleanroom]``.

    The temporary and the current directory are left out when they are ``/``,
    the home directory or an ancestor of it.

    Raises:
        UnsafePathError: When *root* or a configured root is ``/``, the home
            directory or an ancestor of it.
        PolicyError: When ``allowed_roots`` in ``pyproject.toml`` is not a
            list of strings.

    .. versionadded:: 0.1.0
    """
    explicit = None if root is None else _root(_path_text(root, "root"), "root=")
    return tuple(_roots(explicit))


# -- creating temporary paths ------------------------------------------------------


def _create(
    scope: Scope,
    kind: PathKind,
    *,
    suffix: str | None,
    prefix: str | None,
    dir: str | os.PathLike[str] | None,  # noqa: A002
    make: Callable[[str], None],
) -> Path:
    # Imported here: the kind module is loaded on a process's first add(),
    # which should not pay for them.
    import secrets
    import tempfile as _tempfile

    suffix = _name_part(suffix, "suffix", "")
    prefix = _name_part(prefix, "prefix", _DEFAULT_PREFIX)
    if dir is None:
        parent = _tempfile.gettempdir()
        root = _root(parent, "the temporary directory (tempfile.gettempdir())")
    else:
        parent = os.path.abspath(_path_text(dir, "dir"))
        root = _root(parent, "dir=")
    for _ in range(_NAME_ATTEMPTS):
        middle = "".join(secrets.choice(_NAME_CHARS) for _ in range(_NAME_LENGTH))
        name = prefix + middle + suffix
        target = os.path.join(root, name)
        absolute = os.path.join(parent, name)
        with scope.creating(kind, target, path=target, root=root) as creation:
            try:
                make(target)
            except FileExistsError:
                creation.abandon("its name was taken; another was tried")
            else:
                creation.alias(absolute, target)
        if creation.abandoned is None:
            return Path(absolute)
    raise FileExistsError(errno.EEXIST, "no unused temporary name found", parent)


def _make_dir(path: str) -> None:
    os.mkdir(path, 0o700)


def _make_file(path: str) -> None:
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    os.close(os.open(path, flags, 0o600))


def _name_part(value: object, what: str, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str or None, not {type(value).__name__}")
    if os.sep in value or (os.altsep and os.altsep in value) or "\x00" in value:
        raise ValueError(f"{what} must not hold a path separator or NUL: {value!r}")
    return value


# -- safety ----------------------------------------------------------------------


def _path_text(value: object, what: str) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(
            f"{what} must be a str or an os.PathLike of str, not {type(value).__name__}"
        )
    if not value:
        raise ValueError(f"{what} must not be empty")
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters: {value!r}")
    if value.startswith("~"):
        # As a shell would: "~" is the home directory, never a folder named "~".
        expanded = os.path.expanduser(value)
        if expanded.startswith("~"):
            raise ValueError(
                f"cannot expand {value!r}: no such user or no home directory; "
                "write ./~ for a file named '~'"
            )
        return expanded
    return value


def _resolved(absolute: str) -> str:
    """Return *absolute* with its parent resolved and its last part kept as is."""
    parent, name = os.path.split(absolute)
    if not name:
        return absolute
    return os.path.join(os.path.realpath(parent), name)


def _within(inner: str, outer: str) -> bool:
    """Tell whether *inner* is *outer* or lies below it (both normalised)."""
    if inner == outer:
        return True
    return inner.startswith(outer if outer.endswith(os.sep) else outer + os.sep)


def _is_or_contains(what: str, inner: str, target: str) -> str:
    if inner == target:
        return f"it is {what}"
    return f"it contains {what} {inner!r}"


def _home() -> str | None:
    home = os.path.expanduser("~")
    if home == "~" or not os.path.isabs(home):
        return None
    return os.path.realpath(home)


def _cwd() -> str | None:
    try:
        return os.path.realpath(os.getcwd())
    except OSError:
        # The current directory was deleted; nothing can lie inside it.
        return None


def _root_problem(real: str) -> str | None:
    """Say why *real* cannot be an allowed root, or return ``None``."""
    if os.path.dirname(real) == real:
        return "it is the filesystem root"
    home = _home()
    if home is not None and _within(home, real):
        return _is_or_contains("the home directory", home, real)
    return None


def _root(path: str, source: str) -> str:
    """Resolve an allowed root given explicitly, refusing dangerous ones."""
    real = os.path.realpath(os.path.abspath(path))
    problem = _root_problem(real)
    if problem is not None:
        raise UnsafePathError(f"{source} {path!r} cannot be an allowed root: {problem}")
    return real


def _configured_roots() -> list[str]:
    roots = [
        _root(entry, f"{ENV_ALLOWED_ROOTS} entry")
        for entry in os.environ.get(ENV_ALLOWED_ROOTS, "").split(os.pathsep)
        if entry.strip()
    ]
    value = project_config().get("allowed_roots")
    if value is not None:
        pyproject = find_pyproject()
        folder = pyproject.parent if pyproject is not None else Path.cwd()
        entries = [value] if isinstance(value, str) else value
        if not isinstance(entries, list) or not all(
            isinstance(entry, str) and entry for entry in entries
        ):
            raise PolicyError(
                f"allowed_roots in [tool.cleanroom] of {pyproject} must be a list "
                f"of non-empty strings, not {value!r}"
            )
        source = f"allowed_roots entry of {pyproject}"
        roots.extend(_root(os.path.join(folder, entry), source) for entry in entries)
    return roots


def _implicit_roots(*, cwd: bool = True) -> list[str]:
    import tempfile as _tempfile

    roots = []
    for path in (_tempfile.gettempdir(), _cwd() if cwd else None):
        if path is not None:
            real = os.path.realpath(path)
            if _root_problem(real) is None:
                roots.append(real)
    return roots


def _roots(explicit: str | None) -> list[str]:
    roots = [] if explicit is None else [explicit]
    roots += _implicit_roots()
    roots += _configured_roots()
    return list(dict.fromkeys(roots))


def _guard_roots(stored: str | None, *, cwd: bool = True) -> list[str]:
    """
    The roots a deletion must not touch: the stored one and today's (without
    the current directory when *cwd* is false).
    """
    roots = [] if stored is None else [stored]
    roots += _implicit_roots(cwd=cwd)
    roots += _configured_roots()
    return list(dict.fromkeys(roots))


def _refusal(
    target: str, guards: Iterable[str], inside: Iterable[str], *, cwd: bool = True
) -> str | None:
    """
    Say why *target* may not be deleted, or return ``None``; with *cwd* false,
    whether it holds this process's current directory does not matter.
    """
    if os.path.dirname(target) == target:
        return "it is the filesystem root"
    home = _home()
    if home is not None and _within(home, target):
        return _is_or_contains("the home directory", home, target)
    here = _cwd() if cwd else None
    if here is not None and _within(here, target):
        return _is_or_contains("the current directory", here, target)
    for root in guards:
        if _within(root, target):
            return _is_or_contains("the allowed root", root, target)
    if not any(_within(target, root) for root in inside):
        return "it is outside every allowed root"
    return None


def _check(
    target: str, guards: Sequence[str], inside: Sequence[str], *, verb: str
) -> None:
    reason = _refusal(target, guards, inside)
    if reason is None:
        return
    roots = ", ".join(map(repr, dict.fromkeys([*inside, *guards]))) or "none"
    message = f"refusing to {verb} {target!r}: {reason} (allowed roots: {roots})"
    if reason.startswith("it is outside"):
        message += (
            f"; allow another root with root=..., {ENV_ALLOWED_ROOTS} or "
            "allowed_roots in [tool.cleanroom] of pyproject.toml"
        )
    raise UnsafePathError(message)


# -- deleting --------------------------------------------------------------------


def _single(resource: Resource) -> tuple[str, str | None]:
    identity = resource.identity
    path = identity.get("path", resource.name)
    root = identity.get("root")
    if not isinstance(path, str) or not os.path.isabs(path):
        raise ValueError(f"{resource!r} needs an absolute path, not {path!r}")
    if root is not None:
        _stored_root(resource, root)
    return path, root


def _stored_root(resource: Resource, root: object) -> str:
    """Check a root read back from a record, which may have been tampered with."""
    if not isinstance(root, str) or not os.path.isabs(root):
        raise ValueError(f"{resource!r} needs an absolute root, not {root!r}")
    problem = _root_problem(os.path.normpath(root))
    if problem is not None:
        raise UnsafePathError(
            f"refusing to delete {resource!r}: its root {root!r} cannot be an "
            f"allowed root: {problem}"
        )
    return root


def _remove(
    path: str, guards: Sequence[str], inside: Sequence[str], *, empty_only: bool = False
) -> None:
    """Delete *path* without following links, after checking it again."""
    target = _resolved(os.path.normpath(path))
    _check(target, guards, inside, verb="delete")
    parent, name = os.path.split(target)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        # Work relative to the checked parent, so that nothing swapped in
        # above it after the check can redirect the deletion.
        parent_fd = os.open(parent, flags)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        try:
            info = os.lstat(name, dir_fd=parent_fd)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(info.st_mode):
            if not empty_only:
                _ignore_missing(os.unlink, name, dir_fd=parent_fd)
        elif empty_only:
            try:
                os.rmdir(name, dir_fd=parent_fd)
            except OSError as exc:
                if exc.errno not in {errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST}:
                    raise
        else:
            try:
                _rmtree(name, parent_fd)
            except PermissionError:
                # Tests make read-only folders to test permission errors.
                _unlock(name, parent_fd)
                _rmtree(name, parent_fd)
    finally:
        os.close(parent_fd)


def _ignore_missing(func: Any, *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(FileNotFoundError):
        func(*args, **kwargs)


def _unlock(name: str, dir_fd: int) -> None:
    """
    Give the owner full access to the folders of a tree that this user owns, so
    that their entries can be removed; links are neither followed nor changed.
    """
    _unlock_folder(name, dir_fd)
    for _, folders, _, fd in os.fwalk(name, dir_fd=dir_fd):
        for folder in folders:
            _unlock_folder(folder, fd)


def _unlock_folder(name: str, dir_fd: int) -> None:
    with contextlib.suppress(OSError, ValueError):
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
            mode = stat.S_IMODE(info.st_mode) | stat.S_IRWXU
            os.chmod(name, mode, dir_fd=dir_fd, follow_symlinks=False)


def _rmtree(name: str, dir_fd: int) -> None:
    import shutil

    # Entries deleted meanwhile (by another cleanup of the same tree) are fine.
    if sys.version_info >= (3, 12):

        def onexc(func: Any, path: str, exc: BaseException) -> None:  # noqa: ARG001
            if not isinstance(exc, FileNotFoundError):
                raise exc

        shutil.rmtree(name, dir_fd=dir_fd, onexc=onexc)
    else:

        def onerror(func: Any, path: str, info: Any) -> None:  # noqa: ARG001
            if not isinstance(info[1], FileNotFoundError):
                raise info[1]

        shutil.rmtree(name, dir_fd=dir_fd, onerror=onerror)


# -- globs and watches -------------------------------------------------------------


def _is_tree_watch(resource: Resource) -> bool:
    return "patterns" in resource.identity


def _pattern_parts(pattern: object) -> tuple[str, ...]:
    if not isinstance(pattern, str):
        raise TypeError(f"a pattern must be a str, not {type(pattern).__name__}")
    if not pattern.strip():
        raise ValueError("a pattern must not be empty")
    if "\x00" in pattern:
        raise ValueError(f"a pattern must not contain NUL characters: {pattern!r}")
    if os.path.isabs(pattern):
        raise ValueError(f"a pattern must be relative to its root, not {pattern!r}")
    parts = tuple(part for part in pattern.split("/") if part not in {"", "."})
    if ".." in parts:
        raise ValueError(
            f"a pattern must not climb out of its root with '..': {pattern!r}"
        )
    if not parts:
        raise ValueError(f"the pattern {pattern!r} matches only the root itself")
    return parts


def _watch_root(root: object) -> str:
    text = _path_text(root, "root")
    real = _root(text, "root")
    if real != os.path.normpath(os.path.abspath(text)):
        # Reached through a link: the link was followed once, here, and the
        # directory it leads to must be one cleanroom may delete in.
        roots = _roots(None)
        if not any(_within(real, allowed) for allowed in roots):
            listed = ", ".join(map(repr, roots)) or "none"
            raise UnsafePathError(
                f"refusing to watch {text!r}: it is a link to {real!r}, which is "
                f"outside every allowed root (allowed roots: {listed}); pass a "
                f"real directory, or allow {real!r} with {ENV_ALLOWED_ROOTS} or "
                "allowed_roots in [tool.cleanroom] of pyproject.toml"
            )
    if not os.path.isdir(real):
        if not os.path.lexists(real):
            raise FileNotFoundError(errno.ENOENT, "no such root to watch", text)
        raise NotADirectoryError(errno.ENOTDIR, "the root to watch is no folder", text)
    return real


def _entries(root: str, rel: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(os.path.join(root, rel) if rel else root) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


class _Scan:
    """
    The entries under a root that match patterns, and the directories walked
    through to find them, as paths relative to the root; links are never
    entered.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.matches: set[str] = set()
        self.folders: set[str] = set()

    def walk(self, rel: str, parts: tuple[str, ...]) -> None:
        if not parts:
            if rel:
                self.matches.add(rel)
        elif parts[0] == _RECURSIVE:
            self._recurse(rel, parts)
        else:
            head, rest = parts[0], parts[1:]
            for entry in _entries(self.root, rel):
                if fnmatch.fnmatchcase(entry.name, head):
                    child = f"{rel}/{entry.name}" if rel else entry.name
                    self._step(entry, child, rest)

    def _recurse(self, rel: str, parts: tuple[str, ...]) -> None:
        rest = parts[1:]
        # "**" matches no directory at all, or one more and then itself again.
        self.walk(rel, rest)
        for entry in _entries(self.root, rel):
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                self.folders.add(child)
                self.walk(child, parts)
            elif not rest:
                self.matches.add(child)

    def _step(self, entry: os.DirEntry[str], child: str, rest: tuple[str, ...]) -> None:
        if not rest:
            self.matches.add(child)
        elif entry.is_dir(follow_symlinks=False):
            self.folders.add(child)
            self.walk(child, rest)


def _scan(root: str, patterns: Sequence[tuple[str, ...]]) -> tuple[set[str], set[str]]:
    scan = _Scan(root)
    for parts in patterns:
        scan.walk("", parts)
    return scan.matches, scan.folders


def _snapshot(root: str, patterns: Sequence[tuple[str, ...]]) -> list[str]:
    matches, folders = _scan(root, patterns)
    return sorted(matches | folders)


def _watched(resource: Resource) -> tuple[str, list[tuple[str, ...]], set[str]]:
    identity = resource.identity
    root = identity.get("root")
    patterns = identity.get("patterns")
    before = identity.get("before", ())
    root = _stored_root(resource, root)
    parts_list: list[tuple[str, ...]]
    if patterns is None:
        parts_list = [(_RECURSIVE,)]
    else:
        parts_list = [_pattern_parts(pattern) for pattern in patterns]
    if isinstance(before, str) or not all(isinstance(rel, str) for rel in before):
        raise ValueError(f"{resource!r} needs 'before' as a list of relative paths")
    return root, parts_list, set(before)


def _new_entries(resource: Resource) -> list[str]:
    """The outermost matching entries that were not there before, sorted."""
    root, parts_list, before = _watched(resource)
    matches, _ = _scan(root, parts_list)
    new = {rel for rel in matches if rel not in before}
    return sorted(rel for rel in new if not any(up in new for up in _ancestors(rel)))


def _ancestors(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:index]) for index in range(len(parts) - 1, 0, -1)]


def _delete_new(resource: Resource) -> None:
    root, _, before = _watched(resource)
    guards = _guard_roots(root)
    new = _new_entries(resource)
    for rel in new:
        _remove(os.path.join(root, rel), guards, [root])
    # Folders the run created only to hold what was just deleted go too.
    emptied = {up for rel in new for up in _ancestors(rel) if up not in before}
    for rel in sorted(emptied, key=lambda up: up.count("/"), reverse=True):
        _remove(os.path.join(root, rel), guards, [root], empty_only=True)
