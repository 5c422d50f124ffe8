"""
The kind conformance suite's interface: what a backend's tests declare so that
``tests/test_conformance.py`` can hold its kind to the promises every kind
keeps.

Each module ``tests/cases/<backend>.py`` defines ``CASES = [...]``, instances
of :class:`KindCase` subclasses. A case makes one real thing through the
public API and asks the backend about it *directly* — never through the kind
under test — so the suite checks what really happened.

``tests/`` is on ``sys.path`` (``pythonpath`` in ``pyproject.toml``), so case
modules import this as ``conformance``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from cleanroom import Resource, Scope

CASES_DIR = Path(__file__).parent / "cases"

#: The items of the suite, which :attr:`KindCase.not_applicable` may name.
ITEMS = (
    "clean",
    "clean_sync",
    "clean_twice",
    "vanished",
    "bulk",
    "hint",
    "reaper",
    "sweep",
)


class KindCase:
    """
    One kind under the conformance suite.

    Subclasses set :attr:`kind` and implement :meth:`create`, :meth:`exists`,
    :meth:`destroy` and :meth:`child_source`.
    """

    #: The kind's name (or an alias).
    kind: ClassVar[str]
    #: Marks of every test of this case (``pytest.mark.docker``).
    marks: ClassVar[tuple[pytest.MarkDecorator, ...]] = ()
    #: Why an item of :data:`ITEMS` does not apply to this kind, by item. Such
    #: items are reported as skipped with that reason.
    not_applicable: ClassVar[Mapping[str, str]] = {}
    #: The anyio backend whose running event loop :meth:`create` needs (an
    #: in-process kind such as tasks), or ``None``.
    loop: ClassVar[str | None] = None

    def available(self) -> str | None:
        """Return ``None``, or why the backend cannot be reached."""
        return None

    def create(self, scope: Scope) -> Resource:
        """Make one real thing through the public API in *scope*; return it."""
        raise NotImplementedError

    def exists(self, resource: Resource) -> bool:
        """Tell whether the thing exists, asking the backend directly."""
        raise NotImplementedError

    def destroy(self, resource: Resource) -> None:
        """Remove the thing behind cleanroom's back."""
        raise NotImplementedError

    def child_source(self) -> str:
        """
        Return Python code, run in a child process, that creates one thing
        and binds it (a :class:`~cleanroom.Resource`, or a handle the scope
        knows, such as a path) to a variable named ``resource``.

        The code is either the body of a ``with
        cleanroom.managed_resources() as scope:`` block that the harness
        writes around it, or a whole program that opens that block itself; in
        the latter case the harness goes on at the indentation of its last
        line, which must be inside the block.
        """
        raise NotImplementedError

    def run_hint(self, hint: str) -> None:
        """Run the kind's delete hint, a shell command line, as a user would."""
        subprocess.run(hint, shell=True, check=True, timeout=120)

    @property
    def id(self) -> str:
        """The case's name in test ids."""
        return type(self).__name__.removesuffix("Case").lower() or self.kind


def load_cases() -> list[KindCase]:
    """Return the cases of every module of ``tests/cases``, in file order."""
    cases: list[KindCase] = []
    for path in sorted(CASES_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"cases.{path.stem}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found = getattr(module, "CASES", None)
        assert isinstance(found, list), f"{path} defines no list CASES"
        cases.extend(found)
    return cases


def child_program(source: str, out: str) -> str:
    """
    Return the program of a child that runs a case's *source* in a managed
    scope, writes the resource to the file *out* and sleeps until killed.
    """
    report = textwrap.dedent(
        f"""
        _made = resource
        if not isinstance(_made, Resource):
            _made = scope.resource_of(_made)
        with open({out!r}, "w", encoding="utf-8") as _file:
            json.dump([_made.kind, _made.name, dict(_made.identity)], _file)
        print("ready", flush=True)
        time.sleep(300)
        """
    )
    source = textwrap.dedent(source).strip("\n")
    if "managed_resources(" in source:
        last = source.splitlines()[-1]
        indent = last[: len(last) - len(last.lstrip())]
        body = source + "\n" + textwrap.indent(report, indent)
    else:
        block = textwrap.indent(source + "\n" + report, "    ")
        body = "with cleanroom.managed_resources() as scope:\n" + block
    return (
        "import json, time\nimport cleanroom\nfrom cleanroom import Resource\n" + body
    )
