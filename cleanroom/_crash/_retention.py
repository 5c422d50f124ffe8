"""
How long kept resources stay: by count of sessions and by age, like pytest's
``tmp_path`` retention, resolved from options, the environment and
``pyproject.toml``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Final

import attrs

#: The variable that sets how many sessions' kept resources stay.
RETENTION_COUNT_ENV: Final = "CLEANROOM_RETENTION_COUNT"

#: The variable that sets how long kept resources stay at most.
RETENTION_AGE_ENV: Final = "CLEANROOM_RETENTION_AGE"

#: How many sessions' kept resources stay by default, as pytest's ``tmp_path``.
DEFAULT_RETENTION_COUNT: Final = 3

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | float) -> float:
    """
    Parse a duration: seconds, or a number with one of ``s m h d w``.

    Args:
        text: ``"90"``, ``"90s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"1w"``, or a number.

    Returns:
        The duration in seconds.

    Raises:
        ValueError: When *text* is not a duration; the message shows valid ones.

    .. versionadded:: 0.1.0
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if match is None:
            raise ValueError(
                f"not a duration: {text!r}; valid: seconds or a number with a unit, "
                "such as 90, 90s, 15m, 2h, 7d, 1w"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"a duration must be zero or more seconds, not {text!r}")
    return seconds


def _retention_count(value: object, source: str) -> int | None:
    if isinstance(value, str) and value.strip().lower() in {"none", "all"}:
        return None
    text = str(value).strip()
    count = int(text) if text.isdigit() else -1
    if isinstance(value, bool) or count < 0:
        raise ValueError(
            f"{source} must be a number of sessions (0 or more) or 'none', "
            f"not {value!r}"
        )
    return count


def _retention_age(value: object, source: str) -> float | None:
    if isinstance(value, str) and value.strip().lower() == "none":
        return None
    try:
        return parse_duration(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}, or 'none'") from None


@attrs.frozen
class Retention:
    """
    How long resources that ended sessions kept on purpose stay before a sweep
    removes them — like pytest's ``tmp_path`` retention.

    A kept resource goes once *count* sessions newer than the one that kept it
    have started, or once it has been kept for *age* seconds, whichever comes
    first; ``None`` turns a limit off.

    Attributes:
        count: How many sessions' kept resources stay (the keeping session
            counts): with 3, the 4th session after it removes them.
        age: Seconds after which a kept resource goes whatever the count.

    .. versionadded:: 0.1.0
    """

    count: int | None = DEFAULT_RETENTION_COUNT
    age: float | None = None

    @classmethod
    def resolve(
        cls,
        *,
        count: object = None,
        age: object = None,
        config: Mapping[str, object] | None = None,
    ) -> Retention:
        """
        Combine the settings: *count* and *age* given here (a command line),
        then ``CLEANROOM_RETENTION_COUNT`` and ``CLEANROOM_RETENTION_AGE``,
        then *config* (pytest's ini keys ``count`` and ``age``), then
        ``retention_count`` and ``retention_age`` in ``[tool.cleanroom]``.

        Values are numbers, strings (``"3"``, ``"7d"``) or ``"none"``.

        Raises:
            ValueError: On a bad value; the message names it and the valid ones.
        """
        project = _project_table()
        config = config or {}
        layers: list[tuple[object, str]] = []
        for name, given, env in (
            ("count", count, RETENTION_COUNT_ENV),
            ("age", age, RETENTION_AGE_ENV),
        ):
            for value, source in (
                (given, f"retention {name}"),
                (os.environ.get(env, "").strip() or None, env),
                (config.get(name), f"cleanroom_retention_{name}"),
                (project.get(f"retention_{name}"), f"retention_{name}"),
            ):
                if value is not None and value != "":
                    layers.append((value, source))
                    break
            else:
                layers.append((None, ""))
        (count_value, count_source), (age_value, age_source) = layers
        return cls(
            DEFAULT_RETENTION_COUNT
            if count_value is None
            else _retention_count(count_value, count_source),
            None if age_value is None else _retention_age(age_value, age_source),
        )


def _project_table() -> Mapping[str, object]:
    from cleanroom._core._policy import project_config
    from cleanroom.exceptions import PolicyError

    try:
        return project_config()
    except PolicyError:
        return {}
