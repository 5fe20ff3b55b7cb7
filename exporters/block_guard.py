"""The last guard before a block of warehouse-built CSV lines is written: whole-block checks.

Why whole blocks: checking a million lines one by one in Python costs more than building
them did. Three passes over the block's bytes, each in C, prove the same things instead:

1. deleting every character a value may hold (the formats' alphabets: hex, base64, the ``-``
   of a plain MAID) must leave exactly ``rows`` skeleton lines (``",,\n"`` for three columns):
   the right number of lines and cells, and no other character anywhere;
2. no line is a bare skeleton (a line without any value);
3. each cell is empty or exactly as long as a value (64, 44, 36). When all columns' values have
   one length L (every format but a plain MAID beside hashes), the value characters are mapped
   to ``a`` and counted as runs of L: ``count(a*L) * L`` equals the number of value characters
   only if every cell's length is a multiple of L, and no run of L + 1 means none is longer;
   otherwise the block is split at every separator and the set of cell lengths checked
   (~25% slower).

So a raw email cannot pass (``@`` is in no alphabet), nor a raw phone number or external id
(too short), nor a quote, CR or stray comma. Only when a block fails is it read line by line,
to name the first bad row and column (never the value).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from exporters.hashing.identifier import EncodedShape
from exporters.line_blocks import LineBlock


class BlockGuard:
    """Checks blocks of lines with ``len(columns)`` cells against the columns' value shapes."""

    def __init__(self, columns: Sequence[str], shapes: Sequence[EncodedShape]) -> None:
        if len(columns) != len(shapes):
            raise ValueError("one shape per column")
        self._alphabet = bytes(sorted({ord(character) for shape in shapes for character in shape.alphabet}))
        self._cell_lengths = frozenset({0, *(shape.length for shape in shapes)})
        lengths = {shape.length for shape in shapes}
        #: One value length for every column: the run count test applies (``_cells_one_length``).
        self._run = b"a" * lengths.pop() if len(lengths) == 1 else None
        self._to_runs = bytes(ord("a") if byte in self._alphabet else byte for byte in range(256))
        self._columns = tuple(columns)
        #: What a line is once its values are deleted; also exactly what a line without values is.
        self._skeleton = b"," * (len(columns) - 1) + b"\n"

    def check(self, block: LineBlock, before: int) -> None:
        """Return if ``block`` (rows ``before + 1`` on) is plain; raise ``ValueError`` otherwise."""
        if not self._plain(block):
            self._raise_first_bad_line(block, before)

    def _plain(self, block: LineBlock) -> bool:
        data, skeleton = block.data, self._skeleton
        if data.translate(None, self._alphabet) != skeleton * block.rows:
            return False
        if data.startswith(skeleton) or b"\n" + skeleton in data:  # a line without any value
            return False
        if self._run is not None:
            return self._cells_one_length(data, block.rows, self._run)
        return set(map(len, data.replace(b"\n", b",").split(b","))) <= self._cell_lengths

    def _cells_one_length(self, data: bytes, rows: int, run: bytes) -> bool:
        """Every cell empty or exactly ``len(run)`` long, for a block whose skeleton passed."""
        runs = data.translate(self._to_runs)
        value_characters = len(data) - len(self._skeleton) * rows
        return runs.count(run) * len(run) == value_characters and run + b"a" not in runs

    def _cell_ok(self, cell: bytes) -> bool:
        return not cell or (len(cell) in self._cell_lengths and not cell.translate(None, self._alphabet))

    def _raise_first_bad_line(self, block: LineBlock, before: int) -> NoReturn:
        lines = block.data.split(b"\n")
        if lines.pop() != b"":
            raise ValueError(f"row {before + len(lines) + 1}: the last line does not end with a newline")
        for number, line in enumerate(lines, before + 1):
            cells = line.split(b",")
            if len(cells) != len(self._columns):
                raise ValueError(f"row {number} has {len(cells)} values, expected {len(self._columns)}")
            if not any(cells):
                raise ValueError(f"row {number} has no identifier")
            for column, cell in zip(self._columns, cells, strict=True):
                if not self._cell_ok(cell):
                    raise ValueError(f"row {number} column {column}: value is not a hashed identifier")
        raise ValueError(f"a block says it holds {block.rows} lines but holds {len(lines)}")
