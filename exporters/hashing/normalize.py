"""Identifier normalization, exactly as the destination formats publish it.

Two deliberate restrictions keep the Python path and the warehouse SQL path (``sql.py``)
byte-identical on every input, so a run may hash in either place and get the same export:

* **Whitespace** is ASCII whitespace only: space, tab, LF, CR, VT and FF (``WHITESPACE``).
  ``str.strip()`` without arguments would also remove Unicode spaces (NBSP, U+2003, U+1C..1F,
  U+0085, ...), which SQL ``TRIM`` never does; the platforms' rules speak of "spaces" too.
* **Lowercasing** is ASCII-only (A-Z to a-z). UID2 specifies exactly that; full Unicode case
  mapping differs between Python (``'İ'.lower()`` is two code points), DuckDB and PostgreSQL
  (whose result depends on the database's ctype), so it cannot be reproduced exactly in SQL.
  Non-ASCII letters are hashed as given.

An email is dropped (``None``) unless, after normalization, it has exactly one ``@``, a
non-empty local part and a dot in its domain. Phones go through ``phonenumbers``
(libphonenumber): a leading ``+`` means international, anything else is read in the profile's
country; a number libphonenumber does not call valid is dropped. Nothing is guessed.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import string
import uuid
from collections.abc import Callable
from functools import cache, lru_cache

import phonenumbers

from exporters.hashing.profiles import Encoding, Profile, get_profile

WHITESPACE = " \t\n\r\x0b\x0c"
ZERO_MAID = "00000000-0000-0000-0000-000000000000"
PHONE_CACHE_SIZE = 1 << 15

#: A normalized MAID: a lowercase UUID (also the SQL path's check, ``sql.py``).
UUID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

_LOWER_TABLE = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_DROP_WS_TABLE = str.maketrans("", "", WHITESPACE)
_is_uuid = re.compile(UUID_PATTERN).fullmatch
_E164 = phonenumbers.PhoneNumberFormat.E164

#: Takes a warehouse cell: text, ``None``, or any other value (read in its text form).
EmailFunction = Callable[[object], "str | None"]


@cache
def email_function(profile: Profile, encoding: Encoding | None = None) -> EmailFunction:
    """``raw -> normalized`` (``encoding=None``) or ``raw -> encoded digest`` for emails.

    One template for both so the hashed value is by construction the hash of what
    ``normalize_email`` returns; the digest is inlined because this closure runs once per
    member on the export hot path, where an extra Python call costs ~10% of the value.
    """
    gmail_domains = profile.gmail_domains
    drop_plus = profile.gmail_drop_plus_tag
    drop_inner_ws = profile.email_drop_inner_whitespace
    ws = WHITESPACE
    lower_table = _LOWER_TABLE
    drop_ws_table = _DROP_WS_TABLE
    hashing = encoding is not None
    hex_digest = encoding is Encoding.HEX
    sha256 = hashlib.sha256
    b2a = binascii.b2a_base64

    def email(raw: object) -> str | None:
        if not raw:
            return None
        s = (raw if raw.__class__ is str else str(raw)).strip(ws)
        # Cheap pre-check (tab, LF, CR, VT and FF are not printable); translate is rare.
        if drop_inner_ws and (" " in s or not s.isprintable()):
            s = s.translate(drop_ws_table)
        s = s.lower() if s.isascii() else s.translate(lower_table)
        local, _, domain = s.partition("@")
        if not local or "@" in domain or "." not in domain:
            return None
        if domain in gmail_domains:
            if drop_plus:
                local = local.partition("+")[0]
            local = local.replace(".", "")
            if not local:
                return None
            s = local + "@" + domain
        if not hashing:
            return s
        try:
            digest = sha256(s.encode())
        except UnicodeEncodeError:  # lone surrogates: not text any warehouse holds
            return None
        if hex_digest:
            return digest.hexdigest()
        return b2a(digest.digest(), newline=False).decode("ascii")

    return email


def normalize_email(raw: str | None, fmt: str) -> str | None:
    """The normalized email under format ``fmt``, or ``None`` if missing or invalid."""
    return email_function(get_profile(fmt))(raw)


@lru_cache(maxsize=PHONE_CACHE_SIZE)
def phone_e164(raw: str, country: str | None) -> str | None:
    """E.164 (with ``+``) of a phone, parsed in ``country`` unless it starts with ``+``.

    Cached per (raw, country): libphonenumber costs tens of microseconds a number, and the
    same number often appears many times (shared household lines, test numbers, re-runs).
    """
    s = raw.strip(WHITESPACE)
    if not s:
        return None
    region = country.strip(WHITESPACE).upper() if country else None
    try:
        number = phonenumbers.parse(s, region or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, _E164)


def normalize_phone(raw: str | int | None, country: str | None, fmt: str) -> str | None:
    """The phone as ``fmt`` sends it (E.164, without ``+`` for ``meta``), or ``None``."""
    profile = get_profile(fmt)
    if raw is None:
        return None
    e164 = phone_e164(raw if isinstance(raw, str) else str(raw), country)
    if e164 is None or profile.phone_keep_plus:
        return e164
    return e164[1:]


def maid_normalizer(raw: object) -> str | None:
    """Lowercase UUID form of an IDFA / AAID; ``None`` if not a UUID or the all-zero id.

    The all-zero id is what iOS reports when the user limited ad tracking: it identifies no
    one, and sending it would merge every such device into one "member". ``uuid.UUID``
    values (a PostgreSQL ``uuid`` column), like any other non-text cell, are taken in their
    text form.
    """
    s = (raw if isinstance(raw, str) else str(raw)).strip(WHITESPACE)
    if not s.isascii():
        return None
    s = s.lower()
    if _is_uuid(s) is None or s == ZERO_MAID:
        return None
    return s


def normalize_maid(raw: str | uuid.UUID | None, fmt: str) -> str | None:
    """The normalized MAID for ``fmt``; raises ``HashingConfigError`` where MAIDs are refused."""
    get_profile(fmt).require("maid")
    return None if raw is None else maid_normalizer(raw)


def external_id_normalizer(raw: object) -> str | None:
    """Trimmed external id (ints are written in decimal, any other cell in its text form);
    ``None`` when blank."""
    s = (raw if isinstance(raw, str) else str(raw)).strip(WHITESPACE)
    return s or None


def normalize_external_id(raw: str | int | None, fmt: str) -> str | None:
    """The normalized external id for ``fmt`` (refused by ``uid2``)."""
    get_profile(fmt).require("external_id")
    return None if raw is None else external_id_normalizer(raw)
