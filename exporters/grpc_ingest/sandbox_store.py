"""SQLite state of the sandbox receiver: uploads, staged batches, committed members.

Why it is shaped like this:

- One transaction per batch and per commit (``BEGIN IMMEDIATE`` ... ``COMMIT``, WAL journal,
  ``synchronous=FULL``): a sandbox killed with ``kill -9`` at any point either has a batch
  fully staged (and then it was, or will be, acknowledged) or not at all, and a commit either
  changed the membership completely or not at all.
- The "was this sequence number received?" check and the staging happen in the same
  transaction, under one lock, so two deliveries of the same batch racing each other (a client
  retrying after a deadline while the first attempt is still being handled) apply it once.
- ``applications`` counts how often each (upload, sequence number) was *applied*; it is
  incremented by the apply path itself, independently of the duplicate check, so tests can
  prove that no batch was ever applied twice.
- A member is identified by its non-empty (column, hashed value) pairs, canonically encoded;
  a removal matches the member whose pairs are exactly the removal row's pairs, whatever the
  column order of the upload that added it.

Error messages name rows by position only, never by value.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from exporters.grpc_ingest.model import (
    RUN_ID_RE,
    Mode,
    UploadInfo,
    UploadState,
    highest_contiguous,
    upload_name,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    segment TEXT NOT NULL,
    run_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    format TEXT NOT NULL,
    columns TEXT NOT NULL,
    state TEXT NOT NULL,
    staged_add_count INTEGER NOT NULL DEFAULT 0,
    staged_remove_count INTEGER NOT NULL DEFAULT 0,
    member_count INTEGER NOT NULL DEFAULT 0,
    create_time TEXT NOT NULL,
    commit_time TEXT,
    UNIQUE (segment, run_id)
);
CREATE TABLE IF NOT EXISTS batches (
    upload_id TEXT NOT NULL REFERENCES uploads (upload_id),
    seq INTEGER NOT NULL,
    digest TEXT NOT NULL,
    applications INTEGER NOT NULL,
    PRIMARY KEY (upload_id, seq)
);
CREATE TABLE IF NOT EXISTS staged (
    upload_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('add', 'remove')),
    member_key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS staged_by_upload ON staged (upload_id, op);
CREATE TABLE IF NOT EXISTS members (
    segment TEXT NOT NULL,
    member_key TEXT NOT NULL,
    PRIMARY KEY (segment, member_key)
) WITHOUT ROWID;
"""

_MAX_LISTED_GAPS = 5


class StoreError(Exception):
    """A request the store refuses; ``code`` is the gRPC status code name to answer with."""

    code = "INTERNAL"


class NotFoundError(StoreError):
    code = "NOT_FOUND"


class InvalidArgumentError(StoreError):
    code = "INVALID_ARGUMENT"


class FailedPreconditionError(StoreError):
    code = "FAILED_PRECONDITION"


@dataclass(frozen=True)
class MemberPage:
    members: list[dict[str, str]]
    next_after: str | None
    total_size: int


class SandboxStore:
    """Thread-safe: one connection, one lock, explicit transactions."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SandboxStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- uploads -------------------------------------------------------------------------

    def open_upload(
        self, segment: str, run_id: str, mode: Mode, fmt: str, columns: Sequence[str]
    ) -> tuple[UploadInfo, bool]:
        """The upload of (segment, run_id), created if new. True in the tuple when created."""
        _check_open_arguments(run_id, fmt, columns)
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT upload_id, mode, format, columns FROM uploads"
                " WHERE segment = ? AND run_id = ?",
                (segment, run_id),
            ).fetchone()
            if row is not None:
                _check_same_upload(row, mode, fmt, columns)
                return self._load(conn, segment, row[0]), False
            # "u" + 20 hex digits: unique enough, and not shaped like a 32-hex device id, which
            # the log redaction (exporters/redaction.py) would mask in every resource name.
            upload_id = "u" + uuid.uuid4().hex[:20]
            conn.execute(
                "INSERT INTO uploads (upload_id, segment, run_id, mode, format, columns, state,"
                " create_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    upload_id,
                    segment,
                    run_id,
                    mode.value,
                    fmt,
                    json.dumps(list(columns)),
                    UploadState.OPEN.value,
                    _now(),
                ),
            )
            return self._load(conn, segment, upload_id), True

    def get_upload(self, segment: str, upload_id: str) -> UploadInfo:
        with self._transaction(write=False) as conn:
            return self._load(conn, segment, upload_id)

    def apply_batch(
        self,
        segment: str,
        upload_id: str,
        seq: int,
        adds: Sequence[Sequence[str]],
        removes: Sequence[Sequence[str]],
    ) -> bool:
        """Stage one batch at most once. Returns True when *seq* had been received before."""
        if seq < 1:
            raise InvalidArgumentError("sequence_number must be 1 or more")
        with self._transaction() as conn:
            info = self._load(conn, segment, upload_id)
            add_keys = _member_keys("adds", adds, info.columns)
            remove_keys = _member_keys("removes", removes, info.columns)
            digest = _batch_digest(add_keys, remove_keys)
            known = conn.execute(
                "SELECT digest FROM batches WHERE upload_id = ? AND seq = ?", (upload_id, seq)
            ).fetchone()
            if known is not None:
                if known[0] != digest:
                    raise FailedPreconditionError(
                        f"sequence number {seq} was already received with different content"
                    )
                return True
            if info.state is UploadState.COMMITTED:
                raise FailedPreconditionError("the upload is committed; open a new one")
            self._stage(conn, upload_id, seq, "add", add_keys)
            self._stage(conn, upload_id, seq, "remove", remove_keys)
            self._record_application(conn, upload_id, seq, digest)
            conn.execute(
                "UPDATE uploads SET staged_add_count = staged_add_count + ?,"
                " staged_remove_count = staged_remove_count + ? WHERE upload_id = ?",
                (len(add_keys), len(remove_keys), upload_id),
            )
            return False

    def commit(self, segment: str, upload_id: str, last_seq: int = 0) -> UploadInfo:
        """Apply the staged changes to the segment in one transaction; idempotent."""
        with self._transaction() as conn:
            info = self._load(conn, segment, upload_id)
            if info.state is UploadState.COMMITTED:
                return info
            _check_complete(info.received_sequence_numbers, last_seq)
            if info.mode is Mode.REPLACE:
                conn.execute("DELETE FROM members WHERE segment = ?", (segment,))
            # Adds first, then removes: a row both added and removed ends up absent.
            conn.execute(
                "INSERT OR IGNORE INTO members (segment, member_key) SELECT ?, member_key"
                " FROM staged WHERE upload_id = ? AND op = 'add'",
                (segment, upload_id),
            )
            conn.execute(
                "DELETE FROM members WHERE segment = ? AND member_key IN"
                " (SELECT member_key FROM staged WHERE upload_id = ? AND op = 'remove')",
                (segment, upload_id),
            )
            count = conn.execute(
                "SELECT count(*) FROM members WHERE segment = ?", (segment,)
            ).fetchone()[0]
            conn.execute(
                "UPDATE uploads SET state = ?, commit_time = ?, member_count = ?"
                " WHERE upload_id = ?",
                (UploadState.COMMITTED.value, _now(), count, upload_id),
            )
            conn.execute("DELETE FROM staged WHERE upload_id = ?", (upload_id,))
            return self._load(conn, segment, upload_id)

    # ---- members -------------------------------------------------------------------------

    def list_members(self, segment: str, page_size: int, after: str | None) -> MemberPage:
        """One page of committed members, ordered by their canonical key."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT member_key FROM members WHERE segment = ? AND member_key > ?"
                " ORDER BY member_key LIMIT ?",
                (segment, after or "", page_size + 1),
            ).fetchall()
            total = conn.execute(
                "SELECT count(*) FROM members WHERE segment = ?", (segment,)
            ).fetchone()[0]
        keys = [r[0] for r in rows]
        next_after = keys[page_size - 1] if len(keys) > page_size else None
        return MemberPage([_decode_key(k) for k in keys[:page_size]], next_after, total)

    def members(self, segment: str) -> list[dict[str, str]]:
        """Every committed member of *segment* (id or ``segments/{id}``), canonical order."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT member_key FROM members WHERE segment = ? ORDER BY member_key",
                (segment.removeprefix("segments/"),),
            ).fetchall()
        return [_decode_key(r[0]) for r in rows]

    def application_counts(self) -> dict[tuple[str, int], int]:
        """How often each (upload name, sequence number) was applied; all 1 when correct."""
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT u.segment, b.upload_id, b.seq, b.applications"
                " FROM batches b JOIN uploads u USING (upload_id)"
            ).fetchall()
        return {(upload_name(seg, uid), seq): n for seg, uid, seq, n in rows}

    # ---- internals -----------------------------------------------------------------------

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _load(self, conn: sqlite3.Connection, segment: str, upload_id: str) -> UploadInfo:
        row = conn.execute(
            "SELECT run_id, mode, format, columns, state, staged_add_count, staged_remove_count,"
            " member_count, create_time, commit_time FROM uploads"
            " WHERE upload_id = ? AND segment = ?",
            (upload_id, segment),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"upload {upload_name(segment, upload_id)} not found")
        received = tuple(
            r[0]
            for r in conn.execute(
                "SELECT seq FROM batches WHERE upload_id = ? ORDER BY seq", (upload_id,)
            )
        )
        return UploadInfo(
            name=upload_name(segment, upload_id),
            segment=f"segments/{segment}",
            run_id=row[0],
            mode=Mode(row[1]),
            format=row[2],
            columns=tuple(json.loads(row[3])),
            state=UploadState(row[4]),
            received_sequence_numbers=received,
            highest_contiguous_sequence_number=highest_contiguous(received),
            staged_add_count=row[5],
            staged_remove_count=row[6],
            member_count=row[7],
            create_time=datetime.fromisoformat(row[8]),
            commit_time=datetime.fromisoformat(row[9]) if row[9] else None,
        )

    def _stage(
        self, conn: sqlite3.Connection, upload_id: str, seq: int, op: str, keys: list[str]
    ) -> None:
        conn.executemany(
            "INSERT INTO staged (upload_id, seq, op, member_key) VALUES (?, ?, ?, ?)",
            [(upload_id, seq, op, key) for key in keys],
        )

    def _record_application(
        self, conn: sqlite3.Connection, upload_id: str, seq: int, digest: str
    ) -> None:
        conn.execute(
            "INSERT INTO batches (upload_id, seq, digest, applications) VALUES (?, ?, ?, 1)"
            " ON CONFLICT (upload_id, seq) DO UPDATE SET applications = applications + 1",
            (upload_id, seq, digest),
        )


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _check_open_arguments(run_id: str, fmt: str, columns: Sequence[str]) -> None:
    if not RUN_ID_RE.fullmatch(run_id):
        raise InvalidArgumentError("run_id must be 1-200 printable characters without spaces")
    if not fmt:
        raise InvalidArgumentError("format is required")
    if not columns or any(not c for c in columns):
        raise InvalidArgumentError("columns must name at least one identifier type, none empty")
    if len(set(columns)) != len(columns):
        raise InvalidArgumentError("columns must be unique")


def _check_same_upload(
    row: tuple[str, str, str, str], mode: Mode, fmt: str, columns: Sequence[str]
) -> None:
    """A resumed run must reopen its upload with the same parameters."""
    _, known_mode, known_format, known_columns = row
    if (known_mode, known_format, json.loads(known_columns)) != (mode.value, fmt, list(columns)):
        raise FailedPreconditionError(
            "an upload for this run id exists with a different mode, format or columns"
        )


def _check_complete(received: tuple[int, ...], last_seq: int) -> None:
    if last_seq < 0:
        raise InvalidArgumentError("last_sequence_number must not be negative")
    seen = set(received)
    missing = [n for n in range(1, last_seq + 1) if n not in seen]
    if missing:
        shown = ", ".join(str(n) for n in missing[:_MAX_LISTED_GAPS])
        extra = len(missing) - _MAX_LISTED_GAPS
        more = f" and {extra} more" if extra > 0 else ""
        raise FailedPreconditionError(f"cannot commit: sequence numbers {shown}{more} missing")


def _member_keys(kind: str, rows: Sequence[Sequence[str]], columns: tuple[str, ...]) -> list[str]:
    keys = []
    for index, values in enumerate(rows, start=1):
        if len(values) != len(columns):
            raise InvalidArgumentError(
                f"{kind} row {index} has {len(values)} values, the upload has "
                f"{len(columns)} columns"
            )
        pairs = sorted((c, v) for c, v in zip(columns, values, strict=True) if v)
        if not pairs:
            raise InvalidArgumentError(f"{kind} row {index} has no identifier")
        keys.append(json.dumps(pairs, separators=(",", ":")))
    return keys


def _decode_key(key: str) -> dict[str, str]:
    return {column: value for column, value in json.loads(key)}


def _batch_digest(add_keys: list[str], remove_keys: list[str]) -> str:
    """Order-insensitive content hash, to tell a resent batch from a different one."""
    h = hashlib.sha256()
    for label, keys in (("add", add_keys), ("remove", remove_keys)):
        for key in sorted(keys):
            h.update(f"{label}\x00{key}\x00".encode())
    return h.hexdigest()
