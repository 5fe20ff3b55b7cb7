"""The shapes every signal decoder produces: consent rows, line errors and purpose decisions.

Decoders never see profile keys or capture times; they turn one raw signal into a tuple of
``PurposeDecision`` values. The reader combines those with the CSV line into ``ConsentRow``
values for the consent table (see shared/spec/consent.md, "Consent table").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from types import MemberDescriptorType
from typing import NamedTuple

GRANTED = "granted"
DENIED = "denied"

ADS_PERSONALIZATION = "ads_personalization"
SALE_OR_SHARE = "sale_or_share"

#: Signals that opt a person out of sale/share and targeted ads (USP ``Y``, GPC, GPP opt-outs)
#: all deny the same two purposes, in this order.
OPT_OUT_PURPOSES: tuple[str, ...] = (SALE_OR_SHARE, ADS_PERSONALIZATION)

_PREVIEW_CHARS = 12


class SignalInvalid(ValueError):
    """A raw signal that cannot be trusted; ``reason`` says what is wrong, without the signal."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PurposeDecision(NamedTuple):
    """One (purpose, status) outcome of a decoded signal, before it is tied to a profile."""

    purpose: str
    status: str


def opt_out_denials() -> tuple[PurposeDecision, ...]:
    """The rows an opt-out of sale/share and targeted advertising turns into."""
    return tuple(PurposeDecision(purpose, DENIED) for purpose in OPT_OUT_PURPOSES)


@dataclass(frozen=True, slots=True)
class ConsentRow:
    """One row of the consent table, exactly its columns."""

    profile_key: str
    purpose: str  # "tcf.1".."tcf.11", "ads_personalization", "sale_or_share", ...
    status: str  # "granted" | "denied"
    updated_at: datetime  # tz-aware UTC, the signal's captured time
    expires_at: datetime | None
    source: str  # "tcf" | "usp" | "gpc" | "gpp"


def _slot(name: str) -> MemberDescriptorType:
    """The slot descriptor of one ``ConsentRow`` field (``slots=True`` makes every field one)."""
    descriptor = ConsentRow.__dict__[name]
    if not isinstance(descriptor, MemberDescriptorType):
        raise TypeError(f"ConsentRow.{name} is not a slot")
    return descriptor


# Typed per field here, since a slot descriptor's ``__set__`` takes any value.
_set_profile_key: Callable[[ConsentRow, str], None] = _slot("profile_key").__set__
_set_purpose: Callable[[ConsentRow, str], None] = _slot("purpose").__set__
_set_status: Callable[[ConsentRow, str], None] = _slot("status").__set__
_set_updated_at: Callable[[ConsentRow, datetime], None] = _slot("updated_at").__set__
_set_expires_at: Callable[[ConsentRow, datetime | None], None] = _slot("expires_at").__set__
_set_source: Callable[[ConsentRow, str], None] = _slot("source").__set__


def build_rows(
    profile_key: str,
    updated_at: datetime,
    source: str,
    decisions: Iterable[PurposeDecision],
) -> list[ConsentRow]:
    """The rows of one signal line (``expires_at`` is None: signals carry no expiry).

    Equal to ``ConsentRow(...)`` per decision, built through the slot descriptors: a frozen
    dataclass ``__init__`` routes every field through ``object.__setattr__``, which is ~3x
    slower, and an import builds a dozen rows per line for millions of lines.
    """
    rows = []
    new_row = object.__new__
    for purpose, status in decisions:
        row = new_row(ConsentRow)
        _set_profile_key(row, profile_key)
        _set_purpose(row, purpose)
        _set_status(row, status)
        _set_updated_at(row, updated_at)
        _set_expires_at(row, None)
        _set_source(row, source)
        rows.append(row)
    return rows


@dataclass(frozen=True, slots=True)
class SignalError:
    """A line that was imported as nothing; ``reason`` is meant for the person fixing the file."""

    line: int  # 1-based line number in the file
    reason: str  # actionable, never contains the raw signal beyond a short prefix


def preview(signal: str) -> str:
    """A short prefix of a raw signal, safe to put in an error message.

    Full signals can be long and identifying; a prefix is enough to find the line.
    """
    if len(signal) <= _PREVIEW_CHARS:
        return signal
    return signal[:_PREVIEW_CHARS] + "…"
