"""Rules 1-5 of consent.md, each with profiles just inside and just outside, on DuckDB and PostgreSQL.

as_of = 2026-06-30T12:00:00Z, minimum_age = 18. Every expected member is written out by hand.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import pytest

from tests.warehouse_fixture import AS_OF, AS_OF_TEXT, ROWS, project_on

ADULT = date(1990, 1, 1)


def fan(key: int, country: str | None, birth: date | None, email: str | None = "default", phone: str | None = None):
    mail = f"fan{key}@example.com" if email == "default" else email
    return (key, mail, phone, "London", country, birth, 1, False, None, None)


def grant(key: int, when: str, purpose: str = "ads_personalization", expires: str | None = None):
    return (key, purpose, "granted", datetime.fromisoformat(when),
            datetime.fromisoformat(expires) if expires else None, "first_party")


def deny(key: int, when: str, purpose: str = "ads_personalization"):
    return (key, purpose, "denied", datetime.fromisoformat(when), None, "first_party")


FANS = [
    fan(101, "GB", date(2008, 6, 30)),   # 18th birthday on as_of: old enough
    fan(102, "GB", date(2008, 7, 1)),    # 18 tomorrow: under age
    fan(103, "GB", ADULT),               # grant expired one second before as_of
    fan(104, "GB", ADULT),               # grant and denial with the same timestamp: denied wins
    fan(105, "ZZ", ADULT),               # a country in no group: default basis opt_in, granted
    fan(106, "ZZ", ADULT),               # default basis opt_in, no decision
    fan(107, "US", None),                # opt_out, unknown birth date: passes
    fan(108, "GB", None),                # opt_in, unknown birth date: dropped as under age
    fan(109, "US", ADULT),               # opt_out, newest decision denied
    fan(110, "US", ADULT),               # opt_out, denied then granted later
    fan(111, "GB", ADULT),               # suppressed (though granted)
    fan(112, "DE", ADULT),               # EEA opt_in, granted
    fan(113, "NO", ADULT),               # EEA (Norway) opt_in, no decision
    fan(114, "GB", ADULT, email="bad-email"),  # granted, but no valid identifier
    fan(115, "GB", ADULT),               # grant recorded after as_of: did not exist yet
    fan(116, "GB", ADULT),               # granted; a denial after as_of does not count yet
    fan(117, "US", ADULT, email=None),   # opt_out, no identifier at all
    fan(119, "US", ADULT),               # opt_out, newest decision an expired grant: not a denial
    fan(120, "IS", ADULT),               # explicit IS = opt_out beats the EEA group; no decision
    fan(121, "GB", ADULT, email="a@b"),  # email without a dot in the domain...
]
FANS[-1] = fan(121, "GB", ADULT, email="a@b", phone="+44 7911 123456")  # ...but a valid phone: passes

CONSENTS = [
    grant(101, "2026-01-01 00:00:00"),
    grant(102, "2026-01-01 00:00:00"),
    grant(103, "2026-01-01 00:00:00", expires="2026-06-30 11:59:59"),
    grant(104, "2026-03-01 00:00:00"), deny(104, "2026-03-01 00:00:00"),
    grant(105, "2026-01-01 00:00:00"),
    grant(108, "2026-01-01 00:00:00"),
    grant(109, "2026-01-01 00:00:00"), deny(109, "2026-02-01 00:00:00"),
    deny(110, "2026-01-01 00:00:00"), grant(110, "2026-02-01 00:00:00"),
    grant(111, "2026-01-01 00:00:00"),
    grant(112, "2026-01-01 00:00:00"),
    grant(114, "2026-01-01 00:00:00"),
    grant(115, "2026-06-30 12:00:01"),
    grant(116, "2026-01-01 00:00:00"), deny(116, "2026-07-01 00:00:00"),
    grant(119, "2026-01-01 00:00:00", expires="2026-02-01 00:00:00"),
    grant(121, "2026-01-01 00:00:00"),
    # a second purpose for the two-purpose destination
    grant(101, "2026-01-01 00:00:00", purpose="sale_or_share"),
    grant(112, "2026-01-01 00:00:00", purpose="sale_or_share"),
    deny(110, "2026-03-01 00:00:00", purpose="sale_or_share"),
]

ROWS_CONSENT = {**ROWS, "fans": FANS, "consents": CONSENTS, "suppressions": [(111,), (111,)]}

CONFIG = '''
[consent]
table = "consents"
suppression_table = "suppressions"
minimum_age = 18
default_basis = "opt_in"

[consent.basis]
EEA = "opt_in"
GB = "opt_in"
US = "opt_out"
IS = "opt_out"

[destinations.ads]
type = "file"
uri = "file:out/ads"
format = "sha256"
identifiers = ["email", "phone"]
purposes = ["ads_personalization"]
min_size = 5

[destinations.ads_and_sale]
type = "file"
uri = "file:out/both"
format = "sha256"
identifiers = ["email"]
purposes = ["ads_personalization", "sale_or_share"]
min_size = 100
'''

AUDIENCES = '''
audience everyone { where: fan_id is not null }
audience half { where: fan_id is not null
  holdout: 50% }
'''

EXPORTED_ADS = [101, 105, 107, 110, 112, 116, 119, 120, 121]
# two purposes: 101 and 112 granted both; opt_out 107, 119 and 120 have no denial; 110 denied
# sale_or_share; 121 has only a phone, and this destination takes emails only
EXPORTED_BOTH = [101, 107, 112, 119, 120]

# 20 fans: suppressed 111; under age 102, 108; no permission 103, 104, 106, 109, 113, 115;
# no identifier 114, 117; the other 9 pass
FUNNEL_ADS = {"matched": 20, "suppressed": 1, "under_age": 2, "no_permission": 6, "no_identifier": 2,
              "held_out": 0, "exportable": 9}

ENGINES = ["duckdb", "postgres"]


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audience.cli", *args, "--project", str(root), "--as-of", AS_OF_TEXT],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(params=ENGINES)
def project(request, tmp_path):
    with project_on(request.param, tmp_path, AUDIENCES, CONFIG, ROWS_CONSENT) as root:
        yield root


def test_members_for_destination_apply_every_rule(project: Path) -> None:
    out = run_cli(project, "members", "everyone", "--destination", "ads")
    assert out.returncode == 0, out.stderr
    assert [int(x) for x in out.stdout.split()] == EXPORTED_ADS


def test_every_purpose_must_be_permitted(project: Path) -> None:
    out = run_cli(project, "members", "everyone", "--destination", "ads_and_sale")
    assert out.returncode == 0, out.stderr
    assert [int(x) for x in out.stdout.split()] == EXPORTED_BOTH


def test_funnel_counts_each_rule(project: Path) -> None:
    from audience.consented import consented
    from audience.project import load_project

    p = load_project(project)
    try:
        funnel = consented(p, "everyone", "ads", AS_OF).funnel()
    finally:
        p.close()
    assert funnel.as_dict() == FUNNEL_ADS


def test_estimate_rounds_counts_below_min_size(project: Path) -> None:
    out = run_cli(project, "estimate", "everyone", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)["destinations"]
    assert report["ads"] == {"matched": "20", "suppressed": "fewer than 5", "under_age": "fewer than 5",
                             "no_permission": "6", "no_identifier": "fewer than 5",
                             "held_out": "fewer than 5", "exportable": "9"}
    # min_size 100: every count of this small audience is hidden
    assert set(report["ads_and_sale"].values()) == {"fewer than 100"}


def test_holdout_is_the_documented_hash(project: Path) -> None:
    def held(key: int) -> bool:  # first 8 hex digits of sha256("half:<key>") mod 10000 < 5000
        return int(hashlib.sha256(f"half:{key}".encode()).hexdigest()[:8], 16) % 10000 < 5000

    expected = [k for k in EXPORTED_ADS if not held(k)]
    assert 0 < len(expected) < len(EXPORTED_ADS)
    out = run_cli(project, "members", "half", "--destination", "ads")
    assert out.returncode == 0, out.stderr
    assert [int(x) for x in out.stdout.split()] == expected


def test_destinations_asking_the_same_question_share_one_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ads_copy` differs from `ads` only in where it writes and its min_size."""
    from audience.consented import funnels
    from audience.project import load_project

    copy = CONFIG + '\n[destinations.ads_copy]\ntype = "file"\nuri = "file:out/copy"\nformat = "sha256"\n' \
        'identifiers = ["email", "phone"]\npurposes = ["ads_personalization"]\nmin_size = 50\n'
    with project_on("duckdb", tmp_path, AUDIENCES, copy, ROWS_CONSENT) as root:
        p = load_project(root)
        try:
            sent: list[str] = []
            query = p.warehouse.query

            def recorded(sql: str, params: Sequence[object] = ()) -> list[tuple]:
                sent.append(sql)
                return query(sql, params)

            monkeypatch.setattr(p.warehouse, "query", recorded)
            result = funnels(p, "everyone", ["ads", "ads_copy", "ads_and_sale"], AS_OF)
        finally:
            p.close()
    assert {name: f.as_dict() for name, f in result.items()} == {
        "ads": FUNNEL_ADS, "ads_copy": FUNNEL_ADS,
        # without both permissions: opt_in 103-106, 113-116, 121 (only 101 and 112 granted
        # both) and opt_out 109, 110 (a denial each); 117 has no email; 5 pass (EXPORTED_BOTH)
        "ads_and_sale": {"matched": 20, "suppressed": 1, "under_age": 2, "no_permission": 11,
                         "no_identifier": 1, "held_out": 0, "exportable": 5},
    }
    assert sum("consent_stage" in sql for sql in sent) == 2
