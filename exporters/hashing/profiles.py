"""Hashing profiles: what each destination `format` does to each identifier type.

One table (``PROFILES``) drives the Python path, the SQL path and the ``HashedIdentifier``
shape check, so the three can never disagree about a format. The rules are the contract in
``shared/spec/exports.md`` ("Hashing profiles"):

| format | email                                   | phone            | maid     | encoding |
|--------|-----------------------------------------|------------------|----------|----------|
| sha256 | trim, lowercase                         | E.164 with ``+`` | hashed   | hex      |
| google | + no whitespace; gmail/googlemail: dots | E.164 with ``+`` | plain    | hex      |
| meta   | trim, lowercase                         | E.164 digits     | plain    | hex      |
| uid2   | + gmail.com only: dots and ``+tag``     | E.164 with ``+`` | refused  | base64   |

``external_id`` is trimmed and sent as SHA-256 hex for every format except ``uid2``: UID2 only
maps emails and phone numbers (its operator has no input for any other identifier).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from exporters.vocabulary import EMAIL, EXTERNAL_ID, FORMATS, MAID, PHONE
from exporters.vocabulary import IDENTIFIER_TYPES as KINDS

__all__ = ["EMAIL", "EXTERNAL_ID", "FORMATS", "KINDS", "MAID", "PHONE"]  # re-exported names, besides the rest


class Encoding(enum.Enum):
    """How the 32 digest bytes are written out."""

    HEX = "hex"
    BASE64 = "base64"


class MaidMode(enum.Enum):
    """What a format does with mobile advertising ids."""

    HASHED = "hashed"
    PLAIN = "plain"
    REJECTED = "rejected"


class HashingConfigError(ValueError):
    """A format or identifier type that the contract does not define (a configuration error).

    Raised up front, never per row: a destination that asks for something its format cannot
    carry must fail loudly instead of silently sending nothing.
    """


@dataclass(frozen=True, slots=True)
class Profile:
    """Normalization and encoding rules of one destination format."""

    name: str
    encoding: Encoding
    gmail_domains: frozenset[str]
    gmail_drop_plus_tag: bool
    email_drop_inner_whitespace: bool
    phone_keep_plus: bool
    maid: MaidMode
    accepts_external_id: bool

    def accepts(self, kind: str) -> bool:
        """Whether this format can carry identifiers of ``kind`` at all."""
        if kind == MAID:
            return self.maid is not MaidMode.REJECTED
        if kind == EXTERNAL_ID:
            return self.accepts_external_id
        return kind in (EMAIL, PHONE)

    def require(self, kind: str) -> None:
        """Raise ``HashingConfigError`` unless ``kind`` is known and accepted by this format."""
        if kind not in KINDS:
            raise HashingConfigError(f"unknown identifier type {kind!r}; expected one of {', '.join(KINDS)}")
        if not self.accepts(kind):
            raise HashingConfigError(f"format {self.name!r} does not accept identifier type {kind!r}")


_NO_DOMAINS: frozenset[str] = frozenset()

PROFILES: dict[str, Profile] = {
    "sha256": Profile(
        name="sha256",
        encoding=Encoding.HEX,
        gmail_domains=_NO_DOMAINS,
        gmail_drop_plus_tag=False,
        email_drop_inner_whitespace=False,
        phone_keep_plus=True,
        maid=MaidMode.HASHED,
        accepts_external_id=True,
    ),
    "google": Profile(
        name="google",
        encoding=Encoding.HEX,
        gmail_domains=frozenset({"gmail.com", "googlemail.com"}),
        gmail_drop_plus_tag=False,
        email_drop_inner_whitespace=True,
        phone_keep_plus=True,
        maid=MaidMode.PLAIN,
        accepts_external_id=True,
    ),
    "meta": Profile(
        name="meta",
        encoding=Encoding.HEX,
        gmail_domains=_NO_DOMAINS,
        gmail_drop_plus_tag=False,
        email_drop_inner_whitespace=False,
        phone_keep_plus=False,
        maid=MaidMode.PLAIN,
        accepts_external_id=True,
    ),
    "uid2": Profile(
        name="uid2",
        encoding=Encoding.BASE64,
        gmail_domains=frozenset({"gmail.com"}),
        gmail_drop_plus_tag=True,
        email_drop_inner_whitespace=False,
        phone_keep_plus=True,
        maid=MaidMode.REJECTED,
        accepts_external_id=False,
    ),
}

assert tuple(PROFILES) == FORMATS, "every format has one profile, in the vocabulary's order"


def get_profile(fmt: str) -> Profile:
    """The profile of ``fmt``; ``HashingConfigError`` for a format the contract does not name."""
    try:
        return PROFILES[fmt]
    except KeyError:
        raise HashingConfigError(f"unknown hashing format {fmt!r}; expected one of {', '.join(FORMATS)}") from None
