"""`audience plan` (due or not, adds/removes), `audience runs` (--json fields), and `refresh --due`
following each sync's cron schedule (UTC): a sync whose cron has not fired since its last
success is skipped. 2026-07-01 is a Wednesday."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from tests.runs.helpers import (
    CONSENT_CONFIG,
    duck,
    fan,
    file_destination,
    grant,
    iso,
    kill_at_pause,
    run_cli,
    runs_json,
)
from tests.warehouse_fixture import ROWS, project_on

AUDIENCES = """
audience fans {
  where: score >= 5
  sync files { schedule: "0 6 * * *" }
}
audience manual {
  where: score < 5
  sync files { mode: additive }
}
audience weekly {
  where: score >= 5
  sync files { schedule: "0 7 * * 1", mode: replace }
}
"""
CONFIG = CONSENT_CONFIG + file_destination()
RUN_FIELDS = {"run_id", "audience", "destination", "mode", "state", "as_of", "created_at", "started_at",
              "finished_at", "counts", "error", "progress_done", "progress_total", "definition_file",
              "content_hash", "git_commit", "full_upload", "force"}


def rows() -> dict[str, list[tuple[object, ...]]]:
    fans = [fan(k, f"fan{k}@example.com", score=10 if k <= 5 else 1) for k in range(1, 8)]
    return {**ROWS, "fans": fans, "consents": [grant(k) for k in range(1, 8)], "suppressions": []}


def plan(project: Path, when: str) -> list[str]:
    out = run_cli(project, "plan", "--as-of", when)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def due_runs(project: Path, when: str) -> list[str]:
    """`refresh --due`: the syncs it ran, as audience -> destination."""
    out = run_cli(project, "refresh", "--due", "--as-of", when, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    return [f"{r['audience']} -> {r['destination']}" for r in json.loads(out.stdout)["runs"]]


def test_plan_and_due_follow_the_cron_schedules(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, AUDIENCES, CONFIG, rows()) as project:
        assert plan(project, "2026-07-01T06:00:00Z") == [
            "fans -> files [0 6 * * *] due: replace, +5 / -0",  # never ran: due, first run uploads all
            "manual -> files [manual] not due: replace, +2 / -0",  # no schedule: only by name
            "weekly -> files [0 7 * * 1] due: replace, +5 / -0",
        ]
        assert due_runs(project, "2026-07-01T06:00:00Z") == ["fans -> files", "weekly -> files"]

        duck(project, "UPDATE fans SET score = 0 WHERE fan_id = 1", "UPDATE fans SET score = 10 WHERE fan_id = 6")
        assert plan(project, "2026-07-01T12:00:00Z") == [
            "fans -> files [0 6 * * *] not due: mirror, +1 / -1",
            "manual -> files [manual] not due: replace, +2 / -0",
            "weekly -> files [0 7 * * 1] not due: replace, +5 / -0",
        ]
        out = run_cli(project, "refresh", "--due", "--as-of", "2026-07-01T12:00:00Z")
        assert (out.returncode, out.stdout) == (0, "no sync is due\n")
        # the daily cron fired at 06:00 on Thursday; the weekly one waits for Monday 07:00
        assert due_runs(project, "2026-07-02T06:00:00Z") == ["fans -> files"]
        assert due_runs(project, "2026-07-06T06:59:59Z") == ["fans -> files"]
        assert due_runs(project, "2026-07-06T07:00:00Z") == ["weekly -> files"]

        data = json.loads(run_cli(project, "plan", "--as-of", "2026-07-06T08:00:00Z", "--json").stdout)
        assert data["syncs"][0] == {"audience": "fans", "destination": "files", "schedule": "0 6 * * *", "due": False,
                                    "next_run": "2026-07-07T06:00:00+00:00", "mode": "mirror", "outcome": "succeeded",
                                    "adds": 0, "removes": 0, "exportable": 5, "note": None}
        # a plan is a preview: it leaves no plan rows in the warehouse
        con = duckdb.connect(str(project / "wh.duckdb"))
        try:
            for table in ("plan_adds", "plan_removes"):
                assert con.execute(f"SELECT COUNT(*) FROM audience_state.{table}").fetchone() == (0,)
        finally:
            con.close()


def test_runs_lists_history_with_its_fields(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, AUDIENCES, CONFIG, rows()) as project:
        out = run_cli(project, "refresh", "fans", "--as-of", "2026-07-01T06:00:00Z")
        assert out.returncode == 0, out.stderr
        (line,) = out.stdout.splitlines()
        run_id = line.split()[0]
        assert line == f"{run_id} fans -> files: succeeded (adds 5, removes 0, exportable 5 of 5 matched)"
        duck(project, "UPDATE fans SET score = 0 WHERE fan_id = 1")
        assert run_cli(project, "refresh", "fans", "--as-of", "2026-07-02T06:00:00Z").returncode == 0

        runs = runs_json(project)
        assert [set(r) for r in runs] == [RUN_FIELDS, RUN_FIELDS]
        first, second = runs
        assert first["run_id"] == run_id
        assert (first["audience"], first["destination"], first["mode"], first["state"]) == (
            "fans", "files", "mirror", "succeeded")
        assert (first["full_upload"], second["full_upload"]) == (True, False)
        assert first["as_of"] == "2026-07-01T06:00:00+00:00" and second["as_of"] == "2026-07-02T06:00:00+00:00"
        assert first["error"] is None and first["force"] is False
        assert first["definition_file"] == "audiences/test.aud" and len(first["content_hash"]) == 64
        assert {k: second["counts"][k] for k in ("adds_sent", "removes_sent", "rows_to_send", "funnel_matched",
                                                 "funnel_exportable", "previous_members")} == {
            "adds_sent": 0, "removes_sent": 1, "rows_to_send": 1, "funnel_matched": 4, "funnel_exportable": 4,
            "previous_members": 5}
        for run in runs:
            started, finished = (datetime.fromisoformat(run[k]) for k in ("started_at", "finished_at"))
            assert started.tzinfo == UTC and started <= finished
            assert run["progress_done"] == run["progress_total"] == run["counts"]["rows_to_send"]

        text = run_cli(project, "runs").stdout.splitlines()
        assert text[0].split() == ["run", "audience", "destination", "state", "adds", "removes", "started",
                                   "finished", "error"]
        assert [line.split()[:6] for line in text[1:]] == [
            [second["run_id"], "fans", "files", "succeeded", "0", "1"],
            [first["run_id"], "fans", "files", "succeeded", "5", "0"],
        ]


def test_due_resumes_an_unfinished_run_before_its_next_tick(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, AUDIENCES, CONFIG, rows()) as project:
        assert due_runs(project, "2026-07-01T06:00:00Z") == ["fans -> files", "weekly -> files"]
        duck(project, "UPDATE fans SET score = 0 WHERE fan_id = 1")
        kill_at_pause(project, "plan", tmp_path / "paused", "refresh", "fans", "--as-of",
                      iso(datetime(2026, 7, 1, 9, tzinfo=UTC)))
        assert plan(project, "2026-07-01T10:00:00Z")[0] == "fans -> files [0 6 * * *] due: mirror, +0 / -1"
        assert due_runs(project, "2026-07-01T10:00:00Z") == ["fans -> files"]
        fans_runs = [r for r in runs_json(project) if r["audience"] == "fans"]
        assert [(r["state"], r["as_of"]) for r in fans_runs] == [
            ("succeeded", "2026-07-01T06:00:00+00:00"), ("succeeded", "2026-07-01T09:00:00+00:00")]
