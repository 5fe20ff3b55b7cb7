"""Drop writer and local file store: layout, exact bytes, atomicity, manifest last."""

from __future__ import annotations

import csv
import errno
import functools
import gzip
import hashlib
import io
import itertools
import json
import os
import re
import string
import struct
import tempfile
import threading
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from isal import isal_zlib

from exporters import drop_writer
from exporters.block_guard import RowRefused
from exporters.drop_writer import DropWriter, PartInfo, split_parts
from exporters.hashing.identifier import BASE64_SHAPE, HEX_SHAPE, PLAIN_MAID_SHAPE, sent_shapes
from exporters.line_blocks import LineBlock
from exporters.objectstore import (
    ExportStoreError,
    FileStore,
    ObjectNotFoundError,
    S3Store,
    open_store,
)

# Stand-ins for hashed identifiers (64 hex chars, as the sha256 profile produces).
E1 = "e1" * 32
E2 = "e2" * 32
E4 = "e4" * 32
P1 = "f1" * 32
P3 = "f3" * 32
P4 = "f4" * 32
# A uid2-style value: base64 of 32 bytes, with the characters CSV could care about.
UID2 = "ab+/cd" * 7 + "e="

MANIFEST_FIELDS = {
    "audience": "vip",
    "run_id": "run-1",
    "destination": "drop",
    "format": "sha256",
    "mode": "mirror",
    "as_of": "2024-05-01T00:00:00Z",
    "definition": {"file": "audiences/vip.aud", "git_commit": "abc123", "content_hash": "c0ffee"},
    "consent_funnel": {"profiles": 4, "consented": 3, "exported": 3},
}


def part_text(root: Path, key: str) -> str:
    return gzip.decompress((root / key).read_bytes()).decode("utf-8")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def all_files(root: Path) -> list[str]:
    """Every file under root, hidden temp files included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "drop"


@pytest.fixture
def writer(root: Path, tmp_path: Path) -> DropWriter:
    work = tmp_path / "work"
    work.mkdir()
    return DropWriter(FileStore(root), "vip", "run-1", ["email", "phone"], rows_per_part=2, tmp_dir=work)


def test_run_layout_parts_then_manifest(writer: DropWriter, root: Path) -> None:
    adds = writer.write_parts("adds", [(E1, P1), (E2, None), (None, P3)])
    writer.write_parts("removes", [(E4, P4)])

    assert [part.rows for part in adds] == [2, 1]
    assert all_files(root) == [
        "vip/run-1/adds-00000.csv.gz",
        "vip/run-1/adds-00001.csv.gz",
        "vip/run-1/removes-00000.csv.gz",
    ]

    assert writer.write_manifest(MANIFEST_FIELDS) == "vip/run-1/manifest.json"

    assert all_files(root) == [
        "vip/run-1/adds-00000.csv.gz",
        "vip/run-1/adds-00001.csv.gz",
        "vip/run-1/manifest.json",
        "vip/run-1/removes-00000.csv.gz",
    ]
    manifest = json.loads((root / "vip/run-1/manifest.json").read_text(encoding="utf-8"))
    run = root / "vip/run-1"
    assert manifest == {
        **MANIFEST_FIELDS,
        "files": [
            {
                "key": "adds-00000.csv.gz",
                "kind": "adds",
                "rows": 2,
                "sha256": sha256_of(run / "adds-00000.csv.gz"),
                "bytes": (run / "adds-00000.csv.gz").stat().st_size,
            },
            {
                "key": "adds-00001.csv.gz",
                "kind": "adds",
                "rows": 1,
                "sha256": sha256_of(run / "adds-00001.csv.gz"),
                "bytes": (run / "adds-00001.csv.gz").stat().st_size,
            },
            {
                "key": "removes-00000.csv.gz",
                "kind": "removes",
                "rows": 1,
                "sha256": sha256_of(run / "removes-00000.csv.gz"),
                "bytes": (run / "removes-00000.csv.gz").stat().st_size,
            },
        ],
    }


def test_header_row_and_empty_cells_are_exact(writer: DropWriter, root: Path) -> None:
    writer.write_parts("adds", [(E1, P1), (E2, None), (None, P3)])

    assert part_text(root, "vip/run-1/adds-00000.csv.gz") == f"email,phone\n{E1},{P1}\n{E2},\n"
    assert part_text(root, "vip/run-1/adds-00001.csv.gz") == f"email,phone\n,{P3}\n"


def test_base64_values_are_not_quoted(root: Path) -> None:
    writer = DropWriter(FileStore(root), "vip", "run-1", ["email", "phone"])
    writer.write_part("members", 0, [(UID2, None), (None, UID2)])

    assert part_text(root, "vip/run-1/members-00000.csv.gz") == f"email,phone\n{UID2},\n,{UID2}\n"


def test_a_row_without_any_identifier_is_refused(writer: DropWriter) -> None:
    with pytest.raises(ValueError, match="row 2 has no identifier"):
        writer.write_part("adds", 0, [(E1, None), (None, None)])


def test_empty_kind_still_writes_a_header_only_part(writer: DropWriter, root: Path) -> None:
    parts = writer.write_parts("removes", [])

    assert [(p.kind, p.index, p.rows) for p in parts] == [("removes", 0, 0)]
    assert part_text(root, "vip/run-1/removes-00000.csv.gz") == "email,phone\n"


def test_gzip_header_has_no_name_and_no_date(writer: DropWriter, root: Path) -> None:
    writer.write_part("adds", 0, [(E1, P1)])

    header = (root / "vip/run-1/adds-00000.csv.gz").read_bytes()[:10]
    # RFC 1952: magic 1f 8b, CM 8 (deflate), FLG 0 (no FNAME), MTIME 0,
    # XFL 4 (fastest compression), OS 255 (unknown: the same on every platform).
    assert header == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"


def test_rerun_writes_identical_bytes(tmp_path: Path) -> None:
    rows = [(E1, P1), (E2, None), (None, P3)]
    first = DropWriter(FileStore(tmp_path / "a"), "vip", "run-1", ["email", "phone"])
    second = DropWriter(FileStore(tmp_path / "b"), "vip", "run-1", ["email", "phone"])

    info_a = first.write_part("adds", 0, rows)
    info_b = second.write_part("adds", 0, iter(rows))
    first.write_manifest(MANIFEST_FIELDS)
    second.write_manifest(dict(reversed(list(MANIFEST_FIELDS.items()))))

    key = "vip/run-1/adds-00000.csv.gz"
    assert sha256_of(tmp_path / "a" / key) == sha256_of(tmp_path / "b" / key)
    assert info_a == info_b
    assert info_a.sha256 == sha256_of(tmp_path / "a" / key)
    manifest_key = "vip/run-1/manifest.json"
    assert (tmp_path / "a" / manifest_key).read_bytes() == (tmp_path / "b" / manifest_key).read_bytes()
    assert (
        (tmp_path / "a" / manifest_key)
        .read_text(encoding="utf-8")
        .startswith('{\n  "as_of": "2024-05-01T00:00:00Z",\n  "audience": "vip",\n')
    )


def test_rerun_into_same_store_keeps_the_existing_file(writer: DropWriter, root: Path) -> None:
    writer.write_part("adds", 0, [(E1, P1)])
    path = root / "vip/run-1/adds-00000.csv.gz"
    inode = path.stat().st_ino

    again = DropWriter(FileStore(root), "vip", "run-1", ["email", "phone"])
    again.write_part("adds", 0, [(E1, P1)])

    assert path.stat().st_ino == inode  # not replaced: same bytes were already there
    again.write_part("adds", 0, [(E2, P1)])
    assert path.stat().st_ino != inode
    assert part_text(root, "vip/run-1/adds-00000.csv.gz") == f"email,phone\n{E2},{P1}\n"


def test_failing_row_source_leaves_nothing_behind(writer: DropWriter, root: Path) -> None:
    def rows() -> Iterator[tuple[str, str]]:
        yield (E1, P1)
        raise RuntimeError("profile source went away")

    with pytest.raises(RuntimeError, match="profile source went away"):
        writer.write_part("adds", 0, rows())

    assert not root.exists() or all_files(root) == []
    assert writer.tmp_dir is not None
    assert list(writer.tmp_dir.iterdir()) == []


def test_failed_fsync_leaves_no_partial_file(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "part.bin"
    source.write_bytes(b"x" * 100_000)
    store = FileStore(root)

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(ExportStoreError) as caught:
        store.put_file("vip/run-1/adds-00000.csv.gz", source, sha256_of(source))

    assert str(caught.value) == (
        f"write failed for {(root / 'vip/run-1/adds-00000.csv.gz').as_uri()}: No space left on device"
    )
    assert all_files(root) == []
    assert store.list() == []


def test_digest_mismatch_is_refused_and_leaves_nothing(root: Path, tmp_path: Path) -> None:
    source = tmp_path / "part.bin"
    source.write_bytes(b"abc")
    store = FileStore(root)

    with pytest.raises(ExportStoreError, match="content does not match its sha256"):
        store.put_file("k/abc.bin", source, "0" * 64)

    assert all_files(root) == []


def test_raw_identifiers_are_refused_without_echoing_them(writer: DropWriter, root: Path) -> None:
    with pytest.raises(ValueError) as caught:
        writer.write_part("adds", 0, [(E1, P1), ("alice@example.com", None)])
    assert str(caught.value) == "row 2 column email: value is not a hashed identifier"

    with pytest.raises(ValueError) as caught:
        writer.write_part("adds", 0, [(None, "+14155550100")])
    assert str(caught.value) == "row 1 column phone: value is not a hashed identifier"
    assert not root.exists() or all_files(root) == []


def test_row_width_and_part_size_are_enforced(writer: DropWriter, root: Path) -> None:
    with pytest.raises(ValueError, match=r"row 1 has 1 values, expected 2 \(email,phone\)"):
        writer.write_part("adds", 0, [(E1,)])
    with pytest.raises(ValueError, match="part has more than 2 rows"):
        writer.write_part("adds", 0, [(E1, P1), (E2, P1), (E4, P1)])
    assert not root.exists() or all_files(root) == []


def test_split_parts_cuts_lazily() -> None:
    assert [list(part) for part in split_parts(range(5), 2)] == [[0, 1], [2, 3], [4]]
    assert [list(part) for part in split_parts([], 3)] == [[]]
    assert [list(part) for part in split_parts([], 3, at_least_one=False)] == []

    parts = split_parts(range(5), 2)
    next(parts)  # first part left unread
    assert list(next(parts)) == [2, 3]

    endless = split_parts(itertools.count(), 3)
    assert list(next(endless)) == [0, 1, 2]
    assert list(next(endless)) == [3, 4, 5]

    with pytest.raises(ValueError):
        next(split_parts(range(3), 0))


def test_existing_part_confirms_a_stored_part(writer: DropWriter, root: Path) -> None:
    written = writer.write_parts("members", [(E1, P1), (E2, None), (None, P3)])

    resumed = DropWriter(FileStore(root), "vip", "run-1", ["email", "phone"], rows_per_part=2)
    assert resumed.existing_part("members", 0) == written[0]
    assert resumed.existing_part("members", 1, expected_sha256=written[1].sha256) == written[1]
    assert resumed.existing_part("members", 1, expected_sha256="0" * 64) is None
    assert resumed.existing_part("members", 2) is None
    assert written[1] == PartInfo(
        key="vip/run-1/members-00001.csv.gz",
        kind="members",
        index=1,
        rows=1,
        sha256=sha256_of(root / "vip/run-1/members-00001.csv.gz"),
        bytes=(root / "vip/run-1/members-00001.csv.gz").stat().st_size,
    )

    resumed.write_manifest(MANIFEST_FIELDS)
    manifest = json.loads((root / "vip/run-1/manifest.json").read_text(encoding="utf-8"))
    assert [(f["key"], f["rows"]) for f in manifest["files"]] == [
        ("members-00000.csv.gz", 2),
        ("members-00001.csv.gz", 1),
    ]


def test_manifest_rules(writer: DropWriter, root: Path) -> None:
    with pytest.raises(ValueError, match="no parts were written"):
        writer.write_manifest(MANIFEST_FIELDS)
    writer.write_part("adds", 1, [(E1, P1)])
    with pytest.raises(ValueError, match=r"adds parts are not numbered 0\.\.0"):
        writer.write_manifest(MANIFEST_FIELDS)
    writer.write_part("adds", 0, [(E1, P1)])
    with pytest.raises(ValueError, match='"files" entry is filled in'):
        writer.write_manifest({**MANIFEST_FIELDS, "files": []})
    writer.write_part("members", 0, [(E1, P1)])
    with pytest.raises(ValueError, match="either members parts or adds/removes"):
        writer.write_manifest(MANIFEST_FIELDS)
    assert "vip/run-1/manifest.json" not in all_files(root)


def test_names_are_checked() -> None:
    store = FileStore(Path("/nonexistent"))
    with pytest.raises(ValueError, match=re.escape("audience '../x' cannot be used as a folder name")):
        DropWriter(store, "../x", "run-1", ["email"])
    with pytest.raises(ValueError, match="column 'E-mail' is not an identifier type name"):
        DropWriter(store, "vip", "run-1", ["E-mail"])
    with pytest.raises(ValueError, match="distinct"):
        DropWriter(store, "vip", "run-1", ["email", "email"])
    writer = DropWriter(store, "vip", "run-1", ["email"])
    with pytest.raises(ValueError, match="part kind must be one of adds, removes, members"):
        writer.part_key("deletes", 0)  # type: ignore[arg-type]  # a wrong kind, on purpose


def test_file_store_basics(root: Path) -> None:
    store = FileStore(root)
    store.put_bytes("a/b.txt", b"one")
    store.put_bytes("a/c.txt", b"two")
    store.put_bytes("b/d.txt", b"three")

    assert store.list() == ["a/b.txt", "a/c.txt", "b/d.txt"]
    assert store.list("a/") == ["a/b.txt", "a/c.txt"]
    assert b"".join(store.iter_bytes("b/d.txt")) == b"three"
    info = store.head("a/b.txt")
    assert info is not None
    assert (info.size, info.sha256) == (3, hashlib.sha256(b"one").hexdigest())
    assert store.head("a/missing.txt") is None
    with pytest.raises(ObjectNotFoundError):
        b"".join(store.iter_bytes("a/missing.txt"))
    for bad in ("../escape", "/abs", "a//b", "a/./b", ""):
        with pytest.raises(ValueError, match="invalid object key"):
            store.put_bytes(bad, b"x")


def test_open_store_parses_destination_uris(tmp_path: Path) -> None:
    file_store = open_store(f"file://{tmp_path}/exports")
    assert isinstance(file_store, FileStore)
    assert file_store.root == tmp_path / "exports"

    s3_store = open_store("s3://my-bucket/exports/daily/", endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3_store, S3Store)
    assert (s3_store.bucket, s3_store.prefix) == ("my-bucket", "exports/daily/")
    assert s3_store.describe("x.json") == "s3://my-bucket/exports/daily/x.json"
    bare = open_store("s3://my-bucket", sse="AES256")
    assert isinstance(bare, S3Store)
    assert (bare.prefix, bare.sse) == ("", "AES256")

    for uri, message in [
        ("http://example.com/x", "unsupported destination URI"),
        ("file://otherhost/x", "file URIs must be local"),
        ("s3:///prefix", "names no bucket"),
    ]:
        with pytest.raises(ValueError, match=message):
            open_store(uri)
    with pytest.raises(ValueError, match="S3 options do not apply"):
        open_store(f"file://{tmp_path}", sse="AES256")
    with pytest.raises(ValueError, match="sse must be one of AES256, aws:kms"):
        open_store("s3://my-bucket/", sse="aes")
    with pytest.raises(ValueError, match='kms_key_id requires sse = "aws:kms"'):
        open_store("s3://my-bucket/", sse="AES256", kms_key_id="alias/k")


def test_exported_files_get_ordinary_permissions(root: Path) -> None:
    previous = os.umask(0o022)
    try:
        FileStore(root).put_bytes("vip/run-1/manifest.json", b"{}")
    finally:
        os.umask(previous)

    assert (root / "vip/run-1/manifest.json").stat().st_mode & 0o777 == 0o644


def test_file_store_lists_below_a_nested_prefix(root: Path) -> None:
    store = FileStore(root)
    for key in ("vip/run-1/a.csv.gz", "vip/run-10/b.csv.gz", "vip/run-2/c.csv.gz", "other/x"):
        store.put_bytes(key, b"x")

    assert store.list("vip/run-1") == ["vip/run-1/a.csv.gz", "vip/run-10/b.csv.gz"]
    assert store.list("vip/run-1/") == ["vip/run-1/a.csv.gz"]
    assert store.list("vip/run-3/") == []
    assert store.list("nope") == []


# --- The fast writer (joined lines, blocks deflated in parallel) against the standard library ---
#
# The reference text is what ``csv.writer`` writes for the same rows. Every part must hold
# exactly that text, whichever path (joined or csv.writer) each block of rows took; the gzip
# bytes themselves are checked for re-run identity and for their block structure.

HEX = "0123456789abcdef"
_hex64 = st.text(HEX, min_size=64, max_size=64)
_base64_44 = st.text(string.ascii_letters + string.digits + "+/", min_size=43, max_size=43).map(lambda s: s + "=")
_uuid = st.uuids().map(str)
# Long enough to pass the short-cell check, with one character CSV must quote (or not).
_long_odd = st.builds(
    lambda value, char, at: value[:at] + char + value[at:],
    _hex64,
    st.sampled_from([",", '"', "\n", "\r", "\x00", " ", "'", ";", "\t", "é"]),
    st.integers(min_value=0, max_value=64),
)
# Values that are not hashes but are legal cells: short words, and text CSV must quote.
_odd = st.one_of(
    st.text(string.ascii_letters + "-_", min_size=1, max_size=20),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30),
    st.sampled_from(["a,b", 'say "hi"', "two\nlines", "cr\rlf", "\x00", "ü" * 20, ",", '"']),
    _long_odd,
)
_cells = st.one_of(st.none(), _hex64, _base64_44, _uuid, _odd)


def reference_csv(columns: list[str], rows: list) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
    return text.getvalue().encode("utf-8")


def looks_raw(cell: str) -> bool:
    """The writer's guard, restated: an "@", or 6-15 digits with an optional "+"."""
    digits = cell[1:] if cell.startswith("+") else cell
    return "@" in cell or (6 <= len(digits) <= 15 and digits.isdigit())


def acceptable(row: tuple) -> bool:
    return any(row) and not any(cell is not None and looks_raw(cell) for cell in row)


def write_and_read(tmp: Path, columns: list[str], rows: list) -> tuple[PartInfo, bytes]:
    writer = DropWriter(FileStore(tmp), "vip", "run-1", columns, rows_per_part=len(rows) + 1)
    info = writer.write_part("members", 0, rows)
    return info, (tmp / info.key).read_bytes()


@settings(max_examples=150, deadline=None)
@given(
    width=st.integers(min_value=1, max_value=3),
    data=st.data(),
    batch_rows=st.sampled_from([1, 2, 3, 7, 16384]),
)
def test_parts_hold_exactly_what_csv_writer_writes(width: int, data: st.DataObject, batch_rows: int) -> None:
    columns = ["email", "phone", "maid"][:width]
    plain = st.tuples(*[st.one_of(st.none(), _hex64, _base64_44, _uuid)] * width)
    mixed = st.tuples(*[_cells] * width)
    rows = data.draw(st.lists(st.one_of(plain, plain, mixed).filter(acceptable), max_size=40))
    as_lists = data.draw(st.booleans())
    if as_lists:
        rows = [list(row) for row in rows]
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as tmp:
        patch.setattr(drop_writer, "_BATCH_ROWS", batch_rows)
        info, stored = write_and_read(Path(tmp), columns, rows)
    assert gzip.decompress(stored) == reference_csv(columns, rows)
    assert (info.rows, info.bytes, info.sha256) == (len(rows), len(stored), hashlib.sha256(stored).hexdigest())


@settings(max_examples=150, deadline=None)
@given(data=st.data(), batch_rows=st.sampled_from([1, 2, 5, 16384]))
def test_hash_like_values_with_one_odd_character_match_the_reference(data: st.DataObject, batch_rows: int) -> None:
    # Aims at the joined path's own checks: everything else about these rows is ordinary.
    plain = st.tuples(st.one_of(st.none(), _hex64), _hex64)
    odd = st.tuples(st.one_of(st.none(), _hex64), _long_odd)
    rows = data.draw(st.lists(st.one_of(plain, odd), min_size=1, max_size=12))
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as tmp:
        patch.setattr(drop_writer, "_BATCH_ROWS", batch_rows)
        _, stored = write_and_read(Path(tmp), ["email", "maid"], rows)
    assert gzip.decompress(stored) == reference_csv(["email", "maid"], rows)


def test_many_blocks_mixing_joined_and_quoted_rows_match_the_reference(tmp_path: Path) -> None:
    # 50,000 rows: several blocks of 16,384; one block holds a cell that needs quoting, one a
    # short non-digit cell (checked, then allowed), the rest take the joined path.
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(50_000)]
    rows: list = [
        (digests[i], None if i % 3 == 0 else digests[-i], None if i % 5 else str(uuid.UUID(int=i)))
        for i in range(50_000)
    ]
    rows[20_000] = (digests[0], 'quoted "value", with comma', None)
    rows[40_000] = ["abc", None, None]

    info, stored = write_and_read(tmp_path, ["email", "phone", "maid"], rows)

    assert gzip.decompress(stored) == reference_csv(["email", "phone", "maid"], rows)
    assert info.rows == 50_000
    lines = gzip.decompress(stored).decode().split("\n")
    assert lines[0] == "email,phone,maid"
    assert lines[1] == f"{digests[0]},,{uuid.UUID(int=0)}"
    assert lines[20_001] == f'{digests[0]},"quoted ""value"", with comma",'
    assert lines[40_001] == "abc,,"


def _deflated_part(text: bytes) -> bytes:
    """A part as the block contract says, built here with ISA-L directly (not the writer):
    the text cut every 2 MiB, each piece deflated on its own and ended with a sync flush, then
    an empty final block, CRC-32 and length."""
    body = b""
    for start in range(0, len(text), 1 << 21):
        compressor = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)
        body += compressor.compress(text[start : start + (1 << 21)]) + compressor.flush(isal_zlib.Z_SYNC_FLUSH)
    trailer = struct.pack("<II", zlib.crc32(text), len(text))
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff" + body + b"\x03\x00" + trailer


def test_a_part_is_one_gzip_member_of_blocks_deflated_one_by_one(tmp_path: Path) -> None:
    # 40,000 rows: ~4.3 MB of CSV, so three blocks, cut mid-line (rows do not matter to them).
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(40_000)]
    rows = [(digests[i], None if i % 3 == 0 else digests[-i]) for i in range(40_000)]
    text = b"email,maid\n" + b"".join(f"{email},{maid or ''}\n".encode() for email, maid in rows)

    _, stored = write_and_read(tmp_path, ["email", "maid"], rows)

    assert stored == _deflated_part(text)
    member = zlib.decompressobj(wbits=31)
    assert member.decompress(stored) == text
    assert member.eof and member.unused_data == b""  # a single gzip member, nothing after it


def test_rerun_gives_the_same_bytes_however_the_rows_arrive(tmp_path: Path) -> None:
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(40_000)]
    rows = [(digests[i], None if i % 4 == 0 else digests[-i]) for i in range(40_000)]
    writer = DropWriter(FileStore(tmp_path / "drop"), "vip", "run-1", ["email", "maid"], rows_per_part=50_000)

    parts = [
        writer.write_part("adds", 0, rows),
        writer.write_part("adds", 1, [list(row) for row in rows]),
        writer.write_part("adds", 2, (row for row in rows)),
        writer.write_parts_blocks("removes", _blocks(_lines(rows), [7, 13_000, 1]), [HEX_SHAPE, HEX_SHAPE])[0],
    ]

    assert len({(part.sha256, part.bytes) for part in parts}) == 1
    assert len({(tmp_path / "drop" / part.key).read_bytes() for part in parts}) == 1


def test_errors_name_the_right_row_in_a_later_block(tmp_path: Path) -> None:
    writer = DropWriter(FileStore(tmp_path / "drop"), "vip", "run-1", ["email", "phone"], tmp_dir=tmp_path)
    good = [(E1, P1)] * 20_000

    with pytest.raises(ValueError) as caught:
        writer.write_part("adds", 0, [*good, (E2, "+4915112345678"), (E1, P1)])
    assert str(caught.value) == "row 20001 column phone: value is not a hashed identifier"

    with pytest.raises(ValueError, match=r"^row 20001 has no identifier$"):
        writer.write_part("adds", 0, [*good, (None, None)])
    with pytest.raises(TypeError, match=r"^row 20002: values must be str or None$"):
        writer.write_part("adds", 0, [*good, (E1, None), (E1, 42)])
    with pytest.raises(ValueError, match=r"^row 20001 has 1 values, expected 2 \(email,phone\)$"):
        writer.write_part("adds", 0, [*good, (E1,)])

    assert not (tmp_path / "drop").exists() or all_files(tmp_path / "drop") == []
    assert [p.name for p in tmp_path.iterdir() if p.name != "drop"] == []  # no temp folders left


def test_a_failing_disk_fails_the_part_cleanly_without_hanging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = open
    threads_before = threading.active_count()

    class FullDisk(io.FileIO):
        written = 0

        def write(self, data: Any) -> int:
            FullDisk.written += len(data)
            if FullDisk.written > 200_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    def open_full_disk(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        return FullDisk(path, "wb") if mode == "wb" else real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(drop_writer, "open", open_full_disk, raising=False)
    writer = DropWriter(FileStore(tmp_path / "drop"), "vip", "run-1", ["email", "phone"], tmp_dir=tmp_path)
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(100_000)]

    with pytest.raises(OSError, match="No space left on device"):
        writer.write_part("adds", 0, [(d, d) for d in digests])

    assert not (tmp_path / "drop").exists()
    assert list(tmp_path.iterdir()) == []
    assert threading.active_count() == threads_before


# --- Blocks of warehouse-built lines (write_parts_blocks): the bytes of the same rows, checked whole ---


def _lines(rows: list) -> list[bytes]:
    return [(",".join("" if c is None else c for c in row) + "\n").encode() for row in rows]


def _blocks(lines: list[bytes], sizes: list[int]) -> Iterator[LineBlock]:
    """The lines cut into blocks of the given sizes, over and over (0 gives an empty block)."""
    at = 0
    for size in itertools.cycle(sizes):
        if at >= len(lines):
            return
        yield LineBlock(b"".join(lines[at : at + size]), len(lines[at : at + size]))
        at += size


_SHAPE_OF = {"hex": HEX_SHAPE, "base64": BASE64_SHAPE, "uuid": PLAIN_MAID_SHAPE}
_CELL_OF = {"hex": _hex64, "base64": _base64_44, "uuid": _uuid}


@settings(max_examples=100, deadline=None)
@given(
    shapes=st.lists(st.sampled_from(sorted(_SHAPE_OF)), min_size=1, max_size=3),
    data=st.data(),
    rows_per_part=st.integers(min_value=1, max_value=7),
    sizes=st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=4).filter(any),
)
def test_blocks_give_the_parts_of_the_same_rows(
    shapes: list[str], data: st.DataObject, rows_per_part: int, sizes: list[int]
) -> None:
    columns = ["email", "phone", "maid"][: len(shapes)]
    cells = [st.one_of(st.none(), _CELL_OF[shape]) for shape in shapes]
    rows = data.draw(st.lists(st.tuples(*cells).filter(any), max_size=25))
    with tempfile.TemporaryDirectory() as tmp:
        writer = DropWriter(FileStore(Path(tmp)), "vip", "run-1", columns, rows_per_part=rows_per_part)
        from_blocks = writer.write_parts_blocks("adds", _blocks(_lines(rows), sizes), [_SHAPE_OF[s] for s in shapes])
        texts = [gzip.decompress((Path(tmp) / part.key).read_bytes()) for part in from_blocks]
        from_rows = writer.write_parts("removes", rows)
    expected_parts = [rows[at : at + rows_per_part] for at in range(0, len(rows), rows_per_part)] or [[]]
    assert texts == [reference_csv(columns, part) for part in expected_parts]
    assert [(p.rows, p.sha256, p.bytes) for p in from_blocks] == [(p.rows, p.sha256, p.bytes) for p in from_rows]


def test_blocks_are_cut_into_parts_at_exact_row_counts(writer: DropWriter, root: Path) -> None:
    rows = [(E1, P1), (E2, None), (None, P3), (E4, P4), (E1, None)]  # writer: 2 rows a part
    shapes = [HEX_SHAPE, HEX_SHAPE]

    parts = writer.write_parts_blocks("adds", _blocks(_lines(rows), [3, 0, 2]), shapes)

    assert [(p.name, p.rows) for p in parts] == [
        ("adds-00000.csv.gz", 2),
        ("adds-00001.csv.gz", 2),
        ("adds-00002.csv.gz", 1),
    ]
    assert part_text(root, "vip/run-1/adds-00001.csv.gz") == f"email,phone\n,{P3}\n{E4},{P4}\n"
    assert part_text(root, "vip/run-1/adds-00002.csv.gz") == f"email,phone\n{E1},\n"
    # exactly full parts: no empty part after them; nothing at all: one header-only part
    assert [p.rows for p in writer.write_parts_blocks("removes", _blocks(_lines(rows[:4]), [4]), shapes)] == [2, 2]
    writer_empty = DropWriter(FileStore(root), "vip", "run-2", ["email", "phone"], rows_per_part=2)
    (empty,) = writer_empty.write_parts_blocks("members", iter(()), shapes)
    assert (empty.name, empty.rows, part_text(root, empty.key)) == ("members-00000.csv.gz", 0, "email,phone\n")


def test_blocks_are_checked_whole_and_the_first_bad_row_is_named(writer: DropWriter, root: Path) -> None:
    good = f"{E1},{P1}\n" * 20_000
    uid2_cell = "ab+/cd" * 7 + "e="
    cases: list[tuple[str, int, str]] = [
        (good + "alice@example.com,\n", 20_001, "row 20001 column email: value is not a hashed identifier"),
        (good + f"{E1},+14155550100\n", 20_001, "row 20001 column phone: value is not a hashed identifier"),
        # digits only are hex characters: refused for their length
        (good + f"{E1},{'1' * 15}\n", 20_001, "row 20001 column phone: value is not a hashed identifier"),
        (good + f"{E1},{uid2_cell}\n", 20_001, "row 20001 column phone: value is not a hashed identifier"),
        (good + f"{E1},{E1}{E1}\n", 20_001, "row 20001 column phone: value is not a hashed identifier"),
        # 32 + 96 characters: together two values' worth, yet neither cell is a value
        (good + f"{E1[:32]},{E1}{E1[:32]}\n", 20_001, "row 20001 column email: value is not a hashed identifier"),
        (good + f"{E1.upper()},\n", 20_001, "row 20001 column email: value is not a hashed identifier"),
        (good + ",\n", 20_001, "row 20001 has no identifier"),
        (",\n" + good, 20_001, "row 1 has no identifier"),
        (good + f"{E1}\n", 20_001, "row 20001 has 1 values, expected 2"),
        # one comma too many and one too few: the block's comma count alone looks right
        (good + f"{E1},{P1},{P3}\n{E2}\n", 20_002, "row 20001 has 3 values, expected 2"),
        (good + f'"{E1}",\n', 20_001, "row 20001 column email: value is not a hashed identifier"),
        (good + f"{E1},{P1}\r\n", 20_001, "row 20001 column phone: value is not a hashed identifier"),
        (good + f"{E1},{P1}", 20_001, "row 20001: the last line does not end with a newline"),
        (good, 20_001, "a block says it holds 20001 lines but holds 20000"),
    ]
    writer.rows_per_part = 30_000
    for text, rows, message in cases:
        with pytest.raises(ValueError) as caught:
            writer.write_parts_blocks("adds", [LineBlock(text.encode(), rows)], [HEX_SHAPE, HEX_SHAPE])
        assert str(caught.value) == message
        assert "alice" not in str(caught.value) and "14155550100" not in str(caught.value)
    assert not root.exists() or all_files(root) == []


def test_plain_maids_and_base64_values_pass_where_their_format_sends_them(writer: DropWriter, root: Path) -> None:
    maid = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    uid2_cell = "ab+/cd" * 7 + "e="
    writer.rows_per_part = 10
    text = f"{E1},{maid}\n,{maid}\n{E2},\n".encode()

    (part,) = writer.write_parts_blocks("adds", [LineBlock(text, 3)], [HEX_SHAPE, PLAIN_MAID_SHAPE])
    assert part_text(root, part.key) == "email,phone\n" + text.decode()

    with pytest.raises(ValueError, match=r"^row 1 column phone: value is not a hashed identifier$"):
        writer.write_parts_blocks("removes", [LineBlock(f"{E1},{maid}\n".encode(), 1)], [HEX_SHAPE, HEX_SHAPE])
    for short in ("4155550100", "abc-123", maid + "0"):  # two value lengths: checked cell by cell
        with pytest.raises(ValueError, match=r"^row 2 column phone: value is not a hashed identifier$"):
            block = LineBlock(f"{E1},{maid}\n{E2},{short}\n".encode(), 2)
            writer.write_parts_blocks("removes", [block], [HEX_SHAPE, PLAIN_MAID_SHAPE])
    (uid2,) = writer.write_parts_blocks("removes", [LineBlock(f"{uid2_cell},\n".encode(), 1)], [BASE64_SHAPE] * 2)
    assert uid2.rows == 1
    with pytest.raises(ValueError, match=r"^one shape per column: 2 columns, 1 shapes$"):
        writer.write_parts_blocks("adds", [], [HEX_SHAPE])


def test_each_column_is_checked_against_its_own_shapes(tmp_path: Path) -> None:
    maid = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    writer = DropWriter(FileStore(tmp_path / "drop"), "vip", "run-1", ["email", "maid"], rows_per_part=10)
    google = [HEX_SHAPE, PLAIN_MAID_SHAPE]  # google/meta: hashed emails, plain MAIDs
    for line, column in ((f"{maid},{maid}", "email"), (f"{E1},{E1}", "maid"), (f"{maid},{E1}", "email")):
        with pytest.raises(RowRefused, match=rf"^row 2 column {column}: value is not a hashed identifier$"):
            writer.write_parts_blocks("adds", [LineBlock(f"{E1},{maid}\n{line}\n".encode(), 2)], google)

    # removals may carry what an earlier format sent: every shape of the type, still per column
    removals = [sent_shapes("email"), sent_shapes("maid")]
    uid2_email = "ab+/cd" * 7 + "e="
    text = f"{E1},{maid}\n{uid2_email},{E2}\n,{maid}\n"
    (part,) = writer.write_parts_blocks("removes", [LineBlock(text.encode(), 3)], removals)
    assert part_text(tmp_path / "drop", part.key) == "email,maid\n" + text
    for line, column in ((f"{maid},", "email"), (f"{E1},{uid2_email}", "maid"), (f"{E1},+14155550100", "maid")):
        with pytest.raises(RowRefused, match=rf"^row 1 column {column}: value is not a hashed identifier$"):
            writer.write_parts_blocks("removes", [LineBlock(f"{line}\n".encode(), 1)], removals)


def _peak_bytes(write: Any) -> int:
    """Peak Python memory allocated while ``write()`` runs (its own allocations only)."""
    import tracemalloc

    tracemalloc.start()
    try:
        write()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_number_of_rows(tmp_path: Path) -> None:
    # Rows and blocks come from generators: a writer that held a part's rows or text would
    # peak 4x higher on 4x the rows (6.5 MB of text against 26 MB); a streaming one stays at
    # its bounded buffers (the blocks in flight).
    def rows(count: int) -> Iterator[tuple[str]]:
        return ((f"{n:064x}",) for n in range(count))

    def blocks(count: int) -> Iterator[LineBlock]:
        for start in range(0, count, 10_000):
            stop = min(count, start + 10_000)
            yield LineBlock("".join(f"{n:064x}\n" for n in range(start, stop)).encode(), stop - start)

    for name, write in (
        ("rows", lambda w, n: w.write_parts("members", rows(n))),
        ("blocks", lambda w, n: w.write_parts_blocks("members", blocks(n), [HEX_SHAPE])),
    ):
        peaks = []
        for count in (100_000, 400_000):
            writer = DropWriter(FileStore(tmp_path / f"{name}-{count}"), "fans", "run-1", ["email"])
            peaks.append(_peak_bytes(functools.partial(write, writer, count)))
        small, large = peaks
        assert large < 1.5 * small, (name, peaks)
