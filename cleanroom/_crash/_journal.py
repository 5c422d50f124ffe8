"""
The journal: a sqlite file recording every declarative resource, so that a
reaper or a later sweep can clean what a dead process left behind.

Rows are written *before* a resource is created (state ``intent``) and
updated when it is created, cleaned, kept, failed or forgotten. Several
processes share one file (pytest-xdist workers, reapers, sweeps): the file
is in WAL mode, every write is one short transaction, and busy databases are
retried. A damaged cleanroom journal is reported, moved aside as
``<name>.corrupt-<timestamp>`` and replaced by a fresh journal — only by a
process that writes; readers report it. A file that is not a cleanroom
journal (another program's SQLite file, any other file) is refused and
never moved.

This module uses the standard library only (the reaper imports it at start);
the process's recorder, which listens to the registry, lives in
:mod:`cleanroom._crash._recorder`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple, Self, TypeVar

from cleanroom._core._session import Owner, owner_alive

from ._location import JOURNAL_ENV

T = TypeVar("T")

log = logging.getLogger("cleanroom")

#: ``PRAGMA application_id`` of a cleanroom journal ("ClRm").
APPLICATION_ID: Final = 0x436C526D

#: The schema this version writes; older ones are migrated, newer ones left alone.
SCHEMA_VERSION: Final = 1

#: Rows a sweep may work on once their owner is dead.
SWEEPABLE_STATES: Final = ("intent", "created", "failed", "sweeping", "kept")

#: Settled rows older than this many seconds are pruned by sweeps.
HISTORY_SECONDS: Final = 7 * 24 * 3600.0

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS owners (
    id TEXT PRIMARY KEY,
    session TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    start_time INTEGER,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL,
    closed REAL,
    reaper INTEGER,
    command TEXT NOT NULL DEFAULT '',
    policy TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS owners_session ON owners(session);
CREATE TABLE IF NOT EXISTS resources (
    id INTEGER PRIMARY KEY,
    uid TEXT UNIQUE,
    owner TEXT NOT NULL,
    session TEXT NOT NULL,
    scope TEXT NOT NULL,
    kind TEXT NOT NULL,
    module TEXT,
    name TEXT NOT NULL,
    identity TEXT NOT NULL,
    state TEXT NOT NULL,
    on_interrupt TEXT NOT NULL DEFAULT 'clean',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    expires REAL,
    reason TEXT,
    hint TEXT,
    claim TEXT,
    prior TEXT,
    actor TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS resources_state ON resources(state);
CREATE INDEX IF NOT EXISTS resources_owner ON resources(owner);
"""

_SELECT_ROWS: Final = (
    "SELECT r.id, r.owner, r.session, r.scope, r.kind, r.module, r.name, "
    "r.identity, r.state, r.on_interrupt, r.created, r.updated, r.expires, "
    "r.reason, r.hint, r.claim, r.prior, r.actor, r.attempts, "
    "o.host, o.pid, o.start_time, o.heartbeat, o.closed "
    "FROM resources r LEFT JOIN owners o ON o.id = r.owner"
)

_SELECT_OWNERS: Final = (
    "SELECT id, session, host, pid, start_time, started, heartbeat, closed, "
    "reaper, command, policy FROM owners"
)


@functools.cache
def _expected_columns() -> dict[str, frozenset[str]]:
    """The columns of each table, as this version's schema creates them."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(_SCHEMA)
        return _columns(conn)
    finally:
        conn.close()


def _columns(conn: sqlite3.Connection) -> dict[str, frozenset[str]]:
    tables = [
        row[0]
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    ]
    return {
        table: frozenset(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
        for table in tables
    }


def _missing_columns(conn: sqlite3.Connection) -> list[str]:
    """Name the tables and columns of this schema that *conn*'s file lacks."""
    found = _columns(conn)
    missing = []
    for table, columns in _expected_columns().items():
        have = found.get(table)
        if have is None:
            missing.append(table)
        else:
            missing.extend(f"{table}.{column}" for column in sorted(columns - have))
    return missing


class JournalUnavailable(Exception):  # noqa: N818
    """Raised inside this module when the journal cannot be used at all."""


class Row(NamedTuple):
    """
    One journaled resource, with what is known of its owner.

    .. versionadded:: 0.1.0
    """

    id: int
    owner: str
    session: str
    scope: str
    kind: str
    module: str | None
    name: str
    identity: dict[str, Any]
    state: str
    on_interrupt: str
    created: float
    updated: float
    expires: float | None
    reason: str | None
    hint: str | None
    claim: str | None
    prior: str | None
    actor: str | None
    attempts: int
    host: str | None
    pid: int | None
    start_time: int | None
    heartbeat: float | None
    closed: float | None

    @property
    def settled_state(self) -> str:
        """The row's state, or for a claimed row the state it was claimed in."""
        if self.state == "sweeping" and self.prior:
            return self.prior
        return self.state

    def owner_alive(self, *, now: float | None = None) -> bool:
        """Tell whether the process that owns this row still runs."""
        if self.host is None or self.pid is None:
            return False
        return owner_alive(
            self.host, self.pid, self.start_time, self.heartbeat, now=now
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the row as plain data, for ``--json`` output."""
        return self._asdict()


class OwnerRow(NamedTuple):
    """
    One process that journaled resources.

    .. versionadded:: 0.1.0
    """

    id: str
    session: str
    host: str
    pid: int
    start_time: int | None
    started: float
    heartbeat: float
    closed: float | None
    reaper: int | None
    command: str
    policy: dict[str, Any]

    def alive(self, *, now: float | None = None) -> bool:
        """Tell whether the owner process still runs."""
        return owner_alive(
            self.host, self.pid, self.start_time, self.heartbeat, now=now
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the owner as plain data, for ``--json`` output."""
        return self._asdict()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return "malformed" in text or "not a database" in text
    return not isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError)


#: The first bytes of every SQLite database file.
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"

#: Where the header of an SQLite file holds its ``application_id``.
_APPLICATION_ID_OFFSET: Final = 68


def _is_ours(path: Path) -> bool:
    """Tell whether *path* is an SQLite file that says it is a cleanroom journal."""
    try:
        with path.open("rb") as file:
            header = file.read(_APPLICATION_ID_OFFSET + 4)
    except OSError:
        return False
    if not header.startswith(_SQLITE_MAGIC) or len(header) < _APPLICATION_ID_OFFSET + 4:
        return False
    found = int.from_bytes(header[_APPLICATION_ID_OFFSET:], "big")
    return found == APPLICATION_ID


def _aside_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime())
    candidate = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
    return candidate


class Journal:
    """
    A journal file: the rows of journaled resources and their owners.

    Safe to share between threads (one connection, one lock) and between
    processes (sqlite's locking, WAL mode, retries when busy).

    Args:
        path: The file; it and its directory are created (mode 0600 and
            0700) unless *create* is false.
        create: Whether to create a missing file; when false, opening a
            missing file raises :class:`FileNotFoundError`.
        repair: Whether a damaged cleanroom journal may be moved aside and
            replaced by a fresh one; when false (for commands that only
            read), it raises :class:`JournalUnavailable` instead.

    Raises:
        JournalUnavailable: When the file cannot be used: it is not a
            cleanroom journal (it is never moved), was written by a newer
            cleanroom, or is damaged and *repair* is false.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = True, repair: bool = True
    ) -> None:
        self.path = Path(path)
        self.repair = repair
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._file_id: tuple[int, int] | None = None
        #: Increases each time the journal is reopened on a new file, whose
        #: row ids mean nothing to the old one.
        self.generation = 0
        #: Files that damaged journals were moved to, by this object.
        self.set_aside: list[Path] = []
        if not create and not self.path.exists():
            raise FileNotFoundError(f"no journal at {self.path}")
        self._open()

    # -- opening, health, recovery -----------------------------------------------

    def _open(self) -> None:
        path = self.path
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
        except OSError as exc:
            raise JournalUnavailable(f"cannot open the journal {path}: {exc}") from exc
        for attempt in range(3):
            try:
                self._conn = self._connect()
                stat = path.stat()
                self._file_id = (stat.st_dev, stat.st_ino)
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                self._set_aside(str(exc))
                continue
            except _Foreign as exc:
                raise JournalUnavailable(
                    f"{exc}; it is not a cleanroom journal, so cleanroom leaves "
                    f"it alone: point {JOURNAL_ENV} at another file"
                ) from None
            return
        raise JournalUnavailable(f"cannot open the journal {path}")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            self._verify(conn)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.debug("the journal %s stays in %s mode", self.path, mode)
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _verify(self, conn: sqlite3.Connection) -> None:
        """Initialize an empty file; raise when the file is not a usable journal."""
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if application_id == 0:
            tables = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
            if tables:
                raise _Foreign(f"{self.path} is an sqlite file of another program")
            self._initialize(conn)
        elif application_id != APPLICATION_ID:
            raise _Foreign(
                f"{self.path} is an sqlite file of another program "
                f"(application id {application_id:#x})"
            )
        elif version > SCHEMA_VERSION:
            raise JournalUnavailable(
                f"{self.path} was written by a newer cleanroom (schema "
                f"{version}, this one knows {SCHEMA_VERSION}); leaving it alone"
            )
        missing = _missing_columns(conn)
        if missing:
            raise sqlite3.DatabaseError(
                f"{self.path} has the schema version of this cleanroom but not "
                f"its layout (missing {', '.join(missing)})"
            )
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")

    def _initialize(self, conn: sqlite3.Connection) -> None:
        # Processes that open a new file at once race here: the first one to
        # take the write lock creates the schema, the others find it.
        conn.execute("BEGIN IMMEDIATE")
        try:
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
            if application_id == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _set_aside(self, why: str) -> None:
        """
        Move a damaged cleanroom journal out of the way, under a lock; refuse
        any other file, and any file when this journal may not repair.
        """
        path = self.path
        if not _is_ours(path):
            raise JournalUnavailable(
                f"{path} is not a cleanroom journal ({why}); cleanroom leaves it "
                f"alone: point {JOURNAL_ENV} at another file"
            )
        if not self.repair:
            raise JournalUnavailable(
                f"the cleanroom journal {path} is damaged ({why}); a command that "
                "writes (a test run, `cleanroom sweep`) moves it aside and starts "
                "a fresh one"
            )
        lock_path = path.with_name(path.name + ".lock")
        import fcntl

        with contextlib.ExitStack() as stack:
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                fd = -1
            if fd >= 0:
                stack.callback(os.close, fd)
                fcntl.flock(fd, fcntl.LOCK_EX)
            # Another process may have replaced the file already: look again.
            try:
                probe = self._connect()
            except (sqlite3.DatabaseError, _Foreign):
                pass
            except JournalUnavailable:
                raise
            else:
                probe.close()
                return
            aside = _aside_name(path)
            try:
                path.rename(aside)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise JournalUnavailable(
                    f"cannot move the damaged journal {path} aside: {exc}"
                ) from exc
            with contextlib.suppress(OSError):
                path.with_name(path.name + "-wal").rename(
                    aside.with_name(aside.name + "-wal")
                )
            with contextlib.suppress(OSError):
                path.with_name(path.name + "-shm").unlink()
            fd2 = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd2)
        self.set_aside.append(aside)
        log.error(
            "the cleanroom journal %s was unusable (%s); it was moved to %s and a "
            "fresh journal started",
            path,
            why,
            aside,
        )

    def recover(self, error: BaseException) -> None:
        """
        Reopen the journal after *error*; a damaged file is moved aside.

        Raises:
            JournalUnavailable: When no usable journal can be opened.
        """
        log.warning("the cleanroom journal %s failed: %s", self.path, error)
        self._reopen()

    def _check_file(self) -> None:
        """Reopen the journal when its file was replaced or removed meanwhile."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            stat = None
        if stat is not None and (stat.st_dev, stat.st_ino) == self._file_id:
            return
        log.warning(
            "the cleanroom journal %s was replaced or removed; reopening it",
            self.path,
        )
        self._reopen()

    def _reopen(self) -> None:
        """Close the connection and open the file again, as a new generation."""
        with self._lock:
            self.close()
            self._open()
            self.generation += 1

    def close(self) -> None:
        """Close the connection; the object is unusable afterwards."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def abandon(self) -> None:
        """Drop the connection without closing it (in a forked child)."""
        _abandoned.append(self._conn)
        self._conn = None

    # -- running statements ------------------------------------------------------

    def _run(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        write: bool = True,
        single: bool = False,
    ) -> T:
        """
        Run *work* in one transaction, retrying while the file is busy, and
        once more after reopening a damaged file. *single* work runs one
        statement, which sqlite makes a transaction of its own: it saves the
        ``BEGIN`` and ``COMMIT`` round trips.
        """
        delay = 0.01
        deadline = time.monotonic() + 30.0
        recovered = False
        if write:
            self._check_file()
        while True:
            failure: sqlite3.DatabaseError
            try:
                return self._transaction(work, write=write, single=single)
            except sqlite3.OperationalError as exc:
                if _is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.2)
                    continue
                if recovered or not _is_damage(exc):
                    raise
                failure = exc
            except sqlite3.DatabaseError as exc:
                if recovered or not _is_damage(exc):
                    raise
                failure = exc
            recovered = True
            self.recover(failure)

    def _transaction(
        self, work: Callable[[sqlite3.Connection], T], *, write: bool, single: bool
    ) -> T:
        with self._lock:
            conn = self._conn
            if conn is None:
                raise JournalUnavailable(f"the journal {self.path} is closed")
            if single:
                return work(conn)
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            return result

    # -- owners ------------------------------------------------------------------

    def add_owner(
        self,
        owner: Owner,
        *,
        command: str = "",
        policy: Mapping[str, Any] | None = None,
    ) -> None:
        """Record *owner* (or refresh it when it is known already)."""
        now = time.time()
        policy_json = json.dumps(dict(policy or {}), default=str)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO owners (id, session, host, pid, start_time, started, "
                "heartbeat, closed, command, policy) VALUES (?, ?, ?, ?, ?, ?, ?, "
                "NULL, ?, ?) ON CONFLICT(id) DO UPDATE SET closed = NULL, "
                "heartbeat = excluded.heartbeat, policy = excluded.policy",
                (
                    owner.id,
                    owner.session,
                    owner.host,
                    owner.pid,
                    owner.start_time,
                    now,
                    now,
                    command,
                    policy_json,
                ),
            )

        self._run(work, single=True)

    def set_reaper(self, owner_id: str, pid: int | None) -> None:
        """Record the pid of *owner_id*'s reaper."""
        self._run(
            lambda conn: conn.execute(
                "UPDATE owners SET reaper = ? WHERE id = ?", (pid, owner_id)
            ),
            single=True,
        )

    def heartbeat(self, owner_id: str) -> None:
        """Record that *owner_id* is alive now."""
        self._run(
            lambda conn: conn.execute(
                "UPDATE owners SET heartbeat = ? WHERE id = ?", (time.time(), owner_id)
            ),
            single=True,
        )

    def close_owner(self, owner_id: str, *, when: float | None = None) -> None:
        """Record that *owner_id* closed its session (or was found dead)."""
        stamp = time.time() if when is None else when
        self._run(
            lambda conn: conn.execute(
                "UPDATE owners SET closed = coalesce(closed, ?) WHERE id = ?",
                (stamp, owner_id),
            ),
            single=True,
        )

    def owners(self, *, session: str | None = None) -> list[OwnerRow]:
        """Return the recorded owners, oldest first."""
        query = _SELECT_OWNERS
        args: tuple[Any, ...] = ()
        if session is not None:
            query += " WHERE session = ?"
            args = (session,)
        query += " ORDER BY started, id"
        rows = self._run(
            lambda conn: conn.execute(query, args).fetchall(), write=False, single=True
        )
        return [_owner_row(row) for row in rows]

    def owner(self, owner_id: str) -> OwnerRow | None:
        """Return the owner *owner_id*, if recorded."""
        found = self._run(
            lambda conn: conn.execute(
                f"{_SELECT_OWNERS} WHERE id = ?", (owner_id,)
            ).fetchone(),
            write=False,
            single=True,
        )
        return None if found is None else _owner_row(found)

    # -- resources ---------------------------------------------------------------

    def insert(
        self,
        owner: Owner,
        *,
        scope: str,
        kind: str,
        module: str | None,
        name: str,
        identity: Mapping[str, Any],
        state: str,
        on_interrupt: str = "clean",
        created: float | None = None,
        uid: str | None = None,
        expires: float | None = None,
        reason: str | None = None,
        hint: str | None = None,
        actor: str | None = None,
    ) -> int:
        """
        Record a resource of *owner* and return its row id.

        A row whose *uid* (a key its writer chose) exists already is left as
        it is, and its id returned.
        """
        now = time.time()
        values = (
            uid,
            owner.id,
            owner.session,
            scope,
            kind,
            module,
            name,
            dumps_identity(identity),
            state,
            on_interrupt,
            now if created is None else created,
            now,
            expires,
            reason,
            hint,
            actor,
        )

        def work(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO resources (uid, owner, session, scope, kind, module, "
                "name, identity, state, on_interrupt, created, updated, expires, "
                "reason, hint, actor) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(uid) DO NOTHING",
                values,
            )
            if cursor.rowcount == 0:
                found = conn.execute(
                    "SELECT id FROM resources WHERE uid = ?", (uid,)
                ).fetchone()
                return int(found[0])
            row_id = cursor.lastrowid
            if row_id is None:  # pragma: no cover - sqlite always sets it
                raise JournalUnavailable("the journal gave no row id")
            return row_id

        return self._run(work, single=True)

    def update_uid(self, uid: str, **changes: Any) -> int:
        """Change columns of the row whose uid is *uid*; return how many changed."""
        columns, values = _changes(changes)
        return self._run(
            lambda conn: (
                conn.execute(
                    f"UPDATE resources SET {columns} WHERE uid = ?",  # noqa: S608
                    (*values, uid),
                ).rowcount
            ),
            single=True,
        )

    def update(self, row_id: int, **changes: Any) -> None:
        """Change columns of row *row_id* (``identity`` may be a mapping)."""
        self.update_many([row_id], **changes)

    def update_many(self, row_ids: Iterable[int], **changes: Any) -> None:
        """Change the same columns of many rows, in one transaction."""
        columns, values = _changes(changes)
        ids = [(*values, row_id) for row_id in row_ids]
        if not ids:
            return
        self._run(
            lambda conn: conn.executemany(
                f"UPDATE resources SET {columns} WHERE id = ?",  # noqa: S608
                ids,
            )
        )

    def settle(
        self, results: Sequence[tuple[int, str, str | None]], *, actor: str
    ) -> None:
        """
        Record the end of rows' work in one transaction: for each
        ``(row id, state, reason)``, set the state and reason, clear the claim,
        and count a failed attempt.
        """
        now = time.time()
        params = [
            (state, reason, actor, now, 1 if state == "failed" else 0, row_id)
            for row_id, state, reason in results
        ]
        if not params:
            return
        self._run(
            lambda conn: conn.executemany(
                "UPDATE resources SET state = ?, reason = coalesce(?, reason), "
                "actor = ?, updated = ?, claim = NULL, prior = NULL, "
                "attempts = attempts + ? "
                "WHERE id = ?",
                params,
            )
        )

    def rows(
        self,
        *,
        states: Iterable[str] | None = None,
        session: str | None = None,
        owner: str | None = None,
        kinds: Iterable[str] | None = None,
        created_before: float | None = None,
    ) -> list[Row]:
        """Return rows matching every given filter, oldest first."""
        query, args = _rows_query(states, session, owner, kinds, created_before)
        found = self._run(
            lambda conn: conn.execute(query, args).fetchall(), write=False, single=True
        )
        return [_row(values) for values in found]

    def claim(
        self,
        claimant: str,
        select: Callable[[list[Row]], list[Row]],
        *,
        states: Iterable[str] = ("intent", "created", "failed", "kept"),
        session: str | None = None,
        owner: str | None = None,
        kinds: Iterable[str] | None = None,
        created_before: float | None = None,
    ) -> list[Row]:
        """
        Atomically take rows to work on: *select* picks among the candidates
        (for example, those whose owner is dead), and the picked rows are
        marked ``sweeping`` by *claimant* in the same transaction, so that no
        other process works on them. Rows claimed already are candidates only
        when *states* names ``sweeping`` (to take over a dead claimant's).

        Returns:
            The claimed rows, as they were before the claim.
        """
        query, args = _rows_query(states, session, owner, kinds, created_before)

        def work(conn: sqlite3.Connection) -> list[Row]:
            candidates = [_row(values) for values in conn.execute(query, args)]
            chosen = select(candidates) if candidates else []
            now = time.time()
            conn.executemany(
                "UPDATE resources SET prior = CASE WHEN state = 'sweeping' "
                "THEN prior ELSE state END, state = 'sweeping', claim = ?, "
                "updated = ? WHERE id = ?",
                [(claimant, now, row.id) for row in chosen],
            )
            return chosen

        return self._run(work)

    def prune(self, *, older_than: float = HISTORY_SECONDS) -> int:
        """Delete settled rows and empty dead owners older than *older_than* seconds."""
        cutoff = time.time() - older_than

        def work(conn: sqlite3.Connection) -> int:
            removed = conn.execute(
                "DELETE FROM resources WHERE state IN ('cleaned', 'forgotten') "
                "AND updated < ?",
                (cutoff,),
            ).rowcount
            conn.execute(
                "DELETE FROM owners WHERE heartbeat < ? AND closed IS NOT NULL AND "
                "NOT EXISTS (SELECT 1 FROM resources r WHERE r.owner = owners.id)",
                (cutoff,),
            )
            return removed

        return self._run(work)

    def kind_modules(self) -> dict[str, str | None]:
        """
        Return the kinds of every row the journal holds, settled or not, each
        with a module that registers it (``None`` when no row names one).
        """
        found = self._run(
            lambda conn: conn.execute(
                "SELECT kind, MAX(module) FROM resources GROUP BY kind"
            ).fetchall(),
            write=False,
            single=True,
        )
        return dict(sorted(found))

    def modules(self) -> list[str]:
        """Return the modules that register the kinds of unsettled rows."""
        found = self._run(
            lambda conn: conn.execute(
                "SELECT DISTINCT module FROM resources WHERE module IS NOT NULL "
                "AND state NOT IN ('cleaned', 'forgotten')"
            ).fetchall(),
            write=False,
            single=True,
        )
        return sorted(module for (module,) in found)

    def counts(self) -> dict[str, int]:
        """Return how many rows are in each state."""
        found = self._run(
            lambda conn: conn.execute(
                "SELECT state, count(*) FROM resources GROUP BY state"
            ).fetchall(),
            write=False,
            single=True,
        )
        return dict(found)

    def health(self) -> dict[str, Any]:
        """Describe the file: mode, size, journal mode and an integrity check."""

        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            return {
                "integrity": conn.execute("PRAGMA quick_check").fetchone()[0],
                "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
                "schema": conn.execute("PRAGMA user_version").fetchone()[0],
                "owners": conn.execute("SELECT count(*) FROM owners").fetchone()[0],
            }

        info = self._run(work, write=False)
        stat = self.path.stat()
        info.update(
            path=str(self.path),
            size=stat.st_size,
            mode=f"{stat.st_mode & 0o777:04o}",
            set_aside=[str(p) for p in self.set_aside],
        )
        return info


_WRITABLE: Final = frozenset(
    {
        "state",
        "identity",
        "name",
        "on_interrupt",
        "expires",
        "reason",
        "hint",
        "claim",
        "actor",
        "updated",
        "attempts",
    }
)

# Connections inherited by forked children: never used, never closed (closing
# one could disturb the parent's locks), only kept from the garbage collector.
_abandoned: list[object] = []


class _Foreign(Exception):  # noqa: N818
    """The file is a valid sqlite database of another program."""


def _changes(changes: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    if "identity" in changes and not isinstance(changes["identity"], str):
        changes["identity"] = dumps_identity(changes["identity"])
    changes.setdefault("updated", time.time())
    bad = set(changes) - _WRITABLE
    if bad:
        raise ValueError(f"cannot change {sorted(bad)} of journal rows")
    return ", ".join(f"{name} = ?" for name in changes), tuple(changes.values())


def dumps_identity(identity: Mapping[str, Any]) -> str:
    """Serialize a resource's identity; values JSON cannot hold become strings."""
    return json.dumps(dict(identity), default=str, sort_keys=True)


def _loads(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _owner_row(values: Sequence[Any]) -> OwnerRow:
    items = list(values)
    items[10] = _loads(items[10])
    return OwnerRow(*items)


def _row(values: Sequence[Any]) -> Row:
    items = list(values)
    items[7] = _loads(items[7])
    return Row(*items)


def _rows_query(
    states: Iterable[str] | None,
    session: str | None,
    owner: str | None,
    kinds: Iterable[str] | None,
    created_before: float | None,
) -> tuple[str, tuple[Any, ...]]:
    """Return the query of the rows matching every given filter, oldest first."""
    clauses: list[str] = []
    args: list[Any] = []
    for column, values in (("r.state", states), ("r.kind", kinds)):
        if values is not None:
            listed = list(values)
            clauses.append(f"{column} IN ({', '.join('?' * len(listed))})")
            args.extend(listed)
    if session is not None:
        clauses.append("r.session = ?")
        args.append(session)
    if owner is not None:
        clauses.append("r.owner = ?")
        args.append(owner)
    if created_before is not None:
        clauses.append("r.created < ?")
        args.append(created_before)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"{_SELECT_ROWS}{where} ORDER BY r.id", tuple(args)


@contextlib.contextmanager
def open_existing(
    path: Path | None, *, repair: bool = True, strict: bool = False
) -> Iterator[Journal | None]:
    """
    Open the journal at *path* when it exists, yielding ``None`` otherwise.

    Args:
        path: The journal file, or ``None`` when journaling is off.
        repair: Whether a damaged journal may be moved aside (commands that
            only read pass false).
        strict: Raise :class:`JournalUnavailable` when the journal cannot be
            used (or, missing, could never be created), instead of logging it
            and yielding ``None``.
    """
    if path is None:
        yield None
        return
    try:
        if not path.exists():
            if strict:
                _check_creatable(path)
            yield None
            return
        journal = Journal(path, create=False, repair=repair)
    except (JournalUnavailable, FileNotFoundError, OSError) as exc:
        if strict:
            if isinstance(exc, JournalUnavailable):
                raise
            raise JournalUnavailable(f"cannot use the journal {path}: {exc}") from exc
        log.warning("cannot use the cleanroom journal %s: %s", path, exc)
        yield None
        return
    try:
        yield journal
    finally:
        journal.close()


def _check_creatable(path: Path) -> None:
    """Raise :class:`JournalUnavailable` when no journal could be created at *path*."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise JournalUnavailable(
            f"the journal {path} cannot be created: {folder} is not a directory"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise JournalUnavailable(
            f"the journal {path} cannot be created: {folder} is not writable"
        )
