"""`audience consent import FILE --format tcf|usp|gpc|gpp`.

Malformed lines are reported with their line number and reason and make the exit status 1, so
a scheduler notices; the good lines are imported all the same (audience/consent_import.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audience.cli.support import open_config
from audience.consent_import import import_signals


def import_command(args: argparse.Namespace) -> int:
    config = open_config(args)
    if config is None:
        return 1
    path = Path(args.file)
    report = import_signals(config, path, args.format)
    for err in report.errors:
        print(f"{path}:{err.line}: error[E310]: {err.reason}", file=sys.stderr)
    malformed = len(report.errors)
    print(f"imported {report.imported} consent rows from {path}"
          + (f"; {malformed} malformed line{'s' if malformed != 1 else ''} imported as nothing" if malformed else ""))
    return 1 if malformed else 0
