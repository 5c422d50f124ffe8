"""
Pieces of argument parsing that the command's subcommands share.
"""

from __future__ import annotations

import argparse
import textwrap

from cleanroom._crash._location import JOURNAL_ENV


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


def add_policy_options(parser: argparse.ArgumentParser) -> None:
    """
    Add an option per policy setting to *parser*: ``--on-failure VALUE``, and
    ``--force`` and ``--no-force`` for a flag. Each stores its text, or
    ``None`` when not given.
    """
    from cleanroom._core._settings import POLICY_FIELDS, setting_help

    for name in POLICY_FIELDS:
        metavar, text = setting_help(name)
        option = f"--{name.replace('_', '-')}"
        if metavar != "BOOL":
            parser.add_argument(option, dest=name, metavar=metavar, help=text)
            continue
        flags = parser.add_mutually_exclusive_group()
        flags.add_argument(
            option, dest=name, action="store_const", const="true", help=text
        )
        flags.add_argument(
            f"--no-{option[2:]}",
            dest=name,
            action="store_const",
            const="false",
            help=f"the opposite of {option}",
        )
