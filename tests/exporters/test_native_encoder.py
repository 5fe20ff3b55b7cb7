"""The native line encoder (``exporters.hashing.native``, ``_native.c``): normalisation by each
format's rules, exact digests, cells, lines and counts, refusals that never echo a value, and
malformed Arrow buffers refused instead of read.

Expected values are SHA-256 test vectors (FIPS 180-2 examples) or normalised forms written out
by hand here, hashed with ``hashlib``/``base64`` — never with the encoder itself. One property
compares the encoder with the Python path (``hash_identifier``) on any text: the contract is
that both give the same bytes.
"""

from __future__ import annotations

from typing import Any

import nanoarrow as na
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporters.hashing import (
    FORMATS,
    HashingConfigError,
    HashStats,
    get_profile,
    hash_identifier,
    hash_rows,
    native,
)
from exporters.hashing.identifier import BASE64_SHAPE, HEX_SHAPE, PLAIN_MAID_SHAPE
from exporters.hashing.native import ArrowStringColumn, CellEncoding, CellRule, EncodedLines, Rule, cell_rule
from exporters.line_blocks import (
    EncodedBlock,
    LineBlock,
    LineSourceError,
    _arrow_column,
    encoded_line_blocks,
)
from tests.runs.helpers import sha256_b64, sha256_hex

HEX, B64, PLAIN = CellEncoding.HEX_DIGEST, CellEncoding.BASE64_DIGEST, CellEncoding.PLAIN_MAID
#: Hashes the trimmed value as it is: the rule closest to "just SHA-256", for the test vectors.
AS_IS_HEX = CellRule(Rule.EXTERNAL_ID, HEX)
AS_IS_B64 = CellRule(Rule.EXTERNAL_ID, B64)

# FIPS 180-2, appendix B.1.
ABC_HEX = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
ABC_B64 = "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
MAID = "aece52e7-03ee-455a-b3c4-e57283966239"


def column(
    values: list[str | None], *, wide: bool = False, start: int = 0, stop: int | None = None
) -> ArrowStringColumn:
    array = na.c_array(values, na.large_string() if wide else na.string())
    if start or stop is not None:
        array = array[start:stop]
    return _arrow_column(array, 0)


def encode(columns: list[list[str | None]], cells: list[CellRule], **kwargs: Any) -> EncodedLines:
    return native.encode_lines(len(columns[0]), [column(values) for values in columns], cells, **kwargs)


def cells_of(values: list[str | None], kind: str, fmt: str) -> list[str]:
    """The cell written for each value (empty when missing or invalid), one value per row."""
    encoded = encode([values, ["x"] * len(values)], [cell_rule(kind, fmt), AS_IS_HEX])
    return [line.split(",")[0] for line in encoded.data.decode().splitlines()]


def test_the_encoder_is_built_by_the_install() -> None:
    # The extension is optional so that an install without a compiler still works; CI and the
    # README's install build it, and a silent build failure must turn this red.
    assert native.AVAILABLE


def test_published_sha256_vectors_in_hex_and_base64() -> None:
    assert encode([["abc"], ["abc"]], [AS_IS_HEX, AS_IS_B64]) == EncodedLines(
        f"{ABC_HEX},{ABC_B64}\n".encode(), 1, (0, 0), (0, 0)
    )


# --- the rules, example by example ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "raw", "normalized"),
    [
        ("sha256", "  Jane.Doe+Work@GMAIL.com\t", "jane.doe+work@gmail.com"),
        ("meta", "\nJane.Doe+Work@Example.COM ", "jane.doe+work@example.com"),
        ("google", " Jane. Doe@GoogleMail.com", "janedoe@googlemail.com"),
        ("google", "John.Smith+Promo@gmail.com", "johnsmith+promo@gmail.com"),
        ("google", "j o.h\tn@Example.org", "jo.hn@example.org"),
        ("uid2", "Jane.Doe+Work@gmail.com", "janedoe@gmail.com"),
        ("uid2", "jane.doe+work@googlemail.com", "jane.doe+work@googlemail.com"),
        ("uid2", "x@gmail.com.evil.org", "x@gmail.com.evil.org"),
        ("sha256", "ÉMILE@Exemple.FR", "Émile@exemple.fr"),  # A-Z only
        ("sha256", "\u00a0a@b.c", "\u00a0a@b.c"),  # NBSP is not ASCII whitespace
    ],
)
def test_emails_are_normalised_by_the_formats_rules(fmt: str, raw: str, normalized: str) -> None:
    digest = sha256_b64 if get_profile(fmt).encoding.value == "base64" else sha256_hex
    assert cells_of([raw], "email", fmt) == [digest(normalized)]


@pytest.mark.parametrize(
    ("fmt", "raw"),
    [
        ("sha256", "a@b"),
        ("sha256", "@example.com"),
        ("sha256", "a@b@c.de"),
        ("sha256", "no-at-sign.com"),
        ("sha256", " \t "),
        ("google", ".@gmail.com"),
        ("google", " . @googlemail.com"),
        ("uid2", "+promo@gmail.com"),
        ("uid2", ".+x@gmail.com"),
    ],
)
def test_invalid_emails_are_dropped_and_counted(fmt: str, raw: str) -> None:
    encoded = encode([[raw, None, ""], ["x", "x", "x"]], [cell_rule("email", fmt), AS_IS_HEX])
    assert encoded.data.decode().splitlines() == [f",{sha256_hex('x')}"] * 3
    assert (encoded.missing, encoded.dropped) == ((2, 0), (1, 0))


def test_maids_are_trimmed_lowercased_and_sent_plain_or_hashed() -> None:
    raw = [" AECE52E7-03EE-455A-B3C4-E57283966239\n", MAID]
    assert cells_of(raw, "maid", "google") == [MAID, MAID]
    assert cells_of(raw, "maid", "meta") == [MAID, MAID]
    assert cells_of(raw, "maid", "sha256") == [sha256_hex(MAID)] * 2


@pytest.mark.parametrize(
    "raw",
    [
        "00000000-0000-0000-0000-000000000000",  # limited ad tracking: identifies no one
        MAID[:-1],
        MAID + "0",
        "{" + MAID + "}",
        MAID.replace("-", ""),
        MAID.replace("-", "_"),
        MAID[:-1] + "g",
        MAID[:-1] + "é",
        "+14155550123",
    ],
)
def test_anything_but_a_uuid_is_dropped_as_a_maid_in_every_encoding(raw: str) -> None:
    for fmt in ("google", "sha256"):
        encoded = encode([[raw], ["x"]], [cell_rule("maid", fmt), AS_IS_HEX])
        assert (encoded.data.decode(), encoded.dropped) == (f",{sha256_hex('x')}\n", (1, 0))


def test_external_ids_are_trimmed_and_blank_ones_dropped() -> None:
    encoded = encode([["  CRM-00042 ", " \t", "", "42"]], [cell_rule("external_id", "meta")])
    assert encoded == EncodedLines(f"{sha256_hex('CRM-00042')}\n{sha256_hex('42')}\n".encode(), 2, (1,), (1,))


def test_a_value_longer_than_any_buffer_is_normalised_whole() -> None:
    local = "A." * 50_000
    raw = f"  {local}@GMAIL.com "
    assert cells_of([raw], "email", "google") == [sha256_hex("a" * 50_000 + "@gmail.com")]
    assert cells_of([raw], "email", "sha256") == [sha256_hex(f"{local.lower()}@gmail.com")]


def test_cell_rules_follow_the_format() -> None:
    assert cell_rule("email", "sha256") == CellRule(Rule.EMAIL, HEX)
    assert cell_rule("email", "google") == CellRule(
        Rule.EMAIL, HEX, gmail_domains=("gmail.com", "googlemail.com"), drop_inner_whitespace=True
    )
    assert cell_rule("email", "uid2") == CellRule(Rule.EMAIL, B64, gmail_domains=("gmail.com",), drop_plus_tag=True)
    assert cell_rule("maid", "google") == CellRule(Rule.MAID, PLAIN)
    assert cell_rule("maid", "meta") == CellRule(Rule.MAID, PLAIN)
    assert cell_rule("maid", "sha256") == CellRule(Rule.MAID, HEX)
    assert cell_rule("external_id", "google") == CellRule(Rule.EXTERNAL_ID, HEX)
    assert cell_rule("maid", "google").shape == PLAIN_MAID_SHAPE
    with pytest.raises(ValueError, match=r"^the native encoder does not normalise 'phone' identifiers$"):
        cell_rule("phone", "sha256")
    with pytest.raises(HashingConfigError, match="does not accept identifier type 'maid'"):
        cell_rule("maid", "uid2")


# --- agreement with the Python path on any text ------------------------------------------------

_ASCII_WS = " \t\n\r\x0b\x0c"
_pieces = st.sampled_from(
    ["@", ".", "+", "-", "a", "Z", "é", "İ", "\u00a0", "🦆", "gmail.com", "GoogleMail.com", "GMAIL.COM",
     "example.org", "0", "F", MAID, MAID.upper(), *_ASCII_WS]
)
_identifier_text = st.one_of(
    st.lists(_pieces, max_size=12).map("".join),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
)
_CASES = [(kind, fmt) for kind in native.RULES for fmt in FORMATS if get_profile(fmt).accepts(kind)]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.none(), _identifier_text), min_size=1, max_size=30))
def test_the_encoder_agrees_with_the_python_path_on_any_text(values: list[str | None]) -> None:
    for kind, fmt in _CASES:
        expected = []
        for value in values:
            hashed = hash_identifier(kind, value, fmt)
            expected.append("" if hashed is None else hashed.value)
        assert cells_of(values, kind, fmt) == expected, (kind, fmt)
        # and the counts, as the Python path's HashStats takes them
        stats = HashStats(kinds=(kind,))
        list(hash_rows(fmt, [kind], [(value, None) for value in values], stats))
        encoded = encode([values], [cell_rule(kind, fmt)])
        assert (encoded.missing[0], encoded.dropped[0]) == (stats.missing[kind], stats.dropped[kind]), (kind, fmt)


# --- lines and refusals -------------------------------------------------------------------------


def test_nulls_are_empty_cells_and_rows_without_a_value_give_no_line() -> None:
    encoded = encode([["abc", None, None, "x@y.z"], [None, None, MAID, MAID]], [AS_IS_HEX, cell_rule("maid", "meta")])
    assert encoded == EncodedLines(
        f"{ABC_HEX},\n,{MAID}\n{sha256_hex('x@y.z')},{MAID}\n".encode(), 3, (2, 2), (0, 0)
    )


def test_only_maids_may_be_written_unhashed() -> None:
    for rule in (Rule.EMAIL, Rule.EXTERNAL_ID):
        with pytest.raises(ValueError, match=r"^column 0: only MAIDs are sent unhashed$"):
            encode([["jane@example.com"]], [CellRule(rule, PLAIN)])


def test_slices_and_large_string_offsets_read_the_right_values() -> None:
    values = ["a", None, "b", "c", "d"]
    for wide in (False, True):
        sliced = column(values, wide=wide, start=1, stop=4)
        encoded = native.encode_lines(3, [sliced], [AS_IS_HEX])
        assert (encoded.data.decode(), encoded.lines, encoded.missing) == (
            f"{sha256_hex('b')}\n{sha256_hex('c')}\n",
            2,
            (1,),
        )


def test_malformed_buffers_and_specs_are_refused_not_read() -> None:
    good = column(["abc", "def"])
    too_few = ArrowStringColumn(False, None, good.offsets, good.data, 0)
    with pytest.raises(ValueError, match="shorter than 3 values"):
        native.encode_lines(3, [too_few], [AS_IS_HEX])
    past_the_data = ArrowStringColumn(False, None, good.offsets, b"ab", 0)
    with pytest.raises(ValueError, match="offsets outside the data buffer"):
        native.encode_lines(2, [past_the_data], [AS_IS_HEX])
    backwards = ArrowStringColumn(False, None, (b"\x03\x00\x00\x00" b"\x00\x00\x00\x00"), good.data, 0)
    with pytest.raises(ValueError, match="offsets outside the data buffer"):
        native.encode_lines(1, [backwards], [AS_IS_HEX])
    with pytest.raises(ValueError, match="one cell rule per column"):
        native.encode_lines(2, [good], [AS_IS_HEX, AS_IS_HEX])
    with pytest.raises(ValueError, match="unknown encoding 7"):
        native.encode_lines(2, [good], [CellRule(Rule.EMAIL, 7)])  # type: ignore[arg-type]  # an unknown encoding, on purpose
    with pytest.raises(ValueError, match="unknown rule 9"):
        native.encode_lines(2, [good], [CellRule(9, HEX)])  # type: ignore[arg-type]  # an unknown rule, on purpose
    for huge in (2**63 - 1, 2**62):  # sums that would overflow must not pass the bounds check
        with pytest.raises(ValueError, match="shorter than"):
            native.encode_lines(1, [ArrowStringColumn(False, None, good.offsets, good.data, huge)], [AS_IS_HEX])
        with pytest.raises(ValueError, match="shorter than"):
            native.encode_lines(huge, [good], [AS_IS_HEX])
    # checked once, read without the GIL: a buffer that could change meanwhile is refused
    writable = ArrowStringColumn(False, None, bytearray(bytes(good.offsets)), good.data, 0)
    with pytest.raises(ValueError, match=r"^column buffers must be read-only$"):
        native.encode_lines(2, [writable], [AS_IS_HEX])
    too_many_domains = CellRule(Rule.EMAIL, HEX, gmail_domains=("a.b",) * 5)
    with pytest.raises(ValueError, match="gmail domains are a tuple of at most 4 bytes"):
        native.encode_lines(2, [good], [too_many_domains])


# --- reading Arrow streams into EncodedBlocks ------------------------------------------------


def struct_of(*columns: list[str | None]) -> Any:
    children = [na.c_array(values, na.string()) for values in columns]
    schema = na.struct({f"n{at}": na.string() for at in range(len(columns))})
    return na.c_array_from_buffers(schema, len(columns[0]), [None], children=children)


def test_encoded_line_blocks_read_batches_and_slices_of_a_stream_and_count() -> None:
    batch = struct_of(["abc", None, " ", "x", "y"], [None, None, MAID, MAID.upper(), "0"])
    stats = HashStats(kinds=("external_id", "maid"))
    cells = [AS_IS_HEX, cell_rule("maid", "google")]
    blocks = list(encoded_line_blocks(na.c_array_stream(batch[1:5]), cells, stats))
    assert [(block.data.decode(), block.rows) for block in blocks] == [
        (f",{MAID}\n{sha256_hex('x')},{MAID}\n{sha256_hex('y')},\n", 3)
    ]
    assert blocks[0].shapes == (HEX_SHAPE, PLAIN_MAID_SHAPE)
    assert stats.as_dict() == {
        "rows": 4,
        "no_identifier": 1,
        "hashed": {"external_id": 2, "maid": 2},
        "missing": {"external_id": 1, "maid": 1},
        "dropped": {"external_id": 1, "maid": 1},
    }


def test_encoded_line_blocks_check_their_schema_and_stats() -> None:
    with pytest.raises(LineSourceError, match=r"^a query of raw identifiers returns exactly 2 columns, not 1$"):
        list(encoded_line_blocks(na.c_array_stream(struct_of(["a"])), [AS_IS_HEX, AS_IS_HEX]))
    with pytest.raises(ValueError, match=r"^stats count one identifier type per cell rule$"):
        list(encoded_line_blocks(na.c_array_stream(struct_of(["a"])), [AS_IS_HEX], HashStats(kinds=("a", "b"))))


def test_only_the_encoder_makes_encoded_blocks_and_splitting_keeps_them() -> None:
    with pytest.raises(TypeError, match=r"^EncodedBlock is made only by encoded_line_blocks$"):
        EncodedBlock(b"x\n", 1, (HEX_SHAPE,))
    (block,) = encoded_line_blocks(na.c_array_stream(struct_of(["a", "b", "c"])), [AS_IS_B64])
    head, rest = block.split(1)
    assert isinstance(head, EncodedBlock) and isinstance(rest, EncodedBlock)
    assert (head.data.decode(), head.rows, rest.rows, rest.shapes) == (f"{sha256_b64('a')}\n", 1, 2, (BASE64_SHAPE,))
    assert type(LineBlock(b"a\nb\n", 2).split(1)[0]) is LineBlock
