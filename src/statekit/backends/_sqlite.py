"""``SQLiteBackend``: durable store copies in one SQLite file (standard library only).

Three tables: ``copies`` (one row per scope and store: version and JSON
document), ``history`` (one row per commit, trimmed to ``history_limit`` per
copy; its ``id`` orders commits across processes) and ``sessions`` (one row
per scope: its idle deadline). Each commit is one ``BEGIN IMMEDIATE``
transaction, so writers in several threads and processes queue on SQLite's
own write lock and a commit is either all there or not at all. WAL mode
with ``synchronous=NORMAL`` keeps every acknowledged commit through a
``kill -9`` of the process (pass ``synchronous="FULL"`` to survive power
loss too). Other processes' commits are heard by one thread that polls
``PRAGMA data_version`` (a counter in the shared WAL index: no table is
read) and reads the ``history`` table only when it moved; it polls every
``poll_interval`` when idle and every ``busy_interval`` for ``busy_for``
seconds after it saw a change, so a stream of commits is heard within a
few milliseconds while an idle process wakes only ``1 / poll_interval``
times a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .. import _engine
from .._patch import freeze_json
from ._base import Backend, Commit, apply_ops, conflict, dumps

__all__ = ["SQLiteBackend"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS copies (
    scope TEXT NOT NULL, store TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (scope, store)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL, store TEXT NOT NULL, version INTEGER NOT NULL, ops TEXT NOT NULL,
    UNIQUE (scope, store, version)
);
CREATE TABLE IF NOT EXISTS sessions (
    scope TEXT PRIMARY KEY, expires_at REAL
) WITHOUT ROWID;
"""


class SQLiteBackend(Backend):
    """Store copies in an SQLite database file: durable, shared by the processes of one host.

    Other processes' commits reach this process's copies within
    ``poll_interval`` seconds when it was idle, and within ``busy_interval``
    while commits keep coming (for ``busy_for`` seconds after the last one);
    each idle poll is one ``PRAGMA data_version``.

    Example:
        >>> import tempfile, os
        >>> from statekit.backends import SQLiteBackend
        >>> path = os.path.join(tempfile.mkdtemp(), "state.db")
        >>> b = SQLiteBackend(path)
        >>> b.commit("app:app", "s", [{"op": "add", "path": "/n", "value": 1}], 0, initial="{}")
        1
        >>> SQLiteBackend(path).load("app:app", "s")
        (1, {'n': 1})
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        history_limit: int = 1000,
        poll_interval: float = 0.01,
        busy_interval: float = 0.002,
        busy_for: float = 0.5,
        synchronous: str = "NORMAL",
        timeout: float = 30.0,
    ) -> None:
        super().__init__(history_limit=history_limit)
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous= is NORMAL, FULL or EXTRA, not {synchronous!r}")
        for option, value in (("poll_interval", poll_interval), ("busy_interval", busy_interval)):
            if value <= 0:
                raise ValueError(f"{option}= must be positive, not {value!r}")
        if busy_for < 0:
            raise ValueError(f"busy_for= must be zero or more seconds, not {busy_for!r}")
        self.path = os.fspath(path)
        self._sync = synchronous.upper()
        self._timeout = timeout
        self._poll = poll_interval
        self._busy = min(busy_interval, poll_interval)
        self._busy_for = busy_for
        #: How many times the watcher read the history table (it moved) — for tests.
        self.reads = 0
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        # Processes that open one new database at the same moment race to
        # switch it to WAL and create the tables; SQLite answers "database is
        # locked" to the loser without waiting (no busy handler runs for a
        # journal-mode change), so opening is retried up to ``timeout``.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._db().executescript(_SCHEMA)
                break
            except sqlite3.OperationalError as exc:
                self._forget_db()
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise OSError(
                        f"SQLiteBackend({self.path!r}): cannot open the database: {exc}"
                    ) from None
                if time.monotonic() >= deadline:
                    raise OSError(
                        f"SQLiteBackend({self.path!r}): cannot open the database: {exc} "
                        f"(still, after {timeout:g} s)"
                    ) from None
                time.sleep(0.005 + random.random() * 0.02)
            except sqlite3.Error as exc:
                self._forget_db()
                raise OSError(
                    f"SQLiteBackend({self.path!r}): cannot open the database: {exc}"
                ) from None

    def __repr__(self) -> str:
        return f"SQLiteBackend({self.path!r})"

    # ------------------------------------------------------------ connections

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections are not shared between threads)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            try:
                db.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={self._sync}")
            except sqlite3.Error:
                db.close()
                raise
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    def _forget_db(self) -> None:
        """Close this thread's connection (after it failed to open the database)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            self._local.db = None
            with self._all_lock:
                if db in self._all:
                    self._all.remove(db)
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def close(self) -> None:
        super().close()
        self._stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)
        with self._all_lock:
            conns, self._all = self._all, []
        for db in conns:
            # A connection of another thread that is still busy stays open.
            with contextlib.suppress(sqlite3.Error):
                db.close()

    # ------------------------------------------------------------ storage

    def _expire_one(self, db: sqlite3.Connection, scope: str, now: float) -> None:
        row = db.execute("SELECT expires_at FROM sessions WHERE scope = ?", (scope,)).fetchone()
        if row is not None and row[0] is not None and row[0] < now:
            self._delete(db, scope)

    @staticmethod
    def _delete(db: sqlite3.Connection, scope: str) -> None:
        db.execute("DELETE FROM copies WHERE scope = ?", (scope,))
        db.execute("DELETE FROM history WHERE scope = ?", (scope,))
        db.execute("DELETE FROM sessions WHERE scope = ?", (scope,))

    @staticmethod
    def _alive(db: sqlite3.Connection, scope: str, now: float) -> bool:
        row = db.execute("SELECT expires_at FROM sessions WHERE scope = ?", (scope,)).fetchone()
        return row is None or row[0] is None or row[0] >= now

    def load(self, scope: str, store: str) -> tuple[int, Any]:
        db = self._db()
        row = db.execute(
            "SELECT c.version, c.doc, s.expires_at FROM copies c "
            "LEFT JOIN sessions s ON s.scope = c.scope WHERE c.scope = ? AND c.store = ?",
            (scope, store),
        ).fetchone()
        if row is None or (row[2] is not None and row[2] < time.time()):
            return 0, None
        return row[0], json.loads(row[1])

    def _write(
        self,
        scope: str,
        store: str,
        ops: Sequence[Mapping[str, Any]],
        expected_version: int | None,
        *,
        initial: str,
        ttl: float | None,
    ) -> int:
        db = self._db()
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            self._expire_one(db, scope, now)
            row = db.execute(
                "SELECT version, doc FROM copies WHERE scope = ? AND store = ?", (scope, store)
            ).fetchone()
            version = 0 if row is None else row[0]
            if expected_version is not None and expected_version != version:
                raise conflict(scope, store, expected_version, version)
            base = freeze_json(json.loads(initial if row is None else row[1]))
            doc, applied = apply_ops(base, ops, scope, store)
            version += 1
            db.execute(
                "INSERT INTO copies (scope, store, version, doc) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (scope, store) DO UPDATE SET version = excluded.version, "
                "doc = excluded.doc",
                (scope, store, version, dumps(doc)),
            )
            db.execute(
                "INSERT INTO history (scope, store, version, ops) VALUES (?, ?, ?, ?)",
                (scope, store, version, dumps(applied)),
            )
            if version > self.history_limit and version % 64 == 0:
                # Trimmed in steps, not on every commit: a DELETE per write
                # would cost more than the rows it saves.
                db.execute(
                    "DELETE FROM history WHERE scope = ? AND store = ? AND version <= ?",
                    (scope, store, version - self.history_limit),
                )
            self._upsert_session(db, scope, ttl, now)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return int(version)

    @staticmethod
    def _upsert_session(db: sqlite3.Connection, scope: str, ttl: float | None, now: float) -> None:
        if ttl is None:
            db.execute(
                "INSERT OR IGNORE INTO sessions (scope, expires_at) VALUES (?, NULL)", (scope,)
            )
        else:
            db.execute(
                "INSERT INTO sessions (scope, expires_at) VALUES (?, ?) "
                "ON CONFLICT (scope) DO UPDATE SET expires_at = excluded.expires_at",
                (scope, now + ttl),
            )

    def history(self, scope: str, store: str, after: int) -> list[Commit] | None:
        db = self._db()
        db.execute("BEGIN")  # one read snapshot for the version and the log
        try:
            if not self._alive(db, scope, time.time()):
                return [] if after == 0 else None
            row = db.execute(
                "SELECT version FROM copies WHERE scope = ? AND store = ?", (scope, store)
            ).fetchone()
            current = 0 if row is None else row[0]
            if after > current:
                return None
            rows = db.execute(
                "SELECT version, ops FROM history WHERE scope = ? AND store = ? AND version > ? "
                "ORDER BY version",
                (scope, store, after),
            ).fetchall()
        finally:
            db.execute("COMMIT")
        if len(rows) != current - after:
            return None  # trimmed: the log no longer reaches back to ``after``
        return [(version, json.loads(ops)) for version, ops in rows]

    def touch(self, scope: str, ttl: float | None) -> None:
        db = self._db()
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            self._expire_one(db, scope, now)
            self._upsert_session(db, scope, ttl, now)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def scopes(self) -> list[str]:
        rows = (
            self._db()
            .execute(
                "SELECT scope FROM sessions WHERE expires_at IS NULL OR expires_at >= ? "
                "ORDER BY scope",
                (time.time(),),
            )
            .fetchall()
        )
        return [row[0] for row in rows]

    def drop(self, scope: str) -> None:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            self._delete(db, scope)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def expire(self) -> list[str]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            gone = [
                row[0]
                for row in db.execute(
                    "SELECT scope FROM sessions WHERE expires_at < ? ORDER BY scope",
                    (time.time(),),
                ).fetchall()
            ]
            for scope in gone:
                self._delete(db, scope)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return gone

    # ------------------------------------------------------------ notices

    def _start_listening(self) -> None:
        if self._watcher is not None or self._closed:
            return
        start = self._db().execute("SELECT COALESCE(MAX(id), 0) FROM history").fetchone()[0]
        with self._all_lock:
            if self._watcher is not None:
                return
            self._watcher = threading.Thread(
                target=self._watch, args=(start,), name=f"statekit {self!r}", daemon=True
            )
            self._watcher.start()

    def _watch(self, last: int) -> None:
        """Poll for commits of other processes (and this one) and announce them."""
        db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        seen: int | None = None  # None: read the history table on the first poll
        busy_until = 0.0
        try:
            interval = self._poll
            while not self._stop.wait(interval):
                try:
                    # Changes whenever another connection (any thread or
                    # process) commits; read before the table, so that a
                    # commit landing in between moves it again for next time.
                    version = db.execute("PRAGMA data_version").fetchone()[0]
                    if version == seen:
                        if time.monotonic() >= busy_until:
                            interval = self._poll
                        continue
                    rows = db.execute(
                        "SELECT id, scope, store, version FROM history WHERE id > ? ORDER BY id",
                        (last,),
                    ).fetchall()
                except sqlite3.Error as exc:
                    _engine.report(exc, f"{self!r} watching for commits")
                    continue
                seen = version
                self.reads += 1
                # Commits come in runs: poll fast for a while after one.
                busy_until = time.monotonic() + self._busy_for
                interval = self._busy
                latest: dict[tuple[str, str], int] = {}
                for row_id, scope, store, number in rows:
                    last = row_id
                    latest[(scope, store)] = number
                for (scope, store), number in latest.items():
                    self._announce(scope, store, number)
        finally:
            db.close()
