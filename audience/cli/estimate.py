"""`audience estimate NAME`: the consent funnel per destination, small counts hidden."""

from __future__ import annotations

import argparse
import json
import sys

from audience.cli.support import load_for_audience
from audience.consented import destination, funnels
from audience.errors import UserError
from consent_filter.funnel import rounded_funnel


def estimate_command(args: argparse.Namespace) -> int:
    project = load_for_audience(args)
    if project is None:
        return 1
    aud = project.audience(args.name)
    names = (
        [args.destination]
        if args.destination
        else [s.destination for s in aud.syncs] or list(project.config.destinations)
    )
    if not names:
        raise UserError("the project declares no destinations; add one under [destinations] in audience.toml")
    report = {name: rounded_funnel(funnel, destination(project, name).min_size)
              for name, funnel in funnels(project, args.name, names, args.as_of).items()}
    if args.json:
        print(json.dumps({"audience": args.name, "as_of": args.as_of.isoformat(), "destinations": report}, indent=2))
        return 0
    out = sys.stdout
    labels = [
        ("matched", "matched the definition"),
        ("suppressed", "removed: suppressed"),
        ("under_age", "removed: under age"),
        ("no_permission", "removed: no permission"),
        ("no_identifier", "removed: no identifier"),
        ("held_out", "held out (control group)"),
        ("exportable", "exportable"),
    ]
    for name, counts in report.items():
        out.write(f"{args.name} -> {name}\n")
        for key, label in labels:
            out.write(f"  {label:<26} {counts[key]:>14}\n")
    return 0
