"""Hashed CSV lines of raw identifiers, the fastest exact way the installation offers.

Two ways give the same bytes (tests compare them): the warehouse normalises and the native
encoder (``exporters.hashing.native``, OpenSSL SHA-256) hashes and joins the lines, or, where
the encoder was not built, the warehouse does all of it (``csv_lines.hashed_lines_select``).
Measured on 1M members with email + MAID (``bench/bench_hashing.py``), the native way costs
about 60% of the CPU (550k against 331k members per CPU-second), and its blocks need no
guard pass before they are written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlglot import exp

from exporters.csv_lines import hashed_lines_select, normalized_select
from exporters.hashing import native
from exporters.line_blocks import LineBlock, arrow_line_blocks, encoded_line_blocks

#: Runs a query and returns its result as an Arrow C stream source (``__arrow_c_stream__``),
#: e.g. ``duckdb_connection.sql``.
ArrowQuery = Callable[[str], Any]


def hashed_line_blocks(
    query: ArrowQuery,
    source: exp.Expression,
    kinds: Sequence[str],
    fmt: str,
    dialect: str,
    *,
    order_by: Sequence[str] = (),
    use_native: bool | None = None,
) -> Iterator[LineBlock] | None:
    """Blocks of ``fmt``-hashed lines for the raw identifier columns ``kinds`` of ``source``.

    ``use_native`` defaults to whether the encoder was built. ``None`` when some type cannot
    be normalised in SQL exactly (phones; dialects without expressions): hash in Python then.
    """
    if native.AVAILABLE if use_native is None else use_native:
        select = normalized_select(source, kinds, fmt, dialect, order_by=order_by)
        if select is None:
            return None
        encodings = [native.cell_encoding(kind, fmt) for kind in kinds]
        return encoded_line_blocks(query(select.sql(dialect)), encodings)
    select = hashed_lines_select(source, kinds, fmt, dialect, order_by=order_by)
    return None if select is None else arrow_line_blocks(query(select.sql(dialect)))
