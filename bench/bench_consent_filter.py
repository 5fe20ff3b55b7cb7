"""Consent-filtered audience query vs the unfiltered one, on DuckDB (issue: consent filter).

Default: 1M profiles with ~5M consent rows. For each (audience, destination), median times of:

- `keys`: the definition query alone (member keys only);
- `unfiltered`: the unfiltered export query — the members with the destination's identifier
  columns, which any export reads whether or not it filters (the baseline of the goal);
- `history`: the consent-filtered export query reading the whole consent history;
- `filtered`: the consent-filtered export query as the product runs it — the freshness check of
  the condensed table of current decisions plus the query reading it.

The four run in turn, repeatedly (median of `--repeat`), so load changes hit them alike.

Every query returns its row count and a count per identifier column, so no engine can skip
reading what an export reads. Goal: filtered / unfiltered under 1.5x.
Usage: bench_consent_filter.py [--fans N] [--repeat N] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import AS_OF, demo_project, timed


def interleaved(variants: dict[str, Callable[[], object]], repeat: int) -> dict[str, tuple[float, object]]:
    """Median seconds and last result of each variant, run in turn (ABCD ABCD ...) after a
    warm-up, so a change in machine load affects every variant alike."""
    results = {name: run() for name, run in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, run in variants.items():
            started = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - started)
    return {name: (statistics.median(times[name]), results[name]) for name in variants}


def counted(query_sql: str, kinds: tuple[str, ...]) -> str:
    columns = ", ".join(["COUNT(*)"] + [f"COUNT(id_{k})" for k in kinds])
    return f"SELECT {columns} FROM ({query_sql}) AS q"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fans", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="20k fans, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.fans, args.repeat = 20_000, 3
    from audience.build import definition_query
    from audience.consent_state import rebuild, usable_current
    from audience.consented import consented, policy_of, target_of
    from audience.project import load_project
    from consent_filter.query import consent_query, exportable, identifier_alias
    from dsl.compiler import PROFILE_ALIAS, col

    root = demo_project(args.fans, consents_per_fan=5)
    project = load_project(root)
    wh, catalog, consents = project.warehouse, project.catalog, project.consent_table
    assert catalog is not None and consents is not None
    n_consents = wh.query("SELECT COUNT(*) FROM consents")[0][0]
    started = time.perf_counter()
    rebuild(wh, consents)
    print(f"{args.fans} profiles, {n_consents} consent rows, DuckDB, as_of {AS_OF.isoformat()}; "
          f"condensed table built in {time.perf_counter() - started:.3f}s (once per change of the history)")
    check, _ = timed(lambda: usable_current(wh, consents, AS_OF), args.repeat)
    print(f"freshness check of the condensed table: {check * 1000:.2f} ms (included in `filtered`)")
    print(f"{'audience':<24} {'destination':<11} {'members':>8} {'export':>7} {'keys s':>7} {'unfilt s':>8} "
          f"{'history s':>9} {'filter s':>8} {'x keys':>6} {'x unfilt':>8} {'hist x':>6}")
    current = usable_current(wh, consents, AS_OF)
    assert current is not None
    for name, aud in sorted(project.audiences.items()):
        for sync in aud.syncs:
            ca = consented(project, name, sync.destination, AS_OF)
            kinds = tuple(k for k in ca.destination.identifiers if k in catalog.identifiers)
            definition = definition_query(project, name, AS_OF)
            unfiltered = definition.copy().select(
                *(col(catalog.identifiers[k], PROFILE_ALIAS).as_(identifier_alias(k)) for k in kinds))

            keys_sql = f"SELECT COUNT(*) FROM ({definition.sql('duckdb')}) AS q"
            unfiltered_sql = counted(unfiltered.sql("duckdb"), kinds)
            history_sql, filtered_sql = (
                counted(exportable(consent_query(
                    definition, catalog, policy_of(project), target_of(ca.destination), AS_OF, audience=name,
                    holdout_percent=float(aud.holdout), dialect="duckdb", consent_table=consents,
                    current=decisions_from)).sql("duckdb"), kinds)
                for decisions_from in (None, current))

            def filtered(s: str = filtered_sql) -> object:  # the product's path: freshness check + query
                assert usable_current(wh, consents, AS_OF) is not None
                return wh.query(s)[0]

            times = interleaved({
                "keys": lambda s=keys_sql: wh.query(s)[0],
                "unfiltered": lambda s=unfiltered_sql: wh.query(s)[0],
                "history": lambda s=history_sql: wh.query(s)[0],
                "filtered": filtered,
            }, args.repeat)
            (keys, members), (base, _), (hist, hist_rows), (filt, rows) = times.values()
            assert rows == hist_rows, (rows, hist_rows)  # the condensed table answers like the history
            print(f"{name:<24} {sync.destination:<11} {members[0]:>8} {rows[0]:>7} {keys:>7.3f} {base:>8.3f} "
                  f"{hist:>9.3f} {filt:>8.3f} {filt / keys:>6.2f} {filt / base:>8.2f} {hist / base:>6.2f}")
    project.close()


if __name__ == "__main__":
    main()
