"""The state store: runs, checkpoints and leases, in SQLite (default) or PostgreSQL.

The same SQL runs on both (placeholders are translated), so deployments with several workers
point `[state] url` at PostgreSQL and get the same behaviour, including the lease that keeps
two workers from running one sync at once.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from audience.config import CONFIG_FILE, resolve_path, state_url_problem
from audience.errors import OperationalError, UserError
from audience.runs.model import RunRecord

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS audience_runs (
        run_id TEXT PRIMARY KEY, audience TEXT NOT NULL, destination TEXT NOT NULL, mode TEXT NOT NULL,
        state TEXT NOT NULL, as_of TEXT NOT NULL, created_at TEXT NOT NULL, started_at TEXT,
        finished_at TEXT, counts TEXT NOT NULL, error TEXT, progress_done INTEGER NOT NULL,
        progress_total INTEGER NOT NULL, definition_file TEXT NOT NULL, content_hash TEXT NOT NULL,
        git_commit TEXT, full_upload INTEGER NOT NULL, force INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS audience_runs_sync ON audience_runs (audience, destination, created_at)",
    """CREATE TABLE IF NOT EXISTS audience_checkpoints (
        run_id TEXT NOT NULL, step TEXT NOT NULL, info TEXT NOT NULL, done_at TEXT NOT NULL,
        PRIMARY KEY (run_id, step))""",
    """CREATE TABLE IF NOT EXISTS audience_leases (
        name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at TEXT NOT NULL)""",
]

_RUN_COLUMNS = ("run_id", "audience", "destination", "mode", "state", "as_of", "created_at", "started_at",
                "finished_at", "counts", "error", "progress_done", "progress_total", "definition_file",
                "content_hash", "git_commit", "full_upload", "force")


_PG_DDL_LOCK = 7_201_115_002  # any constant, distinct from the warehouse snapshot's lock


def _first_search_path_schema(cur: Any) -> str | None:
    cur.execute("SHOW search_path")
    first = cur.fetchone()[0].split(",")[0].strip().strip('"')
    return first if first and first != "$user" and '"' not in first else None


def now() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _parse_set(value: str) -> datetime:
    """A time from a column that is never NULL (a run's as_of and created_at, a lease's expiry)."""
    return datetime.fromisoformat(value)


def worker_id() -> str:
    """host:pid — lets a restarted worker on the same host take over a dead process's lease."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_is_dead(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class StateStore:
    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self._local = threading.local()
        if (problem := state_url_problem(url)) is not None:
            raise UserError(f"{CONFIG_FILE}: state.url: {problem}")
        if url.startswith("sqlite:///"):
            self.path = resolve_path(url[len("sqlite:///"):], root)
            self.kind = "sqlite"
            self._open_sqlite()
        else:
            self.kind = "postgres"
            self._open_postgres()

    def _open_sqlite(self) -> None:
        """Create the file and its tables; a path that cannot hold them is the user's to fix
        (exit 1, naming the path), while a database busy past the timeout is operational."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            blocker = next((p for p in self.path.parents if p.exists()), None)
            reason = f"{blocker} is not a folder" if blocker and not blocker.is_dir() else err.strerror or str(err)
            raise self._unusable(f"cannot create its folder: {reason}") from None
        try:
            self._create_tables()
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise OperationalError(f"the state database {self.path} is busy: {err}") from None
            raise self._unusable(str(err)) from None
        except sqlite3.DatabaseError as err:  # e.g. "file is not a database"
            raise self._unusable(str(err)) from None
        except OSError as err:
            raise self._unusable(err.strerror or str(err)) from None

    def _unusable(self, reason: str) -> UserError:
        self.close()
        return UserError(f"{CONFIG_FILE}: state.url: cannot use {self.path} as the state database ({reason})")

    def _open_postgres(self) -> None:
        import psycopg

        try:
            self._create_tables()
        except psycopg.Error as err:
            self.close()
            raise OperationalError(f"cannot create the state tables: {str(err).strip().splitlines()[0]}") from None

    def _create_tables(self) -> None:
        """Create the tables once, in the first schema of PostgreSQL's search_path.

        On PostgreSQL, concurrent `CREATE TABLE IF NOT EXISTS` can fail on a catalog unique
        index, so workers starting together take an advisory lock first; a search_path schema
        named in the URL (`?options=-csearch_path%3Dname`) is created when missing, instead of
        failing with "no schema has been selected to create in".
        """
        with self._tx() as cur:
            if self.kind == "postgres":
                cur.execute(f"SELECT pg_advisory_xact_lock({_PG_DDL_LOCK})")
                cur.execute("SELECT current_schema()")
                if cur.fetchone()[0] is None:
                    schema = _first_search_path_schema(cur)
                    if schema:
                        cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            for stmt in SCHEMA:
                cur.execute(stmt)

    # ---- connections ------------------------------------------------------------------------
    def _connect(self) -> Any:
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            return conn
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True)
        except psycopg.Error as err:
            raise OperationalError(f"cannot connect to the state store: {str(err).strip().splitlines()[0]}") from None

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        conn = self._conn()
        if self.kind == "sqlite":
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield _Cursor(cur, "?")
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        else:
            with conn.transaction(), conn.cursor() as cur:
                yield _Cursor(cur, "%s")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ---- runs -----------------------------------------------------------------------------------
    def create_run(self, run: RunRecord) -> None:
        with self._tx() as cur:
            marks = ", ".join("?" * len(_RUN_COLUMNS))
            cur.execute(f"INSERT INTO audience_runs ({', '.join(_RUN_COLUMNS)}) VALUES ({marks})",
                        self._run_values(run))

    def save_run(self, run: RunRecord) -> None:
        sets = ", ".join(f"{c} = ?" for c in _RUN_COLUMNS[1:])
        with self._tx() as cur:
            cur.execute(f"UPDATE audience_runs SET {sets} WHERE run_id = ?", [*self._run_values(run)[1:], run.run_id])

    @staticmethod
    def _run_values(r: RunRecord) -> list[Any]:
        return [r.run_id, r.audience, r.destination, r.mode, r.state, _ts(r.as_of), _ts(r.created_at),
                _ts(r.started_at), _ts(r.finished_at), json.dumps(r.counts, sort_keys=True), r.error,
                r.progress_done, r.progress_total, r.definition_file, r.content_hash, r.git_commit,
                int(r.full_upload), int(r.force)]

    @staticmethod
    def _run_of(row: Sequence[Any]) -> RunRecord:
        d = dict(zip(_RUN_COLUMNS, row, strict=True))
        return RunRecord(
            run_id=d["run_id"], audience=d["audience"], destination=d["destination"], mode=d["mode"],
            state=d["state"], as_of=_parse_set(d["as_of"]), created_at=_parse_set(d["created_at"]),
            started_at=_parse(d["started_at"]), finished_at=_parse(d["finished_at"]),
            counts=json.loads(d["counts"]), error=d["error"], progress_done=d["progress_done"],
            progress_total=d["progress_total"], definition_file=d["definition_file"],
            content_hash=d["content_hash"], git_commit=d["git_commit"], full_upload=bool(d["full_upload"]),
            force=bool(d["force"]))

    def _select_runs(self, where: str, params: Sequence[Any], tail: str = "") -> list[RunRecord]:
        with self._tx() as cur:
            cur.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM audience_runs {where} {tail}", params)
            return [self._run_of(r) for r in cur.fetchall()]

    def get_run(self, run_id: str) -> RunRecord | None:
        runs = self._select_runs("WHERE run_id = ?", [run_id])
        return runs[0] if runs else None

    def list_runs(self, *, audience: str | None = None, limit: int = 50, offset: int = 0) -> list[RunRecord]:
        where, params = ("WHERE audience = ?", [audience]) if audience else ("", [])
        return self._select_runs(where, [*params, limit, offset],
                                 "ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?")

    def runs_of_sync(self, audience: str, destination: str) -> list[RunRecord]:
        return self._select_runs("WHERE audience = ? AND destination = ?", [audience, destination],
                                 "ORDER BY created_at DESC, run_id DESC")

    # ---- checkpoints --------------------------------------------------------------------------
    def checkpoint(self, run_id: str, step: str, info: dict[str, Any] | None = None) -> None:
        """Record a finished step; recording it twice keeps the first record (idempotent)."""
        with self._tx() as cur:
            cur.execute("INSERT INTO audience_checkpoints (run_id, step, info, done_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (run_id, step) DO NOTHING",
                        [run_id, step, json.dumps(info or {}, sort_keys=True), _ts(now())])

    def checkpoints(self, run_id: str) -> dict[str, dict[str, Any]]:
        with self._tx() as cur:
            cur.execute("SELECT step, info FROM audience_checkpoints WHERE run_id = ?", [run_id])
            return {step: json.loads(info) for step, info in cur.fetchall()}

    # ---- leases ---------------------------------------------------------------------------------
    def acquire_lease(self, name: str, owner: str, ttl: timedelta) -> bool:
        """Take the named lease if it is free, expired, ours, or held by a dead local process."""
        expires = _ts(now() + ttl)
        with self._tx() as cur:
            cur.execute("SELECT owner, expires_at FROM audience_leases WHERE name = ?" + self._lock_clause, [name])
            row = cur.fetchone()
            if row is None:
                cur.execute("INSERT INTO audience_leases (name, owner, expires_at) VALUES (?, ?, ?) "
                            "ON CONFLICT (name) DO NOTHING", [name, owner, expires])
                return cur.rowcount == 1
            holder, until = row
            if holder != owner and _parse_set(until) > now() and not _owner_is_dead(holder):
                return False
            cur.execute("UPDATE audience_leases SET owner = ?, expires_at = ? WHERE name = ?", [owner, expires, name])
            return True

    @property
    def _lock_clause(self) -> str:
        return " FOR UPDATE" if self.kind == "postgres" else ""

    def renew_lease(self, name: str, owner: str, ttl: timedelta) -> bool:
        with self._tx() as cur:
            cur.execute("UPDATE audience_leases SET expires_at = ? WHERE name = ? AND owner = ?",
                        [_ts(now() + ttl), name, owner])
            return cur.rowcount == 1

    def release_lease(self, name: str, owner: str) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM audience_leases WHERE name = ? AND owner = ?", [name, owner])


class _Cursor:
    """Translates `?` placeholders for psycopg; the rest of the DB-API is passed through."""

    def __init__(self, cur: Any, placeholder: str) -> None:
        self._cur = cur
        self._ph = placeholder

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if self._ph != "?":
            sql = sql.replace("?", self._ph)
        self._cur.execute(sql, list(params))

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount
