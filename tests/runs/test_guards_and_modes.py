"""The max_change guard (held runs, --force), the min_size refusal, and the three sync modes, on a
file drop and the sandbox gRPC receiver at once, through `audience refresh`.

Rules under test (dsl.md, consent.md rule 5): a held run sends nothing but the removals that
consent, suppression, age and deletion demand; a too-small audience adds nothing and sends its
removals; additive sends adds plus those forced removals; replace uploads the whole list.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exporters.grpc_ingest.sandbox import Sandbox
from tests.runs.helpers import (
    CONSENT_CONFIG,
    LocalDrops,
    RunFolder,
    as_of,
    copy_fan_sql,
    duck,
    fan,
    file_destination,
    grant,
    grpc_destination,
    hashed_row,
    iso,
    read_runs,
    replay,
    run_cli,
    runs_json,
    sandbox_members,
    withdraw_sql,
)
from tests.warehouse_fixture import ROWS, project_on

DESTS = ("files", "dsp")


def config(port: int, *, min_size: int = 1, max_change: float = 0.5) -> str:
    return (CONSENT_CONFIG + file_destination(min_size=min_size, max_change=max_change)
            + grpc_destination("dsp", port, min_size=min_size, max_change=max_change))


def audience(mode: str) -> str:
    return f"""
audience fans {{
  where: score >= 5
  sync files {{ schedule: "0 6 * * *", mode: {mode} }}
  sync dsp {{ schedule: "0 6 * * *", mode: {mode} }}
}}
"""


def rows(keys: range) -> dict[str, list[tuple[Any, ...]]]:
    return {**ROWS, "fans": [fan(k, f"fan{k}@example.com") for k in keys],
            "consents": [grant(k) for k in range(1, 30)], "suppressions": []}


def hashed(*keys: int, renamed: dict[int, str] | None = None) -> set[tuple[str, ...]]:
    names = renamed or {}
    return {hashed_row([names.get(k, f"fan{k}@example.com")]) for k in keys}


def refresh(project: Path, step: int, *extra: str) -> tuple[int, dict[str, dict[str, Any]], str]:
    out = run_cli(project, "refresh", "fans", "--as-of", iso(as_of(step)), "--json", *extra)
    runs = {r["destination"]: r for r in json.loads(out.stdout)["runs"]}
    return out.returncode, runs, out.stderr


Members = set[tuple[str, ...]]


def destination_state(project: Path, sandbox: Sandbox) -> tuple[Members, Members, list[RunFolder]]:
    folders = read_runs(LocalDrops(project / "out" / "files"), "fans", ["email"])
    return replay(folders), sandbox_members(sandbox.store, "fans", ["email"]), folders


def test_a_large_change_is_held_except_forced_removals_until_forced(tmp_path: Path, sandbox: Sandbox) -> None:
    with project_on("duckdb", tmp_path, audience("mirror"), config(sandbox.port, max_change=0.2),
                    rows(range(1, 11))) as project:
        code, _, _ = refresh(project, 0)
        assert code == 0
        duck(project,
             "UPDATE fans SET score = 0 WHERE fan_id <= 5",  # half the members leave
             withdraw_sql(6, "2026-07-01 12:00:00"),
             "INSERT INTO suppressions VALUES (7)",
             "UPDATE fans SET birth_date = DATE '2010-01-01' WHERE fan_id = 8",  # now under 18
             copy_fan_sql(11, "fan11@example.com", like=9))
        code, runs, stderr = refresh(project, 1)
        assert code == 2
        message = ("held: 1 adds and 5 removes exceed max_change (20% of the 10 members last exported); review "
                   "and rerun with --force; 3 removals required by consent, suppression, age or deletion were sent")
        assert stderr.splitlines() == [f"error: fans -> {d}: {message}" for d in DESTS]
        for dest in DESTS:
            assert runs[dest]["state"] == "held" and runs[dest]["error"] == message
            assert (runs[dest]["counts"]["adds_sent"], runs[dest]["counts"]["removes_sent"]) == (0, 3)
        files, grpc, folders = destination_state(project, sandbox)
        assert files == grpc == hashed(1, 2, 3, 4, 5, 9, 10)  # 6, 7, 8 removed; 11 not added
        assert folders[-1].kinds == {"removes"} and set(folders[-1].rows["removes"]) == hashed(6, 7, 8)

        # a held run is finished: the next plain refresh is held again, sending nothing new
        code, runs, _ = refresh(project, 1)
        assert code == 2 and {r["state"] for r in runs.values()} == {"held"}
        assert {r["counts"]["rows_to_send"] for r in runs.values()} == {0}
        assert len(read_runs(LocalDrops(project / "out" / "files"), "fans", ["email"])) == 2  # nothing written

        code, runs, stderr = refresh(project, 1, "--force")
        assert (code, stderr) == (0, "")
        for dest in DESTS:
            assert runs[dest]["state"] == "succeeded" and runs[dest]["force"] is True
            assert (runs[dest]["counts"]["adds_sent"], runs[dest]["counts"]["removes_sent"]) == (1, 5)
        files, grpc, _ = destination_state(project, sandbox)
        assert files == grpc == hashed(9, 10, 11)
        assert [r["state"] for r in runs_json(project) if r["destination"] == "dsp"] == [
            "succeeded", "held", "held", "succeeded"]
        assert set(sandbox.store.application_counts().values()) == {1}


def test_too_small_sends_removals_only_and_fails_clearly(tmp_path: Path, sandbox: Sandbox) -> None:
    with project_on("duckdb", tmp_path, audience("mirror"), config(sandbox.port, min_size=4, max_change=1.0),
                    rows(range(1, 6))) as project:
        assert refresh(project, 0)[0] == 0
        duck(project, "UPDATE fans SET score = 0 WHERE fan_id IN (1, 2)",
             withdraw_sql(3, "2026-07-01 12:00:00"), copy_fan_sql(6, "fan6@example.com", like=4))
        code, runs, stderr = refresh(project, 1)
        assert code == 2
        message = ("audience fans is too small for {d}: fewer than 4 profiles remain after consent and holdout "
                   "(min_size); nothing was added; 3 removals were sent")
        assert stderr.splitlines() == [f"error: fans -> {d}: {message.format(d=d)}" for d in DESTS]
        for dest in DESTS:
            assert runs[dest]["state"] == "failed"
            assert (runs[dest]["counts"]["adds_sent"], runs[dest]["counts"]["removes_sent"]) == (0, 3)
            assert runs[dest]["counts"]["funnel_exportable"] == 3
        files, grpc, folders = destination_state(project, sandbox)
        assert files == grpc == hashed(4, 5)  # 6 was not added
        assert folders[-1].kinds == {"removes"}


def test_too_small_on_the_first_run_sends_nothing(tmp_path: Path, sandbox: Sandbox) -> None:
    with project_on("duckdb", tmp_path, audience("mirror"), config(sandbox.port, min_size=10),
                    rows(range(1, 6))) as project:
        code, runs, stderr = refresh(project, 0)
        assert code == 2 and {r["state"] for r in runs.values()} == {"failed"}
        assert "fewer than 10 profiles remain" in stderr and "removals were sent" not in stderr
        assert not (project / "out" / "files").exists()
        assert sandbox.store.application_counts() == {} and sandbox_members(sandbox.store, "fans", ["email"]) == set()


def test_additive_sends_adds_and_forced_removals_only(tmp_path: Path, sandbox: Sandbox) -> None:
    with project_on("duckdb", tmp_path, audience("additive"), config(sandbox.port),
                    rows(range(1, 6))) as project:
        assert refresh(project, 0)[0] == 0
        duck(project, "UPDATE fans SET score = 0 WHERE fan_id = 1",  # leaves: kept by additive
             withdraw_sql(2, "2026-07-01 12:00:00"),  # withdraws: removed in every mode
             "UPDATE fans SET email = 'three@example.com' WHERE fan_id = 3",  # old hash kept, new one added
             copy_fan_sql(6, "fan6@example.com", like=4))
        code, runs, _ = refresh(project, 1)
        assert code == 0
        for dest in DESTS:
            assert (runs[dest]["counts"]["adds_sent"], runs[dest]["counts"]["removes_sent"]) == (2, 1)
        files, grpc, folders = destination_state(project, sandbox)
        assert files == grpc == hashed(1, 3, 4, 5, 6) | hashed(3, renamed={3: "three@example.com"})
        newest = folders[-1]
        assert newest.manifest["mode"] == "additive"
        assert set(newest.rows["adds"]) == hashed(6) | hashed(3, renamed={3: "three@example.com"})
        assert set(newest.rows["removes"]) == hashed(2)

        # switched to mirror: what additive kept (fan 1, who left; fan 3's old email) now goes
        (project / "audiences" / "test.aud").write_text(audience("mirror"), encoding="utf-8")
        code, runs, _ = refresh(project, 2)
        assert code == 0
        for dest in DESTS:
            assert (runs[dest]["counts"]["adds_sent"], runs[dest]["counts"]["removes_sent"]) == (0, 2)
        files, grpc, folders = destination_state(project, sandbox)
        assert files == grpc == hashed(4, 5, 6) | hashed(3, renamed={3: "three@example.com"})
        assert set(folders[-1].rows["removes"]) == hashed(1, 3)


def test_replace_uploads_the_whole_list_every_run(tmp_path: Path, sandbox: Sandbox) -> None:
    with project_on("duckdb", tmp_path, audience("replace"), config(sandbox.port, min_size=3),
                    rows(range(1, 6))) as project:
        for step, changes, expected in (
            (0, [], hashed(1, 2, 3, 4, 5)),
            (1, ["UPDATE fans SET score = 0 WHERE fan_id = 1", copy_fan_sql(6, "fan6@example.com", like=4)],
             hashed(2, 3, 4, 5, 6)),
        ):
            duck(project, *changes)
            code, runs, _ = refresh(project, step)
            assert code == 0 and {r["full_upload"] for r in runs.values()} == {True}
            files, grpc, folders = destination_state(project, sandbox)
            assert files == grpc == expected
            assert folders[-1].kinds == {"members"} and set(folders[-1].rows["members"]) == expected
            assert folders[-1].manifest["mode"] == "replace"
        # too small in replace mode: no whole list, so the removals go out as a delta (never an
        # empty REPLACE, which would wipe the segment)
        duck(project, *[withdraw_sql(k, "2026-07-02 12:00:00") for k in (2, 3, 4)])
        code, runs, _ = refresh(project, 2)
        assert code == 2 and {r["state"] for r in runs.values()} == {"failed"}
        files, grpc, folders = destination_state(project, sandbox)
        assert files == grpc == hashed(5, 6)
        assert folders[-1].kinds == {"removes"} and folders[-1].manifest["mode"] == "mirror"
        assert set(sandbox.store.application_counts().values()) == {1}

