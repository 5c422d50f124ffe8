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
