"""
Where the journal lives: ``CLEANROOM_JOURNAL``, ``journal`` in
``[tool.cleanroom]``, or the user's cache directory.

Apart from the journal itself, so that finding out whether there is a journal
(the pytest plugin asks at every start) imports no sqlite.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

#: The variable that names the journal file, or turns journaling off.
JOURNAL_ENV: Final = "CLEANROOM_JOURNAL"

#: Values of ``CLEANROOM_JOURNAL`` that turn journaling off.
OFF_VALUES: Final = frozenset({"off", "none", "no", "false", "0", "disabled"})


def default_path() -> Path:
    """
    Return the journal's default location: ``cleanroom/journal.sqlite3`` in the
    user's cache directory (``$XDG_CACHE_HOME``, else ``~/.cache``).

    .. versionadded:: 0.1.0
    """
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(cache) if cache else Path.home() / ".cache"
    return base / "cleanroom" / "journal.sqlite3"


def journal_path(
    environ: Mapping[str, str] | None = None, *, start: Path | None = None
) -> Path | None:
    """
    Return where this process journals, or ``None`` when journaling is off.

    ``CLEANROOM_JOURNAL`` (set by pytest's ``--cleanroom-journal``) wins; one
    of ``off``, ``none``, ``no``, ``false``, ``0`` turns journaling off. Then
    ``journal`` in ``[tool.cleanroom]`` of the nearest ``pyproject.toml``
    (relative to that file), then :func:`default_path`.

    .. versionadded:: 0.1.0
    """
    env = os.environ if environ is None else environ
    value = env.get(JOURNAL_ENV, "").strip()
    if not value:
        value, relative_to = _configured_path(start)
    else:
        relative_to = None
    if not value:
        return default_path()
    if value.lower() in OFF_VALUES:
        return None
    path = Path(value).expanduser()
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    return path.absolute()


def _configured_path(start: Path | None) -> tuple[str, Path | None]:
    from cleanroom._core._exceptions import PolicyError
    from cleanroom._core._settings import project_file

    try:
        pyproject, table = project_file(start)
    except PolicyError:
        return "", None
    value = table.get("journal")
    if not isinstance(value, str):
        return "", None
    return value.strip(), (pyproject.parent if pyproject is not None else None)
