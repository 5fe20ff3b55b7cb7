"""Benchmark: an incremental refresh of a large audience vs a full `replace` run, to a file drop.

A DuckDB warehouse with ``--members`` fans (valid emails, all consented) is generated with SQL.
One audience is synced to two file destinations, ``mirror`` (incremental) and ``replace``
(the whole list every run). After a first run of both (which hashes everyone), ``--change`` of
the audience changes — 40% of it leaves, 40% are new fans who join, 20% change their email —
and both syncs are refreshed again:

* the incremental run must send only the changed members (asserted: adds = joins + changed
  emails, removes = leaves + changed emails);
* the replace run writes every member (asserted), reusing the hashes sent before.

Goal (issue): incremental time < 20% of the full replace run's. Each of the two measured runs is
repeated ``--repeat`` times from the same starting state (the warehouse and state files are
restored between repeats) and the best time is compared, so a busy machine disturbs the ratio
less. Prints wall and CPU seconds of each step and the ratio; ``--profile`` prints where the
incremental run spends its time.

    .venv/bin/python bench/bench_refresh.py            # 1M members, 1% changed
    .venv/bin/python bench/bench_refresh.py --quick    # smoke run (20k members)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audience.logs import setup_logging
from audience.project import load_project
from audience.runs.api import open_store
from audience.runs.engine import RunEngine, find_sync
from audience.runs.model import RunRecord

AS_OF = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
GOAL = 0.20

CONFIG = """
[project]
name = "bench"

[warehouse]
url = "duckdb:///wh.duckdb"

[profiles]
table = "fans"
key = "fan_id"
country = "country"
birth_date = "birth_date"

[profiles.identifiers]
email = "email"

[consent]
table = "consents"
suppression_table = "suppressions"
minimum_age = 18
default_basis = "opt_in"

[destinations.incremental]
type = "file"
uri = "file:out/incremental"
format = "sha256"
identifiers = ["email"]
purposes = ["ads_personalization"]
min_size = 1

[destinations.full]
type = "file"
uri = "file:out/full"
format = "sha256"
identifiers = ["email"]
purposes = ["ads_personalization"]
min_size = 1
"""

AUDIENCE = """
audience big_fans {
  where: score >= 5
  sync incremental { schedule: "0 6 * * *", mode: mirror }
  sync full { schedule: "0 6 * * *", mode: replace }
}
"""


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    cpu_seconds: float
    run: RunRecord


@dataclass(frozen=True)
class Change:
    leaves: int
    joins: int
    emails: int


def build_project(root: Path, members: int) -> None:
    import duckdb

    (root / "audiences").mkdir(parents=True)
    (root / "audience.toml").write_text(CONFIG, encoding="utf-8")
    (root / "audiences" / "big.aud").write_text(AUDIENCE, encoding="utf-8")
    con = duckdb.connect(str(root / "wh.duckdb"))
    try:
        con.execute(f"""CREATE TABLE fans AS SELECT range AS fan_id, 'fan' || range || '@example.com' AS email,
                        'GB' AS country, DATE '1990-01-01' AS birth_date, 10 AS score
                        FROM range(1, {members + 1})""")
        con.execute("""CREATE TABLE consents AS SELECT fan_id AS profile_key, 'ads_personalization' AS purpose,
                       'granted' AS status, TIMESTAMP '2026-01-01 00:00:00' AS updated_at,
                       CAST(NULL AS TIMESTAMP) AS expires_at, 'first_party' AS source FROM fans""")
        con.execute("CREATE TABLE suppressions (profile_key BIGINT)")
    finally:
        con.close()


def apply_change(root: Path, members: int, fraction: float) -> Change:
    """Change `fraction` of the audience: 40% leave, 40% join, 20% change email (spread evenly)."""
    import duckdb

    changed = max(5, round(members * fraction))
    leaves, joins = changed * 2 // 5, changed * 2 // 5
    emails = changed - leaves - joins
    con = duckdb.connect(str(root / "wh.duckdb"))
    try:
        con.execute(f"UPDATE fans SET score = 0 WHERE fan_id % {members // leaves} = 1 AND fan_id <= "
                    f"{members // leaves * leaves}")
        con.execute(f"UPDATE fans SET email = 'new.' || email WHERE fan_id % {members // emails} = 2 AND fan_id <= "
                    f"{members // emails * emails}")
        con.execute(f"""INSERT INTO fans SELECT range, 'fan' || range || '@example.com', 'GB', DATE '1990-01-01', 10
                        FROM range({members + 1}, {members + joins + 1})""")
        con.execute(f"""INSERT INTO consents SELECT range, 'ads_personalization', 'granted',
                        TIMESTAMP '2026-01-01 00:00:00', NULL, 'first_party' FROM range({members + 1},
                        {members + joins + 1})""")
    finally:
        con.close()
    return Change(leaves, joins, emails)


def refresh(root: Path, destination: str, when: datetime, name: str, profile: bool = False) -> Step:
    project = load_project(root)
    store = open_store(project)
    try:
        engine = RunEngine(project, store)
        (sync,) = find_sync(project, "big_fans", destination)
        profiler = cProfile.Profile() if profile else None
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        run = engine.refresh(sync, as_of=when)
        if profiler:
            profiler.disable()
        step = Step(name, time.perf_counter() - wall, time.process_time() - cpu, run)
    finally:
        store.close()
        project.close()
    assert run.state == "succeeded", run.error
    print(f"  {name:<34} {step.seconds:8.2f} s wall {step.cpu_seconds:8.2f} s cpu   "
          f"adds {run.counts['adds_sent']:>9,}  removes {run.counts['removes_sent']:>7,}", flush=True)
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())
    return step


def save_state(root: Path) -> Path:
    """Copy the warehouse and the state store aside (the drops written so far do not matter)."""
    saved = root.parent / f"{root.name}.saved"
    shutil.rmtree(saved, ignore_errors=True)
    saved.mkdir()
    shutil.copy2(root / "wh.duckdb", saved / "wh.duckdb")
    shutil.copytree(root / ".audience", saved / ".audience")
    return saved


def restore_state(root: Path, saved: Path) -> None:
    shutil.copy2(saved / "wh.duckdb", root / "wh.duckdb")
    shutil.rmtree(root / ".audience")
    shutil.copytree(saved / ".audience", root / ".audience")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1_000_000, help="audience size (default 1,000,000)")
    parser.add_argument("--change", type=float, default=0.01, help="fraction changed (default 0.01)")
    parser.add_argument("--quick", action="store_true", help="small smoke run (20,000 members)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of each measured run (default 3)")
    parser.add_argument("--profile", action="store_true", help="cProfile the incremental run")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp folder, removed)")
    args = parser.parse_args()
    setup_logging()
    members = 20_000 if args.quick else args.members
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench-refresh-"))
    if args.dir:
        shutil.rmtree(root, ignore_errors=True)
    try:
        print(f"bench_refresh: {members:,} members, {args.change:.1%} changed, file destinations, DuckDB")
        started = time.perf_counter()
        build_project(root, members)
        print(f"  {'generate warehouse':<34} {time.perf_counter() - started:8.2f} s")
        first = [refresh(root, dest, AS_OF, f"first run, {dest} (hashes all)") for dest in ("incremental", "full")]
        assert all(s.run.counts["adds_sent"] == members for s in first)
        change = apply_change(root, members, args.change)
        print(f"  change: {change.leaves:,} leave, {change.joins:,} join, {change.emails:,} change email")
        later = AS_OF + timedelta(days=1)
        saved = save_state(root)
        incremental = full = None
        paired: list[float] = []
        for attempt in range(args.repeat):
            restore_state(root, saved)
            step = refresh(root, "incremental", later, f"incremental refresh (mirror) #{attempt + 1}",
                           args.profile and attempt == 0)
            assert step.run.counts["adds_sent"] == change.joins + change.emails
            assert step.run.counts["removes_sent"] == change.leaves + change.emails
            incremental = step if incremental is None or step.seconds < incremental.seconds else incremental
            paired_incremental = step.seconds
            restore_state(root, saved)
            step = refresh(root, "full", later, f"full refresh (replace) #{attempt + 1}")
            assert step.run.counts["adds_sent"] == members - change.leaves + change.joins
            full = step if full is None or step.seconds < full.seconds else full
            paired.append(paired_incremental / step.seconds)
        assert incremental is not None and full is not None
        ratio = incremental.seconds / full.seconds
        cpu_ratio = incremental.cpu_seconds / full.cpu_seconds
        print(f"  best of {args.repeat}: incremental {incremental.seconds:.2f} s, full {full.seconds:.2f} s; "
              f"median of the {args.repeat} paired ratios {sorted(paired)[len(paired) // 2]:.1%}")
        verdict = "smoke run, fixed costs dominate" if args.quick else ("met" if ratio < GOAL else "MISSED")
        print(f"  incremental / full: {ratio:.1%} wall, {cpu_ratio:.1%} cpu (goal < {GOAL:.0%}): {verdict}")
        return 0 if ratio < GOAL or args.quick else 1
    finally:
        shutil.rmtree(root.parent / f"{root.name}.saved", ignore_errors=True)
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
