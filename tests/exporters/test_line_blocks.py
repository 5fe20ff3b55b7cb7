"""Warehouse-built CSV lines: the SQL that builds them, reading them as Arrow blocks, writing them.

Expected hashes are computed here with ``hashlib`` from the normalized text written out by
hand (trimmed, lower-cased), not by the code under test.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest
from sqlglot import exp

from exporters.block_guard import RowRefused
from exporters.csv_lines import hashed_lines_select, lines_select
from exporters.drop_writer import DropWriter
from exporters.hashed_lines import hashed_line_blocks
from exporters.hashing import HashStats, encoded_shape
from exporters.line_blocks import (
    EncodedBlock,
    LineBlock,
    LineSourceError,
    _block_of,
    _valid_count,
    arrow_line_blocks,
)
from exporters.objectstore import FileStore
from tests.runs.helpers import sha256_hex

PG_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=5"
SCHEMA = f"test_line_blocks_{os.getpid()}"

# (i, email, maid) raw, as a warehouse holds them
RAW = [
    (1, "  Alice@Example.COM ", "6BA7B810-9DAD-11D1-80B4-00C04FD430C8"),
    (2, None, None),  # no identifier: no line
    (3, "not-an-email", None),  # invalid email only: no line
    (4, "bob@example.org", "00000000-0000-0000-0000-000000000000"),  # the zero MAID is dropped
    (5, None, "  6ba7b811-9dad-11d1-80b4-00c04fd430c8\t"),
]


EXPECTED_LINES = [
    f"{sha256_hex('alice@example.com')},{sha256_hex('6ba7b810-9dad-11d1-80b4-00c04fd430c8')}\n",
    f"{sha256_hex('bob@example.org')},\n",
    f",{sha256_hex('6ba7b811-9dad-11d1-80b4-00c04fd430c8')}\n",
]


@pytest.fixture
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("CREATE TABLE members (i INTEGER, email VARCHAR, maid VARCHAR)")
    connection.executemany("INSERT INTO members VALUES (?, ?, ?)", RAW[::-1])  # stored out of order
    yield connection
    connection.close()


def test_duckdb_hashes_and_builds_the_lines_in_order(duck: duckdb.DuckDBPyConnection) -> None:
    query = hashed_lines_select(exp.table_("members"), ["email", "maid"], "sha256", "duckdb", order_by=["i"])
    assert query is not None

    lines = [row[0] for row in duck.sql(query.sql("duckdb")).fetchall()]

    assert lines == [EXPECTED_LINES[0], None, None, EXPECTED_LINES[1], EXPECTED_LINES[2]]


def test_postgres_builds_the_same_lines() -> None:
    table = exp.table_("members", db=SCHEMA)
    query = hashed_lines_select(table, ["email", "maid"], "sha256", "postgres", order_by=["i"])
    assert query is not None
    with psycopg.connect(PG_DSN, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {SCHEMA}")
        try:
            connection.execute(f"CREATE TABLE {SCHEMA}.members (i INTEGER, email TEXT, maid TEXT)")
            with connection.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {SCHEMA}.members VALUES (%s, %s, %s)", RAW)
            lines = [row[0] for row in connection.execute(query.sql("postgres")).fetchall()]
        finally:
            connection.execute(f"DROP SCHEMA {SCHEMA} CASCADE")

    assert lines == [EXPECTED_LINES[0], None, None, EXPECTED_LINES[1], EXPECTED_LINES[2]]


def test_no_sql_lines_when_a_type_must_be_hashed_in_python() -> None:
    assert hashed_lines_select(exp.table_("members"), ["email", "phone"], "sha256", "duckdb") is None
    assert hashed_lines_select(exp.table_("members"), ["email"], "sha256", "bigquery") is None


def test_arrow_blocks_hold_the_lines_back_to_back_and_skip_nulls(duck: duckdb.DuckDBPyConnection) -> None:
    query = hashed_lines_select(exp.table_("members"), ["email", "maid"], "sha256", "duckdb", order_by=["i"])
    assert query is not None

    blocks = list(arrow_line_blocks(duck.sql(query.sql("duckdb"))))

    assert blocks == [LineBlock("".join(EXPECTED_LINES).encode(), 3)]


def test_batches_are_read_one_by_one_and_those_without_lines_are_skipped() -> None:
    connection = duckdb.connect()
    # DuckDB hands Arrow batches of 122,880 rows: three batches here, the last one without a line
    sql = "SELECT CASE WHEN i % 100000 = 7 THEN 'line' || i || chr(10) END FROM range(300000) AS t(i) ORDER BY i"

    blocks = list(arrow_line_blocks(connection.sql(sql)))

    assert sum(block.rows for block in blocks) == 3 and all(block.rows for block in blocks)
    assert len(blocks) > 1
    assert b"".join(block.data for block in blocks) == b"line7\nline100007\nline200007\n"


def test_a_source_that_is_not_one_string_column_is_refused() -> None:
    connection = duckdb.connect()
    with pytest.raises(LineSourceError, match=r"^a line query returns exactly one column, not 2$"):
        list(arrow_line_blocks(connection.sql("SELECT 'a' AS x, 'b' AS y")))
    with pytest.raises(LineSourceError, match=r"^a line query returns a string column, not Arrow type 'l'$"):
        list(arrow_line_blocks(connection.sql("SELECT 42::BIGINT AS x")))


def test_valid_count_reads_the_bitmap_from_an_offset() -> None:
    bitmap = memoryview(bytes([0b1011_0110, 0b0000_0011]))  # bits 1,2,4,5,7,8,9 set
    assert _valid_count(bitmap, 0, 16) == 7
    assert _valid_count(bitmap, 2, 5) == 3  # bits 2..6: 2, 4, 5
    assert _valid_count(memoryview(b""), 0, 9) == 9  # no bitmap: all valid


def test_a_block_splits_after_an_exact_line() -> None:
    block = LineBlock(b"a\nbb\nccc\n", 3)
    assert block.split(2) == (LineBlock(b"a\nbb\n", 2), LineBlock(b"ccc\n", 1))
    assert block.split(0) == (LineBlock(b"", 0), block)
    with pytest.raises(ValueError, match=r"^a block says it holds 3 lines but holds fewer$"):
        LineBlock(b"a\n", 3).split(2)


def test_lines_of_hashed_columns_read_as_csv_writer_writes_them() -> None:
    connection = duckdb.connect()
    connection.execute("CREATE TABLE t (k INTEGER, email VARCHAR, phone VARCHAR)")
    connection.execute("INSERT INTO t VALUES (2, 'x', NULL), (1, NULL, 'y'), (3, NULL, NULL)")
    sql = lines_select(exp.table_("t"), ["email", "phone"], order_by=["k"]).sql("duckdb")
    assert [row[0] for row in connection.execute(sql).fetchall()] == [",y\n", "x,\n", None]


def test_an_export_from_duckdb_writes_the_expected_part(duck: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    kinds = ["email", "maid"]
    query = hashed_lines_select(exp.table_("members"), kinds, "sha256", "duckdb", order_by=["i"])
    assert query is not None
    writer = DropWriter(FileStore(tmp_path), "vip", "run-1", kinds, rows_per_part=2)

    parts = writer.write_parts_blocks(
        "members", arrow_line_blocks(duck.sql(query.sql("duckdb"))), [encoded_shape(k, "sha256") for k in kinds]
    )

    texts = [gzip.decompress((tmp_path / part.key).read_bytes()).decode() for part in parts]
    assert texts == ["email,maid\n" + "".join(EXPECTED_LINES[:2]), "email,maid\n" + EXPECTED_LINES[2]]


def test_a_slice_of_a_batch_reads_only_its_rows() -> None:
    import nanoarrow

    connection = duckdb.connect()
    sql = "SELECT CASE WHEN i = 2 THEN NULL ELSE 'l' || i || chr(10) END FROM range(5) AS t(i) ORDER BY i"
    (batch,) = list(nanoarrow.c_array_stream(connection.sql(sql)))
    column = batch.child(0)

    assert _block_of(column, 1, 3) == LineBlock(b"l1\nl3\n", 2)  # rows 1..3 of l0 l1 NULL l3 l4
    assert _block_of(column, 0, 0) == LineBlock(b"", 0)


def test_a_warehouse_error_while_the_lines_stream_is_a_clear_redacted_error(tmp_path: Path) -> None:
    from audience.warehouse import DuckDBWarehouse, WarehouseError

    warehouse = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    warehouse.execute("CREATE TABLE t AS SELECT i, 'secret' || i || '@example.com' AS email FROM range(3000000) r(i)")
    # not ordered, so it streams: the cast fails after several batches were handed out
    sql = "SELECT CASE WHEN i < 2500000 THEN 'x' || chr(10) ELSE CAST(email AS INTEGER)::VARCHAR END FROM t"
    read = 0
    with pytest.raises(WarehouseError) as caught:
        for block in warehouse.line_blocks(sql):
            read += block.rows
    warehouse.close()

    assert read > 0
    message = str(caught.value)
    assert message.startswith("DuckDB query failed: Conversion Error: Could not convert string ")
    assert "[redacted-email]" in message and "secret" not in message


@pytest.mark.parametrize("use_native", [True, False])
def test_hashed_line_blocks_give_the_same_part_either_way(
    duck: duckdb.DuckDBPyConnection, tmp_path: Path, use_native: bool
) -> None:
    kinds = ["email", "maid"]
    blocks = hashed_line_blocks(duck.sql, exp.table_("members"), kinds, "sha256", "duckdb", order_by=["i"],
                                use_native=use_native)
    assert blocks is not None
    writer = DropWriter(FileStore(tmp_path), "vip", "run-1", kinds)

    (part,) = writer.write_parts_blocks("members", blocks, [encoded_shape(k, "sha256") for k in kinds])

    assert gzip.decompress((tmp_path / part.key).read_bytes()).decode() == "email,maid\n" + "".join(EXPECTED_LINES)
    assert hashed_line_blocks(duck.sql, exp.table_("members"), ["phone"], "sha256", "duckdb",
                              use_native=use_native) is None
    assert hashed_line_blocks(duck.sql, exp.table_("members"), kinds, "sha256", "snowflake",
                              use_native=use_native) is None


def test_encoded_blocks_skip_the_guard_only_for_the_columns_own_shapes(
    duck: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # google sends MAIDs plain: encoded blocks of (hex, plain MAID) cells...
    blocks = list(hashed_line_blocks(duck.sql, exp.table_("members"), ["email", "maid"], "google", "duckdb",
                                     order_by=["i"], use_native=True) or ())
    assert blocks and all(isinstance(block, EncodedBlock) for block in blocks)
    writer = DropWriter(FileStore(tmp_path), "vip", "run-1", ["email", "maid"])
    # ...written where the maid column carries hashes go through the guard, which refuses them
    with pytest.raises(RowRefused, match=r"^row 1 column maid: value is not a hashed identifier$"):
        writer.write_part_blocks("members", 0, blocks, [encoded_shape("email", "sha256")] * 2)
    (part,) = writer.write_parts_blocks("members", blocks, [encoded_shape(k, "google") for k in ("email", "maid")])
    assert part.rows == 3


def test_the_native_way_counts_what_it_hashes_drops_and_misses(duck: duckdb.DuckDBPyConnection) -> None:
    stats = HashStats(kinds=("email", "maid"))
    blocks = hashed_line_blocks(duck.sql, exp.table_("members"), ["email", "maid"], "sha256", "duckdb",
                                order_by=["i"], use_native=True, stats=stats)
    assert b"".join(block.data for block in blocks or ()).decode() == "".join(EXPECTED_LINES)
    # RAW: emails 1, 4 valid, 3 invalid, 2 and 5 missing; MAIDs 1, 5 valid, 4 zero, 2 and 3 missing
    assert stats.as_dict() == {
        "rows": 5,
        "no_identifier": 2,
        "hashed": {"email": 2, "maid": 2},
        "missing": {"email": 2, "maid": 2},
        "dropped": {"email": 1, "maid": 1},
    }
    with pytest.raises(ValueError, match=r"^stats count \['maid', 'email'\], not \['email', 'maid'\]$"):
        hashed_line_blocks(duck.sql, exp.table_("members"), ["email", "maid"], "sha256", "duckdb", use_native=True,
                           stats=HashStats(kinds=("maid", "email")))
    with pytest.raises(ValueError, match=r"^only the native encoder counts missing and dropped identifiers$"):
        hashed_line_blocks(duck.sql, exp.table_("members"), ["email"], "sha256", "duckdb", use_native=False,
                           stats=HashStats(kinds=("email",)))


def test_the_native_way_reads_typed_columns_as_the_python_path_does() -> None:
    connection = duckdb.connect()
    connection.execute("CREATE TABLE typed (i INTEGER, maid UUID, external_id BIGINT)")
    connection.execute("INSERT INTO typed VALUES (1, '6BA7B810-9DAD-11D1-80B4-00C04FD430C8', -42), (2, NULL, NULL)")
    blocks = hashed_line_blocks(connection.sql, exp.table_("typed"), ["maid", "external_id"], "meta", "duckdb",
                                order_by=["i"], use_native=True)
    assert b"".join(block.data for block in blocks or ()).decode() == (
        f"6ba7b810-9dad-11d1-80b4-00c04fd430c8,{sha256_hex('-42')}\n"
    )
    connection.close()


def test_many_batches_encoded_ahead_come_out_in_order_and_all_counted() -> None:
    # 300,000 rows: DuckDB hands them over in several Arrow batches, encoded on two threads
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE many AS SELECT i, CASE WHEN i % 7 = 0 THEN 'bad' ELSE 'User' || i || '@Example.com' END AS email "
        "FROM range(300000) t(i)"
    )
    stats = HashStats(kinds=("email",))
    table = exp.table_("many")
    native_blocks = list(hashed_line_blocks(connection.sql, table, ["email"], "sha256", "duckdb", order_by=["i"],
                                            use_native=True, stats=stats) or ())
    sql_blocks = hashed_line_blocks(connection.sql, table, ["email"], "sha256", "duckdb", order_by=["i"],
                                    use_native=False)
    assert len(native_blocks) > 2
    text = b"".join(block.data for block in native_blocks)
    assert text == b"".join(block.data for block in sql_blocks or ())
    first, second = (sha256_hex(f"user{i}@example.com").encode() for i in (1, 2))
    assert text.split(b"\n", 2)[:2] == [first, second]
    invalid = len(range(0, 300000, 7))
    assert (stats.rows, stats.dropped["email"], stats.hashed["email"]) == (300000, invalid, 300000 - invalid)
    connection.close()
