"""A scripted life cycle of one audience synced to a file drop, an S3 bucket (SeaweedFS) and the
sandbox gRPC receiver, through the real `audience refresh` command.

After every refresh (one day apart) each destination must hold exactly the expected hashed
members: the sandbox is asked for its committed members; the drops are replayed folder by
folder (members-* replace, adds add, removes remove) after checking every manifest's row
counts and SHA-256s. Expected hashes come from normalized values written out below.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exporters.grpc_ingest.sandbox import Sandbox
from tests.conftest import S3_BUCKET
from tests.exporters.s3_server import SeaweedS3
from tests.runs.helpers import (
    CONSENT_CONFIG,
    LocalDrops,
    S3Drops,
    as_of,
    change,
    destination,
    duck,
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
    withdraw_sql,
)
from tests.warehouse_fixture import ROWS, project_on

AUDIENCE = """
audience fans {
  where: score >= 5
  sync files { schedule: "0 6 * * *" }
  sync bucket { schedule: "0 6 * * *" }
  sync dsp { schedule: "0 6 * * *" }
}
"""

FANS = [
    fan(1, " Ann.Lee@Example.COM "),
    fan(2, "Jane.Doe+promo@Gmail.com", "+44 7911 123456"),
    fan(3, "c.k@example.com", "07911 123457"),  # national format, read in GB
    fan(4, "dee@example.com"),
    fan(5, "eve@example.com", "+44 7911 123458"),
    fan(6, "frank@example.com", score=1),  # not a member yet
]

# Normalized by hand (exports.md): email trimmed + lowercased; uid2 also drops dots and the
# "+tag" of gmail local parts; phone E.164 with "+" (sha256) or its digits (meta).
EMAIL = {1: "ann.lee@example.com", 2: "jane.doe+promo@gmail.com", 3: "c.k@example.com", 4: "dee@example.com",
         5: "eve@example.com", 6: "frank@example.com", 101: "ann.new@example.com"}
UID2_EMAIL = {**EMAIL, 2: "janedoe@gmail.com"}
PHONE = {2: "+447911123456", 3: "+447911123457", 5: "+447911123458"}

# (step, change before the refresh, members after it; 101 = fan 1 with the new email)
SCRIPT: list[tuple[str, list[str], set[int]]] = [
    ("first run: full upload", [], {1, 2, 3, 4, 5}),
    ("fan 6 joins", ["UPDATE fans SET score = 10 WHERE fan_id = 6"], {1, 2, 3, 4, 5, 6}),
    ("fan 3 leaves", ["UPDATE fans SET score = 0 WHERE fan_id = 3"], {1, 2, 4, 5, 6}),
    ("fan 4 withdraws consent",
     [withdraw_sql(4, "2026-07-03 12:00:00")],
     {1, 2, 5, 6}),
    ("fan 5 is suppressed", ["INSERT INTO suppressions VALUES (5)"], {1, 2, 6}),
    ("fan 6 is deleted", ["DELETE FROM fans WHERE fan_id = 6"], {1, 2}),
    ("fan 1 changes email", ["UPDATE fans SET email = 'Ann.New@example.com' WHERE fan_id = 1"], {101, 2}),
]
# adds and removes each destination must be sent at each step
SENT = [(5, 0), (1, 0), (0, 1), (0, 1), (0, 1), (0, 1), (1, 1)]


def expected(members: set[int], dest: str) -> set[tuple[str, ...]]:
    rows = set()
    for key in members:
        phone = PHONE.get(1 if key == 101 else key)
        if dest == "files":  # sha256: email, phone E.164 with +
            rows.add(hashed_row([EMAIL[key], phone]))
        elif dest == "bucket":  # meta: email, phone digits without +
            rows.add(hashed_row([EMAIL[key], phone[1:] if phone else None]))
        else:  # uid2: email only, base64
            rows.add(hashed_row([UID2_EMAIL[key]], encode="b64"))
    return rows


def config(sandbox: Sandbox, s3: SeaweedS3, prefix: str) -> str:
    return (CONSENT_CONFIG + file_destination(identifiers=["email", "phone"])
            + destination("bucket", type="s3", uri=f"s3://{S3_BUCKET}/{prefix}", endpoint_url=s3.endpoint_url,
                          region="us-east-1", format="meta", identifiers=["email", "phone"])
            + grpc_destination("dsp", sandbox.port, format="uid2"))


def refresh(project: Path, step: int) -> dict[str, dict[str, Any]]:
    out = run_cli(project, "refresh", "fans", "--as-of", iso(as_of(step)), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    return {r["destination"]: r for r in json.loads(out.stdout)["runs"]}


def test_life_cycle_on_file_s3_and_grpc(tmp_path: Path, sandbox: Sandbox, s3_env: SeaweedS3, s3_prefix: str,
                                        s3_admin: Any) -> None:
    rows = {**ROWS, "fans": FANS, "consents": [grant(k) for k in range(1, 7)], "suppressions": []}
    with project_on("duckdb", tmp_path, AUDIENCE, config(sandbox, s3_env, s3_prefix), rows) as project:
        drops = {"files": (LocalDrops(project / "out" / "files"), ("email", "phone")),
                 "bucket": (S3Drops(s3_admin, S3_BUCKET, s3_prefix), ("email", "phone"))}
        for step, (what, changes, members) in enumerate(SCRIPT):
            duck(project, *changes)
            runs = refresh(project, step)
            assert set(runs) == {"files", "bucket", "dsp"}, what
            for dest, run in runs.items():
                assert run["state"] == "succeeded", (what, dest, run["error"])
                assert (run["counts"]["adds_sent"], run["counts"]["removes_sent"]) == SENT[step], (what, dest)
                assert run["full_upload"] is (step == 0), (what, dest)
            assert sandbox_members(sandbox.store, "fans", ["email"]) == expected(members, "dsp"), what
            for dest, (source, columns) in drops.items():
                folders = read_runs(source, "fans", columns)
                assert len(folders) == step + 1, (what, dest)
                newest = folders[-1]
                assert newest.run_id == runs[dest]["run_id"]
                assert replay(folders) == expected(members, dest), (what, dest)
                adds, removes = SENT[step]
                if step == 0:
                    assert newest.kinds == {"members"} and newest.count("members") == 5
                else:
                    assert (newest.count("adds"), newest.count("removes")) == (adds, removes), (what, dest)
                    assert newest.manifest["mode"] == "mirror"
        assert set(sandbox.store.application_counts().values()) == {1}
        first = read_runs(drops["bucket"][0], "fans", ("email", "phone"))[0].manifest
        assert first["destination"] == "bucket" and first["format"] == "meta" and first["mode"] == "replace"
        assert first["as_of"] == "2026-07-01T06:00:00+00:00"
        assert first["definition"]["file"] == "audiences/test.aud"
        assert len(first["definition"]["content_hash"]) == 64
        assert first["consent_funnel"] == {"matched": 5, "suppressed": 0, "under_age": 0, "no_permission": 0,
                                           "no_identifier": 0, "held_out": 0, "exportable": 5}


SHARED_AUDIENCE = """
audience fans {
  where: score >= 5
  sync files { schedule: "0 6 * * *" }
  sync dsp { schedule: "0 6 * * *" }
}
"""


@pytest.mark.parametrize(("engine", "mode"), [("duckdb", "mirror"), ("duckdb", "additive"), ("postgres", "mirror")])
def test_a_removal_never_drops_a_hash_someone_else_still_holds(tmp_path: Path, sandbox: Sandbox, engine: str,
                                                               mode: str, project_name: str) -> None:
    """Receivers know members only by their hashes: when two profiles share an email, one leaving
    must not remove the other; a raw change that normalizes to the same hash keeps the member."""
    fans = [fan(10, "dup@example.com"), fan(11, " DUP@example.com"), fan(12, "Case@Example.com"),
            fan(13, "other@example.com"), fan(14, "fourth@example.com")]
    audience = SHARED_AUDIENCE.replace('"0 6 * * *" }', f'"0 6 * * *", mode: {mode} }}')
    cfg = CONSENT_CONFIG + file_destination() + grpc_destination("dsp", sandbox.port)
    rows = {**ROWS, "fans": fans, "consents": [grant(k) for k in range(10, 15)], "suppressions": []}
    dup, case, other, fourth = (hashed_row([e]) for e in ("dup@example.com", "case@example.com",
                                                          "other@example.com", "fourth@example.com"))
    with project_on(engine, tmp_path, audience, cfg, rows) as project:
        rename_project(project, project_name)
        refresh(project, 0)
        assert sandbox_members(sandbox.store, "fans", ["email"]) == {dup, case, other, fourth}
        # fan 11 withdraws consent (a removal sent in every mode), fan 12's email changes case only
        change(engine, project, withdraw_sql(11, "2026-07-01 12:00:00"),
               "UPDATE fans SET email = 'case@example.com' WHERE fan_id = 12")
        runs = refresh(project, 1)
        assert sandbox_members(sandbox.store, "fans", ["email"]) == {dup, case, other, fourth}
        folders = read_runs(LocalDrops(project / "out" / "files"), "fans", ["email"])
        assert replay(folders) == {dup, case, other, fourth}
        assert folders[-1].rows.get("removes", []) == []
        # both removals were planned (forced for fan 11) but neither went out: the hashes stay
        assert runs["files"]["counts"]["removes"] == (2 if mode == "mirror" else 1)
        assert runs["files"]["counts"]["removes_sent"] == 0
        # now fan 10 is suppressed too: nobody holds dup@example.com any more
        change(engine, project, "INSERT INTO suppressions VALUES (10)")
        refresh(project, 2)
        assert sandbox_members(sandbox.store, "fans", ["email"]) == {case, other, fourth}
        folders = read_runs(LocalDrops(project / "out" / "files"), "fans", ["email"])
        assert folders[-1].rows["removes"] == [dup]
        assert replay(folders) == {case, other, fourth}
        # a profile deleted from the warehouse is removed in every mode
        change(engine, project, "DELETE FROM fans WHERE fan_id = 13")
        runs = refresh(project, 3)
        assert runs["dsp"]["counts"]["removes_sent"] == 1
        assert sandbox_members(sandbox.store, "fans", ["email"]) == {case, fourth}
        assert replay(read_runs(LocalDrops(project / "out" / "files"), "fans", ["email"])) == {case, fourth}
        assert set(sandbox.store.application_counts().values()) == {1}


EVENT_AUDIENCE = """
audience recent_listeners {
  where: did stream in last 20 days and not did purchase where category = "ticket"
  sync files { schedule: "0 12 * * *" }
}
"""
EVENT_CONFIG = CONSENT_CONFIG + file_destination()


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_an_event_audience_follows_its_time_window_from_run_to_run(tmp_path: Path, engine: str,
                                                                   project_name: str) -> None:
    """The fixture's streams and purchases (tests/warehouse_fixture.py): a 20-day window slides
    over them, so fan 2 joins when a stream just after the first as_of comes in, and fan 3
    leaves when its streams of 15-16 June fall out."""
    rows = {**ROWS, "consents": [grant(k) for k in range(1, 9)]}
    members = {1: "fan.one@example.com", 2: "two@example.com", 3: "three@example.com"}
    script = [("2026-06-30T12:00:00Z", {1, 3}, (2, 0)), ("2026-07-01T12:00:00Z", {1, 2, 3}, (1, 0)),
              ("2026-07-06T12:00:00Z", {1, 2}, (0, 1))]
    with project_on(engine, tmp_path, EVENT_AUDIENCE, EVENT_CONFIG, rows) as project:
        rename_project(project, project_name)
        for when, expected_members, sent in script:
            out = run_cli(project, "refresh", "recent_listeners", "--as-of", when, "--json")
            assert out.returncode == 0, out.stdout + out.stderr
            (run,) = json.loads(out.stdout)["runs"]
            assert (run["counts"]["adds_sent"], run["counts"]["removes_sent"]) == sent, when
            folders = read_runs(LocalDrops(project / "out" / "files"), "recent_listeners", ["email"])
            assert replay(folders) == {hashed_row([members[k]]) for k in expected_members}, when
