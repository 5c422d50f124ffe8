"""
A command-line program that behaves like a slow VM manager, for the tests of
command kinds.

    slowvm.py STATE create NAME [--delay S] [--linger S] [--never] [--fail]
    slowvm.py STATE delete NAME
    slowvm.py STATE exists NAME
    slowvm.py STATE list [--json]

A "VM" is a file in the folder STATE. ``create`` hands the work to a detached
worker (a session of its own, as a daemon would do it) that makes the VM after
``--delay`` seconds, then lingers ``--linger`` seconds itself (by default until
the VM exists and a little more), so it outlives a caller's short timeout; the
VM appears even when the caller ends the command's process group. ``--never``
starts no worker: the VM never appears. ``--fail`` exits 1 at once.

``delete`` fails the first time it is asked to delete an existing VM ("busy",
exit 2) and works the next time; deleting a missing VM exits 3 ("not found").
``exists`` exits 0 or 1. ``list`` prints ``NAME<TAB>CREATED`` lines, or a JSON
list of objects with ``--json``. Every command is logged to ``STATE/log``.
Names may hold any character but NUL; on disk they are percent-encoded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

SUFFIX = ".vm"


def vm_path(state: Path, name: str) -> Path:
    return state / (quote(name, safe="") + SUFFIX)


def log(state: Path, *words: str) -> None:
    with (state / "log").open("a", encoding="utf-8") as file:
        file.write(json.dumps(words) + "\n")


def materialize(state: Path, name: str, delay: float) -> None:
    time.sleep(delay)
    path = vm_path(state, name)
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(json.dumps({"name": name, "created": time.time()}))
    temporary.rename(path)
    log(state, "appeared", name)


def create(state: Path, args: argparse.Namespace) -> int:
    if args.fail:
        print(f"slowvm: cannot create {args.name}: no capacity", file=sys.stderr)
        return 1
    if vm_path(state, args.name).exists():
        print(f"slowvm: {args.name} already exists", file=sys.stderr)
        return 1
    if not args.never:
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                str(state),
                "_materialize",
                args.name,
                str(args.delay),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    linger = args.delay + 0.5 if args.linger is None else args.linger
    time.sleep(linger)
    print(f"created {args.name}")
    return 0


def delete(state: Path, name: str) -> int:
    path = vm_path(state, name)
    if not path.exists():
        print(f"slowvm: {name}: not found", file=sys.stderr)
        return 3
    busy = path.with_name(path.name + ".busy")
    if not busy.exists():
        busy.touch()
        print(f"slowvm: {name}: busy, try again", file=sys.stderr)
        return 2
    path.unlink()
    busy.unlink()
    return 0


def listing(state: Path, as_json: bool) -> int:
    found = []
    for path in sorted(state.glob("*" + SUFFIX)):
        data = json.loads(path.read_text())
        found.append(data)
    if as_json:
        print(json.dumps(found))
    else:
        for data in found:
            print(f"{data['name']}\t{data['created']}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="slowvm")
    parser.add_argument("state", type=Path)
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("create")
    made.add_argument("name")
    made.add_argument("--delay", type=float, default=0.0)
    made.add_argument("--linger", type=float, default=None)
    made.add_argument("--never", action="store_true")
    made.add_argument("--fail", action="store_true")
    for command in ("delete", "exists"):
        commands.add_parser(command).add_argument("name")
    commands.add_parser("list").add_argument("--json", action="store_true")
    worker = commands.add_parser("_materialize")
    worker.add_argument("name")
    worker.add_argument("delay", type=float)
    args = parser.parse_args(argv)
    state: Path = args.state
    state.mkdir(parents=True, exist_ok=True)
    if args.command != "_materialize":
        log(state, args.command, *([args.name] if "name" in args else []))
    if args.command == "create":
        return create(state, args)
    if args.command == "delete":
        return delete(state, args.name)
    if args.command == "exists":
        return 0 if vm_path(state, args.name).exists() else 1
    if args.command == "list":
        return listing(state, args.json)
    materialize(state, args.name, args.delay)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
