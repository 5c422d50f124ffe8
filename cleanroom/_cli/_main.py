"""
The ``cleanroom`` command: ``check``, ``list``, ``sweep`` and ``run``.
"""

# A command-line tool prints.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from cleanroom._crash._journal import (
    JournalUnavailable,
    OwnerRow,
    Row,
    open_existing,
)
from cleanroom._crash._location import journal_path
from cleanroom._version import __version__

from ._args import add_journal, wrap

if TYPE_CHECKING:
    from cleanroom._crash._journal import Journal
    from cleanroom._crash._sweep import SweepReport, SweepResult

log = logging.getLogger("cleanroom")

_DESCRIPTION: Final = """\
cleanroom makes test suites leave nothing behind. This command checks that
cleanroom works here, lists what sessions created, sweeps what dead sessions
left behind, and runs a command under a session that is cleaned however the
command ends.
"""

_EPILOG: Final = """\
The journal is CLEANROOM_JOURNAL, else `journal` in [tool.cleanroom] of
pyproject.toml, else ~/.cache/cleanroom/journal.sqlite3 ($XDG_CACHE_HOME is
honoured); CLEANROOM_JOURNAL=off turns journaling off.

examples:
  cleanroom check
  cleanroom list
  cleanroom sweep --dry-run
  cleanroom sweep --prefix test-vm- --kind vm --import tests.kinds --yes
  cleanroom run --level pods -- pytest -x tests/
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the description's paragraphs and the examples as written."""


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print JSON instead of text, for scripts"
    )


def _add_imports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help=(
            "import MODULE first, so that the kinds it registers are known "
            "(repeatable; the current directory is on the module path)"
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    """
    Return the argument parser of the ``cleanroom`` command.

    .. versionadded:: 0.1.0
    """
    from ._run import add_run_parser

    parser = argparse.ArgumentParser(
        prog="cleanroom",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"cleanroom {__version__}"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more (repeat for debug output)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    check = commands.add_parser(
        "check",
        help="check backends, a live create/clean round trip per kind, and the journal",
        description=wrap(
            "Report the version, which optional backends are installed and "
            "reachable (only 127.0.0.1 and unix sockets are contacted), run a "
            "live create-then-clean round trip for every available kind, report "
            "the journal's location and health and how many orphans a sweep "
            "would remove, and end with a verdict. Exits 1 when a round trip "
            "fails."
        ),
        formatter_class=_Formatter,
    )
    add_journal(check)
    _add_json(check)

    listing = commands.add_parser(
        "list",
        help="list sessions and their live, kept, leaked and failed resources",
        description=wrap(
            "List the journal's sessions, their owner processes (alive, closed "
            "or dead) and their resources: live (owner alive), kept (on "
            "purpose, with how to delete them), leaked (owner dead: the next "
            "sweep removes them) and failed (cleanup failed)."
        ),
        formatter_class=_Formatter,
    )
    add_journal(listing)
    listing.add_argument(
        "--session", metavar="ID", help="only this session (an id prefix works)"
    )
    listing.add_argument(
        "--all",
        action="store_true",
        help="also show cleaned and forgotten resources, and empty sessions",
    )
    _add_json(listing)

    sweep = commands.add_parser(
        "sweep",
        help="remove what dead sessions left behind",
        description=wrap(
            "Remove journaled resources whose owner process is dead (or, on "
            "another host, silent for a minute) and kept resources whose "
            "retention has passed. Nothing a live session owns is touched, and "
            "nothing outside the journal unless a --prefix rule, or a kind's "
            "declared orphan_prefixes, names it. At a terminal, the orphans are "
            "listed and you are asked first."
        ),
        formatter_class=_Formatter,
    )
    add_journal(sweep)
    sweep.add_argument(
        "--dry-run", "-n", action="store_true", help="only show what would be removed"
    )
    sweep.add_argument(
        "--kind",
        dest="kinds",
        action="append",
        metavar="KIND",
        help="only resources of KIND (repeatable); with --prefix, the rule's kinds",
    )
    sweep.add_argument(
        "--older-than",
        metavar="DURATION",
        help="only resources created more than DURATION ago (90s, 15m, 2h, 7d)",
    )
    sweep.add_argument("--session", metavar="ID", help="only resources of this session")
    sweep.add_argument(
        "--prefix",
        dest="prefixes",
        action="append",
        default=[],
        metavar="PREFIX",
        help=(
            "also remove resources of each --kind whose name starts with PREFIX, "
            "though cleanroom did not create them (needs a kind that can list "
            "its resources, and --yes outside a terminal)"
        ),
    )
    sweep.add_argument(
        "--kept",
        action="store_true",
        help=(
            "also remove what ended sessions kept on purpose (failed tests, "
            "--cleanroom-level none), however recent"
        ),
    )
    sweep.add_argument(
        "--keep-kept",
        action="store_true",
        help="leave kept resources alone even when their retention has passed",
    )
    _add_imports(sweep)
    sweep.add_argument(
        "--yes", "-y", action="store_true", help="do not ask before removing"
    )
    _add_json(sweep)

    add_run_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the ``cleanroom`` command; return its exit status.

    .. versionadded:: 0.1.0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("cleanroom: %(message)s"))
    log.addHandler(handler)
    previous = log.level
    log.setLevel(
        logging.WARNING
        if args.verbose == 0
        else logging.INFO
        if args.verbose == 1
        else logging.DEBUG
    )
    try:
        if args.command == "check":
            from ._check import run_check

            return run_check(_journal(args), as_json=args.json)
        if args.command == "list":
            return _list(args)
        if args.command == "sweep":
            return _sweep(args, parser)
        from ._run import run_command

        return run_command(args, parser, _journal(args))
    except KeyboardInterrupt:
        print("cleanroom: interrupted", file=sys.stderr)
        return 130
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)


def _journal(args: argparse.Namespace) -> Path | None:
    if getattr(args, "journal", None):
        return Path(args.journal).expanduser().absolute()
    return journal_path()


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


# -- list -------------------------------------------------------------------------


def status_of(row: Row, *, now: float | None = None) -> str:
    """
    Classify a row for ``cleanroom list``: ``live``, ``leaked``, ``kept``,
    ``failed``, ``cleaned`` or ``forgotten``.

    .. versionadded:: 0.1.0
    """
    if row.state in {"cleaned", "forgotten", "kept", "failed"}:
        return row.state
    return "live" if row.owner_alive(now=now) else "leaked"


def sessions(
    owners: Sequence[OwnerRow], rows: Sequence[Row], *, now: float | None = None
) -> list[dict[str, Any]]:
    """
    Group owners and rows by session, oldest first, with each owner's and
    each resource's status and the counts of resources by status.

    .. versionadded:: 0.1.0
    """
    found: dict[str, dict[str, Any]] = {}

    def entry(session: str, started: float) -> dict[str, Any]:
        item = found.setdefault(
            session, {"id": session, "started": started, "owners": [], "resources": []}
        )
        item["started"] = min(item["started"], started)
        return item

    for owner in owners:
        if owner.alive(now=now):
            status = "alive"
        else:
            status = "closed" if owner.closed else "dead"
        entry(owner.session, owner.started)["owners"].append(
            {**owner.as_dict(), "status": status}
        )
    for row in rows:
        entry(row.session, row.created)["resources"].append(
            {**row.as_dict(), "status": status_of(row, now=now)}
        )
    for item in found.values():
        counts: dict[str, int] = {}
        for resource in item["resources"]:
            counts[resource["status"]] = counts.get(resource["status"], 0) + 1
        item["counts"] = counts
    return sorted(found.values(), key=lambda item: item["started"])


def _shown(item: dict[str, Any], *, everything: bool) -> bool:
    """Drop settled resources, and sessions left with nothing, unless *everything*."""
    if everything:
        return True
    item["resources"] = [
        r for r in item["resources"] if r["status"] not in {"cleaned", "forgotten"}
    ]
    item["counts"] = {
        k: v for k, v in item["counts"].items() if k not in {"cleaned", "forgotten"}
    }
    alive = any(owner["status"] == "alive" for owner in item["owners"])
    return bool(item["resources"]) or alive


def _list(args: argparse.Namespace) -> int:
    path = _journal(args)
    try:
        with open_existing(path, repair=False, strict=True) as journal:
            owners = journal.owners() if journal is not None else []
            rows = journal.rows() if journal is not None else []
    except JournalUnavailable as exc:
        print(f"cleanroom: {exc}", file=sys.stderr)
        return 1
    found = sessions(owners, rows)
    if args.session:
        found = [item for item in found if item["id"].startswith(args.session)]
        if not found:
            print(
                f"cleanroom: no session {args.session!r} in the journal {path}; "
                "`cleanroom list --all` shows every session",
                file=sys.stderr,
            )
            return 1
    selected = [item for item in found if _shown(item, everything=args.all)]
    out = sys.stdout
    if args.json:
        document = {"journal": str(path) if path else None, "sessions": selected}
        json.dump(document, out, indent=2, default=str)
        out.write("\n")
        return 0
    if path is None:
        print(
            "journaling is off (CLEANROOM_JOURNAL=off): nothing is recorded", file=out
        )
        return 0
    print(f"journal: {path}", file=out)
    if not selected:
        print("no sessions with resources", file=out)
        return 0
    totals: dict[str, int] = {}
    for item in selected:
        for key, value in item["counts"].items():
            totals[key] = totals.get(key, 0) + value
        _print_session(item, out)
    plural = "s" if len(selected) != 1 else ""
    print(f"\n{len(selected)} session{plural}: {_counted(totals)}", file=out)
    return 0


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing left"


def _print_session(item: dict[str, Any], out: IO[str]) -> None:
    from cleanroom._crash._sweep import describe_row

    print(
        f"\nsession {item['id']}  started {_when(item['started'])}  "
        f"({_counted(item['counts'])})",
        file=out,
    )
    for owner in item["owners"]:
        print(
            f"  owner {owner['host']}:{owner['pid']:<7} {owner['status']:<6} "
            f"{owner['command'][:70]}",
            file=out,
        )
    for resource in item["resources"]:
        row = Row(**{k: resource[k] for k in Row._fields})
        line = f"  {resource['status']:<9} {describe_row(row)}"
        if resource["status"] == "cleaned" and resource["actor"] != "owner":
            line += f" (by the {resource['actor']})"
        if resource["status"] in {"kept", "failed"}:
            if resource["reason"]:
                line += f" — {resource['reason']}"
            if resource["hint"]:
                line += f"; delete with: {resource['hint']}"
        print(line, file=out)


# -- sweep --------------------------------------------------------------------------


def import_modules(names: Sequence[str]) -> None:
    """
    Import *names* (modules that register kinds), with the current directory
    on the module path.

    Raises:
        ImportError: When one cannot be imported.

    .. versionadded:: 0.1.0
    """
    cwd = str(Path.cwd())
    if names and cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    for name in names:
        importlib.import_module(name)


class _Progress:
    """A one-line progress display on a terminal's standard error."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if total < 20:  # noqa: PLR2004
            return
        self.shown = True
        width = 30
        filled = width * done // total
        self.stream.write(
            f"\rsweeping [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        )
        self.stream.flush()

    def end(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _sweep_options(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> dict[str, Any]:
    """Check the sweep command's arguments; return the sweep's settings."""
    from cleanroom._crash._retention import parse_duration
    from cleanroom._crash._sweep import PrefixRule, declared_prefix_rules

    try:
        older_than = (
            None if args.older_than is None else parse_duration(args.older_than)
        )
    except ValueError as exc:
        parser.error(f"--older-than: {exc}")
    if args.prefixes and not args.kinds:
        parser.error("--prefix needs --kind: name the kinds the prefix rule covers")
    if args.kept and args.keep_kept:
        parser.error("--kept and --keep-kept contradict each other; give one")
    try:
        import_modules(args.imports)
    except Exception as exc:
        parser.error(f"--import: {type(exc).__name__}: {exc}")
    try:
        rules = [
            PrefixRule(kind, prefix) for prefix in args.prefixes for kind in args.kinds
        ]
    except ValueError as exc:
        parser.error(f"--prefix: {exc}")
    return {
        "kinds": args.kinds,
        "older_than": older_than,
        "session": args.session,
        "include_kept": not args.keep_kept,
        "all_kept": args.kept,
        # Rules given here, then those the kinds opted into (orphan_prefixes).
        "prefix_rules": list(dict.fromkeys(rules + declared_prefix_rules(args.kinds))),
    }


def _check_names(
    args: argparse.Namespace, parser: argparse.ArgumentParser, journal: Journal | None
) -> None:
    """Fail on a --kind that no kind here nor any journaled resource is called."""
    from cleanroom._core._resource import kind_names
    from cleanroom._crash._sweep import canonical_kind, load_journal_kinds

    if not args.kinds:
        return
    journaled: set[str] = set()
    if journal is not None:
        load_journal_kinds(journal)
        journaled = {row.kind for row in journal.rows()}
    known = set(kind_names()) | journaled
    unknown = [kind for kind in args.kinds if canonical_kind(kind) not in known]
    if unknown:
        parser.error(
            f"unknown kind{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; known: "
            f"{', '.join(map(repr, sorted(known)))} (--import MODULE makes the "
            "kinds it registers known)"
        )


def _check_session(args: argparse.Namespace, journal: Journal | None) -> bool:
    """Tell whether --session names a session of the journal (or none is given)."""
    if not args.session:
        return True
    owners = journal.owners() if journal is not None else []
    rows = journal.rows() if journal is not None else []
    return any(
        item.startswith(args.session)
        for item in {o.session for o in owners} | {r.session for r in rows}
    )


def _sweep(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    options = _sweep_options(args, parser)
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not args.json
    if args.prefixes and not (args.yes or args.dry_run or interactive):
        print(
            "cleanroom: prefix rules remove things cleanroom did not create; "
            "pass --yes to confirm",
            file=sys.stderr,
        )
        return 2
    path = _journal(args)
    if path is None and not options["prefix_rules"] and not args.json:
        print("journaling is off (CLEANROOM_JOURNAL=off): nothing to sweep")
    try:
        # A dry run only reads: it never moves a damaged journal aside.
        with open_existing(path, repair=not args.dry_run, strict=True) as journal:
            _check_names(args, parser, journal)
            if not _check_session(args, journal):
                print(
                    f"cleanroom: no session {args.session!r} in the journal "
                    f"{path}; `cleanroom list --all` shows every session",
                    file=sys.stderr,
                )
                return 1
            report, shown = _run_sweep(args, journal, options, interactive=interactive)
    except JournalUnavailable as exc:
        print(f"cleanroom: {exc}", file=sys.stderr)
        return 1
    except (LookupError, TypeError, ValueError) as exc:
        print(f"cleanroom: {exc}", file=sys.stderr)
        return 2
    if report is None:
        return 1
    if args.json:
        json.dump(report.as_dict(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif not shown:
        _print_sweep(report, sys.stdout)
    return 1 if report.failed else 0


def _run_sweep(
    args: argparse.Namespace,
    journal: Journal | None,
    options: dict[str, Any],
    *,
    interactive: bool,
) -> tuple[SweepReport | None, bool]:
    """
    Sweep, asking first at a terminal; return the report (``None`` when the
    answer is no) and whether it has been shown already.
    """
    from cleanroom._crash._sweep import sweep

    if interactive and not args.yes and not args.dry_run:
        preview = sweep(journal, dry_run=True, **options)
        _print_sweep(preview, sys.stdout)
        if not preview.removed:
            return preview, True
        answer = input(f"remove {preview.removed} resources? [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            print("nothing removed")
            return None, True
    show = sys.stderr.isatty() and not args.json
    progress = _Progress(sys.stderr) if show else None
    report = sweep(journal, dry_run=args.dry_run, progress=progress, **options)
    if progress is not None:
        progress.end()
    return report, False


#: How a sweep's actions read where they differ from their names.
_VERBS: Final = {"would-remove": "would remove", "failed": "FAILED"}


def _result_line(result: SweepResult) -> str:
    where = []
    if result.session:
        where.append(f"session {result.session[:12]}")
    if result.owner:
        where.append(f"owner {result.owner}")
    if result.row is None:
        where.append(result.reason or "prefix rule")
    line = f"{_VERBS.get(result.action, result.action):<13} {result.description}"
    if where:
        line += f" ({', '.join(where)})"
    if result.reason and (
        result.action in {"failed", "skipped"} or result.reason.startswith("kept")
    ):
        line += f": {result.reason}"
    return line


def _print_sweep(report: SweepReport, out: IO[str]) -> None:
    for result in report.results:
        print(_result_line(result), file=out)
    count = report.removed
    noun = "orphan" if count == 1 else "orphans"
    if report.dry_run:
        text = f"{count} {noun} would be removed"
    else:
        text = f"removed {count} {noun} in {report.seconds:.2f} s"
    extra = []
    if report.failed:
        extra.append(f"{report.failed} failed")
    skipped = report.count("skipped")
    if skipped:
        extra.append(f"{skipped} skipped")
    if extra:
        text += f" ({', '.join(extra)})"
    print(text, file=out)
