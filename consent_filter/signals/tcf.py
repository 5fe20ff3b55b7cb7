"""IAB TCF v2.2 TC strings -> purpose decisions.

The bit-level decoding is done by the ``iab-tcf`` package (``ConsentV2``, the class behind
``iab_tcf.decode_v2``). That package trusts its input: it reads zeros past the end of a
truncated string, lets base64 noise through, never checks ranges and knows nothing about TCF
policy. A consent import must not grant anything on such input, so this module adds:

* structural checks (``parse_tcf``): base64url alphabet, TCF version 2, every segment long
  enough for the fields it declares, vendor ranges inside ``MaxVendorId``, known publisher
  restriction types, known and non-repeated optional segments;
* policy checks (``decode_tcf``): policy version >= 4 (TCF v2.2), ``IsServiceSpecific`` set,
  no legitimate-interest signal for purposes 1, 3, 4, 5 or 6 (forbidden by TCF v2.2).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass

from iab_tcf import ConsentV2, Reader, version

from consent_filter.signals.rows import (
    ADS_PERSONALIZATION,
    DENIED,
    GRANTED,
    PurposeDecision,
    SignalInvalid,
)

#: Longest TC string accepted. Real strings with the full vendor list are 1-3 KiB.
MAX_TC_STRING_CHARS = 16 * 1024
TCF_VERSION = 2
#: TCF v2.2 strings carry policy version 4 (v2.3: 5); v2.0/v2.1 strings carry 2.
MIN_POLICY_VERSION = 4
#: Purposes that become ``tcf.N`` rows (TCF v2.2 defines 11).
TCF_PURPOSES = tuple(range(1, 12))
#: ``ads_personalization`` needs consent for: store/access information (1), create a
#: personalised ads profile (3) and select personalised ads (4).
ADS_PURPOSES = frozenset({1, 3, 4})
#: Purposes that may only rest on consent. Purpose 1 never allowed legitimate interest;
#: TCF v2.2 removed it for 3-6.
LI_FORBIDDEN_PURPOSES = frozenset({1, 3, 4, 5, 6})
#: Publisher restriction types that stop a vendor from using consent for a purpose:
#: 0 = purpose flatly not allowed, 2 = legitimate interest required (impossible for 1, 3, 4).
BLOCKING_RESTRICTION_TYPES = frozenset({0, 2})

_VALID_RESTRICTION_TYPES = frozenset({0, 1, 2})
#: Bit offset of MaxVendorId in the core string: every field before it has a fixed width.
_VENDOR_SECTION_BIT = 213
_SEGMENT_NAMES = {1: "disclosed vendors", 2: "allowed vendors", 3: "publisher TC"}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class PublisherRestriction:
    """A publisher restriction entry: a purpose, a restriction type and the vendors it covers."""

    purpose: int
    restriction_type: int
    vendor_ranges: tuple[tuple[int, int], ...]

    def covers(self, vendor_id: int) -> bool:
        return any(start <= vendor_id <= end for start, end in self.vendor_ranges)


@dataclass(frozen=True, slots=True)
class TcfCore:
    """The fields of a structurally valid TC string core segment that decisions depend on."""

    version: int
    policy_version: int
    cmp_id: int
    is_service_specific: bool
    purpose_consents: frozenset[int]
    purpose_legitimate_interests: frozenset[int]
    publisher_cc: str
    max_vendor_id: int
    vendor_consents: frozenset[int]
    publisher_restrictions: tuple[PublisherRestriction, ...]


@dataclass(frozen=True, slots=True)
class TcfDecision:
    """What a valid TCF v2.2 string means for the consent table."""

    core: TcfCore
    vendor_id: int | None
    vendor_consented: bool | None  # None when no vendor ID is configured
    ads_personalization: bool

    @property
    def decisions(self) -> tuple[PurposeDecision, ...]:
        """``tcf.1``..``tcf.11`` then ``ads_personalization``, one decision each."""
        consents = self.core.purpose_consents
        rows = [
            PurposeDecision(f"tcf.{purpose}", GRANTED if purpose in consents else DENIED)
            for purpose in TCF_PURPOSES
        ]
        rows.append(
            PurposeDecision(ADS_PERSONALIZATION, GRANTED if self.ads_personalization else DENIED)
        )
        return tuple(rows)


#: Created and LastUpdated (36 bits each) follow the 6-bit version: base64url characters 1-12.
_TIMESTAMP_CHARS = slice(1, 13)
_ZERO_TIMESTAMPS = "A" * 12


def decision_key(tc_string: str) -> str:
    """The TC string with Created and LastUpdated zeroed: what a decision depends on.

    No decision reads those two fields, and they are what makes every user's string different
    (CMPs stamp each choice), so a decode cache keyed by this serves every user who made the
    same choices. Only valid base64url characters are replaced, so a string that is malformed
    there still reaches the decoder's error.
    """
    text = tc_string.strip()
    stamps = text[_TIMESTAMP_CHARS]
    if len(stamps) < 12 or not _BASE64URL.fullmatch(stamps):
        return text
    return text[0] + _ZERO_TIMESTAMPS + text[13:]


def decode_tcf(tc_string: str, *, vendor_id: int | None = None) -> TcfDecision:
    """Decode and validate a TC string; raise ``SignalInvalid`` unless it is valid TCF v2.2.

    ``vendor_id`` is the configured IAB vendor: when given, ``ads_personalization`` also needs
    that vendor's consent bit and no publisher restriction blocking it for purposes 1, 3, 4.
    """
    core = parse_tcf(tc_string)
    _check_policy(core)
    vendor_consented = None if vendor_id is None else vendor_id in core.vendor_consents
    ads = core.purpose_consents >= ADS_PURPOSES
    if vendor_id is not None:
        ads = ads and bool(vendor_consented) and not _vendor_blocked(core, vendor_id)
    return TcfDecision(core, vendor_id, vendor_consented, ads)


def parse_tcf(tc_string: str) -> TcfCore:
    """Decode a TC string with structural validation only (no TCF policy rules).

    Exposed so a v2.0 string can be inspected and so tests can compare decoded bits with
    published reference values; imports must use ``decode_tcf``.
    """
    segments = _split_segments(tc_string.strip())
    core_bytes = _segment_bytes(segments[0])
    found = version(core_bytes)
    if found != TCF_VERSION:
        raise SignalInvalid(f"TCF version {found} is not supported (only version 2 strings)")
    _check_vendor_bitfield_fits(core_bytes, len(segments[0]))
    consent = ConsentV2(core_bytes)
    _check_consumed(consent._reader, len(segments[0]), "core segment")
    _check_vendor_ranges(consent)
    _check_optional_segments(segments[1:])
    return _core_from(consent)


def _split_segments(tc_string: str) -> list[str]:
    if not tc_string:
        raise SignalInvalid("empty TC string")
    if len(tc_string) > MAX_TC_STRING_CHARS:
        raise SignalInvalid(f"TC string longer than {MAX_TC_STRING_CHARS} characters")
    segments = tc_string.split(".")
    if not all(_BASE64URL.fullmatch(segment) for segment in segments):
        raise SignalInvalid("not a TC string: segments must be non-empty unpadded base64url")
    return segments


def _segment_bytes(segment: str) -> bytes:
    """Decode base64url, padding with zero bits so the segment's final bits are kept.

    A plain base64 decode drops the trailing 2 or 4 bits of a segment whose length is not a
    multiple of 4, and iab-tcf would then read those bits as missing.
    """
    padded = segment + "A" * (-len(segment) % 4)
    return base64.urlsafe_b64decode(padded)


def _check_vendor_bitfield_fits(core_bytes: bytes, segment_chars: int) -> None:
    """Fail fast on a vendor consent bitfield longer than the string.

    iab-tcf builds a dict entry per declared vendor before anything can be checked, so a
    short garbage string declaring 65535 vendors would cost ~50 ms; this peeks at the
    fixed-position MaxVendorId and IsRangeEncoding fields first.
    """
    reader = Reader(core_bytes)
    reader.read_bits(_VENDOR_SECTION_BIT)
    max_vendor_id = reader.read_int(16)
    is_range = reader.read_bool()
    needed, available = _VENDOR_SECTION_BIT + 17 + max_vendor_id, segment_chars * 6
    if not is_range and needed > available:
        raise SignalInvalid(
            f"core segment is truncated: its fields need {needed} bits, it has {available}"
        )


def _check_consumed(reader: Reader, segment_chars: int, what: str) -> None:
    """Reject a segment whose declared fields need more bits than it carries.

    iab-tcf has no API for its read position, so this reads its ``_pointer`` (iab-tcf is
    pinned to 0.2.x in pyproject.toml).
    """
    needed, available = reader._pointer, segment_chars * 6
    if needed > available:
        raise SignalInvalid(
            f"{what} is truncated: its fields need {needed} bits, it has {available}"
        )


def _check_optional_segments(segments: Iterable[str]) -> None:
    seen: set[int] = set()
    for segment in segments:
        reader = Reader(_segment_bytes(segment))
        segment_type = reader.read_int(3)
        name = _SEGMENT_NAMES.get(segment_type)
        if name is None:
            raise SignalInvalid(f"unknown TC string segment type {segment_type}")
        if segment_type in seen:
            raise SignalInvalid(f"{name} segment appears twice")
        seen.add(segment_type)
        if segment_type == 3:
            _skip_publisher_tc(reader)
        else:
            _skip_vendor_vector(reader, name)
        _check_consumed(reader, len(segment), f"{name} segment")


def _skip_vendor_vector(reader: Reader, name: str) -> None:
    """Walk a MaxVendorId + bitfield/range vector; only its length and ranges matter here."""
    max_vendor_id = reader.read_int(16)
    if reader.read_bool():
        _check_ranges(reader.read_range(reader.read_int(12)), max_vendor_id, name)
    else:
        reader.read_bits(max_vendor_id)


def _skip_publisher_tc(reader: Reader) -> None:
    reader.read_bits(48)  # publisher purpose consents + legitimate interests
    reader.read_bits(2 * reader.read_int(6))  # custom purpose consents + legitimate interests


def _core_from(consent: ConsentV2) -> TcfCore:
    return TcfCore(
        version=consent.version,
        policy_version=consent.tcf_policy_version,
        cmp_id=consent.cmp_id,
        is_service_specific=bool(consent.is_service_specific),
        purpose_consents=_true_keys(consent.purposes_consent),
        purpose_legitimate_interests=_true_keys(consent.purposes_legitimate_interests),
        publisher_cc=consent.publisher_cc.decode("ascii", errors="replace"),
        max_vendor_id=consent.max_consent_vendor_id,
        vendor_consents=_vendor_consents(consent),
        publisher_restrictions=_publisher_restrictions(consent),
    )


def _check_vendor_ranges(consent: ConsentV2) -> None:
    if consent.is_consent_range_encoding:
        _check_ranges(
            consent.consented_vendors_range, consent.max_consent_vendor_id, "vendor consents"
        )
    if consent.is_interests_range_encoding:
        _check_ranges(
            consent.interests_vendors_range,
            consent.max_interests_vendor_id,
            "vendor legitimate interests",
        )


def _vendor_consents(consent: ConsentV2) -> frozenset[int]:
    if not consent.is_consent_range_encoding:
        return _true_keys(consent.consented_vendors)
    ranges = consent.consented_vendors_range
    return frozenset(vendor for start, end in ranges for vendor in range(start, end + 1))


def _publisher_restrictions(consent: ConsentV2) -> tuple[PublisherRestriction, ...]:
    restrictions = []
    for entry in consent.pub_restriction_entries:
        if entry.restriction_type not in _VALID_RESTRICTION_TYPES:
            raise SignalInvalid(f"publisher restriction type {entry.restriction_type} is undefined")
        if not 1 <= entry.purpose_id <= 24:
            raise SignalInvalid(f"publisher restriction names purpose {entry.purpose_id}")
        _check_ranges(entry.restrictions_range, None, "publisher restriction")
        restrictions.append(
            PublisherRestriction(
                entry.purpose_id, entry.restriction_type, tuple(entry.restrictions_range)
            )
        )
    return tuple(restrictions)


def _check_ranges(ranges: Iterable[tuple[int, int]], max_vendor_id: int | None, what: str) -> None:
    limit = 0xFFFF if max_vendor_id is None else max_vendor_id
    for start, end in ranges:
        if not 1 <= start <= end <= limit:
            raise SignalInvalid(f"{what}: vendor range {start}-{end} is outside 1-{limit}")


def _true_keys(bitfield: dict[int, bool]) -> frozenset[int]:
    return frozenset(key for key, is_set in bitfield.items() if is_set)


def _check_policy(core: TcfCore) -> None:
    if core.policy_version < MIN_POLICY_VERSION:
        raise SignalInvalid(
            f"TCF policy version {core.policy_version} is below {MIN_POLICY_VERSION}: "
            "TCF v2.0/v2.1 strings are not accepted, re-collect consent with a TCF v2.2 CMP"
        )
    if not core.is_service_specific:
        raise SignalInvalid("IsServiceSpecific is not set; TCF v2.2 TC strings must set it")
    forbidden = sorted(core.purpose_legitimate_interests & LI_FORBIDDEN_PURPOSES)
    if forbidden:
        listed = ", ".join(str(purpose) for purpose in forbidden)
        raise SignalInvalid(
            f"legitimate interest is signalled for purpose(s) {listed}, which TCF v2.2 forbids"
        )


def _vendor_blocked(core: TcfCore, vendor_id: int) -> bool:
    return any(
        restriction.purpose in ADS_PURPOSES
        and restriction.restriction_type in BLOCKING_RESTRICTION_TYPES
        and restriction.covers(vendor_id)
        for restriction in core.publisher_restrictions
    )
