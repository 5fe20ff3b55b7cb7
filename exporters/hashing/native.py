"""The native line encoder: SHA-256 (OpenSSL) of normalised values straight into CSV lines.

Why: on the export hot path the warehouse normalises identifiers cheaply, but hashing is the
most expensive step left — DuckDB's ``sha256`` costs ~0.4 µs per value, Python's ``hashlib``
~0.75 µs with its per-call overhead, OpenSSL with SHA-NI ~0.05 µs. ``_native.c`` hashes a
whole Arrow batch of normalised values and writes the encoded digests as CSV lines without
one Python object per value, with the GIL released.

The extension is optional (``pyproject.toml``): built by ``pip install`` where a C compiler and
OpenSSL's headers exist; elsewhere ``AVAILABLE`` is false and callers hash inside the warehouse
(``sql_hashed_expression``), which gives the same bytes. The normalised values come from
``sql_normalized_expression`` — the same expressions without the digest — so normalisation
has one definition per dialect either way.

What it writes cannot hold a raw identifier: each cell is a digest encoding (64 hex or 44
base64 characters) or, for formats that send MAIDs unhashed, a value checked to be 36
characters of ``[0-9a-f-]``; anything else is refused. That is why its blocks
(``EncodedBlock``) skip the writer's block guard.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from exporters.hashing.identifier import BASE64_SHAPE, HEX_SHAPE, PLAIN_MAID_SHAPE, EncodedShape, encoded_shape

try:
    from exporters.hashing import _native
except ImportError:  # built without a C compiler or OpenSSL headers: hash in the warehouse
    _native = None

#: Whether the native encoder was built into this installation.
AVAILABLE: bool = _native is not None


class CellEncoding(enum.IntEnum):
    """What the encoder writes for a value (the numbers are ``_native.c``'s)."""

    HEX_DIGEST = 0
    BASE64_DIGEST = 1
    PLAIN_MAID = 2


SHAPES: dict[CellEncoding, EncodedShape] = {
    CellEncoding.HEX_DIGEST: HEX_SHAPE,
    CellEncoding.BASE64_DIGEST: BASE64_SHAPE,
    CellEncoding.PLAIN_MAID: PLAIN_MAID_SHAPE,
}
_BY_SHAPE = {shape: encoding for encoding, shape in SHAPES.items()}


class NativeEncoderMissing(RuntimeError):
    """The extension was not built here; callers check ``AVAILABLE`` first."""


@dataclass(frozen=True, slots=True)
class ArrowStringColumn:
    """The parts of an Arrow string column that ``encode_lines`` reads (a batch's rows)."""

    wide: bool  # int64 offsets (large_string) rather than int32
    validity: Any  # a buffer of the validity bitmap, or None when every value is valid
    offsets: Any
    data: Any
    offset: int  # of the first row, in values


def cell_encoding(kind: str, fmt: str) -> CellEncoding:
    """How ``fmt`` sends identifiers of ``kind`` once normalised (refused types raise): the
    encoding that writes the shape ``encoded_shape`` gives."""
    return _BY_SHAPE[encoded_shape(kind, fmt)]


def encode_lines(
    rows: int, columns: Sequence[ArrowStringColumn], encodings: Sequence[CellEncoding], *, every_row: bool = False
) -> tuple[bytes, int]:
    """CSV lines (and how many) for ``rows`` rows of normalised values, one cell per column.

    Nulls are empty cells; a row without any value is skipped, or with ``every_row`` refused
    (``ValueError`` naming the row, as for a malformed column or a value that is not a plain
    MAID in a plain column — never the value itself).
    """
    if _native is None:
        raise NativeEncoderMissing("the native encoder was not built in this installation")
    if len(columns) != len(encodings):
        raise ValueError("one encoding per column")
    specs = [
        (int(encoding), column.wide, column.validity, column.offsets, column.data, column.offset)
        for column, encoding in zip(columns, encodings, strict=True)
    ]
    return _native.encode_lines(rows, specs, every_row)
