"""Writes an export run as gzip CSV parts plus ``manifest.json`` (exports.md, S3/file).

Layout under the store: ``<audience>/<run_id>/{adds,removes,members}-NNNNN.csv.gz`` and,
written last, ``<audience>/<run_id>/manifest.json``; a folder without a manifest is an
unfinished run. Parts are byte-for-byte deterministic (gzip mtime 0, no file name in the
header, ``\\n`` endings, minimal quoting, fixed-size blocks deflated one by one, see
``exporters.gzip_blocks``), so re-running a run writes the same keys with the same bytes,
and a part already present with the same SHA-256 is not uploaded again. Rows are streamed
to a temp file, so memory does not grow with the row count.

Speed (the export hot path): rows are formatted a block at a time by joining cells (encoded
values never need CSV quoting; any block that might is formatted by ``csv.writer`` instead),
and blocks are deflated by ISA-L in a thread pool while the caller produces the next ones.
The CSV text is exactly what ``csv.writer`` writes. A warehouse that can hash and build the
CSV lines itself (DuckDB, on every core) hands them over as whole blocks read from Arrow
(``exporters.line_blocks``) to ``write_parts_blocks``: no Python object per row; each block is
checked whole (``exporters.block_guard``) and written as it is, the same bytes again.

Only hashed identifiers may be written: cells must already be normalized and hashed by
``exporters.hashing``. As a last guard, cells that look like a raw email or phone number are
refused (the error names the row and column, never the value).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import structlog

from exporters.block_guard import BlockGuard, ColumnShapes, RowRefused
from exporters.gzip_blocks import ParallelGzipWriter
from exporters.hashing.identifier import EncodedShape
from exporters.line_blocks import LineBlock
from exporters.objectstore.base import ExportStoreError, ObjectStore

T = TypeVar("T")

log = structlog.get_logger()

PartKind = Literal["adds", "removes", "members"]
PART_KINDS: tuple[PartKind, ...] = ("adds", "removes", "members")
MANIFEST_NAME = "manifest.json"
MAX_PART_INDEX = 99_999
#: Rows formatted per block: bounds memory (a block of two hex columns is ~2 MB) and
#: amortizes per-call costs. The compressed bytes do not depend on it.
_BATCH_ROWS = 16384
#: Cells this short might be a raw phone number: such blocks take the checked, slow path.
_SHORT_CELL = 16
_NONE_AS_EMPTY: dict[object, str] = {None: ""}
_ROW_TYPES = frozenset({tuple, list})
#: The text of a part as it is produced: (CSV bytes, how many rows they hold).
_Encoded = Iterator[tuple[bytes, int]]
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=-]*")
_COLUMN = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class PartInfo:
    """One data file of a run, as recorded in the manifest and in checkpoints."""

    key: str
    kind: PartKind
    index: int
    rows: int
    sha256: str
    bytes: int

    @property
    def name(self) -> str:
        """The file name inside the run folder (what the manifest lists)."""
        return self.key.rsplit("/", 1)[-1]


def split_parts(rows: Iterable[T], rows_per_part: int, *, at_least_one: bool = True) -> Iterator[Iterator[T]]:
    """Lazily cut ``rows`` into consecutive iterators of at most ``rows_per_part`` rows.

    Rows a caller leaves unread in one part are skipped before the next part starts (like
    ``itertools.groupby``). With ``at_least_one``, empty input still yields one empty part,
    so a run always has a (header-only) part 00000 saying "nothing here".
    """
    if rows_per_part < 1:
        raise ValueError("rows_per_part must be at least 1")
    source = iter(rows)
    produced = False
    while True:
        try:
            first = next(source)
        except StopIteration:
            if at_least_one and not produced:
                yield iter(())
            return
        produced = True
        part = itertools.chain([first], itertools.islice(source, rows_per_part - 1))
        yield part
        for _ in part:  # drain what the caller did not read
            pass


def block_parts(blocks: Iterable[LineBlock], rows_per_part: int) -> Iterator[tuple[int, Iterator[LineBlock]]]:
    """``split_parts`` for blocks: ``(part index, its blocks)``, blocks cut at exact row counts so
    that every part but the last holds ``rows_per_part`` rows. Empty input gives no part. Blocks
    a caller leaves unread in one part are skipped (like ``itertools.groupby``)."""
    if rows_per_part < 1:
        raise ValueError("rows_per_part must be at least 1")
    for index, pairs in itertools.groupby(_blocks_by_part(blocks, rows_per_part), key=itemgetter(0)):
        yield index, map(itemgetter(1), pairs)


def _blocks_by_part(blocks: Iterable[LineBlock], rows_per_part: int) -> Iterator[tuple[int, LineBlock]]:
    """``(part index, block)`` pairs: blocks cut so that parts 0, 1, ... hold ``rows_per_part`` rows
    each (the last one fewer). Empty input gives nothing; no part is ever empty."""
    index, room = 0, rows_per_part
    for block in blocks:
        while block.rows:
            if room == 0:
                index, room = index + 1, rows_per_part
            head, block = block.split(room) if block.rows > room else (block, LineBlock(b"", 0))
            yield index, head
            room -= head.rows


def _looks_raw(cell: str) -> bool:
    """True for what is plainly a raw email or phone number rather than a hash."""
    if "@" in cell:
        return True
    digits = cell[1:] if cell.startswith("+") else cell
    return 6 <= len(digits) <= 15 and digits.isdigit()  # E.164 has at most 15 digits


def _joined_block(batch: list[Sequence[str | None]], width: int) -> bytes | None:
    """The block as ``csv.writer`` writes it, built with ``str.join``; ``None`` if unsure.

    Only for the common case, where the result is provably the same: every row has ``width``
    values, each ``str`` or ``None``, none 1-16 characters long (a possible phone number), no
    ``@``, no character CSV quotes (``,`` ``"`` ``\\n``; ``\\r`` too, for later Pythons), no row
    without a value. ``None`` sends the block to the checked path, which quotes exactly and
    raises the precise error for a bad row. Column-wise ``map``s keep the per-row work in C.
    """
    if not set(map(type, batch)) <= _ROW_TYPES or set(map(len, batch)) != {width}:
        return None
    try:
        # itemgetter per column, not zip(*batch): that builds one iterator per row, and so many
        # new container objects set off the cyclic GC over every live row, again and again.
        values = [list(map(itemgetter(position), batch)) for position in range(width)]
        # None becomes "" and every other cell is itself: a str, or not, and then len() or join
        # raises TypeError below and the block takes the checked path.
        columns = [cast("list[str]", list(map(_NONE_AS_EMPTY.get, column, column))) for column in values]
        for column in columns:
            if any(0 < size <= _SHORT_CELL for size in set(map(len, column))):
                return None
        lines = columns[0] if width == 1 else list(map(",".join, zip(*columns, strict=True)))
        rows = len(lines)
        if "," * (width - 1) in lines:  # a row without any value
            return None
        lines.append("")  # the last line's "\n" (cheaper than concatenating a block-sized str)
        text = "\n".join(lines)
        if "@" in text or '"' in text or "\r" in text:
            return None
        if text.count(",") != (width - 1) * rows or text.count("\n") != rows:
            return None  # a value holds a comma or a newline
        return text.encode()
    except (TypeError, UnicodeEncodeError):  # not str, unhashable, lone surrogate: checked path
        return None


def _check_segment(value: str, what: str) -> str:
    if not _SEGMENT.fullmatch(value):
        raise ValueError(f"{what} {value!r} cannot be used as a folder name")
    return value


class DropWriter:
    """Writes the parts and the manifest of one run of one audience to an ObjectStore."""

    def __init__(
        self,
        store: ObjectStore,
        audience: str,
        run_id: str,
        columns: Sequence[str],
        *,
        rows_per_part: int = 1_000_000,
        tmp_dir: Path | None = None,
    ) -> None:
        if rows_per_part < 1:
            raise ValueError("rows_per_part must be at least 1")
        if not columns or len(set(columns)) != len(columns):
            raise ValueError("columns must be a non-empty list of distinct identifier types")
        for column in columns:
            if not _COLUMN.fullmatch(column):
                raise ValueError(f"column {column!r} is not an identifier type name")
        self.store = store
        self.audience = _check_segment(audience, "audience")
        self.run_id = _check_segment(run_id, "run id")
        self.columns = tuple(columns)
        self.rows_per_part = rows_per_part
        self.tmp_dir = tmp_dir
        self.prefix = f"{self.audience}/{self.run_id}/"
        self._parts: dict[tuple[PartKind, int], PartInfo] = {}

    @property
    def manifest_key(self) -> str:
        return self.prefix + MANIFEST_NAME

    @property
    def parts(self) -> list[PartInfo]:
        """Parts written or confirmed so far, in key order."""
        return sorted(self._parts.values(), key=lambda part: part.key)

    def part_key(self, kind: PartKind, index: int) -> str:
        if kind not in PART_KINDS:
            raise ValueError(f"part kind must be one of {', '.join(PART_KINDS)}, not {kind!r}")
        if not 0 <= index <= MAX_PART_INDEX:
            raise ValueError(f"part index must be between 0 and {MAX_PART_INDEX}")
        return f"{self.prefix}{kind}-{index:05d}.csv.gz"

    def write_parts(self, kind: PartKind, rows: Iterable[Sequence[str | None]]) -> list[PartInfo]:
        """Write all ``rows`` of one kind as parts 0, 1, ... of ``rows_per_part`` rows each."""
        return [
            self.write_part(kind, index, part_rows)
            for index, part_rows in enumerate(split_parts(rows, self.rows_per_part))
        ]

    def write_part(self, kind: PartKind, index: int, rows: Iterable[Sequence[str | None]]) -> PartInfo:
        """Stream ``rows`` (hashed values, ``None`` for absent) into one part and upload it.

        If the store already holds this key with the same SHA-256 (a re-run), the upload is
        skipped. On any failure nothing is uploaded and the temp file is removed.
        """
        return self._write(kind, index, self._encoded_rows(rows))

    def write_parts_blocks(
        self, kind: PartKind, blocks: Iterable[LineBlock], shapes: Sequence[EncodedShape | ColumnShapes]
    ) -> list[PartInfo]:
        """``write_parts`` for blocks of CSV lines built by the warehouse (``exporters.line_blocks``):
        parts 0, 1, ... of ``rows_per_part`` rows each, blocks cut at exact row counts."""
        parts = [
            self.write_part_blocks(kind, index, part, shapes) for index, part in block_parts(blocks, self.rows_per_part)
        ]
        return parts or [self.write_part_blocks(kind, 0, (), shapes)]

    def write_part_blocks(
        self, kind: PartKind, index: int, blocks: Iterable[LineBlock], shapes: Sequence[EncodedShape | ColumnShapes]
    ) -> PartInfo:
        """``write_part`` for blocks of CSV lines built by the warehouse.

        ``shapes`` says, per column, what its values look like: one shape
        (``exporters.hashing.encoded_shape``) or several (``sent_shapes``, for removals of tuples
        sent under an earlier format). Every block is checked whole (``exporters.block_guard``):
        the right number of lines and cells, no line without a value, and every cell empty or
        exactly one of its own column's shapes, so a raw email (``@``), phone number (at most 16
        characters) or a device id in a hashed column can never pass (``RowRefused``). The part
        has exactly the bytes ``write_part`` writes for the same cells.
        """
        if len(shapes) != len(self.columns):
            raise ValueError(f"one shape per column: {len(self.columns)} columns, {len(shapes)} shapes")
        per_column = [(shape,) if isinstance(shape, EncodedShape) else tuple(shape) for shape in shapes]
        return self._write(kind, index, self._checked_blocks(blocks, BlockGuard(self.columns, per_column)))

    def _write(self, kind: PartKind, index: int, encoded: _Encoded) -> PartInfo:
        key = self.part_key(kind, index)
        with tempfile.TemporaryDirectory(dir=self.tmp_dir, prefix="drop-") as work:
            path = Path(work) / "part.csv.gz"
            count, sha256, size = self._write_gzip_csv(path, encoded)
            uploaded = self._stored_digest(key) != (sha256, size)
            if uploaded:
                self.store.put_file(key, path, sha256, metadata={"rows": str(count), "kind": kind})
        info = PartInfo(key=key, kind=kind, index=index, rows=count, sha256=sha256, bytes=size)
        self._parts[(kind, index)] = info
        log.info(
            "export.part_written",
            location=self.store.describe(key),
            rows=count,
            bytes=size,
            uploaded=uploaded,
        )
        return info

    def _stored_digest(self, key: str) -> tuple[str | None, int] | None:
        """Digest and size already stored under ``key``; ``None`` if absent or unreadable.

        Write-only drop credentials (PutObject without GetObject) make HEAD fail with 403;
        then we cannot tell, so the part is simply uploaded again.
        """
        try:
            info = self.store.head(key)
        except ExportStoreError as exc:
            if exc.status != 403:
                raise
            log.info("export.part_check_denied", location=self.store.describe(key))
            return None
        return None if info is None else (info.sha256, info.size)

    def _write_gzip_csv(self, path: Path, encoded: _Encoded) -> tuple[int, str, int]:
        """Stream the part's text into ``path`` (bounded memory, compression overlapped)."""
        count = 0
        header = (",".join(self.columns) + "\n").encode()  # names match _COLUMN: no quoting
        with open(path, "wb") as raw:
            sink = ParallelGzipWriter(raw)
            try:
                sink.write(header)
                for data, rows in encoded:
                    if count + rows > self.rows_per_part:
                        raise ValueError(f"part has more than {self.rows_per_part} rows")
                    sink.write(data)
                    count += rows
                sink.close()
            except BaseException:
                sink.abort()
                raise
        return count, sink.digest.hexdigest(), sink.size

    def _encoded_rows(self, rows: Iterable[Sequence[str | None]]) -> _Encoded:
        """Rows formatted ``_BATCH_ROWS`` at a time."""
        source, before = iter(rows), 0
        while batch := list(itertools.islice(source, _BATCH_ROWS)):
            yield self._csv_block(batch, before), len(batch)
            before += len(batch)

    def _checked_blocks(self, blocks: Iterable[LineBlock], guard: BlockGuard) -> _Encoded:
        """Blocks of one part after the guard passed them (it raises for the first bad row)."""
        before = 0
        for block in blocks:
            guard.check(block, before)
            yield block.data, block.rows
            before += block.rows

    def _csv_block(self, batch: list[Sequence[str | None]], before: int) -> bytes:
        """The CSV bytes of ``batch`` (rows ``before + 1`` on), as ``csv.writer`` writes them."""
        block = _joined_block(batch, len(self.columns))
        if block is not None:
            return block
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerows([self._cells(row, before + offset) for offset, row in enumerate(batch, 1)])
        return text.getvalue().encode("utf-8")

    def _cells(self, row: Sequence[str | None], number: int) -> list[str]:
        """Cells of one row ("" for absent), refusing anything that is not a hashed value."""
        if len(row) != len(self.columns):
            raise RowRefused(
                f"row {number} has {len(row)} values, expected {len(self.columns)} ({','.join(self.columns)})"
            )
        cells = ["" if cell is None else cell for cell in row]
        try:
            joined = "".join(cells)
        except TypeError:
            raise TypeError(f"row {number}: values must be str or None") from None
        if not joined:
            raise RowRefused(f"row {number} has no identifier")
        # Fast path: hashes contain no "@" and are longer than any phone number (16 chars).
        if "@" in joined or any(0 < len(cell) <= _SHORT_CELL for cell in cells):
            for column, cell in zip(self.columns, cells, strict=True):
                if _looks_raw(cell):
                    raise RowRefused(f"row {number} column {column}: value is not a hashed identifier")
        return cells

    def existing_part(self, kind: PartKind, index: int, *, expected_sha256: str | None = None) -> PartInfo | None:
        """The part if the store already holds it with a recorded digest (for resume).

        Returns ``None`` when the object is missing, carries no digest, or its digest differs
        from ``expected_sha256`` (the checkpointed one) — the caller then rewrites the part.
        The row count comes from the object's metadata; stores without metadata (local
        files) count the rows by streaming the part.
        """
        key = self.part_key(kind, index)
        info = self.store.head(key)
        if info is None or info.sha256 is None:
            return None
        if expected_sha256 is not None and info.sha256 != expected_sha256:
            return None
        rows_text = info.metadata.get("rows", "")
        rows = int(rows_text) if rows_text.isdigit() else self._count_rows(key)
        part = PartInfo(key=key, kind=kind, index=index, rows=rows, sha256=info.sha256, bytes=info.size)
        self._parts[(kind, index)] = part
        return part

    def _count_rows(self, key: str) -> int:
        """Rows of a stored part: newlines after the header (hashes never contain one)."""
        decompressor = zlib.decompressobj(wbits=31)
        newlines = 0
        for chunk in self.store.iter_bytes(key):
            newlines += decompressor.decompress(chunk).count(b"\n")
        newlines += decompressor.flush().count(b"\n")
        return max(newlines - 1, 0)

    def write_manifest(self, manifest: Mapping[str, Any]) -> str:
        """Write ``manifest.json`` last; adds ``files`` from the parts written or confirmed.

        The caller supplies audience, run id, destination, format, mode, as_of, the
        definition's file, git commit and content hash, and the consent funnel. Keys are
        sorted and the layout fixed, so the same inputs give the same bytes. Each ``files``
        entry's ``key`` is the file name relative to the manifest's folder.
        """
        if "files" in manifest:
            raise ValueError('the manifest "files" entry is filled in by the DropWriter')
        self._check_parts_complete()
        files = [
            {"key": p.name, "kind": p.kind, "rows": p.rows, "sha256": p.sha256, "bytes": p.bytes} for p in self.parts
        ]
        document = {**manifest, "files": files}
        try:
            text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
        except TypeError as exc:
            raise TypeError(f"manifest values must be JSON types: {exc}") from exc
        self.store.put_bytes(self.manifest_key, (text + "\n").encode("utf-8"))
        log.info(
            "export.manifest_written",
            location=self.store.describe(self.manifest_key),
            files=len(files),
        )
        return self.manifest_key

    def _check_parts_complete(self) -> None:
        kinds = {kind for kind, _ in self._parts}
        if not kinds:
            raise ValueError("no parts were written; write at least one part first")
        if "members" in kinds and kinds != {"members"}:
            raise ValueError("a run writes either members parts or adds/removes parts")
        for kind in sorted(kinds):
            indexes = sorted(index for k, index in self._parts if k == kind)
            if indexes != list(range(len(indexes))):
                raise ValueError(f"{kind} parts are not numbered 0..{len(indexes) - 1}")
