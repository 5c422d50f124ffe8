"""
Static checks of the types of command kinds: mypy must accept this file as it is.
"""

from __future__ import annotations

from typing import assert_type

from cleanroom import CommandError, Resource, Scope
from cleanroom.kinds.commands import (
    CommandKind,
    Commands,
    Completed,
    Template,
    family,
    load_project_kinds,
    run_command,
)


def kinds() -> None:
    vm = CommandKind(
        "vm",
        delete=["orbctl", "delete", "--force", "{name}"],
        list=["orbctl", "list", "--format", "json"],
        parser="json",
        orphan_prefixes=["test-vm-"],
    )
    assert_type(vm.delete_command, tuple[str, ...])
    assert_type(vm.list_command, tuple[str, ...] | None)
    assert_type(vm.argv("delete", Resource("vm", "x")), list[str])
    assert_type(vm.list_names("test-vm-"), list[str])
    assert_type(load_project_kinds(), list[CommandKind])
    CommandKind("lines", delete=["true"], list=["ls"], parser=str.splitlines)
    assert_type(Template(["echo", "{name}"], {"name"}).render({"name": "x"}), list[str])


def creating(scope: Scope) -> None:
    commands = family(scope)
    assert_type(commands, Commands)
    assert_type(commands.create("vm", "test-vm-1", timeout=60), Resource)
    done = run_command(["true"], timeout=5)
    assert_type(done, Completed)
    assert_type(done.error("doing"), CommandError)


async def acreating(scope: Scope) -> None:
    assert_type(await family(scope).acreate("vm", "test-vm-2"), Resource)
