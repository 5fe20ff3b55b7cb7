"""IAB US Privacy strings (``1YNN`` form) -> purpose decisions.

Four characters: specification version ``1``, then explicit notice, opted out of sale and
LSPA covered, each ``Y``, ``N`` or ``-`` (not applicable).

Only an opt-out (``Y`` in the third place) becomes rows: ``denied`` for ``sale_or_share`` and
``ads_personalization``. ``N`` means "has not opted out"; that is nothing the consent table
needs under an ``opt_out`` basis, and under ``opt_in`` it must not count as a grant, so it is
imported as no rows at all (so is ``-``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from consent_filter.signals.rows import PurposeDecision, SignalInvalid, opt_out_denials

_USP = re.compile(r"1[YN-]{3}")
_FLAG = {"Y": True, "N": False, "-": None}


@dataclass(frozen=True, slots=True)
class UspDecision:
    """A decoded US Privacy string; each flag is True (Y), False (N) or None (-)."""

    explicit_notice: bool | None
    opted_out_of_sale: bool | None
    lspa_covered: bool | None

    @property
    def decisions(self) -> tuple[PurposeDecision, ...]:
        return opt_out_denials() if self.opted_out_of_sale else ()


def decode_usp(usp_string: str) -> UspDecision:
    """Decode a US Privacy string; raise ``SignalInvalid`` unless it is exactly ``1`` + 3 flags.

    Lower-case flags are accepted (some CMPs write ``1ynn``); anything else is rejected.
    """
    value = usp_string.strip().upper()
    if not value:
        raise SignalInvalid("empty US Privacy string")
    if not _USP.fullmatch(value):
        raise SignalInvalid(_explain(value))
    notice, opt_out, lspa = (_FLAG[flag] for flag in value[1:])
    return UspDecision(notice, opt_out, lspa)


def _explain(value: str) -> str:
    if len(value) != 4:
        return f"US Privacy string must be 4 characters (like 1YNN), got {len(value)}"
    if value[0] != "1":
        return "US Privacy version must be 1"
    return "US Privacy flags must each be Y, N or -"
