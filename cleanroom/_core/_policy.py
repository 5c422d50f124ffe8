"""
Levels, policies and outcomes: what a scope cleans, keeps and reports, and why.
"""

from __future__ import annotations

import enum
import math
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from ._exceptions import PolicyError
from ._settings import (
    POLICY_FIELDS,
    env_settings,
    is_given,
    project_file,
    setting_help,
)

if TYPE_CHECKING:
    from pathlib import Path

    from ._resource import Kind


Category = Literal["runtime", "record"]
OnFailure = Literal["keep", "clean"]
OnError = Literal["raise", "warn"]

CATEGORIES: Final = ("runtime", "record")
ON_FAILURE_CHOICES: Final = ("keep", "clean")
ON_ERROR_CHOICES: Final = ("raise", "warn")


def _frozen_names(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset((value,))
    return frozenset(value)


def _check_categories(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    unknown = sorted(set(value) - set(CATEGORIES))
    if unknown:
        raise PolicyError(
            f"unknown categor{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(map(repr, unknown))} in {attribute.name}; "
            f"valid: {', '.join(map(repr, CATEGORIES))}"
        )


@attrs.frozen
class Level:
    """
    Which tracked resources a scope cleans when it closes.

    A level cleans every resource whose kind is in one of *categories*
    (``"runtime"`` things such as processes, containers and pods, or
    ``"record"`` things such as Kubernetes Jobs, kept so that their logs stay
    readable), plus the kinds named in *kinds*, minus those named in *keep*.

    The built-in levels are :data:`NONE` (clean nothing), :data:`PODS` (clean
    runtime things, keep records) and :data:`ALL`. Register a custom level
    with :func:`register_level` to use it by name.

    Args:
        name: The name used on command lines, in the environment and in
            ``pyproject.toml``.
        categories: Categories of kinds that this level cleans.
        kinds: Names of kinds cleaned whatever their category.
        keep: Names of kinds kept whatever their category.

    .. versionadded:: 0.1.0
    """

    name: str
    categories: frozenset[str] = attrs.field(
        default=frozenset(), converter=_frozen_names, validator=_check_categories
    )
    kinds: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen_names)
    keep: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen_names)

    def cleans(self, kind: Kind) -> bool:
        """
        Tell whether this level cleans resources of *kind*.

        Args:
            kind: The kind of a tracked resource.

        Returns:
            ``True`` when resources of *kind* are cleaned at this level.
        """
        names = {kind.name, *kind.aliases}
        if names & self.keep:
            return False
        if names & self.kinds:
            return True
        return kind.category in self.categories

    def __str__(self) -> str:
        return self.name


NONE: Final = Level("none")
PODS: Final = Level("pods", categories=("runtime",))
ALL: Final = Level("all", categories=CATEGORIES)

_levels: dict[str, Level] = {level.name: level for level in (NONE, PODS, ALL)}


def _level_key(name: str) -> str:
    return name.strip().lower()


_levels_lock = threading.Lock()
# The [tool.cleanroom] tables whose levels are registered, by file.
_levels_read: dict[Path, dict[str, Any]] = {}


def register_level(level: Level) -> Level:
    """
    Make *level* usable by its name in policies, options and the environment.

    Args:
        level: The custom level.

    Returns:
        *level*, so that this can be used as an expression.

    Raises:
        PolicyError: When another level of that name is registered already.

    .. versionadded:: 0.1.0
    """
    key = _level_key(level.name)
    if not key:
        raise PolicyError("a level's name must not be empty")
    with _levels_lock:
        existing = _levels.get(key)
        if existing is not None and existing != level:
            raise PolicyError(
                f"a different level named {level.name!r} is registered already: "
                f"{existing!r}"
            )
        _levels[key] = level
    return level


def level_names() -> tuple[str, ...]:
    """
    Return the names of every registered level, built-in ones first.

    .. versionadded:: 0.1.0
    """
    return tuple(level.name for level in _levels.values())


def get_level(value: str | Level) -> Level:
    """
    Return the level named *value* (or *value* itself when it is a level).

    Raises:
        PolicyError: When no level has that name; the message lists the valid ones.

    .. versionadded:: 0.1.0
    """
    if isinstance(value, Level):
        return value
    if not isinstance(value, str):
        raise PolicyError(
            f"level must be a level name or a Level, not {type(value).__name__} "
            f"{value!r}; valid names: {', '.join(map(repr, level_names()))}"
        )
    try:
        return _levels[_level_key(value)]
    except KeyError:
        raise PolicyError(
            f"unknown level {value!r}; valid: {', '.join(map(repr, level_names()))}"
        ) from None


class Outcome(enum.Enum):
    """
    How the code that a scope guarded ended.

    .. versionadded:: 0.1.0
    """

    #: The body finished without an exception.
    PASSED = "passed"
    #: The body raised an ordinary exception, or a test failed.
    FAILED = "failed"
    #: KeyboardInterrupt, SystemExit, a signal or cancellation ended the body.
    INTERRUPTED = "interrupted"
    #: The test was skipped (``unittest.SkipTest``, ``pytest.skip``).
    SKIPPED = "skipped"

    @classmethod
    def from_exception(cls, exc: BaseException | None) -> Outcome:
        """
        Classify the exception (or its absence) that ended a body.

        Args:
            exc: What the body raised, or ``None``.

        Returns:
            The outcome it stands for.
        """
        if exc is None:
            return cls.PASSED
        if isinstance(exc, BaseExceptionGroup):
            # A group is interrupted (or skipped) only when all of it is.
            outcomes = {cls.from_exception(inner) for inner in exc.exceptions}
            single = outcomes.pop() if len(outcomes) == 1 else cls.FAILED
            return single if single is not cls.PASSED else cls.FAILED
        if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
            return cls.INTERRUPTED
        if _is_cancellation(exc):
            return cls.INTERRUPTED
        return cls.SKIPPED if _is_skip(exc) else cls.FAILED


_CANCEL_NAMES: Final = frozenset(
    {("asyncio.exceptions", "CancelledError"), ("trio", "Cancelled")}
)
# pytest presents its outcome exceptions as builtins, so they are recognised by
# their base class and name rather than their module.
_PYTEST_OUTCOME: Final = ("_pytest.outcomes", "OutcomeException")
_PYTEST_SKIPS: Final = frozenset({"Skipped", "XFailed"})


def _is_skip(exc: BaseException) -> bool:
    mro = type(exc).__mro__
    if any(
        (cls.__module__, cls.__qualname__) == ("unittest.case", "SkipTest")
        for cls in mro
    ):
        return True
    return type(exc).__qualname__ in _PYTEST_SKIPS and any(
        (cls.__module__, cls.__qualname__) == _PYTEST_OUTCOME for cls in mro
    )


def _is_cancellation(exc: BaseException) -> bool:
    return any(
        (cls.__module__, cls.__qualname__) in _CANCEL_NAMES for cls in type(exc).__mro__
    )


class Decision(enum.Enum):
    """
    What a policy decides for one tracked resource when its scope closes.

    .. versionadded:: 0.1.0
    """

    CLEAN = "clean"
    #: Kept because the body failed and the policy keeps failed tests' resources.
    KEEP_FAILED = "keep-failed"
    #: Kept because the policy's level does not clean this kind.
    KEEP_LEVEL = "keep-level"


_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


def _to_bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise PolicyError(
        f"{field} must be a boolean, not {value!r}; valid: true/false, yes/no, 1/0"
    )


def _to_seconds(value: Any, field: str, *, bounded: bool = True) -> float:
    hint = "" if bounded else " or 'none'"
    if value is None or isinstance(value, bool):
        raise PolicyError(f"{field} must be a number of seconds{hint}, not {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise PolicyError(
            f"{field} must be a number of seconds{hint}, not {value!r}"
        ) from None
    if math.isnan(seconds) or seconds < 0:
        raise PolicyError(f"{field} must be zero or more seconds, not {value!r}")
    if bounded and math.isinf(seconds):
        raise PolicyError(f"{field} must be finite, not {value!r}")
    return seconds


def _to_choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in choices:
        raise PolicyError(
            f"unknown {field} {value!r}; valid: {', '.join(map(repr, choices))}"
        )
    return str(text)


def _to_concurrency(value: Any) -> int:
    if isinstance(value, bool):
        raise PolicyError(f"concurrency must be a positive integer, not {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise PolicyError(
            f"concurrency must be a positive integer, not {value!r}"
        ) from None
    if number < 1 or number != float(value):
        raise PolicyError(f"concurrency must be a positive integer, not {value!r}")
    return number


def _to_on_failure(value: Any) -> OnFailure:
    return _to_choice(value, "on_failure", ON_FAILURE_CHOICES)  # type: ignore[return-value]


def _to_on_error(value: Any) -> OnError:
    return _to_choice(value, "on_error", ON_ERROR_CHOICES)  # type: ignore[return-value]


def _to_force(value: Any) -> bool:
    return _to_bool(value, "force")


def _to_wait(value: Any) -> bool:
    return _to_bool(value, "wait")


def _to_wait_after(value: Any) -> float:
    return _to_seconds(value, "wait_after")


def _to_timeout(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    seconds = _to_seconds(value, "timeout", bounded=False)
    return None if math.isinf(seconds) else seconds


def _shown(name: str) -> dict[str, str]:
    """The metadata of the field of setting *name*: how options present it."""
    metavar, text = setting_help(name)
    return {"metavar": metavar, "help": text}


@attrs.frozen
class Policy:
    """
    How a scope treats its tracked resources when it closes.

    Build one with keyword arguments, or let :meth:`resolve` combine the
    explicit ones with the environment and ``[tool.cleanroom]`` in
    ``pyproject.toml``. Every value is checked at once: a bad one raises
    :class:`~cleanroom.exceptions.PolicyError` naming the valid choices.

    Args:
        level: Which kinds are cleaned: ``"none"``, ``"pods"``, ``"all"`` or a
            registered custom :class:`Level`.
        on_failure: ``"keep"`` keeps a failed body's resources for debugging
            (each reported with the command that deletes it); ``"clean"``
            cleans them like a passed body's.
        force: Clean even when the body failed and *on_failure* is ``"keep"``.
        wait_after: Seconds to wait after cleaning, for backends that free
            capacity slowly.
        wait: Block until each backend confirms the deletion.
        timeout: Seconds that one cleanup may take before it is abandoned and
            reported as failed, 30 by default; ``None`` for no limit.
        concurrency: How many cleanups of one kind run at once.
        on_error: ``"raise"`` raises cleanup failures as one
            :class:`~cleanroom.exceptions.CleanupError`; ``"warn"`` emits a
            :class:`~cleanroom.exceptions.CleanupWarning` instead.

    .. versionadded:: 0.1.0
    """

    # The policy settings: the keyword arguments of scopes, the options of
    # ``cleanroom run`` and of pytest, the ini keys, the CLEANROOM_* variables
    # and the marker all follow these fields, whose names, order and help come
    # from _settings.SETTINGS (which needs no attrs to be read).
    level: Level = attrs.field(
        default=ALL,
        converter=get_level,
        metadata=_shown("level"),
    )
    on_failure: OnFailure = attrs.field(
        default="keep",
        converter=_to_on_failure,
        metadata=_shown("on_failure"),
    )
    force: bool = attrs.field(
        default=False,
        converter=_to_force,
        metadata=_shown("force"),
    )
    wait_after: float = attrs.field(
        default=0.0,
        converter=_to_wait_after,
        metadata=_shown("wait_after"),
    )
    wait: bool = attrs.field(
        default=True,
        converter=_to_wait,
        metadata=_shown("wait"),
    )
    timeout: float | None = attrs.field(
        default=30.0,
        converter=_to_timeout,
        metadata=_shown("timeout"),
    )
    concurrency: int = attrs.field(
        default=100,
        converter=_to_concurrency,
        metadata=_shown("concurrency"),
    )
    on_error: OnError = attrs.field(
        default="raise",
        converter=_to_on_error,
        metadata=_shown("on_error"),
    )

    def evolve(self, **changes: Any) -> Policy:
        """
        Return a copy with *changes* applied. ``...`` and ``None`` values are
        ignored, except ``timeout=None``, which means no limit.

        Raises:
            PolicyError: On an unknown setting or a bad value.
        """
        _check_names(changes, "policy setting")
        given = {
            name: value for name, value in changes.items() if is_given(name, value)
        }
        if not given:
            return self
        return attrs.evolve(self, **given)

    def decide(self, kind: Kind, outcome: Outcome) -> Decision:
        """
        Decide whether a resource of *kind* is cleaned after *outcome*.

        In-process kinds (objects, tasks) are always cleaned: nothing of theirs
        outlives the process for anyone to inspect.
        """
        if not kind.external:
            return Decision.CLEAN
        if outcome is Outcome.FAILED and self.on_failure == "keep" and not self.force:
            return Decision.KEEP_FAILED
        if not self.level.cleans(kind):
            return Decision.KEEP_LEVEL
        return Decision.CLEAN

    @classmethod
    def resolve(
        cls,
        *layers: Mapping[str, Any] | None,
        environ: Mapping[str, str] | None = None,
        config: Mapping[str, Any] | None = None,
        start: Path | None = None,
    ) -> Policy:
        """
        Combine settings from *layers* (first wins), the environment and
        ``[tool.cleanroom]`` of the nearest ``pyproject.toml``.

        Args:
            layers: Mappings of settings, most important first (explicit
                arguments, then a pytest marker, then command-line options);
                ``None`` layers, ``...`` values and ``None`` values are
                skipped, except ``timeout=None`` (no limit).
            environ: Where to read ``CLEANROOM_*`` variables; ``os.environ``
                by default.
            config: Settings from a configuration file that ranks below the
                environment and above ``pyproject.toml`` (pytest's ini keys).
            start: Where to start looking for ``pyproject.toml``; the current
                directory by default.

        Returns:
            The resolved policy.

        Raises:
            PolicyError: On an unknown setting or a bad value in any source;
                the message names the source.
        """
        merged: dict[str, Any] = {}
        for layer in layers:
            if not layer:
                continue
            _check_names(layer, "policy setting")
            for name, value in layer.items():
                if is_given(name, value):
                    merged.setdefault(name, value)
        for name, value in env_settings(environ).items():
            merged.setdefault(name, value)
        if config:
            _check_names(config, "policy setting")
            for name, value in config.items():
                if is_given(name, value):
                    merged.setdefault(name, value)
        for name, value in project_settings(start).items():
            merged.setdefault(name, value)
        return cls(**merged)


def given_settings(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """
    Pick the policy settings out of a function's *arguments* (its ``locals()``
    on entry), leaving out those not given (see :func:`is_given`).
    """
    return {
        name: arguments[name]
        for name in POLICY_FIELDS
        if is_given(name, arguments[name])
    }


def _check_names(settings: Mapping[str, Any], what: str) -> None:
    unknown = sorted(set(settings) - set(POLICY_FIELDS))
    if unknown:
        raise PolicyError(
            f"unknown {what}{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; valid: "
            f"{', '.join(map(repr, POLICY_FIELDS))}"
        )


def project_config(start: Path | None = None) -> dict[str, Any]:
    """
    Return the ``[tool.cleanroom]`` table of the nearest ``pyproject.toml``.

    The table is read once per file and modification time. Custom levels
    declared under ``[tool.cleanroom.levels.NAME]`` (keys ``categories``,
    ``kinds``, ``keep``) are registered as they are read.

    Raises:
        PolicyError: When the file cannot be parsed or the table has unknown
            keys.

    .. versionadded:: 0.1.0
    """
    path, table = project_file(start)
    with _levels_lock:
        if path is None or _levels_read.get(path) is table:
            return table
    for name, spec in table.get("levels", {}).items():
        if not isinstance(spec, dict):
            raise PolicyError(
                f"[tool.cleanroom.levels.{name}] in {path} must be a table"
            )
        bad = sorted(set(spec) - {"categories", "kinds", "keep"})
        if bad:
            raise PolicyError(
                f"unknown key(s) {', '.join(map(repr, bad))} in "
                f"[tool.cleanroom.levels.{name}] of {path}; valid: "
                "'categories', 'kinds', 'keep'"
            )
        register_level(Level(name, **spec))
    with _levels_lock:
        _levels_read[path] = table
    return table


def project_settings(start: Path | None = None) -> dict[str, Any]:
    """
    Return the policy settings of ``[tool.cleanroom]``, if any.

    .. versionadded:: 0.1.0
    """
    table = project_config(start)
    return {name: table[name] for name in POLICY_FIELDS if name in table}


# The package imports this module on first use, and other modules may reach
# it first: show the public path in reprs and tracebacks from the start.
for _public in (Decision, Level, Outcome, Policy, get_level, register_level):
    _public.__module__ = "cleanroom"
del _public
