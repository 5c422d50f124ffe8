"""Sphinx configuration for cleanroom's documentation."""

from __future__ import annotations

from importlib.metadata import version as _version
from typing import Any

project = "cleanroom"
author = "The cleanroom developers"
copyright = "the cleanroom developers"
release = _version("cleanroom")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "cleanroom"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Warnings fail the build (sphinx-build -n -W); these targets live outside this
# project and there is no network to fetch other projects' inventories.
nitpicky = True
nitpick_ignore = [
    ("py:attr", "exceptions"),  # BaseExceptionGroup.exceptions
    ("py:class", "asyncio.Task"),
    ("py:class", "datetime.datetime"),
    ("py:class", "collections.abc.AsyncIterator"),
    ("py:class", "collections.abc.Awaitable"),
    ("py:class", "collections.abc.Iterator"),
    ("py:class", "collections.abc.Iterable"),
    ("py:class", "collections.abc.Callable"),
    ("py:class", "collections.abc.Iterable"),
    ("py:class", "collections.abc.Mapping"),
    ("py:class", "collections.abc.Sequence"),
    ("py:class", "contextlib.AsyncExitStack"),
    ("py:class", "contextlib.ExitStack"),
    ("py:class", "EllipsisType"),  # timeout=...: "not given"
    ("py:class", "types.EllipsisType"),
    ("py:class", "os.PathLike"),
    ("py:class", "Path"),
    ("py:class", "pathlib.Path"),
    ("py:class", "subprocess.Popen"),
    ("py:func", "fnmatch.fnmatchcase"),
    ("py:mod", "tracemalloc"),
    ("py:class", "tempfile.TemporaryDirectory"),
    ("py:func", "tempfile.mkdtemp"),
    ("py:func", "tempfile.mkstemp"),
    ("py:class", "unittest.IsolatedAsyncioTestCase"),
    ("py:class", "unittest.TestCase"),
    # docker-py's types (cleanroom[docker]).
    ("py:class", "docker.DockerClient"),
    ("py:class", "docker.models.containers.Container"),
    ("py:class", "docker.models.networks.Network"),
    ("py:class", "docker.models.volumes.Volume"),
    ("py:class", "Container"),
    ("py:class", "Network"),
    ("py:class", "Volume"),
    # Type variables and aliases of the signatures.
    ("py:class", "~P"),
    ("py:class", "cleanroom._core._api.R"),
    ("py:class", "cleanroom._core._api.T"),
    ("py:class", "cleanroom._core._scope.T"),
    ("py:class", "Category"),
    ("py:class", "LabelStyle"),
    ("py:class", "Parser"),  # cleanroom.kinds.commands: "json", "lines" or a function
    ("py:class", "OnError"),
    ("py:class", "OnFailure"),
    ("py:class", "OnLeak"),
    ("py:class", "CheckLeaks"),
]


def _restore_property_summaries(  # noqa: PLR0917 - the event's signature
    app: Any,  # noqa: ARG001
    what: str,
    name: str,  # noqa: ARG001
    obj: object,  # noqa: ARG001
    options: Any,  # noqa: ARG001
    lines: list[str],
) -> None:
    """
    Undo Napoleon's reading of a property summary such as "The session scope:
    closed at exit" as "type: description"; real types have no spaces outside
    ``|``, ``[]`` and commas.
    """
    if what != "property":
        return
    for index, line in enumerate(lines):
        if line.startswith(":type: "):
            value = line.removeprefix(":type: ")
            if " " in value and not any(c in value for c in "|[],"):
                del lines[index]
                if lines and not lines[-1]:
                    lines.pop()
                lines[0] = f"{value}: {lines[0]}"
            return


def setup(app: Any) -> None:
    # After Napoleon, which listens at the default priority of 500.
    app.connect("autodoc-process-docstring", _restore_property_summaries, 600)
