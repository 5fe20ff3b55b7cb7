"""Consent signal import: TCF v2.2, US Privacy, GPC and GPP (usnat) signals -> consent rows.

See shared/spec/consent.md, "Consent signals". ``read_signals`` is the entry point used by
``audience consent import``; the ``decode_*`` functions decode a single signal.
"""

from consent_filter.signals.gpc import GpcDecision, decode_gpc
from consent_filter.signals.gpp import GppUsNatDecision, decode_gpp
from consent_filter.signals.reader import FORMATS, read_signals
from consent_filter.signals.rows import (
    ConsentRow,
    PurposeDecision,
    SignalError,
    SignalInvalid,
)
from consent_filter.signals.tcf import TcfCore, TcfDecision, decode_tcf, parse_tcf
from consent_filter.signals.usp import UspDecision, decode_usp

__all__ = [
    "FORMATS",
    "ConsentRow",
    "GpcDecision",
    "GppUsNatDecision",
    "PurposeDecision",
    "SignalError",
    "SignalInvalid",
    "TcfCore",
    "TcfDecision",
    "UspDecision",
    "decode_gpc",
    "decode_gpp",
    "decode_tcf",
    "decode_usp",
    "parse_tcf",
    "read_signals",
]
