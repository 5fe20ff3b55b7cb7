"""ListAudiences and GetAudience: what a planner's tool shows about the project's audiences."""

from __future__ import annotations

import hashlib
from pathlib import Path

import grpc
import pytest

from audience.service.protos import audience_pb2 as pb
from audience.service.protos import audience_service_pb2 as rpc
from tests.consent.test_consent_rules import CONFIG, ROWS_CONSENT
from tests.service.helpers import EVERYONE_BLOCK, Running, field_violations, serving
from tests.warehouse_fixture import project_on


def test_get_audience_returns_definition_source_and_syncs(server: Running) -> None:
    got = server.stub.GetAudience(rpc.GetAudienceRequest(name="audiences/everyone")).audience
    assert got.name == "audiences/everyone"
    assert got.description == "Every fan"
    assert got.owner == "crm@label.example"
    assert list(got.tags) == ["all", "test"]
    assert got.holdout_percent == 0.0
    assert [(s.destination, s.schedule, s.mode) for s in got.syncs] == [
        ("ads", "0 6 * * *", pb.SYNC_MODE_MIRROR)]
    assert got.definition == EVERYONE_BLOCK
    assert got.source_file == "audiences/test.aud"
    assert got.source_line == 2
    assert got.content_hash == hashlib.sha256(EVERYONE_BLOCK.encode()).hexdigest()
    assert got.git_commit == ""  # the temporary project is not a git checkout
    assert list(got.diagnostics) == []


def test_get_audience_with_holdout_and_two_syncs(server: Running) -> None:
    got = server.stub.GetAudience(rpc.GetAudienceRequest(name="audiences/gb_fans")).audience
    assert got.holdout_percent == 12.5
    assert [(s.destination, s.schedule, s.mode) for s in got.syncs] == [
        ("ads", "0 7 * * 1", pb.SYNC_MODE_ADDITIVE), ("ads_and_sale", "", pb.SYNC_MODE_REPLACE)]
    assert got.description == "" and got.owner == "" and list(got.tags) == []


def test_basic_view_leaves_out_the_definition(server: Running) -> None:
    got = server.stub.GetAudience(rpc.GetAudienceRequest(
        name="audiences/everyone", view=pb.AUDIENCE_VIEW_BASIC)).audience
    assert got.definition == ""
    assert got.description == "Every fan"


def test_list_audiences_defaults_to_basic_view(server: Running) -> None:
    listed = server.stub.ListAudiences(rpc.ListAudiencesRequest())
    assert [a.name for a in listed.audiences] == [
        "audiences/everyone", "audiences/gb_fans", "audiences/us_fans"]
    assert [a.definition for a in listed.audiences] == ["", "", ""]
    assert listed.next_page_token == ""
    assert listed.total_size == 3
    full = server.stub.ListAudiences(rpc.ListAudiencesRequest(view=pb.AUDIENCE_VIEW_FULL))
    assert full.audiences[0].definition == EVERYONE_BLOCK


def test_unknown_audience_is_not_found(server: Running) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.GetAudience(rpc.GetAudienceRequest(name="audiences/evryone"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == 'unknown audience "evryone"; did you mean "everyone"?'


@pytest.mark.parametrize("name", ["everyone", "audiences/", "audiences/Everyone",
                                  "audiences/everyone/runs", "segments/everyone"])
def test_malformed_name_is_invalid_argument(server: Running, name: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.GetAudience(rpc.GetAudienceRequest(name=name))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == ["name"]


def test_pages_cover_every_audience_exactly_once(tmp_path: Path) -> None:
    names = [f"a{i:02d}" for i in range(25)]
    text = "\n".join(f"audience {n} {{ where: score > {i} }}" for i, n in enumerate(names))
    with project_on("duckdb", tmp_path, text, CONFIG, ROWS_CONSENT) as root, serving(root) as srv:
        pages: list[list[str]] = []
        token = ""
        while True:
            page = srv.stub.ListAudiences(rpc.ListAudiencesRequest(page_size=10, page_token=token))
            assert page.total_size == 25
            pages.append([a.name for a in page.audiences])
            token = page.next_page_token
            if not token:
                break
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [n for p in pages for n in p] == [f"audiences/{n}" for n in names]


def test_page_size_above_the_maximum_is_capped_and_negative_refused(server: Running) -> None:
    assert len(server.stub.ListAudiences(rpc.ListAudiencesRequest(page_size=5000)).audiences) == 3
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.ListAudiences(rpc.ListAudiencesRequest(page_size=-1))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == ["page_size"]


@pytest.mark.parametrize("token", ["not-a-token", "eyJrIjoicnVucyIsInMiOiIiLCJwIjoxMH0"])
def test_foreign_page_token_is_refused(server: Running, token: str) -> None:
    # the second token is a well-formed ListRuns token ({"k":"runs","s":"","p":10})
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.ListAudiences(rpc.ListAudiencesRequest(page_token=token))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == ["page_token"]
