"""
Pieces of argument parsing that the command's subcommands share.
"""

from __future__ import annotations

import argparse
import textwrap

from cleanroom._crash._journal import JOURNAL_ENV


def wrap(text: str) -> str:
    """Fill *text* to the width of a terminal, for a raw help formatter."""
    return textwrap.fill(" ".join(text.split()), width=79)


def add_journal(parser: argparse.ArgumentParser) -> None:
    """Add the ``--journal`` option to *parser*."""
    parser.add_argument(
        "--journal",
        metavar="PATH",
        help=f"the journal file (default: ${JOURNAL_ENV} or the user cache directory)",
    )
