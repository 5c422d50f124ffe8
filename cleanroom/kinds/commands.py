"""
Command kinds: things a command-line program creates, lists and deletes — VMs
driven by ``orbctl`` or ``multipass``, tmux sessions, cloud machines.

A :class:`CommandKind` is defined by argument-list templates::

    VM = CommandKind(
        "vm",
        delete=["orbctl", "delete", "--force", "{name}"],
        list=["orbctl", "list", "--format", "json"],
        parser="json",
        create=["orbctl", "create", "ubuntu:22.04", "{name}"],
        orphan_prefixes=["test-vm-"],
    )

Each argument is a template on its own: ``{name}`` and the identity fields the
kind declares are substituted into it, and the result is run as an argument
list — never through a shell, never joined into one string — so a name such as
``x;rm -rf ~`` is one harmless argument. A name that starts with ``-`` (which a
program would read as an option) is refused.

Creating through :meth:`Commands.create` (``scope.commands.create(...)``)
journals the name *before* the create runs: a create that times out has its
process group ended and its name stays reserved, so that the scope — or, when
the runner is killed, its reaper — deletes the thing if it appears within the
kind's grace period; a name that never appears counts as cleaned.

Deleting succeeds when the delete command succeeds, when it exits with one of
the kind's ``not_found_codes``, or when the ``exists`` (or ``list``) command
then reports the name absent. Other failures are retried with a doubling
backoff within the kind's ``timeout``; the last failure's standard error is in
the raised :class:`~cleanroom.exceptions.CommandError`.

Kinds can also be declared in ``pyproject.toml``, so that the sweep, the reaper
and the ``cleanroom`` command know them without importing test code::

    [tool.cleanroom.commands.vm]
    delete = ["orbctl", "delete", "--force", "{name}"]
    list = ["orbctl", "list", "--format", "json"]
    parser = "json"
    orphan_prefixes = ["test-vm-"]

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import math
import secrets
import shlex
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from cleanroom._core._resource import BaseKind, Resource, get_kind, register_kind
from cleanroom.exceptions import (
    BackendUnavailableError,
    CommandError,
    CommandTimeoutError,
    PolicyError,
    UnknownKindError,
)

from ._commandline import (
    TERM_GRACE,
    Completed,
    Listed,
    Parser,
    Template,
    _arun,
    _to_argv,
    _to_optional_argv,
    _to_parser,
    parse_json,
    parse_lines,
    run_command,
)

if TYPE_CHECKING:
    from cleanroom import Scope

__all__ = [
    "TERM_GRACE",
    "CommandKind",
    "Commands",
    "Completed",
    "Template",
    "family",
    "load_project_kinds",
    "parse_json",
    "parse_lines",
    "run_command",
]

for _public in (Completed, Template, parse_json, parse_lines, run_command):
    _public.__module__ = __name__
del _public

#: The first pause between two delete attempts; each next one is twice as long.
_BACKOFF: Final = 0.25

#: How often existence is polled while waiting for a deletion to show.
_POLL: Final = 0.1


# -- the kind ---------------------------------------------------------------------


def _to_prefixes(value: Iterable[str] | str) -> tuple[str, ...]:
    prefixes: tuple[object, ...] = (value,) if isinstance(value, str) else tuple(value)
    for prefix in prefixes:
        if not isinstance(prefix, str) or not prefix.strip():
            raise PolicyError(
                f"an orphan prefix must be a non-empty string: {prefix!r}"
            )
    return prefixes  # type: ignore[return-value]


def _to_fields(value: Iterable[str]) -> tuple[str, ...]:
    fields: tuple[object, ...] = tuple(value)
    for field in fields:
        if not isinstance(field, str) or not field.isidentifier() or field == "name":
            raise PolicyError(
                f"bad identity field {field!r}: fields are identifiers other "
                "than 'name'"
            )
    return fields  # type: ignore[return-value]


def _to_codes(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(code) for code in value)


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if math.isnan(value) or value < 0:
        raise PolicyError(f"{attribute.name} must be zero or more, not {value!r}")


def _check_name(name: object) -> None:
    """
    Refuse names a program could misread: empty, starting with ``-`` (an
    option), or holding a NUL or a line break.

    Raises:
        PolicyError: Naming the bad name.
    """
    if not isinstance(name, str) or not name:
        raise PolicyError(f"a command kind's name must be a non-empty str: {name!r}")
    if name.startswith("-"):
        raise PolicyError(
            f"refusing the name {name!r}: it starts with '-', which a program "
            "reads as an option"
        )
    if any(char in name for char in "\0\n\r"):
        raise PolicyError(f"refusing the name {name!r}: it holds a NUL or line break")


@attrs.define(eq=False)
class CommandKind(BaseKind):
    """
    A kind of things managed by a command-line program.

    Args:
        name: The kind's name (``"vm"``), what ``scope.track("vm", ...)`` uses.
        delete: The delete command (argument templates, see :class:`Template`).
        exists: A command that exits 0 when the thing exists and with one of
            *absent_codes* when it does not.
        list: A command that prints the existing things, read by *parser*;
            used to tell existence when there is no *exists*, and by prefix
            sweeps (its templates may not use ``{name}``).
        parser: How to read *list*'s output: ``"lines"`` (one name per line,
            :func:`parse_lines`), ``"json"`` (:func:`parse_json`) or a function
            of the output returning names or ``(name, created)`` pairs.
        create: The create command, for :meth:`Commands.create` called without
            one and for the round trip of ``cleanroom check``.
        fields: Identity fields the templates may use besides ``{name}``
            (``scope.track("vm", name, zone="eu")`` fills ``{zone}``).
        aliases: Other names of the kind.
        category: ``"runtime"`` (cleaned at level ``pods``) or ``"record"``.
        orphan_prefixes: Opt-in prefix rules: a sweep deletes things whose name
            *starts with* one of these when no live session journaled them and
            they are older than *min_age*.
        min_age: Seconds a thing found by a prefix rule must have existed (per
            the list's creation times) before a sweep deletes it; a thing of
            unknown age is spared unless this is 0.
        timeout: Seconds one command may take, and one deletion with its
            retries (20).
        grace: Seconds a reserved name may take to appear before it counts as
            never created (10). The policy's ``timeout`` bounds a whole
            cleanup: keep ``grace + timeout`` within it.
        retries: How many times a failed delete is retried.
        not_found_codes: Exit codes of *delete* that mean "no such thing".
        absent_codes: Exit codes of *exists* that mean "no such thing".

    Raises:
        PolicyError: On a bad template, parser or value; the message names it
            and the valid choices.

    .. versionadded:: 0.2.0
    """

    delete_command: tuple[str, ...] = attrs.field(
        kw_only=True, alias="delete", converter=_to_argv
    )
    exists_command: tuple[str, ...] | None = attrs.field(
        default=None, kw_only=True, alias="exists", converter=_to_optional_argv
    )
    list_command: tuple[str, ...] | None = attrs.field(
        default=None, kw_only=True, alias="list", converter=_to_optional_argv
    )
    parser: Parser = attrs.field(default="lines", kw_only=True)
    create_command: tuple[str, ...] | None = attrs.field(
        default=None, kw_only=True, alias="create", converter=_to_optional_argv
    )
    fields: tuple[str, ...] = attrs.field(
        default=(), kw_only=True, converter=_to_fields
    )
    orphan_prefixes: tuple[str, ...] = attrs.field(
        default=(), kw_only=True, converter=_to_prefixes
    )
    min_age: float = attrs.field(
        default=60.0, kw_only=True, converter=float, validator=_non_negative
    )
    timeout: float = attrs.field(
        default=20.0, kw_only=True, converter=float, validator=_non_negative
    )
    retries: int = attrs.field(default=3, kw_only=True, converter=int)
    not_found_codes: tuple[int, ...] = attrs.field(
        default=(), kw_only=True, converter=_to_codes
    )
    absent_codes: tuple[int, ...] = attrs.field(
        default=(1,), kw_only=True, converter=_to_codes
    )
    grace: float = attrs.field(
        default=10.0, kw_only=True, converter=float, validator=_non_negative
    )
    _templates: dict[str, Template] = attrs.field(init=False, factory=dict)
    _parse: Callable[[str], Iterable[Listed]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.retries < 0:
            raise PolicyError(f"retries must be zero or more, not {self.retries!r}")
        named = frozenset({"name", *self.fields})
        commands = {
            "delete": (self.delete_command, named),
            "exists": (self.exists_command, named),
            "create": (self.create_command, named),
            # A prefix sweep lists without a resource: no {name} there.
            "list": (self.list_command, frozenset(self.fields)),
        }
        for what, (argv, fields) in commands.items():
            if argv is not None:
                self._templates[what] = Template(argv, fields, f"{self.name} {what}")
        self._parse = _to_parser(self.parser)
        if self.orphan_prefixes and self.list_command is None:
            raise PolicyError(
                f"the command kind {self.name!r} has orphan_prefixes but no list "
                "command to find them with"
            )

    # -- commands -----------------------------------------------------------

    def _values(self, resource: Resource) -> dict[str, object]:
        _check_name(resource.name)
        values: dict[str, object] = {
            key: value for key, value in resource.identity.items() if key in self.fields
        }
        values["name"] = resource.name
        return values

    def argv(self, what: str, resource: Resource) -> list[str]:
        """
        Return the *what* command (``"delete"``, ``"exists"``, ``"create"``)
        for *resource*, fields substituted.

        Raises:
            PolicyError: When the kind has no such command, or the resource
                lacks a field the command uses.
        """
        template = self._templates.get(what)
        if template is None or what == "list":
            raise PolicyError(
                f"the command kind {self.name!r} has no {what} command for one "
                f"resource; it has: {', '.join(self._templates)}"
            )
        return template.render(self._values(resource))

    @property
    def tells_existence(self) -> bool:
        """Whether the kind has an ``exists`` or ``list`` command."""
        return self.exists_command is not None or self.list_command is not None

    def listed(self, identity: Mapping[str, object] | None = None) -> list[Listed]:
        """
        Run the list command; return the names and creation times it shows.

        Raises:
            PolicyError: When the kind has no list command.
            CommandError: When it fails or its output cannot be parsed.
        """
        template = self._templates.get("list")
        if template is None:
            raise PolicyError(f"the command kind {self.name!r} has no list command")
        done = run_command(template.render(identity or {}), timeout=self.timeout)
        if done.returncode != 0:
            raise done.error(f"listing {self.name} things")
        try:
            return list(self._parse(done.stdout))
        except (ValueError, TypeError) as exc:
            raise CommandError(
                f"cannot read the output of {shlex.join(done.argv)}: {exc}",
                argv=done.argv,
                returncode=0,
            ) from exc

    def exists(self, resource: Resource) -> bool:
        """
        Tell whether *resource* exists, by the ``exists`` command or else the
        ``list`` command; assume it does when the kind has neither.

        Raises:
            CommandError: When the command fails in another way.
        """
        if self.exists_command is not None:
            done = run_command(self.argv("exists", resource), timeout=self.timeout)
            if done.returncode == 0:
                return True
            if done.returncode in self.absent_codes:
                return False
            raise done.error(f"checking {self.describe(resource)}")
        if self.list_command is not None:
            names = {_name_of(item) for item in self.listed(resource.identity)}
            return resource.name in names
        return True

    def delete(self, resource: Resource, *, wait: bool) -> None:
        """
        Delete *resource*, retrying failures with backoff within
        ``timeout``; succeed when it is already gone.

        Args:
            resource: What to delete.
            wait: Then wait, within the timeout, until the ``exists`` or
                ``list`` command no longer shows it.

        Raises:
            CommandError: When every attempt failed and the thing still exists
                (or the kind cannot tell); the message holds the last
                attempt's standard error.
        """
        argv = self.argv("delete", resource)
        deadline = time.monotonic() + self.timeout
        pause = _BACKOFF
        attempt = 0
        while True:
            attempt += 1
            left = max(0.1, deadline - time.monotonic())
            failure: CommandError
            try:
                done = run_command(argv, timeout=left)
            except CommandTimeoutError as exc:
                failure = exc
            else:
                if done.returncode == 0:
                    break
                if done.returncode in self.not_found_codes:
                    return
                failure = done.error(f"deleting {self.describe(resource)}")
            if self._absent(resource):
                return
            if attempt > self.retries or time.monotonic() + pause >= deadline:
                if attempt > 1:
                    failure.add_note(f"{attempt} attempts in {self.timeout:g} s")
                raise failure
            time.sleep(pause)
            pause *= 2
        if wait and self.tells_existence:
            self._wait_gone(resource, deadline)

    def _absent(self, resource: Resource) -> bool:
        if not self.tells_existence:
            return False
        try:
            return not self.exists(resource)
        except CommandError:
            return False

    def _wait_gone(self, resource: Resource, deadline: float) -> None:
        while self.exists(resource):
            if time.monotonic() >= deadline:
                raise CommandError(
                    f"{self.describe(resource)} still exists {self.timeout:g} s "
                    f"after {shlex.join(self.argv('delete', resource))} succeeded",
                    argv=tuple(self.argv("delete", resource)),
                )
            time.sleep(_POLL)

    def delete_hint(self, resource: Resource) -> str:
        """Return the delete command, quoted for a shell (``shlex.join``)."""
        try:
            return shlex.join(self.argv("delete", resource))
        except PolicyError as exc:
            return f"cannot build the delete command: {exc}"

    def describe(self, resource: Resource) -> str:
        """Return ``"<kind> '<name>'"``."""
        return f"{self.name} {resource.name!r}"

    # -- capabilities --------------------------------------------------------

    def list_names(self, prefix: str) -> list[str]:
        """
        Return the names that start with *prefix* and are older than
        ``min_age``: what a prefix rule may delete.

        Raises:
            PolicyError: When *prefix* is empty, or the kind cannot list.
            CommandError: When listing fails.
        """
        if not prefix:
            raise PolicyError("a prefix rule needs a non-empty prefix")
        template = self._templates.get("list")
        if template is not None and template.used:
            raise PolicyError(
                f"the list command of {self.name!r} needs "
                f"{', '.join(sorted(template.used))}; a prefix sweep has none"
            )
        now = time.time()
        names = []
        for item in self.listed():
            name, created = (item, None) if isinstance(item, str) else item
            if not name.startswith(prefix):
                continue
            if self.min_age > 0 and (created is None or now - created < self.min_age):
                continue
            names.append(name)
        return names

    def probe(self) -> str:
        """
        Tell whether the kind's program answers: run the list command, or else
        find the delete command's program on ``PATH``.

        Raises:
            BackendUnavailableError: When it does not; the message says why.
        """
        if self.list_command is not None and "list" in self._templates:
            try:
                count = len(self.listed())
            except (CommandError, PolicyError) as exc:
                raise BackendUnavailableError(str(exc)) from exc
            return f"{shlex.join(self.list_command)}: {count} listed"
        program = self.delete_command[0]
        found = shutil.which(program)
        if found is None:
            raise BackendUnavailableError(f"{program} is not on PATH")
        return f"{program} at {found}"

    def roundtrip(self, scope: Scope) -> str:
        """
        Create one thing named ``cleanroom-check-…`` with the kind's create
        command in *scope*, check that it exists, release it (delete it now)
        and check that it is gone. A kind without a create command only
        checks that such a name is reported absent.

        Raises:
            CommandError: When a step fails.
        """
        name = f"cleanroom-check-{secrets.token_hex(4)}"
        if self.create_command is None:
            probe = Resource(self.name, name)
            if self.tells_existence and self.exists(probe):
                raise CommandError(f"{self.describe(probe)} exists, yet was never made")
            return f"no create command: only checked that {name!r} is absent"
        resource = family(scope).create(self, name)
        if not self.exists(resource):
            raise CommandError(f"{self.describe(resource)} was not created")
        scope.release(resource)
        if self.tells_existence and self.exists(resource):
            raise CommandError(f"{self.describe(resource)} still exists after release")
        return f"created and deleted {self.describe(resource)}"


def _name_of(item: Listed) -> str:
    return item if isinstance(item, str) else item[0]


# -- creating ---------------------------------------------------------------------


def _kind(kind: str | CommandKind) -> CommandKind:
    if isinstance(kind, CommandKind):
        return kind
    try:
        found = get_kind(kind)
    except UnknownKindError:
        load_project_kinds()
        found = get_kind(kind)
    if not isinstance(found, CommandKind):
        raise PolicyError(f"{kind!r} is a {type(found).__name__}, not a command kind")
    return found


@attrs.define
class Commands:
    """
    The commands family of a scope: ``scope.commands``.

    .. versionadded:: 0.2.0
    """

    scope: Scope

    def _prepare(
        self,
        kind: str | CommandKind,
        name: str,
        argv: Sequence[str] | None,
        identity: Mapping[str, Any],
    ) -> tuple[CommandKind, list[str]]:
        found = _kind(kind)
        _check_name(name)
        if argv is None:
            values = {key: identity[key] for key in found.fields if key in identity}
            return found, found.argv("create", Resource(found.name, name, values))
        if isinstance(argv, str):
            raise PolicyError(
                f"the create command must be a list of arguments, not {argv!r}"
            )
        return found, [str(argument) for argument in argv]

    def create(
        self,
        kind: str | CommandKind,
        name: str,
        argv: Sequence[str] | None = None,
        *,
        timeout: float | None = None,
        **identity: Any,
    ) -> Resource:
        """
        Reserve *name* in the journal, then run the create command.

        The scope cleans the thing by policy whatever happens: when the
        command fails, times out or is interrupted the name stays reserved,
        and cleanup deletes the thing if it exists or appears within the
        kind's grace period.

        Args:
            kind: A command kind or its name.
            name: The new thing's name.
            argv: The create command, as a list of arguments (used as given,
                not templated); the kind's ``create`` template by default.
            timeout: Seconds the command may take; the kind's by default. On
                a timeout its process group is ended.
            identity: Identity fields of the thing (for the kind's templates).

        Returns:
            The resource, a handle for ``keep``, ``release`` and ``forget``.

        Raises:
            CommandError: When the command exits with a non-zero status.
            CommandTimeoutError: When it outlives *timeout*.
            PolicyError: On a bad name, kind or command.

        .. versionadded:: 0.2.0
        """
        found, command = self._prepare(kind, name, argv, identity)
        resource = self.scope.reserve(found, name, **identity)
        done = run_command(
            command, timeout=found.timeout if timeout is None else timeout
        )
        return self._created(found, resource, done)

    async def acreate(
        self,
        kind: str | CommandKind,
        name: str,
        argv: Sequence[str] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (create's own)
        **identity: Any,
    ) -> Resource:
        """
        Create from async code; see :meth:`create`. When the calling task is
        cancelled, the command's process group is ended and the name stays
        reserved.

        .. versionadded:: 0.2.0
        """
        found, command = self._prepare(kind, name, argv, identity)
        resource = self.scope.reserve(found, name, **identity)
        done = await _arun(command, limit=found.timeout if timeout is None else timeout)
        return self._created(found, resource, done)

    def _created(
        self, kind: CommandKind, resource: Resource, done: Completed
    ) -> Resource:
        if done.returncode != 0:
            raise done.error(f"creating {kind.describe(resource)}")
        # Made: journaled as created, and deleted without waiting for it.
        return self.scope.confirm(resource)


def family(scope: Scope) -> Commands:
    """
    Return the commands family of *scope* (``scope.commands``).

    .. versionadded:: 0.2.0
    """
    return Commands(scope)


# -- pyproject.toml -------------------------------------------------------------------

#: The keys of a ``[tool.cleanroom.commands.NAME]`` table.
_PROJECT_KEYS: Final = (
    "absent_codes",
    "aliases",
    "category",
    "create",
    "delete",
    "exists",
    "fields",
    "grace",
    "list",
    "min_age",
    "not_found_codes",
    "orphan_prefixes",
    "parser",
    "retries",
    "timeout",
)

_from_project: dict[str, CommandKind] = {}


def load_project_kinds(start: Path | None = None) -> list[CommandKind]:
    """
    Register the command kinds declared in ``[tool.cleanroom.commands.NAME]``
    of the nearest ``pyproject.toml``, replacing those it declared before.

    The module calls this when it is imported, so that the sweep, the reaper
    and the ``cleanroom`` command know the declared kinds.

    Args:
        start: Where to look for ``pyproject.toml``; the current directory by
            default.

    Returns:
        The kinds declared there.

    Raises:
        PolicyError: On a bad declaration; the message names the table, the
            key and the valid ones.

    .. versionadded:: 0.2.0
    """
    from cleanroom._core._policy import project_config

    tables = project_config(start).get("commands", {})
    if not isinstance(tables, dict):
        raise PolicyError("[tool.cleanroom.commands] must be a table of tables")
    declared = []
    for name, spec in tables.items():
        where = f"[tool.cleanroom.commands.{name}]"
        if not isinstance(spec, dict):
            raise PolicyError(f"{where} must be a table")
        unknown = sorted(set(spec) - set(_PROJECT_KEYS))
        if unknown:
            raise PolicyError(
                f"unknown key {unknown[0]!r} in {where}; valid: "
                f"{', '.join(map(repr, _PROJECT_KEYS))}"
            )
        try:
            kind = CommandKind(name, **spec)
        except Exception as exc:
            # Whatever a value of the wrong type makes the kind raise.
            raise PolicyError(f"{where}: {exc}") from exc
        previous = _from_project.get(kind.name)
        register_kind(kind, replace=previous is not None)
        _from_project[kind.name] = kind
        declared.append(kind)
    return declared


load_project_kinds()
