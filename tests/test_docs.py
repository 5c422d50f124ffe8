"""
The documentation covers the public API.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import cleanroom
import cleanroom.exceptions

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.skipif(not DOCS.is_dir(), reason="needs a checkout with docs/")
class TestApiReference:
    def test_every_public_name_is_documented(self) -> None:
        """api.md has an autodoc entry for each name in cleanroom.__all__."""
        text = (DOCS / "api.md").read_text(encoding="utf-8")
        documented = set(re.findall(r"^\.\. auto\w+:: (\w+)", text, re.MULTILINE))
        documented |= {
            name.strip()
            for block in re.findall(r":members: ([\w, \n]+)", text)
            for name in block.split(",")
        }
        assert sorted(set(cleanroom.__all__) - documented) == []

    def test_every_exception_is_documented(self) -> None:
        """api.md documents every class of cleanroom.exceptions."""
        text = (DOCS / "api.md").read_text(encoding="utf-8")
        names = {
            name
            for name, value in vars(cleanroom.exceptions).items()
            if isinstance(value, type) and issubclass(value, BaseException | Warning)
        }
        missing = sorted(n for n in names if f".. autoexception:: {n}\n" not in text)
        assert missing == []


@pytest.mark.skipif(not DOCS.is_dir(), reason="needs a checkout with docs/")
class TestWritingAKind:
    def test_example_is_the_module_under_conformance(self) -> None:
        """The kind of writing-a-kind.md is tests/examplekind.py, word for word."""
        text = (DOCS / "writing-a-kind.md").read_text(encoding="utf-8")
        section = text.split("## The example", 1)[1]
        shown = section.split("```python\n", 1)[1].split("```\n", 1)[0]
        tested = Path(__file__).with_name("examplekind.py").read_text(encoding="utf-8")
        assert shown == tested

    def test_example_kind_is_a_conformance_case(self) -> None:
        """The example kind is among the cases of the conformance suite."""
        from conformance import load_cases

        assert "lock" in {case.kind for case in load_cases()}
