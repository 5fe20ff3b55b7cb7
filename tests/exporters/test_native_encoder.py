"""The native line encoder (``exporters.hashing.native``, ``_native.c``): exact digests, cells and
lines, refusals that never echo a value, and malformed Arrow buffers refused instead of read.

Expected values are SHA-256 test vectors (FIPS 180-2 examples) written out here, or computed
with ``hashlib``/``base64`` — never with the encoder itself.
"""

from __future__ import annotations

from typing import Any

import nanoarrow as na
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporters.hashing import native
from exporters.hashing.identifier import BASE64_SHAPE, HEX_SHAPE, PLAIN_MAID_SHAPE
from exporters.hashing.native import ArrowStringColumn, CellEncoding, cell_encoding, encode_lines
from exporters.line_blocks import (
    EncodedBlock,
    LineBlock,
    LineSourceError,
    LineStreamError,
    _arrow_column,
    encoded_line_blocks,
)
from tests.runs.helpers import sha256_b64, sha256_hex

HEX, B64, PLAIN = CellEncoding.HEX_DIGEST, CellEncoding.BASE64_DIGEST, CellEncoding.PLAIN_MAID

# FIPS 180-2, appendix B.1, and the digest of the empty message.
ABC_HEX = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
ABC_B64 = "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
EMPTY_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
MAID = "aece52e7-03ee-455a-b3c4-e57283966239"


def column(
    values: list[str | None], *, wide: bool = False, start: int = 0, stop: int | None = None
) -> ArrowStringColumn:
    array = na.c_array(values, na.large_string() if wide else na.string())
    if start or stop is not None:
        array = array[start:stop]
    return _arrow_column(array, 0)


def encode(columns: list[list[str | None]], encodings: list[CellEncoding], **kwargs: Any) -> tuple[bytes, int]:
    return encode_lines(len(columns[0]), [column(values) for values in columns], encodings, **kwargs)


def test_the_encoder_is_built_by_the_install() -> None:
    # The extension is optional so that an install without a compiler still works; CI and the
    # README's install build it, and a silent build failure must turn this red.
    assert native.AVAILABLE


def test_published_sha256_vectors_in_hex_and_base64() -> None:
    assert encode([["abc"], ["abc"]], [HEX, B64]) == (f"{ABC_HEX},{ABC_B64}\n".encode(), 1)
    assert encode([[""]], [HEX]) == (f"{EMPTY_HEX}\n".encode(), 1)


def test_nulls_are_empty_cells_and_rows_without_a_value_give_no_line() -> None:
    data, lines = encode([["abc", None, None, "x@y.z"], [None, None, MAID, MAID]], [HEX, PLAIN])
    assert lines == 3
    assert data.decode() == f"{ABC_HEX},\n,{MAID}\n{sha256_hex('x@y.z')},{MAID}\n"


def test_every_row_refuses_a_row_without_a_value_by_number() -> None:
    with pytest.raises(ValueError, match=r"^row 2 has no identifier$"):
        encode([["abc", None, "abc"]], [HEX], every_row=True)


@pytest.mark.parametrize(
    "value",
    ["jane@example.com", "AECE52E7-03EE-455A-B3C4-E57283966239", f" {MAID}", MAID[:-1], MAID + "0", "+14155550123"],
)
def test_a_plain_maid_column_refuses_anything_but_a_lowercase_uuid_without_echoing_it(value: str) -> None:
    with pytest.raises(ValueError) as refused:
        encode([[MAID, value]], [PLAIN])
    assert str(refused.value) == "row 2, column 1: not a plain MAID"


def test_utf8_bytes_are_hashed_as_they_are() -> None:
    text = "émile@exemple.fr"
    assert encode([[text]], [B64]) == (f"{sha256_b64(text)}\n".encode(), 1)


def test_slices_and_large_string_offsets_read_the_right_values() -> None:
    values = ["a", None, "b", "c", "d"]
    for wide in (False, True):
        sliced = column(values, wide=wide, start=1, stop=4)
        data, lines = encode_lines(3, [sliced], [HEX])
        assert (data.decode(), lines) == (f"{sha256_hex('b')}\n{sha256_hex('c')}\n", 2)


def test_malformed_buffers_are_refused_not_read() -> None:
    good = column(["abc", "def"])
    too_few = ArrowStringColumn(False, None, good.offsets, good.data, 0)
    with pytest.raises(ValueError, match="shorter than 3 values"):
        encode_lines(3, [too_few], [HEX])
    past_the_data = ArrowStringColumn(False, None, good.offsets, b"ab", 0)
    with pytest.raises(ValueError, match="offsets outside the data buffer"):
        encode_lines(2, [past_the_data], [HEX])
    backwards = ArrowStringColumn(False, None, (b"\x03\x00\x00\x00" b"\x00\x00\x00\x00"), good.data, 0)
    with pytest.raises(ValueError, match="offsets outside the data buffer"):
        encode_lines(1, [backwards], [HEX])
    with pytest.raises(ValueError, match="one encoding per column"):
        encode_lines(2, [good], [HEX, HEX])
    with pytest.raises(ValueError, match="unknown encoding 7"):
        encode_lines(2, [good], [7])  # type: ignore[list-item]


def test_cell_encoding_follows_the_format() -> None:
    assert cell_encoding("email", "sha256") is HEX
    assert cell_encoding("email", "uid2") is B64
    assert cell_encoding("maid", "google") is PLAIN
    assert cell_encoding("maid", "meta") is PLAIN
    assert cell_encoding("maid", "sha256") is HEX
    assert cell_encoding("external_id", "google") is HEX


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(st.one_of(st.none(), _text), st.one_of(st.none(), _text)), min_size=1, max_size=40),
    encodings=st.tuples(st.sampled_from([HEX, B64]), st.sampled_from([HEX, B64])),
)
def test_lines_agree_with_hashlib_for_any_text(rows: list[tuple[str | None, str | None]], encodings: Any) -> None:
    digests = {HEX: sha256_hex, B64: sha256_b64}
    expected = [
        ",".join("" if v is None else digests[encoding](v) for v, encoding in zip(row, encodings, strict=True)) + "\n"
        for row in rows
        if any(value is not None for value in row)
    ]
    columns = [[row[0] for row in rows], [row[1] for row in rows]]
    assert encode(columns, list(encodings)) == ("".join(expected).encode(), len(expected))


# --- reading Arrow streams into EncodedBlocks ------------------------------------------------


def struct_of(*columns: list[str | None]) -> Any:
    children = [na.c_array(values, na.string()) for values in columns]
    schema = na.struct({f"n{at}": na.string() for at in range(len(columns))})
    return na.c_array_from_buffers(schema, len(columns[0]), [None], children=children)


def test_encoded_line_blocks_read_batches_and_slices_of_a_stream() -> None:
    batch = struct_of(["abc", None, "", "x"], [None, None, MAID, MAID])
    blocks = list(encoded_line_blocks(na.c_array_stream(batch[1:4]), [HEX, PLAIN]))
    assert [(block.data.decode(), block.rows) for block in blocks] == [
        (f"{EMPTY_HEX},{MAID}\n{sha256_hex('x')},{MAID}\n", 2)
    ]
    assert blocks[0].shapes == (HEX_SHAPE, PLAIN_MAID_SHAPE)


def test_encoded_blocks_report_refusals_by_source_row_and_check_their_schema() -> None:
    with pytest.raises(LineStreamError, match=r"^rows 1-2: row 2, column 1: not a plain MAID$"):
        list(encoded_line_blocks(na.c_array_stream(struct_of([MAID, "jane@example.com"])), [PLAIN]))
    with pytest.raises(LineSourceError, match=r"^a query of normalised values returns exactly 2 columns, not 1$"):
        list(encoded_line_blocks(na.c_array_stream(struct_of(["a"])), [HEX, HEX]))


def test_only_the_encoder_makes_encoded_blocks_and_splitting_keeps_them() -> None:
    with pytest.raises(TypeError, match=r"^EncodedBlock is made only by encoded_line_blocks$"):
        EncodedBlock(b"x\n", 1, (HEX_SHAPE,))
    (block,) = encoded_line_blocks(na.c_array_stream(struct_of(["a", "b", "c"])), [B64])
    head, rest = block.split(1)
    assert isinstance(head, EncodedBlock) and isinstance(rest, EncodedBlock)
    assert (head.data.decode(), head.rows, rest.rows, rest.shapes) == (f"{sha256_b64('a')}\n", 1, 2, (BASE64_SHAPE,))
    assert type(LineBlock(b"a\nb\n", 2).split(1)[0]) is LineBlock
