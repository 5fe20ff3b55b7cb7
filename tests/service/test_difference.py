"""The difference check through the real gRPC server (consent.md "Singling out through counts").

The fans (tests/consent/test_consent_rules.py): 20 profiles, by country GB 10, US 5, ZZ 2
(105, 106), DE 1 (112), NO 1 (113), IS 1 (120). Destination `ads` has min_size 5, so its
threshold is 5. The attacker's audiences, counted by hand:
  base        country not in ZZ, DE            -> 17
  base_minus  base without NO and IS           -> 15 (2 fewer: a small group)
  base_plus   base with DE (112)               -> 18 (1 more: one person)
Unrelated audiences: gb_fans (10), us_fans (5): their sets differ from each other by 15.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from audience.service.protos import audience_service_pb2 as rpc
from tests.consent.test_consent_rules import CONFIG, ROWS_CONSENT
from tests.service.helpers import AUDIENCES, TOKEN, Running, serving
from tests.service.test_counts import assert_never_exact_below
from tests.service.test_validate_compile import as_of_ts
from tests.warehouse_fixture import project_on

ATTACK = AUDIENCES + '''
audience base { where: country not in ("ZZ", "DE") }
audience base_minus { where: country not in ("ZZ", "DE", "NO", "IS") }
audience base_plus { where: country != "ZZ" }
'''
WITHHELD_BASE = "withheld: too close to an earlier answer about base (ads: matched)"


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    with project_on("duckdb", tmp_path, ATTACK, CONFIG, ROWS_CONSENT) as project_root:
        yield project_root


def estimate(server: Running, name: str, token: str | None = None) -> rpc.EstimateAudienceResponse:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    got = server.stub.EstimateAudience(rpc.EstimateAudienceRequest(
        name=f"audiences/{name}", destinations=["ads"], as_of_time=as_of_ts()), metadata=metadata)
    assert_never_exact_below(got, 5)
    return got


def matched(server: Running, name: str, token: str | None = None) -> str:
    return estimate(server, name, token).funnels[0].matched.display


def test_a_scripted_attacker_learns_no_small_difference(root: Path) -> None:
    with serving(root) as server:
        assert matched(server, "base") == "17"
        assert matched(server, "base_minus") == WITHHELD_BASE  # 17 - 15 would be 2
        assert matched(server, "base_plus") == WITHHELD_BASE  # 18 - 17 would be one person
        minus = estimate(server, "base_minus").funnels[0].matched
        assert (minus.value, minus.withheld) == (0, "base (ads: matched)")
        got = server.stub.OverlapAudiences(rpc.OverlapAudiencesRequest(
            names=["audiences/base", "audiences/base_minus", "audiences/base_plus"],
            destination="ads", as_of_time=as_of_ts()))
        assert_never_exact_below(got, 5)
        sizes = [s.members.display for s in got.sizes]
        pairs = [p.both.display for p in got.pairs]
    # base is the same set as before: the same answer; the others are within 2 of it
    assert sizes == ["17", WITHHELD_BASE, WITHHELD_BASE]
    # base∩base_minus = base_minus (15), base∩base_plus = base (17), base_minus∩base_plus = 15
    assert pairs == [WITHHELD_BASE, "17", WITHHELD_BASE]


def test_a_legitimate_sequence_is_never_withheld(root: Path) -> None:
    with serving(root) as server:
        first = [matched(server, "gb_fans"), matched(server, "us_fans")]
        again = [matched(server, "gb_fans"), matched(server, "us_fans"), matched(server, "gb_fans")]
        funnel = estimate(server, "gb_fans").funnels[0]
    assert first == ["10", "5"]
    assert again == ["10", "5", "10"]
    assert all(not getattr(funnel, step).withheld for step in ("matched", "exportable"))


def test_a_restart_keeps_the_remembered_sets(root: Path) -> None:
    with serving(root) as server:
        assert matched(server, "base") == "17"
    with serving(root) as server:
        assert matched(server, "base_minus") == WITHHELD_BASE


def test_a_caller_with_another_token_is_not_affected(root: Path) -> None:
    with serving(root, token=TOKEN) as server:
        assert matched(server, "base", TOKEN) == "17"
    other = "another-planner-token"
    with serving(root, token=other) as server:
        assert matched(server, "base_minus", other) == "15"
        assert matched(server, "base", other) == WITHHELD_BASE.replace("base (", "base_minus (")
