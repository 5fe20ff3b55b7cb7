"""IAB GPP strings, US National section (``usnat``, section ID 7) -> purpose decisions.

There is no maintained Python GPP decoder, so this follows the IAB specifications directly
(Global-Privacy-Platform: "Core/Consent String Specification.md" and "Sections/US-National"):

* the string is ``header~section~section...``; the header is base64url bits: Type Int(6) = 3,
  Version Int(6) = 1, then the section IDs as a Fibonacci range, in the order the sections
  follow;
* the usnat core segment is Version Int(6) (1 or 2), six notice fields Int(2), then
  SaleOptOut, SharingOptOut, TargetedAdvertisingOptOut Int(2) (0 n/a, 1 opted out, 2 did not
  opt out), SensitiveDataProcessing (12 x Int(2) in v1, 16 in v2), KnownChildSensitiveData
  Consents (2 x Int(2) in v1, 3 in v2), PersonalDataConsents, MspaCoveredTransaction,
  MspaOptOutOptionMode, MspaServiceProviderMode Int(2); an optional ``.`` sub-section of type 1
  carries the GPC flag.

Opt-outs become ``denied`` rows: sale or sharing -> ``sale_or_share``, targeted advertising ->
``ads_personalization``; a GPC flag denies both (as a ``Sec-GPC: 1`` signal would).
"""

from __future__ import annotations

from dataclasses import dataclass

from consent_filter.signals.rows import (
    ADS_PERSONALIZATION,
    DENIED,
    SALE_OR_SHARE,
    PurposeDecision,
    SignalInvalid,
)

MAX_GPP_STRING_CHARS = 16 * 1024
USNAT_SECTION_ID = 7
OPTED_OUT = 1

_HEADER_TYPE = 3
_GPP_VERSION = 1
_NOTICE_FIELDS = 6
_GPC_SUBSECTION = 1
#: usnat version -> (SensitiveDataProcessing entries, KnownChildSensitiveDataConsents entries)
_USNAT_LAYOUTS = {1: (12, 2), 2: (16, 3)}
_MAX_SECTION_ID = 1000  # registered IDs are < 30; anything far above is noise
_MAX_FIBONACCI_BITS = 32
_BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SIX_BITS = {char: format(index, "06b") for index, char in enumerate(_BASE64URL)}


def _fibonacci_weights(count: int) -> tuple[int, ...]:
    weights = [1, 2]
    while len(weights) < count:
        weights.append(weights[-1] + weights[-2])
    return tuple(weights)


_FIBONACCI = _fibonacci_weights(_MAX_FIBONACCI_BITS)


@dataclass(frozen=True, slots=True)
class GppUsNatDecision:
    """The usnat fields a consent import acts on (0 n/a, 1 opted out, 2 did not opt out)."""

    section_ids: tuple[int, ...]
    usnat_version: int
    sale_opt_out: int
    sharing_opt_out: int
    targeted_advertising_opt_out: int
    gpc: bool | None  # None when the GPC sub-section is absent

    @property
    def decisions(self) -> tuple[PurposeDecision, ...]:
        denied: list[str] = []
        if self.gpc or OPTED_OUT in (self.sale_opt_out, self.sharing_opt_out):
            denied.append(SALE_OR_SHARE)
        if self.gpc or self.targeted_advertising_opt_out == OPTED_OUT:
            denied.append(ADS_PERSONALIZATION)
        return tuple(PurposeDecision(purpose, DENIED) for purpose in denied)


class _BitReader:
    """Sequential reader of fixed-width and Fibonacci-coded integers in a base64url segment."""

    def __init__(self, segment: str, what: str) -> None:
        try:
            self._bits = "".join(_SIX_BITS[char] for char in segment)
        except KeyError:
            raise SignalInvalid(f"{what} is not base64url") from None
        if not self._bits:
            raise SignalInvalid(f"{what} is empty")
        self._pos = 0
        self._what = what

    def read_int(self, width: int) -> int:
        end = self._pos + width
        if end > len(self._bits):
            raise SignalInvalid(f"{self._what} is truncated")
        value = int(self._bits[self._pos : end], 2)
        self._pos = end
        return value

    def read_fibonacci(self) -> int:
        """Read a Fibonacci code word: weights 1, 2, 3, 5, ... ending at the first ``11``."""
        last = self._bits.find("11", self._pos)
        if last < 0 or last + 1 - self._pos > _MAX_FIBONACCI_BITS:
            raise SignalInvalid(f"{self._what} has a malformed Fibonacci-coded number")
        word = self._bits[self._pos : last + 1]
        self._pos = last + 2
        return sum(weight for weight, bit in zip(_FIBONACCI, word, strict=False) if bit == "1")


def decode_gpp(gpp_string: str) -> GppUsNatDecision:
    """Decode a GPP string's usnat section; raise ``SignalInvalid`` if absent or malformed."""
    value = gpp_string.strip()
    if not value:
        raise SignalInvalid("empty GPP string")
    if len(value) > MAX_GPP_STRING_CHARS:
        raise SignalInvalid(f"GPP string longer than {MAX_GPP_STRING_CHARS} characters")
    header, *sections = value.split("~")
    section_ids = _read_header(header)
    if len(section_ids) != len(sections):
        raise SignalInvalid(
            f"GPP header lists {len(section_ids)} section(s) but the string has {len(sections)}"
        )
    if USNAT_SECTION_ID not in section_ids:
        raise SignalInvalid("no US national section (GPP section 7) in the GPP string")
    usnat = sections[section_ids.index(USNAT_SECTION_ID)]
    return _read_usnat(usnat, section_ids)


def _read_header(header: str) -> tuple[int, ...]:
    reader = _BitReader(header, "GPP header")
    header_type = reader.read_int(6)
    if header_type != _HEADER_TYPE:
        raise SignalInvalid(f"not a GPP string: header type is {header_type}, expected 3")
    gpp_version = reader.read_int(6)
    if gpp_version != _GPP_VERSION:
        raise SignalInvalid(f"GPP version {gpp_version} is not supported (only version 1)")
    return _read_fibonacci_range(reader)


def _read_fibonacci_range(reader: _BitReader) -> tuple[int, ...]:
    """Section IDs: Int(12) count, then per item a group flag and Fibonacci offsets.

    A single item is an offset from the previous ID; a group is an offset to its first ID
    followed by its length (last = first + length).
    """
    ids: list[int] = []
    last = 0
    for _ in range(reader.read_int(12)):
        is_group = reader.read_int(1)
        first = last + reader.read_fibonacci()
        last = first + reader.read_fibonacci() if is_group else first
        if last > _MAX_SECTION_ID:
            raise SignalInvalid(f"GPP header names section ID {last}, which does not exist")
        ids.extend(range(first, last + 1))
    return tuple(ids)


def _read_usnat(section: str, section_ids: tuple[int, ...]) -> GppUsNatDecision:
    core, *subsections = section.split(".")
    reader = _BitReader(core, "US national section")
    usnat_version = reader.read_int(6)
    layout = _USNAT_LAYOUTS.get(usnat_version)
    if layout is None:
        raise SignalInvalid(f"US national section version {usnat_version} is not supported")
    for _ in range(_NOTICE_FIELDS):
        reader.read_int(2)
    sale, sharing, targeted = (_read_opt_out(reader) for _ in range(3))
    sensitive, child = layout
    for _ in range(sensitive + child + 4):  # the consents and the three MSPA fields
        reader.read_int(2)
    return GppUsNatDecision(
        section_ids=section_ids,
        usnat_version=usnat_version,
        sale_opt_out=sale,
        sharing_opt_out=sharing,
        targeted_advertising_opt_out=targeted,
        gpc=_read_gpc(subsections),
    )


def _read_opt_out(reader: _BitReader) -> int:
    value = reader.read_int(2)
    if value > 2:
        raise SignalInvalid("US national section has an opt-out field with the undefined value 3")
    return value


def _read_gpc(subsections: list[str]) -> bool | None:
    gpc = None
    for subsection in subsections:
        reader = _BitReader(subsection, "US national sub-section")
        subsection_type = reader.read_int(2)
        if subsection_type != _GPC_SUBSECTION:
            raise SignalInvalid(f"US national sub-section type {subsection_type} is unknown")
        gpc = bool(reader.read_int(1))
    return gpc
