"""The native line encoder: raw identifiers to normalised text, SHA-256 (OpenSSL) and CSV lines.

Why: on the export hot path, normalising identifiers in the warehouse (string functions and
regexes) cost twice what hashing did, and hashing costs DuckDB ~0.4 µs a value and Python's
``hashlib`` ~0.75 µs with its per-call overhead; OpenSSL with SHA-NI takes ~0.05 µs and the
byte rules a few ns. ``_native.c`` takes a whole Arrow batch of raw values, normalises each by
the rules of ``normalize.py`` (emails, MAIDs, external ids; phones need libphonenumber), hashes
it and writes the encoded digests as CSV lines, counting what is missing and what is dropped,
without one Python object per value and with the GIL released.

``normalize.py`` stays the definition of the rules; its two restrictions (ASCII whitespace,
A-Z lowercasing) make them byte rules on UTF-8 that C reproduces exactly, and tests compare the
two on any text. The extension is optional (``pyproject.toml``): built by ``pip install`` where
a C compiler and OpenSSL's headers exist; elsewhere ``AVAILABLE`` is false and callers hash
inside the warehouse (``sql_hashed_expression``), which gives the same bytes.

What it writes cannot hold a raw identifier: each cell is a digest encoding (64 hex or 44
base64 characters) or, for formats that send MAIDs unhashed, a normalised MAID (a lowercase
UUID, the only plain output the encoder allows). That is why its blocks (``EncodedBlock``)
skip the writer's block guard.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from exporters.hashing.identifier import BASE64_SHAPE, HEX_SHAPE, PLAIN_MAID_SHAPE, EncodedShape, encoded_shape
from exporters.hashing.profiles import EMAIL, EXTERNAL_ID, MAID, get_profile

#: Whether the native encoder was built into this installation (``_native`` exists only then).
AVAILABLE: bool
try:
    from exporters.hashing import _native
except ImportError:  # built without a C compiler or OpenSSL headers: hash in the warehouse
    AVAILABLE = False
else:
    AVAILABLE = True


class CellEncoding(enum.IntEnum):
    """What the encoder writes for a normalised value (the numbers are ``_native.c``'s)."""

    HEX_DIGEST = 0
    BASE64_DIGEST = 1
    PLAIN_MAID = 2


class Rule(enum.IntEnum):
    """Which of ``normalize.py``'s rules the encoder applies (the numbers are ``_native.c``'s)."""

    EMAIL = 0
    MAID = 1
    EXTERNAL_ID = 2


#: The identifier types the encoder normalises: all but phones.
RULES: dict[str, Rule] = {EMAIL: Rule.EMAIL, MAID: Rule.MAID, EXTERNAL_ID: Rule.EXTERNAL_ID}

SHAPES: dict[CellEncoding, EncodedShape] = {
    CellEncoding.HEX_DIGEST: HEX_SHAPE,
    CellEncoding.BASE64_DIGEST: BASE64_SHAPE,
    CellEncoding.PLAIN_MAID: PLAIN_MAID_SHAPE,
}
_BY_SHAPE = {shape: encoding for encoding, shape in SHAPES.items()}

#: ``_native.c``'s flags of the email rule.
_DROP_INNER_WHITESPACE = 1
_DROP_PLUS_TAG = 2


class NativeEncoderMissing(RuntimeError):
    """The extension was not built here; callers check ``AVAILABLE`` first."""


@dataclass(frozen=True, slots=True)
class CellRule:
    """How one column's raw values become cells: a normalisation rule with the format's email
    options, then an encoding. Made by ``cell_rule`` from the format's profile."""

    rule: Rule
    encoding: CellEncoding
    gmail_domains: tuple[str, ...] = ()
    drop_inner_whitespace: bool = False
    drop_plus_tag: bool = False

    @property
    def shape(self) -> EncodedShape:
        """The shape of every cell the rule writes."""
        return SHAPES[self.encoding]

    def spec(self) -> tuple[int, int, int, tuple[bytes, ...]]:
        """The rule's part of ``_native.encode_lines``'s column tuple."""
        flags = (_DROP_INNER_WHITESPACE if self.drop_inner_whitespace else 0) | (
            _DROP_PLUS_TAG if self.drop_plus_tag else 0
        )
        return int(self.encoding), int(self.rule), flags, tuple(domain.encode() for domain in self.gmail_domains)


@dataclass(frozen=True, slots=True)
class ArrowStringColumn:
    """The parts of an Arrow string column that ``encode_lines`` reads (a batch's rows)."""

    wide: bool  # int64 offsets (large_string) rather than int32
    validity: Any  # a buffer of the validity bitmap, or None when every value is valid
    offsets: Any
    data: Any
    offset: int  # of the first row, in values


@dataclass(frozen=True, slots=True)
class EncodedLines:
    """What ``encode_lines`` made of a batch: the lines, and per column how many values were
    missing (null or empty) and how many were dropped (invalid once normalised)."""

    data: bytes
    lines: int
    missing: tuple[int, ...]
    dropped: tuple[int, ...]


def cell_rule(kind: str, fmt: str) -> CellRule:
    """How ``fmt`` normalises and sends identifiers of ``kind``. Raises ``HashingConfigError``
    where the format refuses the type, ``ValueError`` for phones (normalised in Python)."""
    encoding = _BY_SHAPE[encoded_shape(kind, fmt)]
    if kind not in RULES:
        raise ValueError(f"the native encoder does not normalise {kind!r} identifiers")
    if kind != EMAIL:
        return CellRule(RULES[kind], encoding)
    profile = get_profile(fmt)
    return CellRule(
        Rule.EMAIL,
        encoding,
        gmail_domains=tuple(sorted(profile.gmail_domains)),
        drop_inner_whitespace=profile.email_drop_inner_whitespace,
        drop_plus_tag=profile.gmail_drop_plus_tag,
    )


def encode_lines(rows: int, columns: Sequence[ArrowStringColumn], cells: Sequence[CellRule]) -> EncodedLines:
    """CSV lines (and counts) for ``rows`` rows of raw values, one cell per column.

    Missing and invalid values are empty cells; a row without any valid value gets no line. A
    malformed column raises ``ValueError`` (naming the column, never a value).
    """
    if not AVAILABLE:
        raise NativeEncoderMissing("the native encoder was not built in this installation")
    if len(columns) != len(cells):
        raise ValueError("one cell rule per column")
    specs = [
        (*cell.spec(), column.wide, column.validity, column.offsets, column.data, column.offset)
        for column, cell in zip(columns, cells, strict=True)
    ]
    data, lines, counts = _native.encode_lines(rows, specs)
    return EncodedLines(data, lines, tuple(pair[0] for pair in counts), tuple(pair[1] for pair in counts))
