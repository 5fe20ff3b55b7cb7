"""Blocks of CSV lines built by the warehouse, read without one Python object per row.

Why: on the export hot path, turning each member's line into a Python ``str`` and joining
them costs as much CPU as DuckDB's hashing itself. A query can instead return one string
column whose values are whole CSV lines, each ending in ``\\n`` (``NULL`` for a member that
has no line). Read as Arrow, the data buffer of such a column *is* the block of text to write:
the lines back to back, nulls taking no bytes. ``arrow_line_blocks`` hands those buffers over
as ``LineBlock``\\ s; ``DropWriter.write_parts_blocks`` checks and writes them.

Any object that exports an Arrow C stream (``__arrow_c_stream__``: a DuckDB relation, a
pyarrow table, ...) can be read; ``nanoarrow`` does the reading, so no pyarrow is needed.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from exporters.hashing.batch import HashStats
from exporters.hashing.identifier import EncodedShape
from exporters.hashing.native import ArrowStringColumn, CellRule, EncodedLines, encode_lines

#: Arrow format strings of the string columns we can read: utf8 (int32 offsets) and
#: large utf8 (int64 offsets). String views ("vu") keep no contiguous data buffer.
_STRING_FORMATS = frozenset({"u", "U"})


#: Threads of the native encoder (it releases the GIL; a third thread on two cores only adds
#: memory). Up to one batch more than this is held: those being encoded and the one handed on.
ENCODE_THREADS = max(1, min(2, os.cpu_count() or 1))

#: nanoarrow's prefix on the producer's own message ("ArrowArrayStream::get_next() failed (5): ").
_STREAM_PREFIX = re.compile(r"^ArrowArrayStream::get_next\(\) failed \(\d+\): ")


class LineSourceError(ValueError):
    """The source does not have the shape of a line query (one string column)."""


class LineStreamError(RuntimeError):
    """The source failed while its rows were being read (the producer's message is kept)."""


@dataclass(frozen=True, slots=True)
class LineBlock:
    """``rows`` CSV lines back to back in ``data``, each ending in ``\\n`` (not yet checked)."""

    data: bytes
    rows: int

    def split(self, rows: int) -> tuple[LineBlock, LineBlock]:
        """The first ``rows`` lines and the rest (for cutting parts at an exact row count)."""
        if not 0 <= rows <= self.rows:
            raise ValueError(f"cannot split {self.rows} lines after line {rows}")
        end = 0
        try:
            for _ in range(rows):
                end = self.data.index(b"\n", end) + 1
        except ValueError:
            raise ValueError(f"a block says it holds {self.rows} lines but holds fewer") from None
        head = dataclasses.replace(self, data=self.data[:end], rows=rows)
        return head, dataclasses.replace(self, data=self.data[end:], rows=self.rows - rows)


#: Only ``encoded_line_blocks`` makes ``EncodedBlock``\ s (see there).
_ENCODER = object()


@dataclass(frozen=True, slots=True)
class EncodedBlock(LineBlock):
    """Lines written by the native encoder: every cell of column ``i`` is empty or has shape
    ``shapes[i]``, every line has a value, and nothing else is in ``data`` — what the writer's
    block guard would check, true by construction, so the writer skips the guard for them."""

    shapes: tuple[EncodedShape, ...] = ()
    made_by: object = None

    def __post_init__(self) -> None:
        if self.made_by is not _ENCODER:
            raise TypeError("EncodedBlock is made only by encoded_line_blocks")


def arrow_line_blocks(source: Any) -> Iterator[LineBlock]:
    """One ``LineBlock`` per Arrow batch of ``source``'s single string column.

    ``source`` is anything with ``__arrow_c_stream__``. Each non-null value counts as one line
    (the writer checks that each really is one ``\\n``-terminated line); null values are
    members without a line and count as nothing. Batches without lines are skipped.
    """
    import nanoarrow  # only where blocks are read: ~45 ms to import

    stream = nanoarrow.c_array_stream(source)
    _check_string_columns(stream.get_schema(), 1, "a line query")
    for batch in _batches(stream):
        block = _block_of(batch.child(0), batch.offset, batch.length)
        if block.rows:
            yield block


def encoded_line_blocks(
    source: Any, cells: Sequence[CellRule], stats: HashStats | None = None
) -> Iterator[EncodedBlock]:
    """One ``EncodedBlock`` per Arrow batch of ``source``: its string columns hold raw
    identifiers, normalised, hashed and encoded by the native encoder
    (``exporters.hashing.native``) one column per ``cells`` entry. Rows without a valid value
    give no line. ``stats`` gets the counts of every batch read, by position: its ``kinds``
    must name the columns in order (``hashed_line_blocks`` checks that).
    Raises ``NativeEncoderMissing`` where the encoder was not built."""
    import nanoarrow  # only where blocks are read: ~45 ms to import

    if stats is not None and len(stats.kinds) != len(cells):
        raise ValueError("stats count one identifier type per cell rule")
    stream = nanoarrow.c_array_stream(source)
    _check_string_columns(stream.get_schema(), len(cells), "a query of raw identifiers")
    shapes = tuple(cell.shape for cell in cells)
    for rows, encoded in _encoded_ahead(_batches(stream), cells):
        if stats is not None:
            _count(stats, rows, encoded)
        if encoded.lines:
            yield EncodedBlock(encoded.data, encoded.lines, shapes, _ENCODER)


def _encoded_ahead(batches: Iterator[Any], cells: Sequence[CellRule]) -> Iterator[tuple[int, EncodedLines]]:
    """``(rows, encode_lines(...))`` of each batch, in order, encoded by ``ENCODE_THREADS``
    threads up to ``ENCODE_THREADS`` batches ahead of the consumer.

    Why: the encoder releases the GIL, so while the writer deflates one block the next ones are
    being encoded on the other core (measured on 1M members: 0.56 s to 0.46 s for a part).
    A pending batch is kept alive with its future: the encoder reads its buffers.
    """
    pending: deque[tuple[Any, Future[EncodedLines]]] = deque()
    with ThreadPoolExecutor(max_workers=ENCODE_THREADS, thread_name_prefix="encode-lines") as pool:
        for batch in batches:
            columns = [_arrow_column(batch.child(at), batch.offset) for at in range(batch.n_children)]
            pending.append((batch, pool.submit(encode_lines, batch.length, columns, cells)))
            if len(pending) > ENCODE_THREADS:
                done, future = pending.popleft()
                yield done.length, future.result()
        while pending:
            done, future = pending.popleft()
            yield done.length, future.result()


def _count(stats: HashStats, rows: int, encoded: EncodedLines) -> None:
    stats.rows += rows
    stats.no_identifier += rows - encoded.lines
    for kind, missing, dropped in zip(stats.kinds, encoded.missing, encoded.dropped, strict=True):
        stats.missing[kind] += missing
        stats.dropped[kind] += dropped
        stats.hashed[kind] += rows - missing - dropped


def _batches(stream: Any) -> Iterator[Any]:
    """The stream's batches; a failing producer raises ``LineStreamError`` with its own message."""
    batches = iter(stream)
    while True:
        try:
            yield next(batches)
        except StopIteration:
            return
        except RuntimeError as err:  # nanoarrow's error for a failing stream (out of memory, interrupted...)
            raise LineStreamError(_STREAM_PREFIX.sub("", str(err), count=1)) from None


def _arrow_column(column: Any, batch_offset: int) -> ArrowStringColumn:
    view = column.view()
    validity = view.buffer(0)
    return ArrowStringColumn(
        wide=column.schema.format == "U",
        validity=validity if len(validity) else None,
        offsets=view.buffer(1),
        data=view.buffer(2),
        offset=batch_offset + column.offset,
    )


def _check_string_columns(schema: Any, expected: int, query: str) -> None:
    """``query`` (what the source should be, for the message) returns ``expected`` string columns."""
    count, kind = ("one column", "a string column") if expected == 1 else (f"{expected} columns", "string columns")
    if schema.n_children != expected:
        raise LineSourceError(f"{query} returns exactly {count}, not {schema.n_children}")
    for at in range(expected):
        if schema.child(at).format not in _STRING_FORMATS:
            raise LineSourceError(f"{query} returns {kind}, not Arrow type {schema.child(at).format!r}")


def _block_of(column: Any, batch_offset: int, rows: int) -> LineBlock:
    """The lines of one batch: the data buffer between the first and the last offset.

    The batch (a struct array) may itself be a slice: its offset adds to the column's, and its
    length bounds the rows. Null values must take no bytes, as DuckDB and every Arrow writer we
    know make them; the writer's guard would refuse a block where they do not.
    """
    if rows == 0:
        return LineBlock(b"", 0)
    view = column.view()
    first = batch_offset + column.offset
    offsets = memoryview(view.buffer(1))
    start, end = offsets[first], offsets[first + rows]
    data = bytes(memoryview(view.buffer(2))[start:end])
    sliced = batch_offset != 0 or rows != column.length
    nulls = -1 if sliced else column.null_count
    if nulls < 0:  # unknown ("-1" in the C data interface) or for a slice: count the validity bitmap
        nulls = rows - _valid_count(memoryview(view.buffer(0)), first, rows)
    return LineBlock(data, rows - nulls)


def _valid_count(bitmap: memoryview, offset: int, length: int) -> int:
    """Set bits ``offset`` .. ``offset + length - 1`` of an Arrow validity bitmap (LSB first)."""
    if len(bitmap) == 0:  # no bitmap: every value is valid
        return length
    bits = int.from_bytes(bitmap.tobytes(), "little") >> offset
    return (bits & ((1 << length) - 1)).bit_count()
