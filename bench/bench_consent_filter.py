"""Consent-filtered audience query vs the unfiltered one, on DuckDB (issue: consent filter).

Default: 1M profiles with ~5M consent rows. Prints median times and the overhead ratio
(goal: filtered / unfiltered under 1.5x). Usage: bench_consent_filter.py [--fans N] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import AS_OF, demo_project, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fans", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20k fans, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.fans, args.repeat = 20_000, 3
    from audience.build import definition_query
    from audience.consented import consented
    from audience.project import load_project
    from consent_filter.query import exportable

    root = demo_project(args.fans, consents_per_fan=5)
    project = load_project(root)
    wh = project.warehouse
    consents = wh.query("SELECT COUNT(*) FROM consents")[0][0]
    print(f"{args.fans} profiles, {consents} consent rows, DuckDB, as_of {AS_OF.isoformat()}")
    print(
        f"{'audience':<26} {'destination':<12} {'members':>9} {'exportable':>10} "
        f"{'plain s':>9} {'consent s':>9} {'ratio':>6}"
    )
    for name, aud in sorted(project.audiences.items()):
        for sync in aud.syncs:
            plain_sql = f"SELECT COUNT(*) FROM ({definition_query(project, name, AS_OF).sql('duckdb')}) AS q"
            ca = consented(project, name, sync.destination, AS_OF)
            filtered_sql = f"SELECT COUNT(*) FROM ({exportable(ca.query).sql('duckdb')}) AS q"
            plain, members = timed(lambda s=plain_sql: wh.query(s)[0][0], args.repeat)
            filtered, kept = timed(lambda s=filtered_sql: wh.query(s)[0][0], args.repeat)
            print(
                f"{name:<26} {sync.destination:<12} {members:>9} {kept:>10} {plain:>9.3f} {filtered:>9.3f} "
                f"{filtered / plain:>6.2f}"
            )
    project.close()


if __name__ == "__main__":
    main()
