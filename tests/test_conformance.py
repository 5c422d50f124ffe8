"""
The kind conformance suite: every kind of ``tests/cases/*.py`` keeps the
promises of a kind — create, clean, clean twice, clean what vanished by
itself, answer bulk deletes item by item, hint a command that really deletes,
be cleaned by the reaper after its owner's SIGKILL, and be found by a sweep
through the backend's own listing when the kind can list its objects.

Every check asks the backend directly (through the case), never the kind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from cleanroom import ListsOwned, Resource, Scope, get_kind
from cleanroom._crash._journal import Journal
from cleanroom._crash._sweep import sweep
from conformance import KindCase, child_program, load_cases

TESTS = Path(__file__).parent
CASES = load_cases()

#: Seconds within which a killed owner's reaper (or a hint run) must have
#: removed the thing: generous, since Docker and Kubernetes take their time.
SETTLE = 90.0


def cases(item: str) -> list[object]:
    """The cases as parameters of *item*, skipped where it does not apply."""
    params = []
    for case in CASES:
        marks = list(case.marks)
        reason = case.not_applicable.get(item)
        if reason is not None:
            marks.append(pytest.mark.skip(reason=f"{case.kind}: {reason}"))
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


@pytest.fixture(autouse=True)
def _available(request: pytest.FixtureRequest) -> None:
    case = request.node.callspec.params["case"]
    reason = case.available()
    if reason is not None:
        pytest.skip(f"{case.kind}: {reason}")


def run(case: KindCase, test: Callable[[], Awaitable[None]]) -> None:
    """Run *test* in an event loop: the one the case needs, else asyncio."""
    anyio.run(test, backend=case.loop or "asyncio")


async def settle(case: KindCase) -> None:
    """Let an in-process kind's tasks run until they wait."""
    if case.loop is not None:
        await anyio.wait_all_tasks_blocked()


def wait_gone(case: KindCase, resource: Resource, what: str) -> None:
    deadline = time.monotonic() + SETTLE
    while case.exists(resource):
        assert time.monotonic() < deadline, f"{resource!r} still exists {what}"
        time.sleep(0.05)


def same_kind(case: KindCase, resource: Resource) -> None:
    assert resource.kind == get_kind(case.kind).name


@pytest.mark.parametrize("case", cases("clean"))
def test_create_and_clean(case: KindCase) -> None:
    """A thing made in a scope exists, is tracked, and is gone once it closes."""
    made: list[Resource] = []

    async def test() -> None:
        async with Scope("conformance") as scope:
            made.append(case.create(scope))
            await settle(case)
            same_kind(case, made[0])
            assert case.exists(made[0])
            assert made[0] in scope.resources()
        assert scope.dispositions == ()

    run(case, test)
    assert not case.exists(made[0])


@pytest.mark.parametrize("case", cases("clean_sync"))
def test_create_and_clean_sync(case: KindCase) -> None:
    """The same with a sync scope, no event loop running."""
    with Scope("conformance") as scope:
        resource = case.create(scope)
        assert case.exists(resource)
    assert scope.dispositions == ()
    assert not case.exists(resource)


@pytest.mark.parametrize("case", cases("clean_twice"))
def test_clean_twice(case: KindCase) -> None:
    """Released, then deleted again and closed: every clean after the first succeeds."""
    made: list[Resource] = []

    async def test() -> None:
        async with Scope("conformance") as scope:
            resource = case.create(scope)
            made.append(resource)
            await settle(case)
            await scope.arelease(resource)
            assert not case.exists(resource)
            kind = get_kind(case.kind)
            if kind.external:
                kind.delete(resource, wait=True)
                await kind.adelete(resource, wait=True)
            assert resource not in scope.resources()
        assert scope.dispositions == ()

    run(case, test)
    assert not case.exists(made[0])


@pytest.mark.parametrize("case", cases("vanished"))
def test_vanished_by_itself(case: KindCase) -> None:
    """A thing gone before its scope closes counts as cleaned, not as a failure."""
    made: list[Resource] = []

    async def test() -> None:
        async with Scope("conformance") as scope:
            resource = case.create(scope)
            made.append(resource)
            await settle(case)
            case.destroy(resource)
            await settle(case)
            wait_gone(case, resource, "after destroy()")
        assert scope.dispositions == ()

    run(case, test)
    assert not case.exists(made[0])


@pytest.mark.parametrize("case", cases("bulk"))
def test_bulk_deletes_answer_per_item(case: KindCase) -> None:
    """delete_many and adelete_many give one result per resource, absent ones too."""
    kind = get_kind(case.kind)

    async def test() -> None:
        async with Scope("conformance") as scope:
            made = [case.create(scope) for _ in range(3)]
            case.destroy(made[1])
            wait_gone(case, made[1], "after destroy()")
            assert list(kind.delete_many(made, wait=True)) == [None] * 3
            assert not any(case.exists(resource) for resource in made)

            more = [case.create(scope) for _ in range(3)]
            case.destroy(more[0])
            wait_gone(case, more[0], "after destroy()")
            assert list(await kind.adelete_many(more, wait=True)) == [None] * 3
            assert not any(case.exists(resource) for resource in more)
        assert scope.dispositions == ()

    run(case, test)


@pytest.mark.parametrize("case", cases("hint"))
def test_delete_hint_deletes(case: KindCase) -> None:
    """The delete hint of a live thing is a command that, run, deletes it."""
    kind = get_kind(case.kind)
    with Scope("conformance") as scope:
        resource = case.create(scope)
        hint = kind.delete_hint(resource)
        assert not hint.startswith("nothing"), hint
        case.run_hint(hint)
        wait_gone(case, resource, f"after running {hint!r}")
    assert scope.dispositions == ()


def start_child(case: KindCase, tmp_path: Path, **env: str) -> tuple[Resource, int]:
    """
    Run the case's child source in a process of its own (a session with a
    journal in *tmp_path*), then SIGKILL it; return the thing it made, and
    the pid it had.
    """
    out = tmp_path / "resource.json"
    environ = {k: v for k, v in os.environ.items() if k != "CLEANROOM_SESSION"}
    pythonpath = os.pathsep.join(filter(None, [str(TESTS), environ.get("PYTHONPATH")]))
    child = subprocess.Popen(
        [sys.executable, "-c", child_program(case.child_source(), str(out))],
        env={
            **environ,
            "CLEANROOM_JOURNAL": str(tmp_path / "journal.sqlite3"),
            "PYTHONPATH": pythonpath,
            **env,
        },
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "ready"
        kind, name, identity = json.loads(out.read_text(encoding="utf-8"))
        resource = Resource(kind, name, identity)
        same_kind(case, resource)
        assert case.exists(resource)
    finally:
        child.kill()
        child.wait(timeout=60)
        child.stdout.close()
    return resource, child.pid


@pytest.mark.parametrize("case", cases("reaper"))
def test_reaper_cleans_after_sigkill(case: KindCase, tmp_path: Path) -> None:
    """SIGKILL of the owner: its reaper deletes the thing from the journal."""
    resource, _ = start_child(case, tmp_path)
    wait_gone(case, resource, "after its owner's SIGKILL")


@pytest.mark.parametrize("case", cases("sweep"))
def test_sweep_finds_dead_sessions_objects(case: KindCase, tmp_path: Path) -> None:
    """A sweep finds a dead session's thing by listing the backend, journal lost."""
    kind = get_kind(case.kind)
    if not isinstance(kind, ListsOwned):
        pytest.skip(
            f"kind {kind.name!r} cannot list its objects (no ListsOwned); a "
            "dead session's things are found through the journal (the reaper item)"
        )
    resource, pid = start_child(case, tmp_path, CLEANROOM_REAPER="off")
    assert case.exists(resource)
    listed = {owned.resource.name: owned for owned in kind.list_owned()}
    assert resource.name in listed
    assert listed[resource.name].ownership.pid == pid
    assert listed[resource.name].ownership.alive() is False
    # A journal that never heard of it: only the backend knows the thing.
    with Journal(tmp_path / "fresh.sqlite3") as journal:
        report = sweep(journal, kinds=[kind.name])
    removed = [r for r in report.results if r.action == "removed"]
    assert resource.name in {r.name for r in removed}, report.results
    wait_gone(case, resource, "after the sweep")
