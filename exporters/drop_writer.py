"""Writes an export run as gzip CSV parts plus ``manifest.json`` (exports.md, S3/file).

Layout under the store: ``<audience>/<run_id>/{adds,removes,members}-NNNNN.csv.gz`` and,
written last, ``<audience>/<run_id>/manifest.json``; a folder without a manifest is an
unfinished run. Parts are byte-for-byte deterministic (gzip mtime 0, no file name in the
header, fixed level, ``\\n`` endings, minimal quoting), so re-running a run writes the same
keys with the same bytes, and a part already present with the same SHA-256 is not uploaded
again. Rows are streamed to a temp file, so memory does not grow with the row count.

Only hashed identifiers may be written: cells must already be normalized and hashed by
``exporters.hashing``. As a last guard, cells that look like a raw email or phone number are
refused (the error names the row and column, never the value).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import itertools
import json
import re
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import structlog

from exporters.objectstore.base import ExportStoreError, ObjectStore

T = TypeVar("T")

log = structlog.get_logger()

PartKind = Literal["adds", "removes", "members"]
PART_KINDS: tuple[PartKind, ...] = ("adds", "removes", "members")
MANIFEST_NAME = "manifest.json"
#: Fixed so that the same rows always give the same bytes. Level 1: hashed identifiers are
#: high-entropy, so level 6 saves only ~2% of size for ~3x the CPU time.
COMPRESSLEVEL = 1
MAX_PART_INDEX = 99_999
#: Rows formatted per batch before compression: bounds memory, amortizes per-call costs.
_BATCH_ROWS = 4096
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


def split_parts(
    rows: Iterable[T], rows_per_part: int, *, at_least_one: bool = True
) -> Iterator[Iterator[T]]:
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


class _HashingSink:
    """File-like target that hashes and counts the compressed bytes as they are written."""

    def __init__(self, target: io.BufferedWriter) -> None:
        self._target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self._target.write(data)

    def flush(self) -> None:
        self._target.flush()


def _looks_raw(cell: str) -> bool:
    """True for what is plainly a raw email or phone number rather than a hash."""
    if "@" in cell:
        return True
    digits = cell[1:] if cell.startswith("+") else cell
    return 6 <= len(digits) <= 15 and digits.isdigit()  # E.164 has at most 15 digits


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

    def write_part(
        self, kind: PartKind, index: int, rows: Iterable[Sequence[str | None]]
    ) -> PartInfo:
        """Stream ``rows`` (hashed values, ``None`` for absent) into one part and upload it.

        If the store already holds this key with the same SHA-256 (a re-run), the upload is
        skipped. On any failure nothing is uploaded and the temp file is removed.
        """
        key = self.part_key(kind, index)
        with tempfile.TemporaryDirectory(dir=self.tmp_dir, prefix="drop-") as work:
            path = Path(work) / "part.csv.gz"
            count, sha256, size = self._write_gzip_csv(path, rows)
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

    def _write_gzip_csv(
        self, path: Path, rows: Iterable[Sequence[str | None]]
    ) -> tuple[int, str, int]:
        """Stream rows into ``path`` in fixed batches (bounded memory, fast C csv writer)."""
        count = 0
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(self.columns)
        source = iter(rows)
        with open(path, "wb") as raw:
            sink = _HashingSink(raw)
            # filename="" keeps the temp name out of the gzip header; mtime=0 fixes the date.
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=sink, compresslevel=COMPRESSLEVEL, mtime=0
            ) as compressed:
                while batch := list(itertools.islice(source, _BATCH_ROWS)):
                    if count + len(batch) > self.rows_per_part:
                        raise ValueError(f"part has more than {self.rows_per_part} rows")
                    writer.writerows(
                        [self._cells(row, count + offset) for offset, row in enumerate(batch, 1)]
                    )
                    count += len(batch)
                    compressed.write(text.getvalue().encode("utf-8"))
                    text.seek(0)
                    text.truncate()
                compressed.write(text.getvalue().encode("utf-8"))  # header of an empty part
        return count, sink.digest.hexdigest(), sink.size

    def _cells(self, row: Sequence[str | None], number: int) -> list[str]:
        """Cells of one row ("" for absent), refusing anything that is not a hashed value."""
        if len(row) != len(self.columns):
            raise ValueError(
                f"row {number} has {len(row)} values, expected {len(self.columns)} "
                f"({','.join(self.columns)})"
            )
        cells = ["" if cell is None else cell for cell in row]
        try:
            joined = "".join(cells)
        except TypeError:
            raise TypeError(f"row {number}: values must be str or None") from None
        if not joined:
            raise ValueError(f"row {number} has no identifier")
        # Fast path: hashes contain no "@" and are longer than any phone number (16 chars).
        if "@" in joined or any(0 < len(cell) <= 16 for cell in cells):
            for column, cell in zip(self.columns, cells, strict=True):
                if _looks_raw(cell):
                    raise ValueError(
                        f"row {number} column {column}: value is not a hashed identifier"
                    )
        return cells

    def existing_part(
        self, kind: PartKind, index: int, *, expected_sha256: str | None = None
    ) -> PartInfo | None:
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
        part = PartInfo(
            key=key, kind=kind, index=index, rows=rows, sha256=info.sha256, bytes=info.size
        )
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
            {"key": p.name, "kind": p.kind, "rows": p.rows, "sha256": p.sha256, "bytes": p.bytes}
            for p in self.parts
        ]
        document = {**manifest, "files": files}
        try:
            text = json.dumps(
                document, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False
            )
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

    def manifest_exists(self) -> bool:
        """True when the run finished: its manifest is in the store."""
        return self.store.head(self.manifest_key) is not None
