"""The server around the RPCs: auth, health, reflection, TLS, logging, reloads, concurrency,
failures, and the `serve` process's lifecycle."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from audience.service.errors import ServiceError
from audience.service.protos import audience_service_pb2 as rpc
from audience.service.protos import audience_service_pb2_grpc
from audience.service.server import serve_command
from audience.warehouse import WarehouseError
from exporters.grpc_ingest.auth import bearer_metadata
from tests.consent.test_consent_rules import CONFIG, ROWS_CONSENT
from tests.exporters.grpc_helpers import REPO_ROOT, self_signed_cert
from tests.service.helpers import AUDIENCES, GB_FANS, TOKEN, US_FANS, Running, serving
from tests.service.test_validate_compile import as_of_ts, members
from tests.warehouse_fixture import AS_OF, project_on

LIST = rpc.ListAudiencesRequest()


# ---- auth, health, reflection, TLS ------------------------------------------------------------
@pytest.fixture
def secured(project_root: Path) -> Iterator[Running]:
    with serving(project_root, token=TOKEN) as running:
        yield running


@pytest.mark.parametrize(("metadata", "reason"), [
    ((), "missing bearer token"),
    (bearer_metadata("wrong-token"), "invalid bearer token"),
    ((("authorization", TOKEN),), "invalid bearer token"),  # no "Bearer " scheme
])
def test_calls_without_the_right_token_are_unauthenticated(
        secured: Running, metadata: tuple[tuple[str, str], ...], reason: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        secured.stub.ListAudiences(LIST, metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.details() == reason


def test_the_right_token_is_accepted(secured: Running) -> None:
    listed = secured.stub.ListAudiences(LIST, metadata=bearer_metadata(TOKEN))
    assert listed.total_size == 3


def test_streams_need_the_token_too(secured: Running) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        list(secured.stub.WatchRun(rpc.WatchRunRequest(name="audiences/everyone/runs/x")))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_is_serving_and_open_without_a_token(secured: Running) -> None:
    health = health_pb2_grpc.HealthStub(secured.channel)
    for service in ("", "audience.v1.AudienceService"):
        got = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert got.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(secured: Running) -> None:
    db = ProtoReflectionDescriptorDatabase(secured.channel)
    assert set(db.get_services()) == {"audience.v1.AudienceService", "grpc.health.v1.Health",
                                      "grpc.reflection.v1alpha.ServerReflection"}
    proto = db.FindFileContainingSymbol("audience.v1.AudienceService")
    assert proto.name == "audience/v1/audience_service.proto"
    assert "WatchRun" in [m.name for m in proto.service[0].method]


def test_tls(project_root: Path, tmp_path: Path) -> None:
    files, pem = self_signed_cert(tmp_path / "tls")
    with serving(project_root, tls=files, root_cert=pem) as srv:
        assert srv.stub.ListAudiences(LIST).total_size == 3
        with grpc.insecure_channel(srv.target) as plain:
            stub = audience_service_pb2_grpc.AudienceServiceStub(plain)
            with pytest.raises(grpc.RpcError) as caught:
                stub.ListAudiences(LIST, timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


# ---- one log line per call ---------------------------------------------------------------------
def test_one_log_line_per_call_without_identifiers(server: Running) -> None:
    email = "fan.one@example.com"
    with structlog.testing.capture_logs() as logs:
        server.stub.GetAudience(rpc.GetAudienceRequest(name="audiences/everyone"))
        with pytest.raises(grpc.RpcError):
            server.stub.ValidateAudience(rpc.ValidateAudienceRequest(
                definition=f'audience x {{ where: emial = "{email}" }}'))
    calls = [entry for entry in logs if entry["event"] == "audience_service.call"]
    assert [(c["method"], c["code"]) for c in calls] == [
        ("/audience.v1.AudienceService/GetAudience", "OK"),
        ("/audience.v1.AudienceService/ValidateAudience", "INVALID_ARGUMENT")]
    for call in calls:
        assert set(call) == {"event", "log_level", "method", "code", "duration_ms", "peer"}
        assert call["peer"].startswith("ipv4:127.0.0.1:")
        assert isinstance(call["duration_ms"], float) and call["duration_ms"] >= 0
    assert email not in repr(logs)


# ---- definitions change on disk ------------------------------------------------------------------
def test_changed_files_are_picked_up_by_the_next_call(server: Running) -> None:
    stub, audiences = server.stub, server.root / "audiences"
    first = stub.CompileAudience(rpc.CompileAudienceRequest(name="audiences/us_fans",
                                                            as_of_time=as_of_ts()))
    assert members(server.root, first.sql) == US_FANS
    text = (audiences / "test.aud").read_text(encoding="utf-8")
    (audiences / "test.aud").write_text(
        text.replace('audience us_fans { where: country = "US" }',
                     'audience us_fans { where: country = "GB" or country = "GB" }'), encoding="utf-8")
    changed = stub.CompileAudience(rpc.CompileAudienceRequest(name="audiences/us_fans",
                                                              as_of_time=as_of_ts()))
    assert members(server.root, changed.sql) == GB_FANS
    (audiences / "extra.aud").write_text('audience extra { where: vip = true }\n', encoding="utf-8")
    assert "audiences/extra" in [a.name for a in stub.ListAudiences(LIST).audiences]
    (audiences / "extra.aud").unlink()
    assert "audiences/extra" not in [a.name for a in stub.ListAudiences(LIST).audiences]


def test_a_broken_config_fails_calls_until_it_is_fixed(server: Running) -> None:
    config = server.root / "audience.toml"
    good = config.read_text(encoding="utf-8")
    config.write_text(good + "\n[bogus]\nkey = 1\n", encoding="utf-8")
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.ListAudiences(LIST)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    config.write_text(good, encoding="utf-8")
    assert server.stub.ListAudiences(LIST).total_size == 3


# ---- concurrency ------------------------------------------------------------------------------------
def _requests(i: int) -> tuple[rpc.EstimateAudienceRequest, rpc.CompileAudienceRequest]:
    """Client i's two calls. Compile as_of differs per client (AS_OF + i days: no definition
    here depends on time), so every compile is real work, not a cache hit."""
    name = ("everyone", "gb_fans", "us_fans")[i % 3]
    dests = (["ads"], ["ads_and_sale"], ["ads", "ads_and_sale"])[i % 3]
    when = timestamp_pb2.Timestamp()
    when.FromDatetime(AS_OF + timedelta(days=i))
    return (rpc.EstimateAudienceRequest(name=f"audiences/{name}", destinations=dests,
                                        as_of_time=as_of_ts()),
            rpc.CompileAudienceRequest(name=f"audiences/{name}", destination=dests[0],
                                       as_of_time=when))


def test_fifty_concurrent_clients_get_the_single_client_results(project_root: Path) -> None:
    clients = 50
    with serving(project_root) as single:
        expected = [(single.stub.EstimateAudience(e), single.stub.CompileAudience(c))
                    for e, c in map(_requests, range(clients))]
    results: list[Any] = [None] * clients
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients)

    def client(i: int, target: str) -> None:
        try:
            with grpc.insecure_channel(target) as channel:
                stub = audience_service_pb2_grpc.AudienceServiceStub(channel)
                estimate, compile_ = _requests(i)
                barrier.wait(timeout=60)
                timeout = 120 if i % 2 else None  # half of them without a deadline
                results[i] = (stub.EstimateAudience(estimate, timeout=timeout),
                              stub.CompileAudience(compile_, timeout=timeout))
        except BaseException as exc:  # reported below
            errors.append(exc)

    # A fresh server (empty caches) with no result reuse: concurrent calls do the work.
    with serving(project_root, result_ttl=0.0) as srv:
        threads = [threading.Thread(target=client, args=(i, srv.target)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert errors == []
    assert results == expected
    assert [members(project_root, c.sql) for _, c in results[:3]] == [
        [101, 105, 107, 110, 112, 116, 119, 120, 121],  # everyone -> ads (consent test)
        [101],  # gb_fans -> ads_and_sale: only 101 of the GB fans granted both purposes
        [107, 110, 119],  # us_fans -> ads
    ]


# ---- failures ------------------------------------------------------------------------------------------
def test_warehouse_failure_is_unavailable_without_leaking_values(
        server: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = server.planner.projects.get().project.warehouse

    def broken(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        raise WarehouseError("DuckDB query failed: cannot convert fan.one@example.com to INT")

    monkeypatch.setattr(warehouse, "query", broken)
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.EstimateAudience(rpc.EstimateAudienceRequest(name="audiences/everyone"))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == ("the warehouse or a destination is unavailable: DuckDB query "
                                      "failed: cannot convert [redacted-email] to INT")


class ExpiredContext:
    """A servicer context whose deadline has passed (the fault injected)."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None

    def time_remaining(self) -> float:
        return 0.0

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        pass


def test_no_warehouse_work_starts_after_the_deadline(
        server: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = server.planner.projects.get().project.warehouse
    queries: list[str] = []
    monkeypatch.setattr(warehouse, "query", lambda sql, params=(): queries.append(sql) or [])
    context = ExpiredContext()
    answer = asyncio.run(server.planner.servicer.EstimateAudience(
        rpc.EstimateAudienceRequest(name="audiences/everyone"), context))
    assert answer is None
    assert context.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert queries == []


class NoDeadlineContext(ExpiredContext):
    def time_remaining(self) -> float:
        return 1e18  # what grpc reports for a call without a deadline


def test_a_call_without_deadline_waits_without_limit() -> None:
    from audience.service.servicer import check_deadline

    assert check_deadline(NoDeadlineContext()) is None  # type: ignore[arg-type]


def test_deadline_error_is_a_service_error() -> None:
    from audience.service.servicer import check_deadline

    with pytest.raises(ServiceError) as caught:
        check_deadline(ExpiredContext())  # type: ignore[arg-type]
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


# ---- the serve command --------------------------------------------------------------------------
def test_serve_exits_2_when_the_warehouse_is_unreachable(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2"
    with project_on("duckdb", tmp_path, AUDIENCES, CONFIG, ROWS_CONSENT) as root:
        config = root / "audience.toml"
        config.write_text(config.read_text(encoding="utf-8").replace(
            'url = "duckdb:///wh.duckdb"', f'url = "{url}"'), encoding="utf-8")
        args = argparse.Namespace(project=str(root), host="127.0.0.1", port=0,
                                  token_env="AUDIENCE_TEST_NO_SUCH_VAR", tls_cert=None, tls_key=None)
        assert serve_command(args) == 2


def test_serve_rejects_half_a_tls_configuration(project_root: Path) -> None:
    args = argparse.Namespace(project=str(project_root), host="127.0.0.1", port=0,
                              token_env="AUDIENCE_TOKEN", tls_cert="cert.pem", tls_key=None)
    assert serve_command(args) == 1


def test_serve_process_answers_then_stops_on_sigterm(project_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PLANNER_TEST_TOKEN": TOKEN, "AUDIENCE_LOG_FORMAT": "json",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    log_path = tmp_path / "serve.log"
    with open(log_path, "w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "audience.service.server", "--project", str(project_root),
             "--port", "0", "--token-env", "PLANNER_TEST_TOKEN"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log_file, text=True)
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("audience serve listening on 127.0.0.1:"), line
            port = int(line.rsplit(":", 1)[1])
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = audience_service_pb2_grpc.AudienceServiceStub(channel)
                assert stub.ListAudiences(LIST, metadata=bearer_metadata(TOKEN),
                                          timeout=30).total_size == 3
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    logged = log_path.read_text(encoding="utf-8")
    assert '"method": "/audience.v1.AudienceService/ListAudiences"' in logged
    assert '"code": "OK"' in logged
    assert TOKEN not in logged


def test_build_server_returns_a_bound_server(project_root: Path) -> None:
    from audience.service.server import build_server

    server, port = build_server(project_root, host="127.0.0.1", port=0, token=None, tls=None)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = audience_service_pb2_grpc.AudienceServiceStub(channel)
            assert stub.ListAudiences(LIST, timeout=30).total_size == 3
    finally:
        server.stop(0)
