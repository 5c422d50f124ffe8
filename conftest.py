"""
Settings of every test run, and the runner of every code example of the
documentation, the README and the docstrings.

Each run gets a journal of its own, never the user's cache, whatever part of
the project it runs.

Python blocks run in one namespace per document, inside a fresh temporary
directory that is the current directory while the document's examples run.
A block whose first line is a comment naming a test file (``# test_demo.py``)
is written to that file and run by pytest in a subprocess, which must pass.
A TOML block whose first line names a file (``# pyproject.toml``) is written to
that file, for the examples after it.
In docstrings, doctests, ``.. code-block:: python`` and the literal blocks of
Napoleon's ``Example::`` sections all run.
"""

from __future__ import annotations

import atexit
import doctest
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sybil import Document, Example, Region, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers import myst, rest
from sybil.region import Lexeme

# Import the installed package before pytest collects ``cleanroom/`` for its
# docstrings, so that pytest reuses it instead of importing the source tree.
import cleanroom  # noqa: F401


def pytest_configure() -> None:
    """Give the run a journal of its own, never the user's cache."""
    if "CLEANROOM_JOURNAL" in os.environ:
        return
    folder = tempfile.mkdtemp(prefix="cleanroom-tests-")
    # Set before pytest-xdist starts its workers, so that they share it.
    os.environ["CLEANROOM_JOURNAL"] = str(Path(folder) / "journal.sqlite3")
    # Removed at exit, after the journal's own exit handler (registered later,
    # so run earlier) has closed it.
    atexit.register(shutil.rmtree, folder, ignore_errors=True)


# Documents whose examples need a service: their examples carry its marker,
# and skip (or fail) as that service's tests do without it.
_DOCKER_DOCUMENTS = frozenset(
    {
        ("docs", "docker.md"),
        ("docs", "recipe-container-name-conflicts.md"),
        ("kinds", "docker.py"),
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the examples of the Docker and Kubernetes documents with their service."""
    for item in items:
        if (item.path.parent.name, item.path.name) in _DOCKER_DOCUMENTS:
            item.add_marker(pytest.mark.docker)
        elif item.path.name == "kubernetes.md":
            item.add_marker(pytest.mark.kubernetes)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or fail, under ``CLEANROOM_REQUIRE_DOCKER=1``) without an engine."""
    if item.get_closest_marker("docker") is not None:
        from dockerenv import require_docker

        require_docker()


_TEST_FILE = re.compile(r"\A# (test_\w+\.py)\n")
_python = PythonEvaluator()


def _evaluate(example: Example) -> None:
    """Run a Python block, or a test file through pytest when it names one."""
    source = str(example.parsed)
    match = _TEST_FILE.match(source)
    if match is None:
        _python(example)
        return
    test_file = Path.cwd() / match.group(1)
    test_file.write_text(source, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"pytest {match.group(1)} exited with {result.returncode}:\n"
            f"{result.stdout}{result.stderr}"
        )


_TOML_FILE = re.compile(r"\A# ([\w.-]+\.toml)\n")


def _write_toml(example: Example) -> None:
    """Write a TOML block that names its file to that file."""
    source = str(example.parsed)
    match = _TOML_FILE.match(source)
    if match is not None:
        (Path.cwd() / match.group(1)).write_text(source, encoding="utf-8")


_LITERAL_EXAMPLE = re.compile(
    r"^(?P<indent>[ \t]*)Examples?::[ \t]*\n"
    r"(?P<source>(?:[ \t]*\n)*(?:(?P=indent)[ \t]+\S.*\n(?:[ \t]*\n)*)+)",
    re.MULTILINE,
)


def _literal_examples(document: Document) -> Iterator[Region]:
    """Find the literal blocks of ``Example::`` sections of docstrings."""
    for match in _LITERAL_EXAMPLE.finditer(document.text):
        raw = match.group("source")
        body = raw.lstrip("\n")
        leading = len(raw) - len(body)
        # pad() puts line n of the source on line (example.line + offset + n).
        source = Lexeme(textwrap.dedent(body).rstrip() + "\n", 0, leading - 1)
        yield Region(match.start("source"), match.end("source"), source, _python)


class _MystPythonParser(myst.PythonCodeBlockParser):
    """MyST's Python block parser, evaluating blocks with :func:`_evaluate`."""

    def __init__(self) -> None:
        super().__init__()
        self.codeblock_parser = myst.CodeBlockParser("python", _evaluate)


def _setup(namespace: dict[str, Any]) -> None:
    namespace["__cwd__"] = Path.cwd()
    namespace["__tmp__"] = Path(tempfile.mkdtemp(prefix="cleanroom-docs-"))
    os.chdir(namespace["__tmp__"])


def _teardown(namespace: dict[str, Any]) -> None:
    os.chdir(namespace["__cwd__"])
    shutil.rmtree(namespace["__tmp__"], ignore_errors=True)


pytest_collect_file = (
    Sybil(
        parsers=[
            _MystPythonParser(),
            myst.CodeBlockParser("toml", _write_toml),
            myst.DocTestDirectiveParser(),
            myst.SkipParser(),
            myst.ClearNamespaceParser(),
        ],
        patterns=["README.md", "docs/*.md"],
        setup=_setup,
        teardown=_teardown,
        name="docs",
    )
    + Sybil(
        parsers=[
            rest.DocTestParser(optionflags=doctest.ELLIPSIS),
            rest.PythonCodeBlockParser(),
            rest.SkipParser(),
            _literal_examples,
        ],
        patterns=["cleanroom/*.py", "cleanroom/*/*.py"],
        setup=_setup,
        teardown=_teardown,
        name="docstrings",
    )
).pytest()
