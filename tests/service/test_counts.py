"""EstimateAudience and OverlapAudiences: counts of people, rounded as consent.md says.

The funnel of `everyone` for destination `ads` (min_size 5) is derived by hand in
tests/consent/test_consent_rules.py: 20 matched; suppressed 1 (111); under age 2 (102, 108);
no permission 6; no identifier 2 (114, 117); 9 exportable. For `us_fans` (107, 109, 110, 117,
119): 109's newest decision is a denial (no permission), 117 has no email (no identifier), the
other 3 pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message

from audience.service.protos import audience_pb2 as pb
from audience.service.protos import audience_service_pb2 as rpc
from tests.consent.test_consent_rules import ROWS_CONSENT
from tests.service.helpers import AUDIENCES, Running, field_violations, serving
from tests.service.test_validate_compile import as_of_ts
from tests.warehouse_fixture import project_on

FEWER_5 = "fewer than 5"
FEWER_100 = "fewer than 100"
FUNNEL_FIELDS = ("matched", "suppressed", "under_age", "no_permission", "no_identifier",
                 "held_out", "exportable")


def shown(funnel: pb.DestinationFunnel) -> dict[str, str]:
    return {name: getattr(funnel, name).display for name in FUNNEL_FIELDS}


def rounded_counts(msg: Message) -> Iterator[pb.RoundedCount]:
    """Every RoundedCount anywhere inside *msg*."""
    if isinstance(msg, pb.RoundedCount):
        yield msg
        return
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items: list[Message] = list(value.values())
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, Message):
                yield from rounded_counts(item)


def assert_never_exact_below(msg: Message, threshold: int) -> int:
    """Every count in *msg* is "fewer than <threshold>", withheld (value 0, saying why) or a
    value >= threshold."""
    seen = 0
    for count in rounded_counts(msg):
        seen += 1
        if count.withheld:
            assert (count.value, count.fewer_than) == (0, 0)
            assert count.display == f"withheld: too close to an earlier answer about {count.withheld}"
        elif count.fewer_than:
            assert (count.fewer_than, count.value, count.display) == (
                threshold, 0, f"fewer than {threshold}")
        else:
            assert count.value >= threshold and count.display == str(count.value)
    return seen


def test_estimate_rounds_below_the_destination_min_size(server: Running) -> None:
    got = server.stub.EstimateAudience(rpc.EstimateAudienceRequest(
        name="audiences/everyone", as_of_time=as_of_ts()))
    assert got.audience == "audiences/everyone"
    assert got.as_of_time == as_of_ts()
    [funnel] = got.funnels  # everyone syncs to ads only
    assert (funnel.destination, funnel.threshold) == ("ads", 5)
    assert shown(funnel) == {"matched": "20", "suppressed": FEWER_5, "under_age": FEWER_5,
                             "no_permission": "6", "no_identifier": FEWER_5,
                             "held_out": FEWER_5, "exportable": "9"}
    assert (funnel.matched.value, funnel.exportable.value, funnel.suppressed.value) == (20, 9, 0)
    assert funnel.suppressed.fewer_than == 5


def test_estimate_for_requested_destinations_in_order(server: Running) -> None:
    got = server.stub.EstimateAudience(rpc.EstimateAudienceRequest(
        name="audiences/everyone", destinations=["ads_and_sale", "ads"], as_of_time=as_of_ts()))
    assert [(f.destination, f.threshold) for f in got.funnels] == [("ads_and_sale", 100), ("ads", 5)]
    assert set(shown(got.funnels[0]).values()) == {FEWER_100}  # min_size 100 hides all of 20
    assert shown(got.funnels[1])["exportable"] == "9"


def test_audience_without_syncs_is_estimated_for_every_destination(server: Running) -> None:
    got = server.stub.EstimateAudience(rpc.EstimateAudienceRequest(
        name="audiences/us_fans", as_of_time=as_of_ts()))
    assert [f.destination for f in got.funnels] == ["ads", "ads_and_sale"]
    assert shown(got.funnels[0]) == {"matched": "5", "suppressed": FEWER_5, "under_age": FEWER_5,
                                     "no_permission": FEWER_5, "no_identifier": FEWER_5,
                                     "held_out": FEWER_5, "exportable": FEWER_5}


def test_overlap_counts_pairs_rounded_with_a_destination_threshold(server: Running) -> None:
    names = ["audiences/everyone", "audiences/gb_fans", "audiences/us_fans"]
    got = server.stub.OverlapAudiences(rpc.OverlapAudiencesRequest(
        names=names, destination="ads", as_of_time=as_of_ts()))
    assert got.threshold == 5
    assert [(s.audience, s.members.display) for s in got.sizes] == [
        ("audiences/everyone", "20"), ("audiences/gb_fans", "10"), ("audiences/us_fans", "5")]
    assert [(p.first, p.second, p.both.display) for p in got.pairs] == [
        ("audiences/everyone", "audiences/gb_fans", "10"),
        ("audiences/everyone", "audiences/us_fans", "5"),
        ("audiences/gb_fans", "audiences/us_fans", FEWER_5),  # disjoint: 0
    ]


def test_overlap_without_destination_uses_threshold_100(server: Running) -> None:
    got = server.stub.OverlapAudiences(rpc.OverlapAudiencesRequest(
        names=["audiences/gb_fans", "audiences/everyone"], as_of_time=as_of_ts()))
    assert got.threshold == 100
    assert [s.members.display for s in got.sizes] == [FEWER_100, FEWER_100]
    assert [p.both.display for p in got.pairs] == [FEWER_100]


def test_no_count_below_the_threshold_is_ever_exact(server: Running) -> None:
    stub, seen = server.stub, 0
    for name in ("everyone", "gb_fans", "us_fans"):
        got = stub.EstimateAudience(rpc.EstimateAudienceRequest(
            name=f"audiences/{name}", destinations=["ads", "ads_and_sale"], as_of_time=as_of_ts()))
        for funnel in got.funnels:
            seen += assert_never_exact_below(funnel, funnel.threshold)
    for destination, threshold in (("", 100), ("ads", 5), ("ads_and_sale", 100)):
        got = stub.OverlapAudiences(rpc.OverlapAudiencesRequest(
            names=["audiences/everyone", "audiences/gb_fans", "audiences/us_fans"],
            destination=destination, as_of_time=as_of_ts()))
        seen += assert_never_exact_below(got, threshold)
    assert seen == 3 * 2 * 7 + 3 * 6


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"names": ["audiences/everyone"]}, "names"),
    ({"names": ["audiences/everyone", "audiences/everyone"]}, "names"),
    ({"names": ["audiences/everyone", "gb_fans"]}, "names[1]"),
    ({"names": ["audiences/everyone", "audiences/gb_fans"], "destination": "tiktok"},
     "destination"),
])
def test_bad_overlap_requests_are_invalid(server: Running, request_fields: dict[str, object],
                                          field: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.OverlapAudiences(rpc.OverlapAudiencesRequest(**request_fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(caught.value)] == [field]


def test_estimate_errors(server: Running) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.EstimateAudience(rpc.EstimateAudienceRequest(
            name="audiences/everyone", destinations=["ads", "adz"]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [
        ("destinations[1]", 'unknown destination "adz"; did you mean "ads"?')]
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.EstimateAudience(rpc.EstimateAudienceRequest(name="audiences/nobody"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_estimate_without_a_consent_policy_is_a_failed_precondition(tmp_path: Path) -> None:
    text = AUDIENCES.split("audience us_fans")[1]
    with project_on("duckdb", tmp_path, "audience us_fans" + text, "", ROWS_CONSENT) as root, \
            serving(root) as srv, pytest.raises(grpc.RpcError) as caught:
        srv.stub.EstimateAudience(rpc.EstimateAudienceRequest(name="audiences/us_fans"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "[consent]" in caught.value.details()
