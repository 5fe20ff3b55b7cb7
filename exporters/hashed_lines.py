"""Hashed CSV lines of raw identifiers, the fastest exact way the installation offers.

Two ways give the same bytes (tests compare them): the native encoder
(``exporters.hashing.native``) reads the raw columns as Arrow and normalises, hashes (OpenSSL
SHA-256) and joins them itself, or, where the encoder was not built, the warehouse does all of
it (``csv_lines.hashed_lines_select``). Measured on 1M members with email + MAID
(``bench/bench_hashing.py``, ``bench/RESULTS.md``), the native way costs 57% of the CPU
(1.22M against 697k members per CPU-second), and its blocks need no guard pass before they are
written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlglot import exp

from exporters.csv_lines import hashed_lines_select, raw_text_select
from exporters.hashing import SQL_DIALECTS, HashStats, check_kinds, native
from exporters.line_blocks import LineBlock, arrow_line_blocks, encoded_line_blocks

#: Runs a query and returns its result as an Arrow C stream source (``__arrow_c_stream__``),
#: e.g. ``duckdb_connection.sql``.
ArrowQuery = Callable[[str], Any]


def hashed_line_blocks(
    query: ArrowQuery,
    source: exp.Expr,
    kinds: Sequence[str],
    fmt: str,
    dialect: str,
    *,
    order_by: Sequence[str] = (),
    use_native: bool | None = None,
    stats: HashStats | None = None,
) -> Iterator[LineBlock] | None:
    """Blocks of ``fmt``-hashed lines for the raw identifier columns ``kinds`` of ``source``.

    ``use_native`` defaults to whether the encoder was built; only the native way can count,
    so ``stats`` (missing, dropped, hashed per type; its ``kinds`` must be ``kinds``) is filled
    there and refused otherwise. ``None`` when some type cannot be normalised exactly (phones)
    or for dialects other than ``SQL_DIALECTS`` (how they cast typed columns to text is not
    tested): hash in Python then.
    """
    check_kinds(fmt, kinds)
    if stats is not None and stats.kinds != tuple(kinds):
        raise ValueError(f"stats count {list(stats.kinds)}, not {list(kinds)}")
    if dialect not in SQL_DIALECTS:
        return None
    if native.AVAILABLE if use_native is None else use_native:
        if any(kind not in native.RULES for kind in kinds):
            return None
        cells = [native.cell_rule(kind, fmt) for kind in kinds]
        select = raw_text_select(source, kinds, order_by=order_by)
        return encoded_line_blocks(query(select.sql(dialect)), cells, stats)
    if stats is not None:
        raise ValueError("only the native encoder counts missing and dropped identifiers")
    hashed = hashed_lines_select(source, kinds, fmt, dialect, order_by=order_by)
    return None if hashed is None else arrow_line_blocks(query(hashed.sql(dialect)))
