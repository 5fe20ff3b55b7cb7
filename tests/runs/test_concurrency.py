"""Two `audience refresh --due` processes at once, with the warehouse AND the state store on
PostgreSQL: every due sync runs exactly once (runs table, sandbox uploads, file folders).

Each test uses its own PostgreSQL schemas (warehouse and state, dropped afterwards) and its own
`[project] name`, whose rows in the shared `audience_state` snapshot schema are deleted after.
"""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from audience.runs.store import StateStore, now
from exporters.grpc_ingest.faults import FaultPlan
from tests.exporters.grpc_helpers import running_sandbox
from tests.runs.helpers import (
    CONSENT_CONFIG,
    REPO_ROOT,
    LocalDrops,
    as_of,
    cli_command,
    cli_env,
    fan,
    file_destination,
    grant,
    grpc_destination,
    hashed_row,
    iso,
    read_runs,
    rename_project,
    replay,
    run_cli,
    sandbox_members,
)
from tests.warehouse_fixture import PG_DSN, ROWS, pg_url, project_on

AUDIENCES = """
audience big_fans {
  where: score >= 5
  sync files { schedule: "0 6 * * *" }
  sync dsp { schedule: "0 6 * * *" }
}
audience casual_fans {
  where: score < 5
  sync files { schedule: "0 6 * * *" }
  sync dsp { schedule: "0 6 * * *" }
}
audience everyone {
  where: fan_id is not null
  sync dsp { schedule: "0 * * * *" }
}
audience manual_only {
  where: fan_id is not null
  sync files { mode: mirror }
}
"""
# fans 1-6 score 10, fans 7-10 score 1
FANS = [fan(k, f"fan{k}@example.com", score=10 if k <= 6 else 1) for k in range(1, 11)]
SYNCS = {("big_fans", "files"), ("big_fans", "dsp"), ("casual_fans", "files"), ("casual_fans", "dsp"),
         ("everyone", "dsp")}


def config(port: int, state_schema: str) -> str:
    return CONSENT_CONFIG + file_destination() + grpc_destination("dsp", port, batch_size=2) + f'''
[state]
url = "{pg_url(state_schema)}"
'''


def pg(sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(PG_DSN, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def names(project_name: str) -> Iterator[tuple[str, str]]:
    """A project name (its snapshot rows deleted afterwards, conftest.py) and a state schema,
    dropped afterwards."""
    state = f"st_{uuid.uuid4().hex[:10]}"
    yield project_name, state
    pg(f"DROP SCHEMA IF EXISTS {state} CASCADE")


def members(n: range | list[int]) -> set[tuple[str, ...]]:
    return {hashed_row([f"fan{k}@example.com"]) for k in n}


def test_two_due_workers_run_every_due_sync_exactly_once(tmp_path: Path, names: tuple[str, str]) -> None:
    project_name, state_schema = names
    slow = FaultPlan(slow=1.0, slow_s=0.3, methods=frozenset({"SendBatch"}))  # keeps the two workers overlapping
    rows = {**ROWS, "fans": FANS, "consents": [grant(k) for k in range(1, 11)], "suppressions": []}
    with running_sandbox(tmp_path / "sandbox.db", faults=slow) as sandbox, \
            project_on("postgres", tmp_path / "p", AUDIENCES, config(sandbox.port, state_schema), rows) as project:
        rename_project(project, project_name)
        command = cli_command(project, "refresh", "--due", "--as-of", iso(as_of(0)), "--json")
        workers = [subprocess.Popen(command, cwd=REPO_ROOT, env=cli_env(), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [w.communicate(timeout=300) for w in workers]
        for worker, (out, err) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, out + err
        reported = [(r["audience"], r["destination"]) for out, _ in outputs for r in json.loads(out)["runs"]]
        assert Counter(reported) == Counter(SYNCS)  # between them, each due sync once; manual_only never

        # the state store made its tables in the search_path schema named by [state] url
        tables = {r[0] for r in pg("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                                   (state_schema,))}
        assert tables == {"audience_runs", "audience_checkpoints", "audience_leases", "audience_profile_ids",
                      "audience_answer_sets"}
        runs = pg(f"SELECT audience, destination, state FROM {state_schema}.audience_runs")
        assert Counter((a, d) for a, d, _ in runs) == Counter(SYNCS)
        assert {s for _, _, s in runs} == {"succeeded"}
        assert pg(f"SELECT COUNT(*) FROM {state_schema}.audience_leases") == [(0,)]

        counts = sandbox.store.application_counts()
        assert set(counts.values()) == {1}
        assert Counter(name.split("/")[1] for name in {n for n, _ in counts}) == {
            "big_fans": 1, "casual_fans": 1, "everyone": 1}  # one upload per sync
        assert Counter(name.split("/")[1] for name, _ in counts) == {
            "big_fans": 3, "casual_fans": 2, "everyone": 5}  # its batches of 2 members
        assert sandbox_members(sandbox.store, "big_fans", ["email"]) == members(range(1, 7))
        assert sandbox_members(sandbox.store, "casual_fans", ["email"]) == members(range(7, 11))
        assert sandbox_members(sandbox.store, "everyone", ["email"]) == members(range(1, 11))
        for audience, expected in (("big_fans", range(1, 7)), ("casual_fans", range(7, 11))):
            folders = read_runs(LocalDrops(project / "out" / "files"), audience, ["email"])
            assert len(folders) == 1 and replay(folders) == members(expected)
        snapshot = pg("SELECT audience, destination, COUNT(*) FROM audience_state.members WHERE project = %s "
                      "GROUP BY audience, destination", (project_name,))
        assert sorted(snapshot) == [("big_fans", "dsp", 6), ("big_fans", "files", 6), ("casual_fans", "dsp", 4),
                                    ("casual_fans", "files", 4), ("everyone", "dsp", 10)]

        # at 06:30 no cron has fired since the runs of 06:00; at 07:00 the hourly one has
        later = run_cli(project, "refresh", "--due", "--as-of", iso(as_of(0) + timedelta(minutes=30)))
        assert (later.returncode, later.stdout.strip()) == (0, "no sync is due")
        hourly = run_cli(project, "refresh", "--due", "--as-of", iso(as_of(0) + timedelta(hours=1)), "--json")
        assert hourly.returncode == 0, hourly.stderr
        assert [(r["audience"], r["destination"]) for r in json.loads(hourly.stdout)["runs"]] == [("everyone", "dsp")]


def test_leases_on_postgres_exclude_a_second_worker_until_released_expired_or_dead(
        tmp_path: Path, names: tuple[str, str]) -> None:
    _, state_schema = names
    first, second = (StateStore(pg_url(state_schema), tmp_path) for _ in range(2))
    try:
        ttl = timedelta(minutes=2)
        assert first.acquire_lease("sync:a:b", "host-x:1", ttl)
        assert not second.acquire_lease("sync:a:b", "host-x:2", ttl)  # held, and not a local pid
        assert first.acquire_lease("sync:a:b", "host-x:1", ttl)  # the holder may take it again
        first.release_lease("sync:a:b", "host-x:1")
        assert second.acquire_lease("sync:a:b", "host-x:2", ttl)
        assert not first.renew_lease("sync:a:b", "host-x:1", ttl)  # a worker that lost it learns so
        pg(f"UPDATE {state_schema}.audience_leases SET expires_at = %s", ((now() - ttl).isoformat(),))
        assert first.acquire_lease("sync:a:b", "host-x:1", ttl)  # expired: taken over
        no_such_pid = f"{socket.gethostname()}:999999999"
        pg(f"UPDATE {state_schema}.audience_leases SET owner = %s", (no_such_pid,))
        assert second.acquire_lease("sync:a:b", "host-x:2", ttl)  # its local holder is dead: taken over
    finally:
        first.close()
        second.close()
