"""`audience consent import FILE --format tcf|usp|gpc|gpp`: raw signals → consent rows.

All good lines go into the consent table in one statement (one transaction); malformed lines
are reported with their line number and reason, import as nothing, and make the exit status 1
so a scheduler notices — the rest of the file is still imported.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from audience.commands import open_config
from audience.errors import UserError
from audience.warehouse import connect
from consent_filter.signals.reader import read_signals
from consent_filter.signals.rows import ConsentRow, SignalError

COLUMNS = ["profile_key", "purpose", "status", "updated_at", "expires_at", "source"]


def _utc_text(value) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if value is not None else None


def import_command(args: argparse.Namespace) -> int:
    config = open_config(args)
    if config is None:
        return 1
    if config.consent is None:
        raise UserError("audience.toml has no [consent] section naming the consent table")
    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"signal file not found: {path}")
    errors: list[SignalError] = []
    imported = 0

    def rows() -> Iterator[tuple[str, str, str, str | None, str | None, str]]:
        nonlocal imported
        stamp: tuple[object, str | None] = (None, None)  # a line's rows share one time: format it once
        for item in read_signals(path, args.format, vendor_id=config.consent.tcf_vendor_id):  # type: ignore[union-attr]
            if isinstance(item, SignalError):
                errors.append(item)
                continue
            row: ConsentRow = item
            imported += 1
            if stamp[0] is not row.updated_at:
                stamp = (row.updated_at, _utc_text(row.updated_at))
            yield (row.profile_key, row.purpose, row.status, stamp[1], _utc_text(row.expires_at), row.source)

    wh = connect(config.warehouse.url, config.root)
    try:
        wh.bulk_insert(config.consent.table, COLUMNS, rows())
    finally:
        wh.close()
    for err in errors:
        print(f"{path}:{err.line}: error[E310]: {err.reason}", file=sys.stderr)
    print(f"imported {imported} consent rows from {path}"
          + (f"; {len(errors)} malformed line{'s' if len(errors) != 1 else ''} imported as nothing" if errors else ""))
    return 1 if errors else 0
