"""Is the SQL the compiler writes as fast as SQL a data engineer would write by hand?

Builds the demo music-label warehouse in DuckDB (default 1M fans, ~20M events), then for five
typical audiences runs the compiled query (`audience_sql`, the real pipeline) and a hand-written
query for the same question, checks that both return exactly the same member set, and reports
the time ratio (compiled / hand-written). Goal (issue): each ratio within 1.3x.

    .venv/bin/python bench/bench_query_quality.py                # 1M fans, ~20M events
    .venv/bin/python bench/bench_query_quality.py --quick        # 50k fans
    .venv/bin/python bench/bench_query_quality.py --db /tmp/wh.duckdb   # keep / reuse the warehouse

Timing: each query runs `--repeats` times, alternating compiled and hand-written, after one
warm-up run of each; the ratio of medians is the verdict, the ratio of best runs is shown too
(on a shared, busy machine the best run is the least noisy estimate).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audience.build import audience_sql
from audience.demo.warehouse import DemoSizes, build_demo_warehouse
from audience.project import Project, load_project
from bench.common import timestamp_sql

AS_OF = datetime(2026, 6, 30, 12, tzinfo=UTC)
SEED = 42

CONFIG = """
[project]
name = "bench"

[warehouse]
url = "duckdb:///{db}"

[profiles]
table = "fans"
key = "fan_id"
country = "country"
birth_date = "birth_date"

[events.stream]
table = "streams"
key = "fan_id"
timestamp = "played_at"

[events.clip_sample]
table = "clip_samples"
key = "fan_id"
timestamp = "sampled_at"

[events.purchase]
table = "purchases"
key = "fan_id"
timestamp = "purchased_at"

[events.checkin]
table = "checkins"
key = "fan_id"
timestamp = "checked_in_at"
"""


def ts(days_before: float) -> str:
    return timestamp_sql(AS_OF, days_before)


NOW = ts(0)


@dataclass(frozen=True)
class Question:
    name: str
    dsl: str
    hand_sql: str


QUESTIONS = [
    Question(
        "london_dubstep",
        'city = "London" and country = "GB"\n'
        '     and did stream where genre = "dubstep" at least 5 times in last 30 days\n'
        "     and did clip_sample at least 3 times in last 30 days\n"
        '     and not did purchase where category != "ringtone" in last 90 days',
        f"""
        SELECT f.fan_id FROM fans f
        WHERE f.city = 'London' AND f.country = 'GB'
          AND f.fan_id IN (SELECT fan_id FROM streams
                           WHERE genre = 'dubstep' AND played_at > {ts(30)} AND played_at <= {NOW}
                           GROUP BY fan_id HAVING count(*) >= 5)
          AND f.fan_id IN (SELECT fan_id FROM clip_samples
                           WHERE sampled_at > {ts(30)} AND sampled_at <= {NOW}
                           GROUP BY fan_id HAVING count(*) >= 3)
          AND NOT EXISTS (SELECT 1 FROM purchases p
                          WHERE p.fan_id = f.fan_id AND p.category <> 'ringtone'
                            AND p.purchased_at > {ts(90)} AND p.purchased_at <= {NOW})
        """),
    Question(
        "lapsed_top_spenders",
        'top 20% by sum(purchase.amount) between "2025-06-01" and "2026-01-01"\n'
        "     and not did purchase in last 180 days",
        f"""
        WITH spend AS (
          SELECT fan_id, sum(amount) AS total FROM purchases
          WHERE purchased_at >= TIMESTAMP '2025-06-01 00:00:00'
            AND purchased_at < TIMESTAMP '2026-01-01 00:00:00' AND purchased_at <= {NOW}
          GROUP BY fan_id),
        ranked AS (
          SELECT fan_id, rank() OVER (ORDER BY coalesce(total, 0) DESC) AS rk, count(*) OVER () AS n
          FROM spend)
        SELECT r.fan_id FROM ranked r JOIN fans f ON f.fan_id = r.fan_id
        WHERE r.rk <= ceil(20 * r.n / 100.0)
          AND NOT EXISTS (SELECT 1 FROM purchases p WHERE p.fan_id = r.fan_id
                          AND p.purchased_at > {ts(180)} AND p.purchased_at <= {NOW})
        """),
    Question(
        "sampled_then_bought",
        'did clip_sample then purchase where category in ("album", "single", "vinyl")\n'
        "     within 7 days in last 180 days",
        f"""
        SELECT f.fan_id FROM fans f
        WHERE EXISTS (
          SELECT 1 FROM clip_samples c JOIN purchases p
            ON p.fan_id = c.fan_id AND p.purchased_at >= c.sampled_at
           AND p.purchased_at <= c.sampled_at + INTERVAL 7 DAY
          WHERE c.fan_id = f.fan_id AND p.category IN ('album', 'single', 'vinyl')
            AND c.sampled_at > {ts(180)} AND c.sampled_at <= {NOW}
            AND p.purchased_at > {ts(180)} AND p.purchased_at <= {NOW})
        """),
    Question(
        "quiet_non_buyers",
        "did not purchase in last 90 days and did stream at most 3 times in last 30 days",
        f"""
        SELECT f.fan_id FROM fans f
        LEFT JOIN (SELECT fan_id, count(*) AS n FROM streams
                   WHERE played_at > {ts(30)} AND played_at <= {NOW} GROUP BY fan_id) s
          ON s.fan_id = f.fan_id
        WHERE coalesce(s.n, 0) <= 3
          AND NOT EXISTS (SELECT 1 FROM purchases p WHERE p.fan_id = f.fan_id
                          AND p.purchased_at > {ts(90)} AND p.purchased_at <= {NOW})
        """),
    Question(
        "gig_goers",
        'did checkin in last 52 weeks\n'
        '     and count distinct(stream.artist) where genre in ("techno", "house", "drum_and_bass")\n'
        "         in last 90 days >= 3",
        f"""
        SELECT f.fan_id FROM fans f
        WHERE EXISTS (SELECT 1 FROM checkins c WHERE c.fan_id = f.fan_id
                      AND c.checked_in_at > {ts(364)} AND c.checked_in_at <= {NOW})
          AND f.fan_id IN (SELECT fan_id FROM streams
                           WHERE genre IN ('techno', 'house', 'drum_and_bass')
                             AND played_at > {ts(90)} AND played_at <= {NOW}
                           GROUP BY fan_id HAVING count(DISTINCT artist) >= 3)
        """),
]


def sizes_for(fans: int, events_per_fan: float) -> DemoSizes:
    """Split `events_per_fan` like the demo (streams 70%, clips 20%, purchases 7.5%, checkins 2.5%)."""
    return DemoSizes(fans=fans, streams_per_fan=events_per_fan * 0.70, clips_per_fan=events_per_fan * 0.20,
                     purchases_per_fan=events_per_fan * 0.075, checkins_per_fan=events_per_fan * 0.025)


def ensure_warehouse(db: Path, sizes: DemoSizes) -> dict[str, int]:
    """Build the demo warehouse into `db`, or reuse it when it was built with the same sizes."""
    tag = f"{sizes}|{SEED}|{AS_OF.isoformat()}"
    con = duckdb.connect(str(db))
    try:
        con.execute("CREATE TABLE IF NOT EXISTS bench_meta (tag VARCHAR)")
        row = con.execute("SELECT tag FROM bench_meta").fetchone()
        if row is None or row[0] != tag:
            start = time.perf_counter()
            build_demo_warehouse(con, sizes=sizes, as_of=AS_OF, seed=SEED)
            con.execute("DELETE FROM bench_meta")
            con.execute("INSERT INTO bench_meta VALUES (?)", [tag])
            con.execute("CHECKPOINT")
            print(f"built warehouse in {time.perf_counter() - start:.1f} s")
        tables = ("fans", "streams", "clip_samples", "purchases", "checkins")
        return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}  # type: ignore[index]
    finally:
        con.close()


def load(root: Path, db: Path) -> Project:
    (root / "audiences").mkdir(parents=True, exist_ok=True)
    (root / "audience.toml").write_text(CONFIG.format(db=db.resolve()), encoding="utf-8")
    text = "\n".join(f"audience {q.name} {{\n  where: {q.dsl}\n}}\n" for q in QUESTIONS)
    (root / "audiences" / "bench.aud").write_text(text, encoding="utf-8")
    project = load_project(root)
    if not project.ok:
        raise SystemExit("\n".join(d.format() for d in project.diagnostics))
    return project


def timed(project: Project, sql: str) -> tuple[float, set[object]]:
    start = time.perf_counter()
    rows = project.warehouse.query(sql)
    return time.perf_counter() - start, {r[0] for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fans", type=int, default=1_000_000)
    ap.add_argument("--events-per-fan", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--db", type=Path, default=None, help="warehouse file to build or reuse")
    ap.add_argument("--quick", action="store_true", help="50k fans, 3 repeats")
    ap.add_argument("--show-sql", action="store_true", help="print the compiled SQL of each audience")
    args = ap.parse_args()
    if args.quick:
        args.fans, args.repeats = 50_000, 3
    with tempfile.TemporaryDirectory(prefix="bench_qq_") as tmp:
        db = args.db or Path(tmp) / "warehouse.duckdb"
        counts = ensure_warehouse(db, sizes_for(args.fans, args.events_per_fan))
        events = sum(v for k, v in counts.items() if k != "fans")
        print(f"warehouse: {counts['fans']:,} fans, {events:,} events {counts}")
        project = load(Path(tmp) / "project", db)
        try:
            report(project, args.repeats, args.show_sql)
        finally:
            project.close()


def report(project: Project, repeats: int, show_sql: bool) -> None:
    print(f"{'audience':<22} {'members':>9} {'compiled s':>11} {'hand s':>9} {'ratio':>6} {'best':>6}  goal <= 1.3")
    worst = 0.0
    for q in QUESTIONS:
        sql = audience_sql(project, q.name, AS_OF, "duckdb")
        if show_sql:
            print(audience_sql(project, q.name, AS_OF, "duckdb", pretty=True))
        _, ours = timed(project, sql)  # warm-up, and the member sets must agree
        _, theirs = timed(project, q.hand_sql)
        if ours != theirs:
            raise SystemExit(f"{q.name}: member sets differ ({len(ours)} vs {len(theirs)}; "
                             f"{len(ours - theirs)} only compiled, {len(theirs - ours)} only hand-written)")
        mine, hand = [], []
        for _ in range(repeats):
            mine.append(timed(project, sql)[0])
            hand.append(timed(project, q.hand_sql)[0])
        ratio = statistics.median(mine) / statistics.median(hand)
        worst = max(worst, ratio)
        print(f"{q.name:<22} {len(ours):>9,} {statistics.median(mine):>11.3f} {statistics.median(hand):>9.3f} "
              f"{ratio:>6.2f} {min(mine) / min(hand):>6.2f}  {'ok' if ratio <= 1.3 else 'SLOWER'}")
    print(f"worst ratio {worst:.2f}: goal {'met' if worst <= 1.3 else 'NOT met'}")


if __name__ == "__main__":
    main()
