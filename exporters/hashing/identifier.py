"""``HashedIdentifier``: the only identifier type exporters accept.

The type checks the *shape* of its value against the format and identifier type, so a raw
email or phone number cannot be wrapped by mistake and reach an export, a log line or a gRPC
message: construction fails, and the error never echoes the rejected value.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from exporters.hashing.digest import phone_hasher, value_hasher
from exporters.hashing.normalize import UUID_PATTERN, ZERO_MAID
from exporters.hashing.profiles import FORMATS, MAID, PHONE, Encoding, MaidMode, get_profile

_is_hex64 = re.compile(r"[0-9a-f]{64}").fullmatch
# 32 bytes are 43 base64 characters and one pad; the last character carries 4 data bits
# and 2 zero bits, which only these 16 characters have (so the value decodes to 32 bytes).
_is_base64_32 = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=").fullmatch
_is_uuid = re.compile(UUID_PATTERN).fullmatch


@dataclass(frozen=True, slots=True)
class EncodedShape:
    """What every value a format sends for one identifier type is made of: its characters and
    its exact length. The block guard of ``DropWriter`` checks whole blocks against these."""

    alphabet: str
    length: int


HEX_SHAPE = EncodedShape("0123456789abcdef", 64)
BASE64_SHAPE = EncodedShape(string.ascii_letters + string.digits + "+/=", 44)
PLAIN_MAID_SHAPE = EncodedShape("0123456789abcdef-", 36)


def encoded_shape(kind: str, fmt: str) -> EncodedShape:
    """The shape of the values ``fmt`` sends for ``kind`` (a looser test than ``is_encoded_value``)."""
    profile = get_profile(fmt)
    profile.require(kind)
    if kind == MAID and profile.maid is MaidMode.PLAIN:
        return PLAIN_MAID_SHAPE
    return HEX_SHAPE if profile.encoding is Encoding.HEX else BASE64_SHAPE


def sent_shapes(kind: str) -> tuple[EncodedShape, ...]:
    """Every shape some format sends for ``kind``: what a removal of a tuple sent under an
    earlier format of the destination may look like (hex digest, base64 digest, plain MAID)."""
    shapes = {encoded_shape(kind, fmt) for fmt in FORMATS if get_profile(fmt).accepts(kind)}
    return tuple(sorted(shapes, key=lambda shape: shape.length, reverse=True))


def is_encoded_value(value: object, kind: str, fmt: str) -> bool:
    """Whether ``value`` has the exact shape ``fmt`` sends for identifiers of ``kind``."""
    profile = get_profile(fmt)
    profile.require(kind)
    if not isinstance(value, str):
        return False
    if kind == MAID and profile.maid is MaidMode.PLAIN:
        return _is_uuid(value) is not None and value != ZERO_MAID
    if profile.encoding is Encoding.HEX:
        return _is_hex64(value) is not None
    return _is_base64_32(value) is not None


@dataclass(frozen=True, slots=True, repr=False)
class HashedIdentifier:
    """An identifier as it leaves: hashed and encoded (or a plain MAID where the format says so).

    ``value`` must be 64 lowercase hex characters (hex formats), 44 base64 characters of 32
    bytes (``uid2``) or a lowercase, non-zero MAID UUID (``google``/``meta`` MAIDs).
    """

    value: str
    kind: str
    fmt: str

    def __post_init__(self) -> None:
        if not is_encoded_value(self.value, self.kind, self.fmt):
            raise ValueError(
                f"not a hashed {self.kind} for format {self.fmt!r} (value withheld); "
                "normalize and hash it with hash_identifier() first"
            )

    def __repr__(self) -> str:
        # A plain MAID is a raw device id: keep it out of reprs (and so out of logs).
        shown = "<device id>" if _is_uuid(self.value) else self.value
        return f"HashedIdentifier(kind={self.kind!r}, fmt={self.fmt!r}, value={shown!r})"

    def __str__(self) -> str:
        return self.value


def hash_identifier(kind: str, raw: str | None, fmt: str, country: str | None = None) -> HashedIdentifier | None:
    """Normalize, hash and encode one identifier; ``None`` if missing or invalid.

    ``country`` (ISO 3166 alpha-2) is only used for phone numbers without a leading ``+``.
    Raises ``HashingConfigError`` for an unknown format or a type the format refuses.
    """
    profile = get_profile(fmt)
    encoded = phone_hasher(profile)(raw, country) if kind == PHONE else value_hasher(kind, profile)(raw)
    return None if encoded is None else HashedIdentifier(encoded, kind, fmt)
