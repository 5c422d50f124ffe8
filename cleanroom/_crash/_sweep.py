"""
The sweep engine: cleaning journaled resources whose owner is gone, for the
reaper, ``cleanroom sweep``, ``cleanroom run`` and the pytest plugin.

A sweep removes a journaled resource when the process that owned it is dead
(on this host: its pid is gone or was reused; elsewhere: its heartbeat is
stale), no other process of its session lives, and it is not deliberately
kept — or it was kept and its retention has passed (by default, kept
resources stay until the next session). It never touches what a live session
owns, and never anything outside the journal unless a prefix rule names it.
A sweep of one session (``cleanroom run`` cleaning its own) takes what that
session's dead processes left even while others of it live.
"""

from __future__ import annotations

import functools
import importlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs

from cleanroom._core._running import clean_reserved, run_threads
from cleanroom._core._session import STALE_AFTER, current_owner, hostname, pid_alive
from cleanroom.exceptions import BackendUnavailableError

from ._journal import (
    SWEEPABLE_STATES,
    Journal,
    JournalUnavailable,
    Row,
    open_existing,
)
from ._location import journal_path
from ._retention import Retention

if TYPE_CHECKING:
    from cleanroom._core._capabilities import KnowsSessions, ListsOwned
    from cleanroom._core._ownership import Ownership
    from cleanroom._core._resource import Kind, Resource

log = logging.getLogger("cleanroom")

Progress = Callable[[int, int], None]


@attrs.frozen
class PrefixRule:
    """
    An opt-in rule: resources of *kind* whose name starts with *prefix* are
    orphans unless a live session owns them.

    .. versionadded:: 0.1.0
    """

    kind: str
    prefix: str = attrs.field()

    @prefix.validator
    def _check(self, _: object, value: str) -> None:
        if not value.strip():
            raise ValueError("a prefix rule needs a non-empty prefix")


@attrs.frozen
class SweepResult:
    """
    What a sweep (or a reaper) did with one resource.

    Attributes:
        action: ``"removed"``, ``"would-remove"`` (a dry run), ``"kept"``,
            ``"failed"`` or ``"skipped"``.
        kind: The resource's kind.
        name: Its name.
        identity: What else identifies it.
        row: The journal row's id, or ``None`` for a prefix rule's match.
        session: The session that created it, if known.
        owner: The owner process, as ``host:pid``, if known.
        reason: Why it failed, was skipped, kept or removed.
        what: What the resource is, as its kind describes it (for a
            ``watch()``: the new paths under its root, not the root).

    .. versionadded:: 0.1.0
    """

    action: str
    kind: str
    name: str
    identity: dict[str, Any] = attrs.field(factory=dict)
    row: int | None = None
    session: str | None = None
    owner: str | None = None
    reason: str | None = None
    what: str | None = None

    @classmethod
    def of(cls, row: Row, action: str, reason: str | None = None) -> SweepResult:
        """Describe what happened to a journal row."""
        return cls(
            action,
            row.kind,
            row.name,
            row.identity,
            row.id,
            row.session,
            f"{row.host}:{row.pid}" if row.host is not None else None,
            reason,
            describe_row(row),
        )

    @property
    def description(self) -> str:
        """What the resource is: its kind's description, or its kind and name."""
        return self.what or f"{self.kind} {self.name!r}"

    def as_dict(self) -> dict[str, Any]:
        """Return plain data for ``--json`` output."""
        return attrs.asdict(self)


@attrs.define
class SweepReport:
    """
    Everything one sweep did.

    .. versionadded:: 0.1.0
    """

    journal: str | None
    dry_run: bool = False
    results: list[SweepResult] = attrs.Factory(list)
    seconds: float = 0.0

    def count(self, action: str) -> int:
        """How many resources got *action*."""
        return sum(1 for result in self.results if result.action == action)

    @property
    def removed(self) -> int:
        """How many resources were removed (or would be, in a dry run)."""
        return self.count("would-remove" if self.dry_run else "removed")

    @property
    def failed(self) -> int:
        """How many removals failed."""
        return self.count("failed")

    def as_dict(self) -> dict[str, Any]:
        """Return plain data for ``--json`` output."""
        return {
            "journal": self.journal,
            "dry_run": self.dry_run,
            "removed": self.removed,
            "failed": self.failed,
            "seconds": round(self.seconds, 4),
            "results": [result.as_dict() for result in self.results],
        }


# -- resolving kinds --------------------------------------------------------------


def _import_quietly(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception as exc:
        log.debug("cannot import %s: %s", module, exc)
        return False
    return True


def resolve_kind(name: str, module: str | None = None) -> Kind | None:
    """
    Return the kind registered as *name*, importing *module* (where it was
    registered) when it is not known yet; ``None`` when it stays unknown.

    .. versionadded:: 0.1.0
    """
    from cleanroom._core._resource import get_kind, registered_kind
    from cleanroom.exceptions import UnknownKindError

    kind = registered_kind(name)
    if kind is None and module and _import_quietly(module):
        kind = registered_kind(name)
    if kind is None:
        try:  # every installed backend
            kind = get_kind(name)
        except UnknownKindError:
            return None
    return kind


def describe_row(row: Row) -> str:
    """
    Describe a journaled resource through its kind, or by kind and name.

    .. versionadded:: 0.1.0
    """
    kind = resolve_kind(row.kind, row.module)
    if kind is not None:
        try:
            return kind.describe(_resource(row))
        except Exception as exc:
            log.debug("cannot describe %s %r: %s", row.kind, row.name, exc)
    return f"{row.kind} {row.name!r}"


def canonical_kind(name: str) -> str:
    """Return the canonical name of the kind *name*, or *name* lowered if unknown."""
    kind = resolve_kind(name)
    return kind.name if kind is not None else name.strip().lower()


# -- cleaning rows ----------------------------------------------------------------


def _resource(row: Row) -> Resource:
    from cleanroom._core._resource import Resource

    return Resource(
        row.kind,
        row.name,
        row.identity,
        created=row.created,
        scope=row.scope,
        declarative=True,
    )


def _clean_one(kind: Kind, row: Row, *, died: float | None) -> None:
    resource = _resource(row)
    if row.settled_state == "intent":
        # Never confirmed as created: delete it if it exists or appears
        # within the kind's grace period after its owner died.
        left = (died or time.time()) + kind.grace - time.time()
        clean_reserved(kind, resource, wait=True, grace=max(0.0, left))
        return
    kind.delete(resource, wait=True)


def clean_rows(
    journal: Journal,
    rows: Sequence[Row],
    *,
    actor: str,
    honor_keep: bool = False,
    died: float | None = None,
    timeout: float | None = 30.0,
    concurrency: int = 16,
    progress: Progress | None = None,
) -> list[SweepResult]:
    """
    Clean claimed rows, newest first, and record the results in *journal*.

    Args:
        journal: Where the rows are.
        rows: Rows claimed by this process (state ``sweeping``).
        actor: Who cleans, for the journal: ``"reaper"`` or ``"sweep"``.
        honor_keep: Keep rows whose level keeps their kind when a run is
            interrupted (the reaper does; a sweep of the next session does
            not: their retention is over).
        died: When the owner died; intent rows may still appear within their
            kind's grace period after that.
        timeout: Seconds one deletion may take before it is abandoned.
        concurrency: How many deletions of one kind run at once.
        progress: Called with (done, total) as deletions finish.

    Returns:
        One result per row.

    .. versionadded:: 0.1.0
    """
    total = len(rows)
    done = 0
    results: list[SweepResult] = []
    for group in _groups(rows):
        outcome = _clean_group(
            group,
            honor_keep=honor_keep,
            died=died,
            timeout=timeout,
            concurrency=concurrency,
        )
        # Settle group by group, so that a sweep killed half-way loses little.
        journal.settle([settled for _, settled in outcome], actor=actor)
        results.extend(result for result, _ in outcome)
        done += len(group)
        if progress is not None:
            progress(done, total)
    return results


def _groups(rows: Sequence[Row]) -> list[list[Row]]:
    """Split *rows*, newest first, into runs of one kind."""
    groups: list[list[Row]] = []
    for row in sorted(rows, key=lambda row: row.id, reverse=True):
        if groups and groups[-1][0].kind == row.kind:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


_Settled = tuple[int, str, str | None]


def _clean_group(
    group: list[Row],
    *,
    honor_keep: bool,
    died: float | None,
    timeout: float | None,
    concurrency: int,
) -> list[tuple[SweepResult, _Settled]]:
    """Clean rows of one kind; return each one's result and its journal update."""
    first = group[0]
    kind = resolve_kind(first.kind, first.module)
    if kind is None:
        reason = f"the kind {first.kind!r} is unknown here" + (
            f" (cannot import {first.module})" if first.module else ""
        )
        return [
            (
                SweepResult.of(row, "skipped", reason),
                (row.id, _previous_state(row), None),
            )
            for row in group
        ]
    outcome: list[tuple[SweepResult, _Settled]] = []
    work: list[Row] = []
    for row in group:
        if honor_keep and row.on_interrupt == "keep" and row.settled_state != "intent":
            reason = "kept by the level's policy for an interrupted run"
            outcome.append(
                (SweepResult.of(row, "kept", reason), (row.id, "kept", reason))
            )
        else:
            work.append(row)
    errors = run_threads(
        [functools.partial(_clean_one, kind, row, died=died) for row in work],
        concurrency if kind.concurrent else 1,
        timeout,
        [f"{row.kind} {row.name!r}" for row in work],
    )
    for row, error in zip(work, errors, strict=True):
        if error is None:
            outcome.append((SweepResult.of(row, "removed"), (row.id, "cleaned", None)))
        else:
            reason = f"{type(error).__name__}: {error}"
            outcome.append(
                (SweepResult.of(row, "failed", reason), (row.id, "failed", reason))
            )
    return outcome


def _previous_state(row: Row) -> str:
    state = row.settled_state
    return "created" if state == "sweeping" else state


# -- choosing orphans ---------------------------------------------------------------


def _claimant_alive(claim: str | None, updated: float, now: float) -> bool:
    # Claims read "<role>:<host>:<pid>:<start time>".
    parts = (claim or "").split(":")
    if len(parts) < 4:  # noqa: PLR2004
        return False
    host, pid, start = ":".join(parts[1:-2]), parts[-2], parts[-1]
    if host == hostname():
        try:
            return pid_alive(int(pid), int(start) or None)
        except ValueError:
            return False
    return now - updated < STALE_AFTER


def is_orphan(
    row: Row,
    *,
    include_kept: bool,
    now: float,
    live_sessions: frozenset[str] = frozenset(),
    past_retention: Callable[[Row], bool] | None = None,
) -> bool:
    """
    Tell whether a sweep may remove the resource of *row*: its owner is dead,
    its session is not in *live_sessions*, no live process works on it, and
    it is not kept — or *include_kept* and *past_retention* says its
    retention is over (without *past_retention*, every kept resource goes).

    .. versionadded:: 0.1.0
    """
    if row.session in live_sessions or row.owner_alive(now=now):
        return False
    if row.state == "sweeping" and _claimant_alive(row.claim, row.updated, now):
        return False
    if is_kept(row):
        if not include_kept:
            return False
        return past_retention is None or past_retention(row)
    return row.settled_state in {"intent", "created", "failed", "sweeping"}


def is_kept(row: Row) -> bool:
    """Tell whether *row* was kept on purpose (by outcome, or by level on interrupt)."""
    state = row.settled_state
    return state == "kept" or (
        row.on_interrupt == "keep" and state in {"created", "failed"}
    )


def _retention_check(
    journal: Journal, retention: Retention, current: str | None, now: float
) -> Callable[[Row], str | None]:
    """
    Return what tells why a kept row's retention is over (``None`` while it
    is not): *retention.count* newer sessions started (*current*, the
    sweeping run, among them), or its age passed.
    """
    began: dict[str, float] = {}
    for owner in journal.owners():
        began[owner.session] = min(owner.started, began.get(owner.session, now))
    if current is not None:
        began.setdefault(current, now)
    starts = sorted(began.values())

    def over(row: Row) -> str | None:
        if row.expires is not None and row.expires <= now:
            return "kept past its expiry"
        if retention.age is not None and row.updated + retention.age <= now:
            return f"kept longer than {_seconds(retention.age)}"
        if retention.count is not None:
            start = began.get(row.session)
            newer = (
                len(starts) if start is None else sum(1 for s in starts if s > start)
            )
            if newer >= retention.count:
                return (
                    f"kept; {newer} newer session{'s' if newer != 1 else ''} "
                    f"ran (retention: {retention.count})"
                )
        return None

    return over


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value:g}s"


def sweep(
    journal: Journal | None,
    *,
    dry_run: bool = False,
    kinds: Iterable[str] | None = None,
    older_than: float | None = None,
    session: str | None = None,
    include_kept: bool = True,
    all_kept: bool = False,
    retention: Retention | None = None,
    current_session: str | None = None,
    prefix_rules: Sequence[PrefixRule] = (),
    owned: bool | Collection[str] = True,
    progress: Progress | None = None,
    timeout: float | None = 30.0,
) -> SweepReport:
    """
    Remove orphans: journaled resources whose owner is dead, and (with
    *prefix_rules*) resources named by a rule that no live session owns.

    Args:
        journal: The journal; ``None`` sweeps prefix rules only.
        dry_run: Only report what would be removed.
        kinds: Only these kinds (any alias).
        older_than: Only resources created more than this many seconds ago.
        session: Only resources of this session.
        include_kept: Also remove kept resources of ended sessions whose
            retention has passed.
        all_kept: Remove every kept resource of ended sessions, whatever
            its retention.
        retention: How long kept resources stay; by default
            :meth:`Retention.resolve`.
        current_session: The session of the run that sweeps, which counts
            as the newest session for *retention*.
        prefix_rules: Opt-in rules for resources created outside cleanroom.
        owned: Also remove the objects that backends list under a dead
            session's ownership labels and the journal does not know; a
            collection of kind names asks only those kinds' backends.
        progress: Called with (done, total) as removals finish.
        timeout: Seconds one deletion may take.

    Returns:
        What was removed, failed or skipped.

    Raises:
        ValueError: On a bad retention setting.

    .. versionadded:: 0.1.0
    """
    began = time.monotonic()
    now = time.time()
    report = SweepReport(str(journal.path) if journal is not None else None, dry_run)
    rows: list[Row] = []
    if journal is not None:
        query: dict[str, Any] = {
            "session": session,
            "kinds": _wanted(journal, kinds),
            "created_before": None if older_than is None else now - older_than,
            "states": SWEEPABLE_STATES,
        }
        why: Callable[[Row], str | None] = lambda _: None  # noqa: E731
        past: Callable[[Row], bool] | None = None
        if include_kept and not all_kept:
            why = _retention_check(
                journal, retention or Retention.resolve(), current_session, now
            )
            past = lambda row: why(row) is not None  # noqa: E731
        elif all_kept:
            why = lambda _: "kept; removed on demand"  # noqa: E731
        select = _selector(
            journal,
            session=session,
            include_kept=include_kept or all_kept,
            now=now,
            past_retention=past,
        )
        if dry_run:
            rows = select(journal.rows(**query))
            report.results.extend(
                SweepResult.of(row, "would-remove", _why(row, why)) for row in rows
            )
        else:
            claimant = f"sweep:{current_owner().claim}"
            rows = journal.claim(claimant, select, **query)
            reasons = {row.id: _why(row, why) for row in rows}
            report.results.extend(
                attrs.evolve(
                    result, reason=result.reason or reasons.get(result.row or -1)
                )
                for result in clean_rows(
                    journal,
                    rows,
                    actor="sweep",
                    honor_keep=not (include_kept or all_kept),
                    timeout=timeout,
                    progress=progress,
                )
            )
    if owned:
        asked = kinds if owned is True else [k for k in owned if _wanted_by(k, kinds)]
        report.results.extend(
            _sweep_owned(
                journal,
                dry_run=dry_run,
                kinds=asked,
                session=session,
                older_than=older_than,
                now=now,
                timeout=timeout,
            )
        )
    if prefix_rules:
        report.results.extend(
            _sweep_prefixes(
                journal, prefix_rules, dry_run=dry_run, swept=rows, timeout=timeout
            )
        )
    if journal is not None and not dry_run:
        try:
            journal.prune()
        except Exception as exc:
            log.debug("pruning the journal failed: %s", exc)
    report.seconds = time.monotonic() - began
    return report


def _why(row: Row, kept: Callable[[Row], str | None]) -> str:
    """Say why a sweep takes *row*: its retention is over, or its owner died."""
    if is_kept(row):
        return kept(row) or "kept"
    return "orphaned: its owner died" if row.closed is None else "left behind"


def load_journal_kinds(journal: Journal) -> None:
    """Import the modules that register the kinds of the journal's rows."""
    for module in journal.modules():
        _import_quietly(module)


def _wanted(journal: Journal, kinds: Iterable[str] | None) -> list[str] | None:
    """The canonical names of *kinds*, knowing the kinds of the journal's rows."""
    if kinds is None:
        return None
    # Aliases of kinds that this process has not imported yet.
    load_journal_kinds(journal)
    return sorted({canonical_kind(kind) for kind in kinds})


def _selector(
    journal: Journal,
    *,
    session: str | None,
    include_kept: bool,
    now: float,
    past_retention: Callable[[Row], bool] | None = None,
) -> Callable[[list[Row]], list[Row]]:
    """Return what picks the orphans among candidate rows."""
    # A session with a live process keeps even its dead processes' resources
    # (their reapers see to them), unless the sweep is of that session alone.
    live: frozenset[str] = frozenset()
    if session is None:
        live = frozenset(o.session for o in journal.owners() if o.alive(now=now))

    def select(candidates: list[Row]) -> list[Row]:
        return [
            row
            for row in candidates
            if is_orphan(
                row,
                include_kept=include_kept,
                now=now,
                live_sessions=live,
                past_retention=past_retention,
            )
        ]

    return select


def _wanted_by(kind: str, kinds: Iterable[str] | None) -> bool:
    return kinds is None or canonical_kind(kind) in {canonical_kind(k) for k in kinds}


def _owned_kinds(kinds: Iterable[str] | None) -> list[ListsOwned]:
    from cleanroom._core import _discovery
    from cleanroom._core._capabilities import ListsOwned
    from cleanroom._core._resource import registered_kinds

    if kinds is None:
        _discovery.load_all()
        found = registered_kinds()
    else:
        # Only the backends that register these kinds are imported.
        found = tuple(
            {id(kind): kind for name in kinds if (kind := resolve_kind(name))}.values()
        )
    return [kind for kind in found if isinstance(kind, ListsOwned)]


def _sweep_owned(
    journal: Journal | None,
    *,
    dry_run: bool,
    kinds: Iterable[str] | None,
    session: str | None,
    older_than: float | None,
    now: float,
    timeout: float | None,
) -> list[SweepResult]:
    """
    Remove what backends hold under cleanroom's labels for a dead session and
    the journal no longer knows (its rows were lost or pruned). What the journal
    knows is its to decide; a live owner's, or one whose liveness cannot be
    told (another host's session without a heartbeat here), is never touched.
    """
    listers = _owned_kinds(kinds)
    if not listers:
        return []
    known: set[tuple[str, str]] = set()
    live: set[str] = set()
    beating: set[str] = set()
    if journal is not None:
        known = {(row.kind, row.name) for row in journal.rows()}
        for owner in journal.owners():
            beating.add(owner.session)
            if owner.alive(now=now):
                live.add(owner.session)
    knowers = _session_knowers()
    results: list[SweepResult] = []
    for lister in listers:
        kind = cast("Kind", lister)
        try:
            owned = list(lister.list_owned())
        except BackendUnavailableError as exc:
            # No engine or cluster here: nothing of it to sweep.
            log.debug("not listing the %s objects cleanroom owns: %s", kind.name, exc)
            continue
        except Exception as exc:
            log.warning("cannot list the %s objects cleanroom owns: %s", kind.name, exc)
            continue
        targets = [
            resource
            for resource, ownership in owned
            if (kind.name, resource.name) not in known
            and (session is None or ownership.session == session)
            and (older_than is None or ownership.created <= now - older_than)
            and _dead(ownership, live, beating, knowers)
        ]
        why = "labelled by a dead session and unknown to the journal"
        results.extend(_remove(kind, targets, why, dry_run=dry_run, timeout=timeout))
    return results


def _session_knowers() -> list[KnowsSessions]:
    from cleanroom._core._capabilities import KnowsSessions
    from cleanroom._core._resource import registered_kinds

    found: dict[type, KnowsSessions] = {}
    for kind in registered_kinds():
        if isinstance(kind, KnowsSessions):
            # One question per backend: kinds of one class share the record.
            found.setdefault(type(kind), kind)
    return list(found.values())


def _dead(
    ownership: Ownership,
    live: set[str],
    beating: set[str],
    knowers: Sequence[KnowsSessions] = (),
) -> bool:
    """Tell whether the owner of a labelled object is surely gone."""
    if ownership.session in live:
        return False
    alive = ownership.alive()
    if alive is not None:
        return not alive
    # Another host's owner: a backend's record of live sessions (a Lease)
    # decides, else the journal, if it hears the session's heartbeats.
    for knower in knowers:
        try:
            said = knower.session_alive(ownership.session)
        except Exception as exc:
            log.debug("cannot ask whether session %s lives: %s", ownership.session, exc)
            continue
        if said is not None:
            return not said
    return ownership.session in beating


def _remove(
    kind: Kind,
    targets: Sequence[Resource],
    why: str,
    *,
    dry_run: bool,
    timeout: float | None,
) -> list[SweepResult]:
    """Delete *targets* of *kind* in threads (or say they would go), with results."""
    if dry_run:
        return [_prefix_result("would-remove", kind, r, why) for r in targets]
    errors = run_threads(
        [functools.partial(_delete, kind, resource) for resource in targets],
        16 if kind.concurrent else 1,
        timeout,
        [kind.describe(resource) for resource in targets],
    )
    return [
        _prefix_result("removed", kind, resource, why)
        if error is None
        else _prefix_result(
            "failed", kind, resource, f"{type(error).__name__}: {error}"
        )
        for resource, error in zip(targets, errors, strict=True)
    ]


def _protected(journal: Journal | None, swept: Sequence[Row]) -> set[tuple[str, str]]:
    """The (kind, name) of every journaled resource a sweep must not touch."""
    if journal is None:
        return set()
    swept_ids = {row.id for row in swept}
    return {
        (row.kind, row.name)
        for row in journal.rows(states=SWEEPABLE_STATES)
        if row.id not in swept_ids
    }


def _listed(rule: PrefixRule) -> tuple[Kind, list[Resource]]:
    """Return the kind of *rule* and its resources whose name has the prefix."""
    from cleanroom._core._capabilities import ListsNames
    from cleanroom._core._resource import Resource
    from cleanroom.exceptions import UnknownKindError

    kind = resolve_kind(rule.kind)
    if kind is None:
        raise UnknownKindError(f"unknown kind {rule.kind!r} in a prefix rule")
    if not isinstance(kind, ListsNames):
        raise TypeError(
            f"the kind {kind.name!r} cannot list its resources; a prefix rule "
            "needs a kind with list_names(prefix) (see cleanroom.ListsNames)"
        )
    found = []
    for item in kind.list_names(rule.prefix):
        # Names, as the protocol says; resources are taken as they are.
        resource = (
            item
            if isinstance(item, Resource)
            else Resource(kind.name, str(item), declarative=True)
        )
        if resource.name.startswith(rule.prefix):
            found.append(resource)
    return kind, found


def declared_prefix_rules(
    kinds: Iterable[str] | None = None, *, installed: bool = True
) -> list[PrefixRule]:
    """
    Return the prefix rules that kinds opted into: the ``orphan_prefixes`` of
    every installed kind that lists names (or only of *kinds*).

    Args:
        kinds: The kinds to ask; all by default.
        installed: Import every installed backend to ask its kinds. With
            ``False``, only the kinds registered so far (by a conftest, say)
            and those of the backends that ``[tool.cleanroom]`` configures
            (:func:`cleanroom._core._discovery.load_configured`) are asked,
            so that the start of a test run imports no other backend.

    .. versionadded:: 0.2.0
    """
    from cleanroom._core import _discovery
    from cleanroom._core._capabilities import ListsNames
    from cleanroom._core._resource import registered_kinds

    if installed:
        _discovery.load_all()
    else:
        _discovery.load_configured()
    wanted = None if kinds is None else {canonical_kind(kind) for kind in kinds}
    return [
        PrefixRule(kind.name, prefix)
        for kind in registered_kinds()
        if isinstance(kind, ListsNames) and (wanted is None or kind.name in wanted)
        for prefix in getattr(kind, "orphan_prefixes", ())
    ]


def _sweep_prefixes(
    journal: Journal | None,
    rules: Sequence[PrefixRule],
    *,
    dry_run: bool,
    swept: Sequence[Row],
    timeout: float | None,
) -> list[SweepResult]:
    protected = _protected(journal, swept)
    seen: set[tuple[str, str]] = {(row.kind, row.name) for row in swept}
    results: list[SweepResult] = []
    for rule in rules:
        kind, found = _listed(rule)
        targets = []
        for resource in found:
            key = (kind.name, resource.name)
            if key in seen:
                continue
            seen.add(key)
            if key in protected:
                results.append(
                    _prefix_result(
                        "skipped", kind, resource, "journaled, not an orphan"
                    )
                )
            else:
                targets.append(resource)
        why = f"prefix {rule.prefix!r}"
        results.extend(_remove(kind, targets, why, dry_run=dry_run, timeout=timeout))
    return results


def _prefix_result(
    action: str, kind: Kind, resource: Resource, reason: str
) -> SweepResult:
    return SweepResult(
        action, kind.name, resource.name, dict(resource.identity), reason=reason
    )


def _delete(kind: Kind, resource: Resource) -> None:
    kind.delete(resource, wait=True)


def _journal_kinds(journal: Journal | None) -> list[str]:
    """
    The kinds of the journal's rows, settled or not, their modules imported
    where rows name them (so that no other backend needs importing).
    """
    if journal is None:
        return []
    found = journal.kind_modules()
    for name, module in found.items():
        resolve_kind(name, module)
    return list(found)


def session_start_sweep(
    current_session: str | None = None, retention: Retention | None = None
) -> SweepReport | None:
    """
    Sweep the journal once at the start of a test session, then the prefix
    rules that the kinds registered so far and the backends configured in
    ``[tool.cleanroom]`` opted into (:func:`declared_prefix_rules`); never
    raises.

    The pytest plugin calls this in the controller process (not in xdist
    workers) unless ``--cleanroom-no-sweep`` is given. Failures are logged.

    Args:
        current_session: The session that starts, which counts as the
            newest one for the retention of kept resources.
        retention: How long kept resources stay; by default
            :meth:`Retention.resolve`.

    Returns:
        What the sweep did, or ``None`` when there was no journal to sweep
        or the sweep failed.

    .. versionadded:: 0.1.0
    """
    try:
        path = journal_path()
        with open_existing(path) as journal:
            rules = declared_prefix_rules(installed=False)
            if journal is None and not rules:
                return None
            # Backends' labelled objects are asked for only of the kinds this
            # journal has used: a run that never touched Docker or a cluster
            # neither imports their clients nor waits for them.
            report = sweep(
                journal,
                current_session=current_session,
                retention=retention,
                owned=_journal_kinds(journal),
            )
            if rules:
                # Apart, so that a kind that cannot list now hides nothing above.
                try:
                    found = sweep(journal, kinds=(), prefix_rules=rules)
                except Exception as exc:
                    log.warning("the cleanroom prefix rules failed: %s", exc)
                else:
                    report.results.extend(found.results)
    except (Exception, JournalUnavailable) as exc:
        log.warning("the cleanroom session-start sweep failed: %s", exc)
        return None
    for result in report.results:
        if result.action == "failed":
            log.warning("could not sweep %s: %s", result.description, result.reason)
    return report
