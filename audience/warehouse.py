"""Connections to the warehouse the project builds audiences in.

One small protocol, two engines that run here (DuckDB embedded, PostgreSQL). Other dialects
are compile targets: `audience compile --dialect snowflake` works without a connection, using
column types declared in audience.toml or read from the configured warehouse.
"""

from __future__ import annotations

import csv
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from audience.config import CONFIG_FILE, resolve_path
from audience.errors import OperationalError, UserError

if TYPE_CHECKING:  # only where blocks are read: exporters' modules cost start-up time
    from exporters.line_blocks import LineBlock

log = structlog.get_logger()

#: The product's private schema in the warehouse (run snapshots, condensed consent decisions).
STATE_SCHEMA = "audience_state"


def quoted(text: str) -> str:
    """*text* as a SQL string literal, for the statements on the product's own tables."""
    from dsl.compiler import string_literal  # only here: sqlglot costs `audience check` start-up time

    return string_literal(text).sql()


class WarehouseError(OperationalError):
    """An operational failure talking to the warehouse (exit status 2).

    Engines quote the offending value in some messages (a failed cast, a constraint): with
    runs reading raw identifiers inside the warehouse, the message is stripped of anything
    that looks like an email, phone number or device id before anyone sees or logs it.
    """

    def __init__(self, message: str) -> None:
        from exporters.redaction import redact_text

        super().__init__(redact_text(message))


class Warehouse(Protocol):
    dialect: str

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def stream(self, sql: str, batch_size: int = 50_000) -> Iterator[list[tuple[Any, ...]]]: ...
    def line_blocks(self, sql: str) -> Iterator[LineBlock]: ...
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def table_columns(self, table: str) -> dict[str, str] | None: ...
    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int: ...
    def transaction(self, statements: Sequence[str]) -> None: ...
    def close(self) -> None: ...


def _split(table: str, default_schema: str) -> tuple[str, str]:
    parts = table.split(".")
    return (parts[-2] if len(parts) > 1 else default_schema), parts[-1]


@contextmanager
def _duckdb_errors(what: str, also: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """DuckDB's exceptions (and *also*) as one WarehouseError: *what* failed, and DuckDB's words."""
    import duckdb

    caught: tuple[type[Exception], ...] = (duckdb.Error, *also)
    try:
        yield
    except caught as err:
        raise WarehouseError(f"{what}: {err}") from None


@contextmanager
def _postgres_errors(what: str) -> Iterator[None]:
    """psycopg's exceptions as one WarehouseError: *what* failed, and the server's first line."""
    import psycopg

    try:
        yield
    except psycopg.Error as err:
        raise WarehouseError(f"{what}: {str(err).strip().splitlines()[0]}") from None


def _batches(cursor: Any, batch_size: int) -> Iterator[list[tuple[Any, ...]]]:
    """A DB-API cursor's remaining rows, *batch_size* at a time."""
    while rows := cursor.fetchmany(batch_size):
        yield rows


class DuckDBWarehouse:
    """Embedded DuckDB; one connection per thread (cursor()) over one database file."""

    dialect = "duckdb"

    def __init__(self, path: str) -> None:
        import duckdb

        with _duckdb_errors(f"cannot open DuckDB database {path}"):
            self._con = duckdb.connect(path)
        self._local = threading.local()
        self.path = path

    def _cursor(self):
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cursor = cur
        return cur

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _duckdb_errors("DuckDB query failed"):
            return self._cursor().execute(sql, list(params)).fetchall()

    def stream(self, sql: str, batch_size: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
        cur = self._con.cursor()
        try:
            with _duckdb_errors("DuckDB query failed"):
                cur.execute(sql)
                yield from _batches(cur, batch_size)
        finally:
            cur.close()

    def line_blocks(self, sql: str) -> Iterator[LineBlock]:
        """The lines of a one-column line query (``exporters.csv_lines``) as Arrow blocks:
        DuckDB builds them on every core and no Python object is made per row."""
        from exporters.line_blocks import LineStreamError, arrow_line_blocks

        cur = self._con.cursor()
        try:
            with _duckdb_errors("DuckDB query failed", also=(LineStreamError,)):
                yield from arrow_line_blocks(cur.sql(sql))
        finally:
            cur.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.query(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with _duckdb_errors("DuckDB write failed"):
            self._cursor().executemany(sql, [list(r) for r in rows])

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Stream rows through a temporary CSV file: far faster than executemany, flat memory."""
        fd, path = tempfile.mkstemp(suffix=".csv")
        count = 0
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                for row in rows:
                    writer.writerow(["\\N" if v is None else v for v in row])
                    count += 1
            if count:
                cols = ", ".join(columns)
                spec = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in columns) + "}"
                self.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM read_csv(?, header = false, "
                             f"columns = {spec}, nullstr = '\\N', quote = '\"', escape = '\"')", [path])
        finally:
            os.unlink(path)
        return count

    def transaction(self, statements: Sequence[str]) -> None:
        import duckdb

        cur = self._cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            for sql in statements:
                cur.execute(sql)
            cur.execute("COMMIT")
        except duckdb.Error as err:
            cur.execute("ROLLBACK")
            raise WarehouseError(f"DuckDB transaction failed: {err}") from None

    def table_columns(self, table: str) -> dict[str, str] | None:
        schema, name = _split(table, "main")
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position", [schema, name])
        return {r[0]: r[1] for r in rows} or None

    def close(self) -> None:
        self._con.close()


class PostgresWarehouse:
    """PostgreSQL through psycopg; sessions run in UTC so timestamp literals mean UTC."""

    dialect = "postgres"

    def __init__(self, conninfo: str) -> None:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params: dict[str, Any] = dict(conninfo_to_dict(conninfo))
        params["options"] = f"{params.get('options', '')} -c TimeZone=UTC".strip()
        self._conninfo = make_conninfo(**params)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Any] = []
        with _postgres_errors("cannot connect to PostgreSQL"):
            self._conn()

    def _conn(self):
        import psycopg

        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self._conninfo, autocommit=True)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _postgres_errors("PostgreSQL query failed"), self._conn().cursor() as cur:
            cur.execute(sql, list(params) or None)
            return cur.fetchall() if cur.description else []

    def stream(self, sql: str, batch_size: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
        """A connection of its own: a server-side cursor holds its transaction open meanwhile."""
        import psycopg

        with _postgres_errors("cannot connect to PostgreSQL"):
            conn = psycopg.connect(self._conninfo)
        try:
            with (_postgres_errors("PostgreSQL query failed"), conn.transaction(),
                  conn.cursor(name="audience_stream") as cur):
                cur.itersize = batch_size
                cur.execute(sql)
                yield from _batches(cur, batch_size)
        finally:
            conn.close()

    def line_blocks(self, sql: str) -> Iterator[LineBlock]:
        """The lines of a one-column line query joined into blocks (psycopg has no Arrow reader:
        the lines still arrive one by one, but are written as whole blocks)."""
        from exporters.line_blocks import LineBlock

        for rows in self.stream(sql):
            lines = [line for (line,) in rows if line is not None]
            if lines:
                yield LineBlock("".join(lines).encode("utf-8"), len(lines))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.query(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with _postgres_errors("PostgreSQL write failed"), self._conn().cursor() as cur:
            cur.executemany(sql, rows)

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        count = 0
        with (_postgres_errors("PostgreSQL write failed"), self._conn().cursor() as cur,
              cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy):
            for row in rows:
                copy.write_row(row)
                count += 1
        return count

    def transaction(self, statements: Sequence[str]) -> None:
        with _postgres_errors("PostgreSQL transaction failed"):
            conn = self._conn()
            with conn.transaction(), conn.cursor() as cur:
                for sql in statements:
                    cur.execute(sql)

    def table_columns(self, table: str) -> dict[str, str] | None:
        parts = table.split(".")
        schema_test = "table_schema = %s" if len(parts) > 1 else "table_schema = current_schema()"
        params = [parts[-2], parts[-1]] if len(parts) > 1 else [parts[-1]]
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE {schema_test} AND table_name = %s ORDER BY ordinal_position", params)
        return {r[0]: r[1] for r in rows} or None

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


class WarehouseNotFound(UserError):
    """`[warehouse] url` names a DuckDB file that is not there (exit status 1, the user's input).

    Opening it would create an empty database and every table would then look missing; only
    `audience init` and `audience demo` create a warehouse.
    """

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{CONFIG_FILE}: warehouse.url: {problem}")
        self.path = path
        self.problem = problem


def duckdb_path(url: str, root: Path) -> Path | None:
    """The database file of a `duckdb://` url (relative paths under the project root); None
    for an in-memory database or another engine's url."""
    if not url.startswith("duckdb://"):
        return None
    rest = url[len("duckdb://"):]
    path = rest[1:] if rest.startswith("/") else rest
    if path in ("", ":memory:"):
        return None
    return resolve_path(path, root)


def connect(url: str, root: Path) -> Warehouse:
    """Open the warehouse named by `[warehouse] url`; relative DuckDB paths use the project root.

    An existing DuckDB file is opened, never created: a mistyped path is a WarehouseNotFound.
    """
    if url.startswith("duckdb://"):
        path = duckdb_path(url, root)
        if path is None:
            return DuckDBWarehouse(":memory:")
        if path.is_dir():
            raise WarehouseNotFound(path, f"{path} is a folder, not a DuckDB database file")
        if not path.is_file():
            raise WarehouseNotFound(path, f"there is no DuckDB database at {path} (only `audience init` and "
                                          "`audience demo` create one; check the path)")
        return DuckDBWarehouse(str(path))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresWarehouse(url)
    scheme = url.split(":", 1)[0]
    raise WarehouseError(f'warehouse "{scheme}" cannot be queried from here; this build runs DuckDB and '
                         "PostgreSQL (other dialects are compile targets: `audience compile --dialect`)")
