"""Raw consent signals (a CSV of profile key, signal, captured time) → rows of the consent table.

All good lines go into the consent table in one statement (one transaction); malformed lines
are returned with their line number and reason and import as nothing — the rest of the file is
still imported. `audience consent import` (audience/cli/consent.py) reports the result.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from audience.config import ProjectConfig
from audience.errors import UserError
from audience.warehouse import connect
from consent_filter.policy import CONSENT_COLUMNS
from consent_filter.signals.reader import read_signals
from consent_filter.signals.rows import SignalError

ConsentValues = tuple[str, str, str, str | None, str | None, str]


@dataclass
class ImportReport:
    """What one import did: rows written, and each malformed line (imported as nothing)."""

    imported: int = 0
    errors: list[SignalError] = field(default_factory=list)


def _utc_text(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if value is not None else None


def import_signals(config: ProjectConfig, path: Path, signal_format: str) -> ImportReport:
    """Read *path* as *signal_format* signals and insert the consent rows into the consent table."""
    consent = config.consent
    if consent is None:
        raise UserError("audience.toml has no [consent] section naming the consent table")
    if not path.is_file():
        raise UserError(f"signal file not found: {path}")
    report = ImportReport()

    def rows() -> Iterator[ConsentValues]:
        stamp: tuple[datetime | None, str | None] = (None, None)  # a line's rows share one time: format it once
        for item in read_signals(path, signal_format, vendor_id=consent.tcf_vendor_id):
            if isinstance(item, SignalError):
                report.errors.append(item)
                continue
            report.imported += 1
            if stamp[0] is not item.updated_at:
                stamp = (item.updated_at, _utc_text(item.updated_at))
            yield (item.profile_key, item.purpose, item.status, stamp[1], _utc_text(item.expires_at), item.source)

    wh = connect(config.warehouse.url, config.root)
    try:
        wh.bulk_insert(consent.table, CONSENT_COLUMNS, rows())
    finally:
        wh.close()
    return report
