"""
The policy settings by name, and where they are given: the environment and
``[tool.cleanroom]`` in ``pyproject.toml``.

This module imports no attrs and nothing of the core but its exceptions: the
pytest plugin reads it in every run, to add its options and to tell whether
any setting is given at all, and loads :mod:`._policy` only when one is.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from ._exceptions import PolicyError

if TYPE_CHECKING:
    from pathlib import Path

#: How command lines and ini files present each policy setting: its metavar
#: (``BOOL`` for a flag) and a one-line help text, in the order of the fields
#: of :class:`~cleanroom.Policy`, which take their metadata from here.
SETTINGS: Final[Mapping[str, tuple[str, str]]] = {
    "level": (
        "LEVEL",
        "which kinds are cleaned: none, pods, all (default) or a custom level",
    ),
    "on_failure": (
        "{keep,clean}",
        "keep (default) or clean the resources of failed tests",
    ),
    "force": ("BOOL", "clean the resources of failed tests too"),
    "wait_after": ("SECONDS", "seconds to wait after cleaning something"),
    "wait": ("BOOL", "wait until backends confirm deletions (default)"),
    "timeout": (
        "SECONDS",
        "seconds one cleanup may take (default 30; 'none': no limit)",
    ),
    "concurrency": ("N", "how many cleanups of one kind run at once"),
    "on_error": ("{raise,warn}", "raise (default) cleanup failures, or only warn"),
}

#: The names of every policy setting, in the order the docs list them: the
#: fields of :class:`~cleanroom.Policy`.
POLICY_FIELDS: Final = tuple(SETTINGS)

#: Settings for which ``None`` is a value: ``timeout=None`` means no limit, as
#: it does for :func:`anyio.fail_after` and :func:`asyncio.timeout`.
NULLABLE: Final = frozenset({"timeout"})

#: The variable naming the ``pyproject.toml`` to read instead of searching for
#: one from the current directory (set for reapers, which run in ``/``).
PYPROJECT_ENV: Final = "CLEANROOM_PYPROJECT"

#: Keys of ``[tool.cleanroom]`` that are not policy settings.
PROJECT_KEYS: Final = (
    "levels",
    "allowed_roots",
    "journal",
    "retention_count",
    "retention_age",
    "commands",
)


def setting_help(name: str) -> tuple[str, str]:
    """
    Return how command lines and ini files present the policy setting *name*:
    its metavar (``BOOL`` for a flag) and a one-line help text.
    """
    return SETTINGS[name]


def is_given(name: str, value: object) -> bool:
    """
    Tell whether *value* sets the policy setting *name*: ``...`` never does,
    ``None`` only where it is a value (:data:`NULLABLE`).

    .. versionadded:: 0.1.0
    """
    return value is not ... and (value is not None or name in NULLABLE)


def env_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """
    Return the policy settings given as ``CLEANROOM_<SETTING>`` variables.

    .. versionadded:: 0.1.0
    """
    env = os.environ if environ is None else environ
    found = {}
    for name in POLICY_FIELDS:
        value = env.get(f"CLEANROOM_{name.upper()}")
        if value is not None and value.strip():
            found[name] = value
    return found


_tables: dict[Path, tuple[float, dict[str, Any]]] = {}
_tables_lock = threading.Lock()


def find_pyproject(start: Path | None = None) -> Path | None:
    """
    Return the nearest ``pyproject.toml`` at or above *start*, if any.

    .. versionadded:: 0.1.0
    """
    # pathlib and tomllib are imported on first use: import cleanroom stays quick.
    from pathlib import Path

    if start is None:
        # A reaper runs in "/": its owner names the project it ran in.
        given = os.environ.get(PYPROJECT_ENV, "").strip()
        if given and Path(given).is_file():
            return Path(given)
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def project_file(start: Path | None = None) -> tuple[Path | None, dict[str, Any]]:
    """
    Return the nearest ``pyproject.toml`` and its ``[tool.cleanroom]`` table,
    read once per file and modification time, its keys checked (not yet its
    levels: :func:`~cleanroom._core._policy.project_config` registers them).

    Raises:
        PolicyError: When the file cannot be parsed or the table has unknown
            keys.
    """
    path = find_pyproject(start)
    if path is None:
        return None, {}
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return path, {}
    with _tables_lock:
        cached = _tables.get(path)
        if cached is not None and cached[0] == mtime:
            return path, cached[1]
    import tomllib

    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"cannot read {path}: {exc}") from exc
    table = document.get("tool", {}).get("cleanroom", {})
    if not isinstance(table, dict):
        raise PolicyError(f"[tool.cleanroom] in {path} must be a table")
    unknown = sorted(set(table) - set(POLICY_FIELDS) - set(PROJECT_KEYS))
    if unknown:
        raise PolicyError(
            f"unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} in [tool.cleanroom] of {path}; valid: "
            f"{', '.join(map(repr, POLICY_FIELDS + PROJECT_KEYS))}"
        )
    with _tables_lock:
        _tables[path] = (mtime, table)
    return path, table
