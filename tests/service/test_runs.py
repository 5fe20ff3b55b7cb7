"""RefreshAudience, WatchRun, GetRun and ListRuns against the run engine and a `file` destination.

`everyone` -> `ads` (sha256 format, email and phone, min_size 5) exports the 9 fans listed by
hand in tests/consent/test_consent_rules.py. A first run uploads the full list as
`members-00000.csv.gz`; the expected rows are hashed here with hashlib from the fixture's raw
values (exports.md: emails trimmed and lowercased, phones in E.164 with `+`, hex digests).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import threading
from pathlib import Path

import grpc
import pytest

from audience.runs import api as runs_api
from audience.runs.model import RunRecord
from audience.service import convert
from audience.service.protos import audience_pb2 as pb
from audience.service.protos import audience_service_pb2 as rpc
from tests.service.helpers import EVERYONE_BLOCK, Running, field_violations, serving
from tests.service.test_validate_compile import as_of_ts
from tests.warehouse_fixture import AS_OF

LIFECYCLE = [pb.RUN_STATE_PENDING, pb.RUN_STATE_BUILDING, pb.RUN_STATE_EXPORTING,
             pb.RUN_STATE_SUCCEEDED]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


EXPECTED_ROWS = sorted(
    [[sha(f"fan{k}@example.com"), ""] for k in (101, 105, 107, 110, 112, 116, 119, 120)]
    + [["", sha("+447911123456")]]  # 121: "a@b" is no email; "+44 7911 123456" in E.164
)


def watch(server: Running, name: str) -> list[pb.Run]:
    return [r.run for r in server.stub.WatchRun(rpc.WatchRunRequest(name=name), timeout=300)]


def refresh(server: Running, audience: str, destination: str = "") -> pb.Run:
    got = server.stub.RefreshAudience(rpc.RefreshAudienceRequest(
        name=f"audiences/{audience}", destination=destination, as_of_time=as_of_ts()))
    [run] = got.runs
    return run


def test_refresh_watched_to_completion_writes_the_destination(server: Running) -> None:
    started = refresh(server, "everyone")
    assert started.name.startswith("audiences/everyone/runs/")
    assert (started.destination, started.mode) == ("ads", pb.SYNC_MODE_MIRROR)
    assert started.state in LIFECYCLE
    assert started.as_of_time == as_of_ts()

    snapshots = watch(server, started.name)
    states = [s.state for s in snapshots]
    assert states[-1] == pb.RUN_STATE_SUCCEEDED
    assert states == sorted(states, key=LIFECYCLE.index)  # never goes back
    final = snapshots[-1]
    assert final.progress == 1.0
    assert final.error_message == ""
    assert final.definition_file == "audiences/test.aud"
    assert final.content_hash == sha(EVERYONE_BLOCK)
    assert final.count_threshold == 5
    assert final.counts["funnel_matched"].display == "20"
    assert final.counts["funnel_exportable"].display == "9"
    assert final.counts["funnel_suppressed"].display == "fewer than 5"
    assert final.end_time.ToDatetime() >= final.start_time.ToDatetime()
    assert server.stub.GetRun(rpc.GetRunRequest(name=started.name)).run == final

    run_id = started.name.rsplit("/", 1)[1]
    folder = server.root / "out" / "ads" / "everyone" / run_id
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["audience"], manifest["run_id"], manifest["destination"]) == (
        "everyone", run_id, "ads")
    assert [(f["key"], f["kind"], f["rows"]) for f in manifest["files"]] == [
        ("members-00000.csv.gz", "members", 9)]
    part = folder / "members-00000.csv.gz"
    assert manifest["files"][0]["sha256"] == hashlib.sha256(part.read_bytes()).hexdigest()
    rows = list(csv.reader(io.StringIO(gzip.decompress(part.read_bytes()).decode("utf-8"))))
    assert rows[0] == ["email", "phone"]
    assert sorted(rows[1:]) == EXPECTED_ROWS


def test_list_runs_pages_newest_first(server: Running) -> None:
    names = []
    for _ in range(3):  # us_fans has 3 exportable fans: below min_size 5, each run fails
        run = refresh(server, "us_fans", "ads")
        final = watch(server, run.name)[-1]
        assert final.state == pb.RUN_STATE_FAILED
        assert final.error_message == ("audience us_fans is too small for ads: fewer than 5 "
                                       "profiles remain after consent and holdout (min_size); "
                                       "nothing was added")
        names.append(run.name)
    pages, token = [], ""
    while True:
        page = server.stub.ListRuns(rpc.ListRunsRequest(
            parent="audiences/us_fans", page_size=2, page_token=token))
        pages.append([r.name for r in page.runs])
        token = page.next_page_token
        if not token:
            break
    assert pages == [names[::-1][:2], names[::-1][2:]]
    every = server.stub.ListRuns(rpc.ListRunsRequest(parent="audiences/-"))
    assert sorted(r.name for r in every.runs) == sorted(names)
    assert list(server.stub.ListRuns(rpc.ListRunsRequest(parent="audiences/gb_fans")).runs) == []


def test_unknown_runs_are_not_found(server: Running) -> None:
    run = refresh(server, "us_fans", "ads")
    watch(server, run.name)
    other = run.name.replace("audiences/us_fans/", "audiences/everyone/")
    for name in ("audiences/us_fans/runs/20260101T000000Z-deadbeef", other):
        with pytest.raises(grpc.RpcError) as caught:
            server.stub.GetRun(rpc.GetRunRequest(name=name))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as caught:
            watch(server, name)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_runs_of_an_unknown_audience_are_not_found(server: Running) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.ListRuns(rpc.ListRunsRequest(parent="audiences/no_such_audience"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no_such_audience" in caught.value.details()


def test_a_page_token_of_another_parent_is_refused(server: Running) -> None:
    for _ in range(2):
        watch(server, refresh(server, "us_fans", "ads").name)
    page = server.stub.ListRuns(rpc.ListRunsRequest(parent="audiences/us_fans", page_size=1))
    assert page.next_page_token
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.ListRuns(rpc.ListRunsRequest(parent="audiences/-", page_size=1,
                                                 page_token=page.next_page_token))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == ["page_token"]


def test_bad_refresh_requests(server: Running) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.RefreshAudience(rpc.RefreshAudienceRequest(
            name="audiences/everyone", destination="adz"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == ["destination"]
    with pytest.raises(grpc.RpcError) as caught:  # no sync blocks and no destination named
        server.stub.RefreshAudience(rpc.RefreshAudienceRequest(name="audiences/us_fans"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.GetRun(rpc.GetRunRequest(name="audiences/us_fans/run/x"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.ListRuns(rpc.ListRunsRequest(parent="audiences/us_fans", page_token="eA"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_counts_quoted_by_a_run_error_are_rendered_rounded_by_the_service() -> None:
    record = RunRecord(
        run_id="20260630T120000Z-ab12cd34", audience="everyone", destination="ads", mode="mirror",
        state="held", as_of=AS_OF, created_at=AS_OF,
        counts={"adds": 3, "unforced_removes": 1373, "previous_members": 4},
        error="held: {adds} adds and {unforced_removes} removes exceed max_change (50% of the "
              "{previous_members} members last exported) in run 20260630T120000Z-ab12cd34")
    assert convert.run(record, 5).error_message == (
        "held: fewer than 5 adds and 1400 removes exceed max_change (50% of the fewer than 5 "
        "members last exported) in run 20260630T120000Z-ab12cd34")
    assert record.error_text() == (  # the operator's CLI: exact
        "held: 3 adds and 1373 removes exceed max_change (50% of the 4 "
        "members last exported) in run 20260630T120000Z-ab12cd34")


# ---- watch streams on the asyncio server ---------------------------------------------------------
BUILDING_RUN = "audiences/everyone/runs/20260101T000000Z-0000beef"


@pytest.fixture
def run_never_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run reads as still building, so watch streams stay open until ended."""
    building = RunRecord(run_id=BUILDING_RUN.rsplit("/", 1)[1], audience="everyone",
                         destination="ads", mode="mirror", state="building", as_of=AS_OF,
                         created_at=AS_OF)
    monkeypatch.setattr(runs_api, "get_run", lambda _project_dir, _run_id: building)


@pytest.mark.usefixtures("run_never_ends")
def test_open_watch_streams_hold_no_worker_thread(project_root: Path) -> None:
    """More open streams than worker threads: each gets its update and other calls still answer
    (a sync server's pool thread per stream would have run out here)."""
    with serving(project_root, max_workers=1) as srv:
        streams = [srv.stub.WatchRun(rpc.WatchRunRequest(name=BUILDING_RUN), timeout=120)
                   for _ in range(4)]
        try:
            assert [next(s).run.state for s in streams] == [pb.RUN_STATE_BUILDING] * 4
            assert srv.stub.ListAudiences(rpc.ListAudiencesRequest(), timeout=120).total_size == 3
            got = srv.stub.GetRun(rpc.GetRunRequest(name=BUILDING_RUN), timeout=120)
            assert got.run.state == pb.RUN_STATE_BUILDING
        finally:
            for stream in streams:
                stream.cancel()


@pytest.mark.usefixtures("run_never_ends")
def test_shutdown_ends_watch_streams_with_unavailable(project_root: Path) -> None:
    with serving(project_root) as srv:
        stream = srv.stub.WatchRun(rpc.WatchRunRequest(name=BUILDING_RUN), timeout=120)
        assert next(stream).run.state == pb.RUN_STATE_BUILDING
        stopper = threading.Thread(target=srv.planner.stop, kwargs={"grace": 30.0})
        stopper.start()
        with pytest.raises(grpc.RpcError) as caught:
            list(stream)
        stopper.join(timeout=120)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in caught.value.details()
