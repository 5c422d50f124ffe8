"""
The command line of command kinds: argument-list templates, running a command
in a process group of its own, and reading the listings commands print.

The public names are re-exported by :mod:`cleanroom.kinds.commands`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import string
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import IO, Final, Literal

import anyio
import anyio.to_thread
import attrs

from cleanroom.exceptions import CommandError, CommandTimeoutError, PolicyError

#: What a ``list`` parser returns per thing: its name, or its name and its
#: creation time (a Unix timestamp; ``None`` when unknown).
Listed = str | tuple[str, float | None]

#: A ``list`` parser: ``"json"``, ``"lines"`` or a function of the output.
Parser = Literal["json", "lines"] | Callable[[str], Iterable[Listed]]

#: Seconds a timed-out command's process group gets between ``SIGTERM`` and
#: ``SIGKILL``.
TERM_GRACE: Final = 2.0

_STDERR_TAIL: Final = 2000


# -- templates ------------------------------------------------------------------


def _fields_of(argument: str) -> list[str]:
    """The fields of one template argument; ValueError on a malformed one."""
    found = []
    for _, field, spec, conversion in string.Formatter().parse(argument):
        if field is None:
            continue
        if not field.isidentifier():
            raise ValueError(f"{{{field}}} is not a field name")
        if spec or conversion:
            raise ValueError(
                f"{{{field}}} has a conversion or format spec; only plain "
                f"{{{field}}} is substituted"
            )
        found.append(field)
    return found


def _to_optional_argv(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if value is None else _to_argv(value)


def _to_argv(value: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise PolicyError(
            f"a command must be a list of arguments, never a shell line: {value!r}"
        )
    return tuple(value)


def _to_fieldset(fields: Iterable[str]) -> frozenset[str]:
    return frozenset(fields)


@attrs.frozen
class Template:
    """
    One command line as a list of argument templates.

    Each argument may hold ``{field}`` placeholders (``{{`` and ``}}`` stand for
    literal braces). A placeholder is replaced by the field's text, inside that
    one argument: nothing is split, joined or given to a shell. The program
    (the first argument) must be literal, so that a name never chooses what
    runs.

    Args:
        argv: The argument templates.
        fields: The field names the templates may use.
        what: What the template is for, for messages (``"delete"``).

    Raises:
        PolicyError: When *argv* is empty or not a list of strings, or an
            argument is malformed or uses a field that is not in *fields*;
            the message names the argument and the valid fields.

    Example::

        from cleanroom.kinds.commands import Template

        delete = Template(["tmux", "kill-session", "-t", "={name}"], {"name"})
        assert delete.render({"name": "a b;c"}) == [
            "tmux", "kill-session", "-t", "=a b;c"
        ]

    .. versionadded:: 0.2.0
    """

    argv: tuple[str, ...] = attrs.field(converter=_to_argv)
    fields: frozenset[str] = attrs.field(converter=_to_fieldset)
    what: str = "command"
    used: frozenset[str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if not all(isinstance(argument, str) for argument in self.argv):
            raise PolicyError(
                f"the {self.what} command must be a list of strings, not "
                f"{list(self.argv)!r}"
            )
        if not self.argv:
            raise PolicyError(f"the {self.what} command must not be empty")
        valid = ", ".join(f"{{{field}}}" for field in sorted(self.fields)) or "none"
        used: set[str] = set()
        for index, argument in enumerate(self.argv):
            try:
                fields = _fields_of(argument)
            except ValueError as exc:
                raise PolicyError(
                    f"bad argument {argument!r} in the {self.what} command: {exc}; "
                    f"valid fields: {valid}"
                ) from None
            unknown = [field for field in fields if field not in self.fields]
            if unknown:
                raise PolicyError(
                    f"unknown field {{{unknown[0]}}} in argument {argument!r} of the "
                    f"{self.what} command; valid fields: {valid}"
                )
            if index == 0 and fields:
                raise PolicyError(
                    f"the program of the {self.what} command must be literal, not "
                    f"{argument!r}: a field must never choose what runs"
                )
            used.update(fields)
        object.__setattr__(self, "used", frozenset(used))

    def render(self, values: Mapping[str, object]) -> list[str]:
        """
        Return the argument list with every field replaced by its text.

        Raises:
            PolicyError: When a field the template uses has no value.
        """
        missing = sorted(self.used - set(values))
        if missing:
            raise PolicyError(
                f"the {self.what} command {shlex.join(self.argv)} needs "
                f"{', '.join(missing)}; given: {', '.join(sorted(values)) or 'nothing'}"
            )
        formatter = string.Formatter()
        argv = []
        for argument in self.argv:
            parts = []
            for literal, field, _, _ in formatter.parse(argument):
                parts.append(literal)
                if field is not None:
                    parts.append(str(values[field]))
            argv.append("".join(parts))
        return argv


# -- running --------------------------------------------------------------------


@attrs.frozen
class Completed:
    """
    A command that ran to its end.

    Attributes:
        argv: What ran.
        returncode: Its exit status (negative: killed by that signal).
        stdout: Its standard output, decoded.
        stderr: Its standard error, decoded.

    .. versionadded:: 0.2.0
    """

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def error(self, doing: str) -> CommandError:
        """Return the error that says the command failed while *doing* something."""
        return CommandError(
            f"{doing}: {shlex.join(self.argv)} exited with {self.returncode}"
            + _stderr_part(self.stderr),
            argv=self.argv,
            returncode=self.returncode,
            stderr=self.stderr,
        )


def _stderr_part(stderr: str) -> str:
    text = stderr.strip()
    if not text:
        return ""
    if len(text) > _STDERR_TAIL:
        text = "..." + text[-_STDERR_TAIL:]
    return f": {text}"


def _read(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode("utf-8", errors="replace")


class _Process:
    """
    A command running in a process group of its own, its output going to
    temporary files: a program that leaves a background child holding its
    output open cannot block the reading of it.
    """

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = tuple(argv)
        self.stdout = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self.stdout,
                stderr=self.stderr,
                start_new_session=True,
            )
        except OSError as exc:
            self.close()
            raise CommandError(
                f"cannot run {shlex.join(self.argv)}: {exc.strerror or exc}",
                argv=self.argv,
            ) from exc

    def wait(self, timeout: float | None) -> Completed:
        """Wait for the end; on a timeout or an interruption, end the group."""
        try:
            returncode = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.end()
            stderr = _read(self.stderr)
            self.close()
            raise CommandTimeoutError(
                f"{shlex.join(self.argv)} took longer than {timeout:g} s; its "
                "process group was ended" + _stderr_part(stderr),
                argv=self.argv,
                stderr=stderr,
            ) from None
        except BaseException:
            self.end()
            self.close()
            raise
        completed = Completed(
            self.argv, returncode, _read(self.stdout), _read(self.stderr)
        )
        self.close()
        return completed

    def _exited(self) -> bool:
        # WNOWAIT leaves the leader a zombie: its pid, and so its process
        # group id, cannot be reused while the group is signalled.
        try:
            info = os.waitid(
                os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT
            )
        except ChildProcessError:
            return True
        return info is not None

    def _signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def end(self) -> None:
        """``SIGTERM`` the group, wait a little, ``SIGKILL`` it, reap the leader."""
        if self.popen.returncode is not None:
            return
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE
        while not self._exited() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._signal(signal.SIGKILL)
        self.popen.wait()

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()


def run_command(argv: Sequence[str], *, timeout: float | None) -> Completed:
    r"""
    Run *argv* (never through a shell) and return how it ended.

    The command runs in a new session, so in a process group of its own, with
    no standard input. When it outlives *timeout*, or the caller is
    interrupted (``KeyboardInterrupt``), its whole group gets ``SIGTERM``,
    then ``SIGKILL`` after :data:`TERM_GRACE` seconds. Processes that left
    the group (daemons, servers) are not touched.

    Args:
        argv: The program and its arguments.
        timeout: Seconds to wait; ``None`` to wait for ever.

    Returns:
        The exit status and output, whatever the status.

    Raises:
        CommandError: When the program cannot be started.
        CommandTimeoutError: When it outlived *timeout*.

    Example::

        from cleanroom.kinds.commands import run_command

        done = run_command(["echo", "a;b $HOME"], timeout=10)
        assert done.returncode == 0 and done.stdout == "a;b $HOME\n"

    .. versionadded:: 0.2.0
    """
    return _Process(argv).wait(timeout)


async def _arun(argv: Sequence[str], *, limit: float | None) -> Completed:
    process = _Process(argv)
    try:
        return await anyio.to_thread.run_sync(
            process.wait, limit, abandon_on_cancel=True
        )
    except BaseException:
        # Cancelled: the worker thread still waits; ending the group frees it.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(process.end)
        raise


# -- parsing --------------------------------------------------------------------


def parse_lines(output: str) -> list[Listed]:
    r"""
    Parse one name per line; a line ``NAME<TAB>SECONDS`` also gives the
    thing's creation time as a Unix timestamp. Blank lines are skipped.

    Example::

        from cleanroom.kinds.commands import parse_lines

        assert parse_lines("a\nb c\t1700000000\n\n") == [
            ("a", None), ("b c", 1700000000.0)
        ]

    .. versionadded:: 0.2.0
    """
    found: list[Listed] = []
    for line in output.splitlines():
        text = line.rstrip("\r")
        if not text.strip():
            continue
        name, tab, created = text.rpartition("\t")
        if tab:
            found.append((name, _timestamp(created)))
        else:
            found.append((text, None))
    return found


def parse_json(output: str) -> list[Listed]:
    """
    Parse a JSON list of names, or of objects with a ``"name"`` and an
    optional ``"created"`` (a Unix timestamp or an ISO 8601 date).

    Raises:
        ValueError: When the output is not JSON.
        TypeError: When it is not such a list.

    Example::

        from cleanroom.kinds.commands import parse_json

        assert parse_json('[{"name": "vm-1", "created": 5}, "vm-2"]') == [
            ("vm-1", 5.0), ("vm-2", None)
        ]

    .. versionadded:: 0.2.0
    """
    data = json.loads(output) if output.strip() else []
    if not isinstance(data, list):
        raise TypeError(f"expected a JSON list, not {type(data).__name__}")
    found: list[Listed] = []
    for item in data:
        if isinstance(item, str):
            found.append((item, None))
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            found.append((item["name"], _timestamp(item.get("created"))))
        else:
            raise TypeError(
                f"expected names or objects with a 'name', not {item!r}; pass a "
                "function as the parser for other shapes"
            )
    return found


def _timestamp(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


_PARSERS: Final[Mapping[str, Callable[[str], Iterable[Listed]]]] = {
    "json": parse_json,
    "lines": parse_lines,
}


def _to_parser(value: Parser) -> Callable[[str], Iterable[Listed]]:
    if callable(value):
        return value
    parser = _PARSERS.get(value)
    if parser is None:
        raise PolicyError(
            f"unknown parser {value!r}; valid: 'json', 'lines' or a function of "
            "the output"
        )
    return parser
