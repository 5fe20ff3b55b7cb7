"""`kill -9` of a real `audience refresh` at every step, then a restart: the same run finishes,
the destination ends exact, and no batch is applied twice (sandbox application counts all 1).

Kill windows come from the test-only pause hook (audience/runs/testhook.py:
AUDIENCE_TEST_PAUSE_AT=<point> makes the process announce itself in a file and sleep), or, for a
batch caught in flight, from the sandbox's `slow` fault.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

from exporters.grpc_ingest.sandbox import Sandbox
from exporters.grpc_ingest.sandbox_store import SandboxStore
from tests.exporters.grpc_helpers import sandbox_process
from tests.runs.helpers import (
    CONSENT_CONFIG,
    REPO_ROOT,
    LocalDrops,
    as_of,
    cli_command,
    cli_env,
    copy_fan_sql,
    duck,
    fan,
    file_destination,
    grant,
    grpc_destination,
    hashed_row,
    iso,
    kill_at_pause,
    read_runs,
    replay,
    run_cli,
    runs_json,
    sandbox_members,
    withdraw_sql,
)
from tests.warehouse_fixture import ROWS, project_on

AUDIENCE = """
audience fans {
  where: score >= 5
  sync dest { schedule: "0 6 * * *" }
}
"""


def grpc_config(port: int) -> str:
    return CONSENT_CONFIG + grpc_destination("dest", port, batch_size=2)


FILE_CONFIG = CONSENT_CONFIG + file_destination("dest", "file:out/dest", rows_per_file=2)


def email(key: int) -> str:
    return f"f{key}@example.com"


def rows_for(keys: range) -> dict[str, list[tuple[object, ...]]]:
    return {**ROWS, "fans": [fan(k, email(k).upper()) for k in keys], "consents": [grant(k) for k in range(1, 20)],
            "suppressions": []}


def expected(members: set[int], renamed: dict[int, str] | None = None) -> set[tuple[str, ...]]:
    names = {k: email(k) for k in members} | {k: v for k, v in (renamed or {}).items() if k in members}
    return {hashed_row([names[k]]) for k in members}


# (pause point to kill at, changes before the run, expected members after it)
SCRIPT: list[tuple[str, list[str], set[int]]] = [
    ("plan", [], {1, 2, 3, 4, 5, 6, 7}),  # after build: nothing sent yet
    ("batch:2", ["INSERT INTO fans SELECT fan_id + 7, 'F' || CAST(fan_id + 7 AS VARCHAR) || '@EXAMPLE.COM', phone, "
                 "city, country, birth_date, score, vip, signup_at, religion FROM fans WHERE fan_id <= 3",
                 "UPDATE fans SET score = 0 WHERE fan_id IN (1, 2)"],
     {3, 4, 5, 6, 7, 8, 9, 10}),  # mid-export: 2 of 3 batches acknowledged
    ("commit", ["UPDATE fans SET email = 'three@example.com' WHERE fan_id = 3",
                copy_fan_sql(11, "f11@example.com", like=4)],
     {3, 4, 5, 6, 7, 8, 9, 10, 11}),  # every batch sent, not committed
    ("exported", ["INSERT INTO suppressions VALUES (4)"], {3, 5, 6, 7, 8, 9, 10, 11}),  # committed, no snapshot
    ("snapshot", [withdraw_sql(5, "2026-07-05 00:00:00")],
     {3, 6, 7, 8, 9, 10, 11}),  # snapshot taken, run not marked finished
]
RENAMED = {3: "three@example.com"}


def killed_refresh(project: Path, point: str, step: int, marker: Path) -> None:
    """Start `audience refresh fans`, wait until it pauses at `point`, and SIGKILL it there."""
    assert kill_at_pause(project, point, marker, "refresh", "fans", "--as-of", iso(as_of(step))) == -9


def restart(project: Path, step: int) -> None:
    """Start again, an hour later: the unfinished run is resumed with its own as_of."""
    later = as_of(step).replace(hour=7)
    out = run_cli(project, "refresh", "fans", "--as-of", iso(later))
    assert out.returncode == 0, out.stdout + out.stderr


def test_kill9_at_every_step_then_restart_finishes_the_same_run(tmp_path: Path, sandbox: Sandbox) -> None:
    with project_on("duckdb", tmp_path / "p", AUDIENCE, grpc_config(sandbox.port), rows_for(range(1, 8))) as project:
        for step, (point, changes, members) in enumerate(SCRIPT):
            duck(project, *changes)
            killed_refresh(project, point, step, tmp_path / f"paused-{step}")
            runs = runs_json(project)
            assert len(runs) == step + 1
            killed = runs[-1]
            assert killed["state"] in ("building", "exporting"), point
            restart(project, step)
            runs = runs_json(project)
            assert len(runs) == step + 1, f"{point}: a new run was started instead of resuming"
            assert runs[-1]["run_id"] == killed["run_id"]
            assert runs[-1]["state"] == "succeeded", runs[-1]["error"]
            assert runs[-1]["as_of"] == as_of(step).isoformat()
            renamed = RENAMED if step >= 2 else {}
            assert sandbox_members(sandbox.store, "fans", ["email"]) == expected(members, renamed), point
            assert set(sandbox.store.application_counts().values()) == {1}, point
        # the snapshot recorded each run exactly once: a run without changes sends nothing
        out = run_cli(project, "refresh", "fans", "--as-of", iso(as_of(len(SCRIPT))), "--json")
        assert out.returncode == 0, out.stderr
        last = runs_json(project)[-1]
        assert (last["counts"]["adds_sent"], last["counts"]["removes_sent"]) == (0, 0)
        batches = [runs_json(project)[i]["counts"]["rows_to_send"] for i in range(len(SCRIPT))]
        assert batches == [7, 5, 3, 1, 1]  # 7 members; 3 join + 2 leave; new email (add + remove) + a join
        assert sandbox_members(sandbox.store, "fans", ["email"]) == expected(SCRIPT[-1][2], RENAMED)


def _rows(db: Path, sql: str) -> set[object]:
    """Read another process's SQLite file (WAL mode lets us read while it writes)."""
    if not db.exists():
        return set()
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        try:
            return {row[0] for row in conn.execute(sql)}
        except sqlite3.OperationalError:  # tables not created yet
            return set()


def _checkpoints(project: Path) -> set[object]:
    return _rows(project / ".audience" / "state.db", "SELECT step FROM audience_checkpoints")


def _received(db: Path) -> set[object]:
    return _rows(db, "SELECT seq FROM batches")


def test_kill9_while_a_batch_is_in_flight_never_applies_it_twice(tmp_path: Path) -> None:
    """The receiver applies batch 2 after the client died waiting for it; the restarted run
    sends it again (same sequence number), and the receiver recognizes it."""
    db = tmp_path / "sandbox.db"
    slow = ["--fault-slow", "1:4", "--fault-methods", "SendBatch"]
    with sandbox_process(db, extra_args=slow) as receiver, \
            project_on("duckdb", tmp_path / "p", AUDIENCE, grpc_config(receiver.port),
                       rows_for(range(1, 6))) as project:
        process = subprocess.Popen(cli_command(project, "refresh", "fans", "--as-of", iso(as_of(0))), cwd=REPO_ROOT,
                                   env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while "batch:1" not in _checkpoints(project):  # batch 1 acknowledged: batch 2 is on its way
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(1.5)  # batch 2 is now inside the receiver's 4-second stall
        finally:
            process.kill()
            process.communicate(timeout=60)
        deadline = time.monotonic() + 30
        while 2 not in _received(db):  # the receiver finishes handling it for a client that is gone
            assert time.monotonic() < deadline, "batch 2 never reached the receiver"
            time.sleep(0.1)
        assert "batch:2" not in _checkpoints(project)
        restart(project, 0)
        runs = runs_json(project)
        assert [r["state"] for r in runs] == ["succeeded"]
        with SandboxStore(db) as store:
            assert set(store.application_counts().values()) == {1}
            assert sandbox_members(store, "fans", ["email"]) == expected({1, 2, 3, 4, 5})


def test_kill9_mid_file_export_rewrites_nothing_twice(tmp_path: Path) -> None:
    """A file drop killed after its first part: the restart keeps that part, writes the rest,
    then the manifest; the folder is the same run's, and replaying the drops is exact."""
    with project_on("duckdb", tmp_path / "p", AUDIENCE, FILE_CONFIG, rows_for(range(1, 6))) as project:
        killed_refresh(project, "part:members:0", 0, tmp_path / "paused-0")
        source = LocalDrops(project / "out" / "dest")
        run_id = runs_json(project)[-1]["run_id"]
        assert source.keys("fans/") == [f"fans/{run_id}/members-00000.csv.gz"]  # no manifest: unfinished
        first_part = source.read(f"fans/{run_id}/members-00000.csv.gz")
        restart(project, 0)
        folders = read_runs(source, "fans", ["email"])
        assert [f.run_id for f in folders] == [run_id]
        assert [f["key"] for f in folders[0].manifest["files"]] == [
            "members-00000.csv.gz", "members-00001.csv.gz", "members-00002.csv.gz"]
        assert source.read(f"fans/{run_id}/members-00000.csv.gz") == first_part
        assert replay(folders) == expected({1, 2, 3, 4, 5})

        duck(project, "UPDATE fans SET score = 0 WHERE fan_id = 1", copy_fan_sql(6, "f6@example.com", like=2))
        killed_refresh(project, "commit", 1, tmp_path / "paused-1")  # parts written, manifest not
        restart(project, 1)
        folders = read_runs(source, "fans", ["email"])
        assert len(folders) == 2 and folders[1].run_id == runs_json(project)[-1]["run_id"]
        assert (folders[1].count("adds"), folders[1].count("removes")) == (1, 1)
        assert replay(folders) == expected({2, 3, 4, 5, 6})
