"""Per-identifier "normalize, then SHA-256, then encode" functions, built once per format.

Builders return plain closures with every lookup bound to a local, because these run once per
member per identifier on the export hot path (``batch.hash_rows``) and attribute lookups and
extra calls are a measurable share of the per-value cost in CPython.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Callable
from functools import cache

from exporters.hashing.normalize import (
    email_function,
    external_id_normalizer,
    maid_normalizer,
    phone_e164,
)
from exporters.hashing.profiles import (
    EMAIL,
    EXTERNAL_ID,
    MAID,
    PHONE,
    Encoding,
    MaidMode,
    Profile,
)

Encoder = Callable[[str], "str | None"]
ValueHasher = Callable[[object], "str | None"]
PhoneHasher = Callable[[object, "str | None"], "str | None"]


def encoder(encoding: Encoding) -> Encoder:
    """SHA-256 over UTF-8 then hex or base64; ``None`` for text that is not valid Unicode.

    Lone surrogates cannot be encoded as UTF-8 and never come out of a warehouse; treating
    them as invalid keeps one odd value from failing a whole export.
    """
    sha256 = hashlib.sha256
    if encoding is Encoding.HEX:

        def encode_hex(s: str) -> str | None:
            try:
                return sha256(s.encode()).hexdigest()
            except UnicodeEncodeError:
                return None

        return encode_hex
    b2a = binascii.b2a_base64

    def encode_base64(s: str) -> str | None:
        try:
            return b2a(sha256(s.encode()).digest(), newline=False).decode("ascii")
        except UnicodeEncodeError:
            return None

    return encode_base64


def _maid_hasher(profile: Profile) -> ValueHasher:
    normalize = maid_normalizer
    if profile.maid is MaidMode.PLAIN:

        def plain_maid(raw: object) -> str | None:
            return normalize(raw) if raw else None

        return plain_maid
    sha256 = hashlib.sha256
    b2a = binascii.b2a_base64
    hex_digest = profile.encoding is Encoding.HEX

    def hash_maid(raw: object) -> str | None:
        if not raw:
            return None
        s = normalize(raw)
        if s is None:
            return None
        # A normalized MAID is ASCII: encoding cannot fail. Digest inlined (hot path).
        digest = sha256(s.encode())
        return digest.hexdigest() if hex_digest else b2a(digest.digest(), newline=False).decode()

    return hash_maid


def _external_id_hasher(profile: Profile) -> ValueHasher:
    normalize = external_id_normalizer
    encode = encoder(profile.encoding)

    def hash_external_id(raw: object) -> str | None:
        if raw is None or raw == "":
            return None
        s = normalize(raw)
        return None if s is None else encode(s)

    return hash_external_id


@cache
def value_hasher(kind: str, profile: Profile) -> ValueHasher:
    """``raw -> encoded | None`` for email, maid or external_id (``require`` checked first)."""
    profile.require(kind)
    if kind == EMAIL:
        return email_function(profile, profile.encoding)
    if kind == MAID:
        return _maid_hasher(profile)
    if kind == EXTERNAL_ID:
        return _external_id_hasher(profile)
    raise ValueError(f"{kind!r} needs a country: use phone_hasher")


@cache
def phone_hasher(profile: Profile) -> PhoneHasher:
    """``(raw, country) -> encoded | None`` for phones under ``profile``."""
    profile.require(PHONE)
    e164 = phone_e164
    encode = encoder(profile.encoding)
    keep_plus = profile.phone_keep_plus

    def hash_phone(raw: object, country: str | None) -> str | None:
        if raw is None or raw == "":
            return None
        s = e164(raw if raw.__class__ is str else str(raw), country)
        if s is None:
            return None
        return encode(s if keep_plus else s[1:])

    return hash_phone
