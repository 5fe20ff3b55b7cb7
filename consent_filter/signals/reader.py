"""Stream a CSV of raw consent signals into consent rows and per-line errors.

Input: one signal per line, columns profile key, signal, captured time (ISO 8601; a naive time
is UTC). An optional header row whose first cell is ``profile_key`` is skipped, as are blank
lines. Every other line either yields the rows its signal decodes to or exactly one
``SignalError`` (wrong column count, empty key, bad time, undecodable or invalid signal) and
no rows, so a bad line can never grant anything; the rest of the file carries on.

The file is read line by line. Decoding is cached per distinct signal (bounded LRU), because
real traffic repeats the same few thousand choices and TC string decoding is the costly part;
TC strings are cached without their Created/LastUpdated stamps, which differ per user.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Protocol, TextIO

import structlog

from consent_filter.policy import SIGNAL_FORMATS
from consent_filter.signals.gpc import decode_gpc
from consent_filter.signals.gpp import decode_gpp
from consent_filter.signals.rows import (
    ConsentRow,
    PurposeDecision,
    SignalError,
    SignalInvalid,
    build_rows,
    preview,
)
from consent_filter.signals.tcf import decision_key, decode_tcf
from consent_filter.signals.usp import decode_usp

FORMATS = SIGNAL_FORMATS
#: Distinct signals whose outcome is remembered during one import.
DECODE_CACHE_SIZE = 16_384
HEADER_FIRST_CELL = "profile_key"
_COLUMNS = 3
_FORMAT_LABELS = {
    "tcf": "TC string",
    "usp": "US Privacy string",
    "gpc": "GPC value",
    "gpp": "GPP string",
}

log = structlog.get_logger()

#: A decoded signal: its purpose decisions, or the reason it was rejected.
Outcome = tuple[PurposeDecision, ...] | str


class _Decoded(Protocol):
    @property
    def decisions(self) -> tuple[PurposeDecision, ...]: ...


def read_signals(
    path: Path, fmt: str, *, vendor_id: int | None = None
) -> Iterator[ConsentRow | SignalError]:
    """Yield consent rows and line errors for a signal CSV, in file order.

    ``fmt`` is one of ``tcf``, ``usp``, ``gpc``, ``gpp``. ``vendor_id`` (the configured IAB
    vendor) only affects TC strings. Arguments are checked here, before any line is read.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown signal format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if vendor_id is not None and not 1 <= vendor_id <= 0xFFFF:
        raise ValueError(f"vendor_id must be an IAB vendor ID between 1 and 65535, not {vendor_id}")
    if not path.exists():
        raise FileNotFoundError(f"signal file not found: {path}")
    return _read(path, fmt, _cached_decoder(fmt, vendor_id))


def _cached_decoder(fmt: str, vendor_id: int | None) -> Callable[[str], Outcome]:
    """One bounded cache per import, so imports never share or leak state.

    TC strings are cached by `decision_key` (the string without its timestamps), so users who
    made the same choices at different times share one decode; messages quote the line's own
    string.
    """
    decode = _decoder(fmt, vendor_id)
    label = _FORMAT_LABELS[fmt]
    key_of: Callable[[str], str] = decision_key if fmt == "tcf" else str

    @lru_cache(maxsize=DECODE_CACHE_SIZE)
    def decoded(key: str) -> tuple[PurposeDecision, ...] | str:
        try:
            return decode(key).decisions
        except SignalInvalid as invalid:
            return invalid.reason

    def outcome(signal: str) -> Outcome:
        result = decoded(key_of(signal))
        if isinstance(result, str):
            shown = f" {preview(signal)!r}" if signal else ""
            return f"invalid {label}{shown}: {result}"
        return result

    return outcome


def _decoder(fmt: str, vendor_id: int | None) -> Callable[[str], _Decoded]:
    if fmt == "tcf":
        return lambda signal: decode_tcf(signal, vendor_id=vendor_id)
    decoders: dict[str, Callable[[str], _Decoded]] = {"usp": decode_usp, "gpc": decode_gpc, "gpp": decode_gpp}
    return decoders[fmt]


def _read(
    path: Path, source: str, outcome: Callable[[str], Outcome]
) -> Iterator[ConsentRow | SignalError]:
    lines = rows = errors = 0
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        for line, record in _records(handle):
            if lines == 0 and _is_header(record):
                continue
            lines += 1
            result = _line_result(line, record, outcome)
            if isinstance(result, SignalError):
                errors += 1
                yield result
                continue
            key, captured_at, decisions = result
            line_rows = build_rows(key, captured_at, source, decisions)
            rows += len(line_rows)
            yield from line_rows
    log.info("consent_signals_read", format=source, lines=lines, rows=rows, errors=errors)


def _records(handle: TextIO) -> Iterator[tuple[int, list[str] | csv.Error]]:
    """(first line number, cells) per non-blank CSV record; a CSV syntax error is a record.

    Numbers are physical lines, so a quoted field spanning lines does not shift later ones.
    """
    reader = csv.reader(handle)
    line_num = 0
    while True:
        start = line_num + 1
        try:
            record: list[str] | csv.Error = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            record = error
        line_num = reader.line_num
        if record != []:
            yield start, record


def _is_header(record: list[str] | csv.Error) -> bool:
    return isinstance(record, list) and record[0].strip() == HEADER_FIRST_CELL


def _line_result(
    line: int, record: list[str] | csv.Error, outcome: Callable[[str], Outcome]
) -> tuple[str, datetime, tuple[PurposeDecision, ...]] | SignalError:
    """The decisions for one data line, or the one error that makes it import nothing."""
    if isinstance(record, csv.Error):
        return SignalError(line, f"unreadable CSV line: {record}")
    if len(record) != _COLUMNS:
        return SignalError(
            line,
            f"expected {_COLUMNS} columns (profile key, signal, captured time), "
            f"found {len(record)}",
        )
    key, signal, captured = record[0].strip(), record[1].strip(), record[2].strip()
    if "\ufffd" in key or "\ufffd" in signal or "\ufffd" in captured:
        return SignalError(line, "line is not valid UTF-8")
    if not key:
        return SignalError(line, "empty profile key")
    captured_at = _parse_time(captured)
    if captured_at is None:
        return SignalError(line, _time_problem(captured))
    decisions = outcome(signal)
    if isinstance(decisions, str):
        return SignalError(line, decisions)
    return key, captured_at, decisions


def _time_problem(captured: str) -> str:
    if not captured:
        return "missing captured time"
    return f"captured time {preview(captured)!r} is not an ISO 8601 date-time"


def _parse_time(text: str) -> datetime | None:
    """ISO 8601 to aware UTC; a time without offset is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
