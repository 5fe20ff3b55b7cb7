"""Global Privacy Control -> purpose decisions.

The import column holds the ``Sec-GPC`` header value (``1``), optionally with its name
(``Sec-GPC: 1``). GPC is an opt-out of sale/share and targeted advertising, so ``1`` becomes
``denied`` rows for ``sale_or_share`` and ``ads_personalization``. ``0`` or an empty value
means the browser sent no signal: no rows (never a grant).
"""

from __future__ import annotations

from dataclasses import dataclass

from consent_filter.signals.rows import PurposeDecision, SignalInvalid, opt_out_denials

_HEADER_NAME = "sec-gpc"


@dataclass(frozen=True, slots=True)
class GpcDecision:
    """Whether the Global Privacy Control signal was present."""

    enabled: bool

    @property
    def decisions(self) -> tuple[PurposeDecision, ...]:
        return opt_out_denials() if self.enabled else ()


def decode_gpc(gpc_value: str) -> GpcDecision:
    """Decode ``1`` / ``0`` / empty, with or without ``Sec-GPC:``; reject anything else."""
    value = gpc_value.strip()
    name, colon, rest = value.partition(":")
    if colon:
        if name.strip().lower() != _HEADER_NAME:
            raise SignalInvalid("GPC value must be 1, 0 or 'Sec-GPC: 1'")
        value = rest.strip()
    if value in ("", "0"):
        return GpcDecision(enabled=False)
    if value == "1":
        return GpcDecision(enabled=True)
    raise SignalInvalid("GPC value must be 1, 0 or 'Sec-GPC: 1' (empty means no signal)")
