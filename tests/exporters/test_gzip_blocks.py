"""Parallel block gzip: one valid member, bytes fixed by the blocks alone (not by threads)."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import threading
import zlib
from typing import TYPE_CHECKING

import pytest

from exporters.gzip_blocks import GZIP_HEADER, ParallelGzipWriter

if TYPE_CHECKING:
    from typing_extensions import Buffer

BLOCKS = [hashlib.sha256(str(i).encode()).hexdigest().encode() * (10_000 + i) for i in range(12)]


def written(blocks: list[bytes], workers: int) -> tuple[bytes, ParallelGzipWriter]:
    out = io.BytesIO()
    writer = ParallelGzipWriter(out, workers=workers)
    for block in blocks:
        writer.write(block)
    writer.close()
    return out.getvalue(), writer


def test_the_bytes_do_not_depend_on_the_number_of_threads() -> None:
    outputs = {written(BLOCKS, workers)[0] for workers in (1, 2, 3, 8)}

    assert len(outputs) == 1
    (data,) = outputs
    assert gzip.decompress(data) == b"".join(BLOCKS)


def test_the_bytes_do_not_depend_on_how_the_text_was_cut_into_writes() -> None:
    text = b"".join(BLOCKS)  # ~7.7 MB: three full 2 MiB blocks and a short one
    pieces = [
        [text],
        [text[i : i + 1000] for i in range(0, len(text), 1000)],
        [text[:7], text[7:3_000_001], text[3_000_001:]],
    ]

    outputs = {written(cut, 2)[0] for cut in pieces}

    assert len(outputs) == 1
    assert gzip.decompress(outputs.pop()) == text


def test_output_is_a_single_gzip_member_with_crc_length_and_digest() -> None:
    data, writer = written(BLOCKS, 2)
    text = b"".join(BLOCKS)

    member = zlib.decompressobj(wbits=31)
    assert member.decompress(data) == text
    assert member.eof and member.unused_data == b""
    assert data[:10] == GZIP_HEADER
    assert data[-8:] == struct.pack("<II", zlib.crc32(text), len(text))
    assert (writer.size, writer.digest.hexdigest()) == (len(data), hashlib.sha256(data).hexdigest())


def test_empty_input_is_an_empty_member() -> None:
    data, _ = written([], 2)

    # header, an empty final block (fixed Huffman), CRC-32 of nothing (0), length 0
    assert data == GZIP_HEADER + b"\x03\x00" + b"\x00" * 8
    assert gzip.decompress(data) == b""


def test_empty_blocks_change_nothing() -> None:
    assert written([b"", *BLOCKS[:2], b""], 2)[0] == written(BLOCKS[:2], 2)[0]


class FullDisk(io.BytesIO):
    """Takes the gzip header, then fails every write."""

    def write(self, data: Buffer) -> int:
        if self.tell():
            raise OSError("No space left on device")
        return super().write(data)


def test_abort_and_a_failing_target_stop_the_threads() -> None:
    before = threading.active_count()
    writer = ParallelGzipWriter(io.BytesIO(), workers=2)
    writer.write(BLOCKS[0])
    writer.abort()
    assert threading.active_count() == before

    failing = ParallelGzipWriter(FullDisk(), workers=2)
    failing.write(BLOCKS[0])
    with pytest.raises(OSError, match="No space left on device"):
        failing.close()
    assert threading.active_count() == before
