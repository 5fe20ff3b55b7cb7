"""The last guard before a block of warehouse-built CSV lines is written: whole-block checks.

Why whole blocks: checking a million lines one by one in Python costs more than building
them did. A few passes over the block's bytes, each in C, prove the same things instead:

1. deleting every character a value may hold (the columns' alphabets: hex, base64, the ``-``
   of a plain MAID) must leave exactly ``rows`` skeleton lines (``",,\n"`` for three columns):
   the right number of lines and cells, and no other character anywhere;
2. no line is a bare skeleton (a line without any value);
3. each cell is empty or has one of *its own column's* shapes (alphabet and exact length).
   When every column allows the same single shape (hex digests, or base64 for ``uid2``), the
   value characters are mapped to ``a`` and counted as runs of its length L: ``count(a*L) *
   L`` equals the number of value characters only if every cell's length is a multiple of L,
   and no run of L + 1 means none is longer. Otherwise (a plain MAID beside hashes; removals
   of tuples sent under another format) the block is split at every separator and each
   column's cells are checked against that column's shapes (~25% slower).

So a raw email cannot pass (``@`` is in no alphabet), nor a raw phone number or external id
(too short), nor a UUID in a column that carries hashes, nor a quote, CR or stray comma. Blocks of the
native encoder whose shapes are the columns' own skip these passes (see ``check``). Only
when a block fails is it read line by line, to name the first bad row and column (never the
value), in a ``RowRefused`` error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from exporters.hashing.identifier import EncodedShape
from exporters.line_blocks import EncodedBlock, LineBlock

#: The shapes a column's values may have (usually one; several for removals, see sinks).
ColumnShapes = Sequence[EncodedShape]


class RowRefused(ValueError):
    """A row that must not be written (no value, wrong cell count, not a hashed value).

    The message names the row and column, never the value."""


class _Column:
    """One column's allowed shapes; shapes of one column differ in length (64, 44, 36)."""

    def __init__(self, shapes: ColumnShapes) -> None:
        by_length = {shape.length: shape for shape in shapes}
        if not shapes or len(by_length) != len(set(shapes)):
            raise ValueError("a column needs one or more shapes of different lengths")
        self.shapes = frozenset(shapes)
        self.alphabet = bytes(sorted({ord(character) for shape in shapes for character in shape.alphabet}))
        self.lengths = frozenset({0, *by_length})
        self._alphabets = {length: shape.alphabet.encode("ascii") for length, shape in by_length.items()}

    def accepts(self, cells: list[bytes]) -> bool:
        """Every cell empty or exactly one of this column's shapes, checked a shape at a time."""
        if not set(map(len, cells)) <= self.lengths:
            return False
        if len(self._alphabets) == 1:
            (alphabet,) = self._alphabets.values()
            return not b"".join(cells).translate(None, alphabet)
        return all(not b"".join([cell for cell in cells if len(cell) == length]).translate(None, alphabet)
                   for length, alphabet in self._alphabets.items())

    def accepts_cell(self, cell: bytes) -> bool:
        alphabet = self._alphabets.get(len(cell))
        return not cell or (alphabet is not None and not cell.translate(None, alphabet))


class BlockGuard:
    """Checks blocks of lines with ``len(columns)`` cells against each column's value shapes."""

    def __init__(self, columns: Sequence[str], shapes: Sequence[ColumnShapes]) -> None:
        if len(columns) != len(shapes):
            raise ValueError("one set of shapes per column")
        self._names = tuple(columns)
        self._columns = [_Column(column_shapes) for column_shapes in shapes]
        self._alphabet = bytes(sorted({byte for column in self._columns for byte in column.alphabet}))
        #: What a line is once its values are deleted; also exactly what a line without values is.
        self._skeleton = b"," * (len(columns) - 1) + b"\n"
        distinct = {column.shapes for column in self._columns}
        common = next(iter(distinct)) if len(distinct) == 1 else frozenset()
        #: Every column allows the same single shape: the run count test applies.
        self._run = b"a" * next(iter(common)).length if len(common) == 1 else None
        self._to_runs = bytes(ord("a") if byte in self._alphabet else byte for byte in range(256))

    def check(self, block: LineBlock, before: int) -> None:
        """Return if ``block`` (rows ``before + 1`` on) is plain; raise ``RowRefused`` otherwise.

        A block of the native encoder (``EncodedBlock``) holds only cells of its own shapes by
        construction: when those are the columns' own, there is nothing left to check."""
        if isinstance(block, EncodedBlock) and self._allows(block.shapes):
            return
        if not self._plain(block):
            self._raise_first_bad_line(block, before)

    def _allows(self, shapes: Sequence[EncodedShape]) -> bool:
        """Whether cells of ``shapes`` (one per column) are all this guard's columns accept."""
        return len(shapes) == len(self._columns) and all(
            shape in column.shapes for shape, column in zip(shapes, self._columns, strict=True))

    def _plain(self, block: LineBlock) -> bool:
        data, skeleton = block.data, self._skeleton
        if data.translate(None, self._alphabet) != skeleton * block.rows:
            return False
        if data.startswith(skeleton) or b"\n" + skeleton in data:  # a line without any value
            return False
        if self._run is not None:
            return self._cells_one_length(data, block.rows, self._run)
        cells = data.replace(b"\n", b",").split(b",")
        width = len(self._columns)
        return all(column.accepts(cells[at:-1:width]) for at, column in enumerate(self._columns))

    def _cells_one_length(self, data: bytes, rows: int, run: bytes) -> bool:
        """Every cell empty or exactly ``len(run)`` long, for a block whose skeleton passed."""
        runs = data.translate(self._to_runs)
        value_characters = len(data) - len(self._skeleton) * rows
        return runs.count(run) * len(run) == value_characters and run + b"a" not in runs

    def _raise_first_bad_line(self, block: LineBlock, before: int) -> NoReturn:
        lines = block.data.split(b"\n")
        if lines.pop() != b"":
            raise RowRefused(f"row {before + len(lines) + 1}: the last line does not end with a newline")
        for number, line in enumerate(lines, before + 1):
            cells = line.split(b",")
            if len(cells) != len(self._columns):
                raise RowRefused(f"row {number} has {len(cells)} values, expected {len(self._columns)}")
            if not any(cells):
                raise RowRefused(f"row {number} has no identifier")
            for name, column, cell in zip(self._names, self._columns, cells, strict=True):
                if not column.accepts_cell(cell):
                    raise RowRefused(f"row {number} column {name}: value is not a hashed identifier")
        raise RowRefused(f"a block says it holds {block.rows} lines but holds {len(lines)}")
