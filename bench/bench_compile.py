"""How fast does an audience compile? DSL -> checked AST -> sqlglot tree -> DuckDB SQL text.

Generates a project of N audiences (default 200) from ten templates that cover the language
(comparisons, lists, text tests, counted events with windows, did not / at most, the London
dubstep example, aggregates, top P%, sequences, memberships). Each audience is timed through
parse + check + compile + render, and compared in the same run with `sqlglot.transpile`
(duckdb -> duckdb) of hand-written SQL that answers the same question -- i.e. against the cost
of merely parsing and printing equivalent SQL with the library we build on.

    .venv/bin/python bench/bench_compile.py            # 200 audiences
    .venv/bin/python bench/bench_compile.py --quick    # 40 audiences, fewer repeats
    .venv/bin/python bench/bench_compile.py --profile  # plus a cProfile of the compile loop

Goal (issue): median < 2 ms per audience and within 3x of transpile.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlglot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audience.demo.warehouse import TABLES
from bench.common import timestamp_sql
from dsl import ast
from dsl.catalog import Catalog, Column, EventSource, Table, kind_of
from dsl.checker import check_project
from dsl.compiler import compile_audience
from dsl.parser import parse

AS_OF = datetime(2026, 6, 30, 12, tzinfo=UTC)
CITIES = ("London", "Manchester", "Leeds", "Paris", "Berlin", "Dublin", "Glasgow", "Bristol")
GENRES = ("dubstep", "grime", "house", "techno", "drum_and_bass", "pop", "indie", "jazz")
CATEGORIES = ("album", "single", "vinyl", "ticket", "merch")


def catalog() -> Catalog:
    """The demo warehouse's catalog, from its table contract (no connection needed)."""
    tables = {name: Table(name, {c: Column(c, kind_of(t), t) for c, t in cols})
              for name, cols in TABLES.items()}
    events = {"stream": ("streams", "played_at"), "clip_sample": ("clip_samples", "sampled_at"),
              "purchase": ("purchases", "purchased_at"), "checkin": ("checkins", "checked_in_at")}
    return Catalog(profile=tables["fans"], profile_key="fan_id",
                   events={e: EventSource(e, tables[t], "fan_id", ts) for e, (t, ts) in events.items()})


def ts(delta_days: float = 0) -> str:
    """A DuckDB timestamp literal `delta_days` before as_of (hand-written SQL side)."""
    return timestamp_sql(AS_OF, delta_days)


NOW = ts(0)


@dataclass(frozen=True)
class Template:
    name: str
    dsl: Callable[[int], str]
    sql: Callable[[int], str]


def _t(i: int, seq: tuple[str, ...]) -> str:
    return seq[i % len(seq)]


TEMPLATES = [
    Template(
        "profile",
        lambda i: f'city = "{_t(i, CITIES)}" and country = "GB" and lifetime_value >= {10 * i}',
        lambda i: f"SELECT fan_id AS profile_key FROM fans WHERE city = '{_t(i, CITIES)}' "
                  f"AND country = 'GB' AND lifetime_value >= {10 * i}"),
    Template(
        "lists",
        lambda i: f'country in ("GB", "IE", "FR") and email is not null '
                  f'and not favourite_genre = "{_t(i, GENRES)}" and lifetime_value between {i} and {i + 50}',
        lambda i: "SELECT fan_id AS profile_key FROM fans WHERE country IN ('GB', 'IE', 'FR') "
                  f"AND email IS NOT NULL AND (favourite_genre IS NULL OR favourite_genre <> '{_t(i, GENRES)}') "
                  f"AND lifetime_value BETWEEN {i} AND {i + 50}"),
    Template(
        "text",
        lambda i: f'city starts with "{_t(i, CITIES)[:3]}" or email contains "+{i}@"',
        lambda i: f"SELECT fan_id AS profile_key FROM fans WHERE STARTS_WITH(city, '{_t(i, CITIES)[:3]}') "
                  f"OR STRPOS(email, '+{i}@') > 0"),
    Template(
        "counted_event",
        lambda i: f'did stream where genre = "{_t(i, GENRES)}" at least {2 + i % 5} times in last {7 + i} days',
        lambda i: "SELECT fan_id AS profile_key FROM fans WHERE fan_id IN (SELECT fan_id FROM streams "
                  f"WHERE genre = '{_t(i, GENRES)}' AND played_at > {ts(7 + i)} AND played_at <= {NOW} "
                  f"GROUP BY fan_id HAVING COUNT(*) >= {2 + i % 5})"),
    Template(
        "did_not_at_most",
        lambda i: f"did not purchase in last {30 + i} days and did checkin at most {1 + i % 3} times",
        lambda i: "SELECT fan_id AS profile_key FROM fans WHERE fan_id NOT IN (SELECT fan_id FROM purchases "
                  f"WHERE purchased_at > {ts(30 + i)} AND purchased_at <= {NOW}) AND fan_id NOT IN "
                  f"(SELECT fan_id FROM checkins WHERE checked_in_at <= {NOW} GROUP BY fan_id "
                  f"HAVING COUNT(*) > {1 + i % 3})"),
    Template(
        "london_dubstep",
        lambda i: f'city = "London" and country = "GB" and did stream where genre = "dubstep" '
                  f"at least {3 + i % 4} times in last 30 days and did clip_sample at least 3 times "
                  'in last 30 days and not did purchase where category != "ringtone" in last 90 days',
        lambda i: "SELECT f.fan_id AS profile_key FROM fans AS f WHERE f.city = 'London' AND f.country = 'GB' "
                  "AND f.fan_id IN (SELECT fan_id FROM streams WHERE genre = 'dubstep' "
                  f"AND played_at > {ts(30)} AND played_at <= {NOW} GROUP BY fan_id "
                  f"HAVING COUNT(*) >= {3 + i % 4}) "
                  "AND f.fan_id IN (SELECT fan_id FROM clip_samples WHERE sampled_at > "
                  f"{ts(30)} AND sampled_at <= {NOW} GROUP BY fan_id HAVING COUNT(*) >= 3) "
                  "AND NOT EXISTS (SELECT 1 FROM purchases AS p WHERE p.fan_id = f.fan_id "
                  f"AND p.category <> 'ringtone' AND p.purchased_at > {ts(90)} AND p.purchased_at <= {NOW})"),
    Template(
        "aggregates",
        lambda i: f'sum(purchase.amount) where category = "{_t(i, CATEGORIES)}" in last {60 + i} days >= {5 + i} '
                  f"and count distinct(stream.artist) in last 90 days > {1 + i % 4}",
        lambda i: "SELECT fan_id AS profile_key FROM fans WHERE fan_id IN (SELECT fan_id FROM purchases "
                  f"WHERE category = '{_t(i, CATEGORIES)}' AND purchased_at > {ts(60 + i)} "
                  f"AND purchased_at <= {NOW} GROUP BY fan_id HAVING SUM(amount) >= {5 + i}) "
                  "AND fan_id IN (SELECT fan_id FROM streams WHERE played_at > "
                  f"{ts(90)} AND played_at <= {NOW} GROUP BY fan_id "
                  f"HAVING COUNT(DISTINCT artist) > {1 + i % 4})"),
    Template(
        "top_percent",
        lambda i: f'top {5 + i % 20}% by sum(purchase.amount) since "2025-01-01" and not did purchase in last 90 days',
        lambda i: "WITH s AS (SELECT fan_id, SUM(amount) AS m FROM purchases WHERE purchased_at >= "
                  f"TIMESTAMP '2025-01-01 00:00:00' AND purchased_at <= {NOW} GROUP BY fan_id), "
                  "r AS (SELECT fan_id, RANK() OVER (ORDER BY m DESC NULLS LAST) AS rk, COUNT(*) OVER () AS n "
                  "FROM s) SELECT fan_id AS profile_key FROM fans WHERE fan_id IN (SELECT fan_id FROM r "
                  f"WHERE rk <= CEIL({5 + i % 20} * n / 100.0)) AND fan_id NOT IN (SELECT fan_id FROM purchases "
                  f"WHERE purchased_at > {ts(90)} AND purchased_at <= {NOW})"),
    Template(
        "sequence",
        lambda i: f'did clip_sample then purchase where category = "{_t(i, CATEGORIES)}" '
                  f"within {1 + i % 7} days in last 180 days",
        lambda i: "SELECT fan_id AS profile_key FROM fans WHERE fan_id IN (SELECT c.fan_id FROM clip_samples AS c "
                  "JOIN purchases AS p ON p.fan_id = c.fan_id AND p.purchased_at >= c.sampled_at "
                  f"AND p.purchased_at <= c.sampled_at + INTERVAL {1 + i % 7} DAY "
                  f"WHERE p.category = '{_t(i, CATEGORIES)}' AND c.sampled_at > {ts(180)} "
                  f"AND c.sampled_at <= {NOW} AND p.purchased_at > {ts(180)} AND p.purchased_at <= {NOW})"),
    Template(
        "membership",
        lambda i: f"in audience profile_{i} and did checkin in last {30 + i} days",
        lambda i: f"SELECT fan_id AS profile_key FROM fans WHERE city = '{_t(i, CITIES)}' AND country = 'GB' "
                  f"AND lifetime_value >= {10 * i} AND fan_id IN (SELECT fan_id FROM checkins "
                  f"WHERE checked_in_at > {ts(30 + i)} AND checked_in_at <= {NOW})"),
]


@dataclass(frozen=True)
class Case:
    name: str
    template: str
    text: str  # the audience block
    sql: str  # hand-written equivalent
    deps: tuple[str, ...]  # audiences it includes


def generate(n: int) -> list[Case]:
    per = max(1, n // len(TEMPLATES))
    cases = []
    for tpl in TEMPLATES:
        for i in range(per):
            name = f"{tpl.name}_{i}"
            deps = (f"profile_{i}",) if tpl.name == "membership" else ()
            text = f"audience {name} {{\n  where: {tpl.dsl(i)}\n}}\n"
            cases.append(Case(name, tpl.name, text, tpl.sql(i), deps))
    return cases


def ours(case: Case, cat: Catalog, project: dict[str, ast.Audience]) -> str:
    """parse + check + compile + render, for one audience (its included audiences are checked too)."""
    result = parse(case.text, f"audiences/{case.name}.aud")
    aud = result.audiences[0]
    deps = [project[d] for d in case.deps]
    diags = result.diagnostics + check_project([aud, *deps], cat, ())
    if diags:
        raise SystemExit(f"{case.name}: {diags[0].format()}")
    audiences = {aud.name: aud, **{d.name: d for d in deps}}
    return compile_audience(aud, cat, audiences, AS_OF).sql(dialect="duckdb")


def baseline(case: Case) -> str:
    return sqlglot.transpile(case.sql, read="duckdb", write="duckdb")[0]


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls, in milliseconds."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audiences", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=15, help="timed runs per audience (median kept)")
    ap.add_argument("--quick", action="store_true", help="40 audiences, 5 repeats")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of compiling every audience")
    args = ap.parse_args()
    if args.quick:
        args.audiences, args.repeats = 40, 5
    cat = catalog()
    cases = generate(args.audiences)
    project = {}
    for case in cases:
        project.update({a.name: a for a in parse(case.text, "x.aud").audiences})
    for case in cases:  # warm up, and verify every hand-written query is valid DuckDB SQL
        ours(case, cat, project)
        baseline(case)

    rows = []
    for case in cases:
        rows.append((case.template, timed(lambda c=case: ours(c, cat, project), args.repeats),
                     timed(lambda c=case: baseline(c), args.repeats)))
    start = time.perf_counter()
    texts = "".join(c.text for c in cases)
    result = parse(texts, "audiences/all.aud")
    check_project(result.audiences, cat, ())
    by_name = {a.name: a for a in result.audiences}
    for aud in result.audiences:
        compile_audience(aud, cat, by_name, AS_OF).sql(dialect="duckdb")
    whole = (time.perf_counter() - start) * 1000

    print(f"{len(cases)} audiences, {args.repeats} timed runs each (median), DuckDB SQL, sqlglot {sqlglot.__version__}")
    print(f"{'template':<16} {'ours ms':>9} {'transpile ms':>13} {'ratio':>6}")
    for tpl in TEMPLATES:
        mine = [o for t, o, _ in rows if t == tpl.name]
        base = [b for t, _, b in rows if t == tpl.name]
        print(f"{tpl.name:<16} {statistics.median(mine):>9.3f} {statistics.median(base):>13.3f} "
              f"{statistics.median(mine) / statistics.median(base):>6.2f}")
    med_ours = statistics.median(o for _, o, _ in rows)
    med_base = statistics.median(b for _, _, b in rows)
    ratio = med_ours / med_base
    print(f"{'ALL (median)':<16} {med_ours:>9.3f} {med_base:>13.3f} {ratio:>6.2f}")
    print(f"whole project in one pass: {whole:.1f} ms = {whole / len(cases):.3f} ms/audience")
    print(f"goal < 2 ms/audience: {'met' if med_ours < 2 else 'NOT met'}; "
          f"goal within 3x of transpile: {'met' if ratio <= 3 else 'NOT met'}")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for case in cases:
            ours(case, cat, project)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
