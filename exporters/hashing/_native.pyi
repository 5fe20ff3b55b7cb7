"""Types of the optional C extension built from ``_native.c`` (see ``native.py``)."""

from collections.abc import Sequence

from typing_extensions import Buffer

#: One column: (encoding, rule, flags, gmail domains, wide offsets, validity bitmap or None,
#: offsets, data, offset of the first row) — ``CellRule.spec()`` then ``ArrowStringColumn``.
ColumnSpec = tuple[int, int, int, tuple[bytes, ...], bool, Buffer | None, Buffer, Buffer, int]

def encode_lines(
    rows: int, specs: Sequence[ColumnSpec], /
) -> tuple[bytes, int, tuple[tuple[int, int], ...]]:
    """The CSV lines of ``rows`` rows, how many lines, and (missing, dropped) per column."""
