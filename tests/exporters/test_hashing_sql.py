"""Warehouse-side hashing gives byte-identical results to the Python path.

Every expression from ``sql_hashed_expression`` is run through a real DuckDB connection and
a real PostgreSQL connection (127.0.0.1, database ``test``, a schema private to this module)
on a fixed list of tricky inputs and on hypothesis-generated ones; the expected value of each
row is what ``hash_identifier`` returns for the same input. The native encoder, fed the raw
values out of DuckDB as Arrow, must agree too.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import duckdb
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from exporters.hashing import (
    FORMATS,
    HashingConfigError,
    get_profile,
    hash_identifier,
    sql_hashed_expression,
)
from exporters.hashing.native import cell_rule
from exporters.line_blocks import encoded_line_blocks

PG_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=5"
SCHEMA = f"test_hashing_sql_{os.getpid()}"
SQL_KINDS = ("email", "maid", "external_id")

# (kind, format) pairs the SQL path supports: uid2 refuses maid and external_id.
CASES = [(kind, fmt) for kind in SQL_KINDS for fmt in FORMATS if get_profile(fmt).accepts(kind)]

TRICKY = [
    None,
    "",
    " ",
    "\t\n\r\x0b\x0c",
    " JANESaoirse@gmail.com\t",
    "Jane.Saoirse+Work@gmail.com",
    "Jane.Saoirse+Work@GMAIL.COM",
    "Jefferson.LOVES.Hiking@googlemail.com",
    "jo hn@Example.com",
    "jo\thn@ex\nample.com",
    "user.name+NYC@Example.com",
    "a@b",
    "a@b.",
    "a@.b",
    "a@@b.c",
    "a@b@c.d",
    "@example.com",
    ".@gmail.com",
    "...@gmail.com",
    "+promo@gmail.com",
    "+promo@googlemail.com",
    "x@gmail.com.evil.org",
    "x@notgmail.com",
    "ÉMILE@Exemple.FR",
    "İstanbul@Example.com",
    "STRASSE@straße.de",
    "e\u0301@example.com",
    "\u00a0nbsp@example.com\u00a0",
    "\u2003em@example.com",
    "\x1cfs@example.com",
    "\x85nel@example.com",
    "🦆@duck.db",
    "100%_off@shop.com",
    "back\\slash@example.com",
    "quote'd@example.com",
    " AECE52E7-03EE-455A-B3C4-E57283966239 ",
    "aece52e7-03ee-455a-b3c4-e57283966239",
    "00000000-0000-0000-0000-000000000000",
    "AECE52E703EE455AB3C4E57283966239",
    "aece52e7-03ee-455a-b3c4-e57283966239\n",
    "{aece52e7-03ee-455a-b3c4-e57283966239}",
    "CRM-00042",
    "  42  ",
]


def python_values(kind: str, fmt: str, values: list[object]) -> list[str | None]:
    out = []
    for value in values:
        result = hash_identifier(kind, value, fmt)  # type: ignore[arg-type]  # typed warehouse cells, on purpose
        out.append(None if result is None else result.value)
    return out


def sql_for(kind: str, fmt: str, dialect: str, table: str) -> str:
    expression = sql_hashed_expression(kind, exp.column("x"), fmt, dialect)
    assert expression is not None
    return f"SELECT {expression.sql(dialect)} FROM {table} ORDER BY i"


def native_values(duck: duckdb.DuckDBPyConnection, kind: str, fmt: str) -> list[str]:
    """The raw values out of DuckDB, normalised and hashed by the native encoder: one line per
    value it keeps."""
    relation = duck.sql("SELECT x FROM vals ORDER BY i")
    return b"".join(block.data for block in encoded_line_blocks(relation, [cell_rule(kind, fmt)])).decode().split()


@pytest.fixture(scope="module")
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("CREATE TABLE vals (i INTEGER, x VARCHAR)")
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def pg() -> Iterator[psycopg.Connection]:
    connection = psycopg.connect(PG_DSN, autocommit=True)
    connection.execute(f"CREATE SCHEMA {SCHEMA}")
    connection.execute(f"CREATE TABLE {SCHEMA}.vals (i INTEGER, x TEXT)")
    yield connection
    connection.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    connection.close()


def load(duck: duckdb.DuckDBPyConnection, pg: psycopg.Connection, values: list) -> None:
    rows = list(enumerate(values))
    duck.execute("DELETE FROM vals")
    if rows:
        duck.executemany("INSERT INTO vals VALUES (?, ?)", rows)
    pg.execute(f"DELETE FROM {SCHEMA}.vals")
    with pg.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {SCHEMA}.vals VALUES (%s, %s)", rows)


def assert_same_everywhere(duck: duckdb.DuckDBPyConnection, pg: psycopg.Connection, values: list) -> None:
    load(duck, pg, values)
    for kind, fmt in CASES:
        expected = python_values(kind, fmt, values)
        in_duck = [r[0] for r in duck.execute(sql_for(kind, fmt, "duckdb", "vals")).fetchall()]
        in_pg = [r[0] for r in pg.execute(sql_for(kind, fmt, "postgres", f"{SCHEMA}.vals")).fetchall()]
        assert in_duck == expected, (kind, fmt, "duckdb")
        assert native_values(duck, kind, fmt) == [value for value in expected if value is not None], (kind, fmt)
        assert in_pg == expected, (kind, fmt, "postgres")


def test_tricky_inputs_hash_identically_in_duckdb_postgres_and_python(
    duck: duckdb.DuckDBPyConnection, pg: psycopg.Connection
) -> None:
    assert_same_everywhere(duck, pg, TRICKY)


def test_known_values_come_out_of_the_warehouse(duck: duckdb.DuckDBPyConnection, pg: psycopg.Connection) -> None:
    # UID2 published example (https://unifiedid.com/docs/getting-started/gs-normalization-encoding)
    load(duck, pg, ["JaneSaoirse+Work@gmail.com"])
    expected = [("ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",)]
    assert duck.execute(sql_for("email", "uid2", "duckdb", "vals")).fetchall() == expected
    assert pg.execute(sql_for("email", "uid2", "postgres", f"{SCHEMA}.vals")).fetchall() == expected


_TOKENS = [
    "@",
    ".",
    "+",
    "-",
    "gmail.com",
    "googlemail.com",
    "GMail.Com",
    "example.org",
    "aece52e7",
    "-03ee-455a-b3c4-",
    "E57283966239",
    "00000000-0000-0000-0000-000000000000",
    " ",
    "\t",
    "\n",
    "\r",
    "\x0b",
    "\x0c",
    "\u00a0",
    "\u2003",
    "\x1c",
    "\x85",
    "İ",
    "É",
    "ß",
    "\u0301",
    "🦆",
    "%",
    "_",
    "\\",
    "'",
]
_pieces = st.one_of(
    st.sampled_from(_TOKENS),
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
)
_strings = st.lists(_pieces, max_size=12).map("".join)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(values=st.lists(st.one_of(st.none(), _strings), min_size=1, max_size=25))
def test_generated_inputs_hash_identically_in_duckdb_postgres_and_python(
    duck: duckdb.DuckDBPyConnection, pg: psycopg.Connection, values: list[str | None]
) -> None:
    assert_same_everywhere(duck, pg, values)


def test_typed_columns_uuid_and_bigint_match_python(pg: psycopg.Connection) -> None:
    table = f"{SCHEMA}.typed"
    pg.execute(f"CREATE TABLE {table} (i INTEGER, m UUID, e BIGINT)")
    pg.execute(
        f"INSERT INTO {table} VALUES "
        "(0, 'AECE52E7-03EE-455A-B3C4-E57283966239', 42), (1, NULL, NULL), "
        "(2, '00000000-0000-0000-0000-000000000000', -7)"
    )
    fetched = pg.execute(f"SELECT m, e FROM {table} ORDER BY i").fetchall()
    assert isinstance(fetched[0][0], uuid.UUID)
    for fmt in ("sha256", "google", "meta"):
        maid = sql_hashed_expression("maid", exp.column("m"), fmt, "postgres")
        ext = sql_hashed_expression("external_id", exp.column("e"), fmt, "postgres")
        assert maid is not None and ext is not None
        query = f"SELECT {maid.sql('postgres')}, {ext.sql('postgres')} FROM {table} ORDER BY i"
        in_sql = pg.execute(query).fetchall()
        in_python = [
            (
                *python_values("maid", fmt, [m]),
                *python_values("external_id", fmt, [e]),
            )
            for m, e in fetched
        ]
        assert in_sql == in_python


def test_phones_and_other_dialects_fall_back_to_python() -> None:
    column = exp.column("x")
    assert sql_hashed_expression("phone", column, "sha256", "duckdb") is None
    assert sql_hashed_expression("phone", column, "meta", "postgres") is None
    assert sql_hashed_expression("email", column, "sha256", "snowflake") is None
    assert sql_hashed_expression("email", column, "google", "bigquery") is None


def test_sql_refuses_what_the_format_refuses() -> None:
    with pytest.raises(HashingConfigError, match="does not accept"):
        sql_hashed_expression("maid", exp.column("x"), "uid2", "duckdb")
    with pytest.raises(HashingConfigError, match="unknown hashing format"):
        sql_hashed_expression("email", exp.column("x"), "sha1", "duckdb")


def test_rendered_sql_holds_no_raw_control_characters() -> None:
    for kind, fmt in CASES:
        for dialect in ("duckdb", "postgres"):
            expression = sql_hashed_expression(kind, exp.column("x"), fmt, dialect)
            assert expression is not None
            rendered = expression.sql(dialect)
            assert rendered.isprintable(), (kind, fmt, dialect)
