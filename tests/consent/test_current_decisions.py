"""The condensed table of current consent decisions (DuckDB): same answers as the history.

The rule fixtures of test_consent_rules.py without the two decisions recorded after as_of, so
the condensed table may answer; the expected members are the same hand-written lists (115 has
no decision before as_of either way, 116's later denial did not exist yet).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience import consent_state
from audience.consent_state import condensed_name, usable_current
from audience.consented import consented
from audience.project import load_project
from consent_filter.current import condense_history, current_decisions, current_table
from consent_filter.policy import ConsentPolicy
from consent_filter.query import newest_decisions
from dsl.catalog import Column, Table
from tests.consent.test_consent_rules import (
    AUDIENCES,
    CONFIG,
    CONSENTS,
    EXPORTED_ADS,
    EXPORTED_BOTH,
    FUNNEL_ADS,
    ROWS_CONSENT,
    deny,
)
from tests.warehouse_fixture import AS_OF, project_on

BEFORE_AS_OF = [row for row in CONSENTS if row[3] <= AS_OF]


@pytest.fixture
def project(tmp_path: Path):
    with project_on("duckdb", tmp_path, AUDIENCES, CONFIG, {**ROWS_CONSENT, "consents": BEFORE_AS_OF}) as root:
        yield root


def members(root: Path, destination: str, as_of: datetime = AS_OF) -> tuple[list[int], bool]:
    """Exported keys, and whether the condensed table answered."""
    p = load_project(root)
    try:
        used = usable_current(p.warehouse, p.consent_table, as_of) is not None
        rows = p.warehouse.query(consented(p, "everyone", destination, as_of).exportable_sql())
        return sorted(int(r[0]) for r in rows), used
    finally:
        p.close()


def append(root: Path, *rows: tuple) -> None:
    con = duckdb.connect(str(root / "wh.duckdb"))
    try:
        con.executemany("INSERT INTO consents VALUES (?, ?, ?, ?, ?, ?)", [list(r) for r in rows])
    finally:
        con.close()


def test_condensed_table_gives_the_hand_written_members(project: Path) -> None:
    assert members(project, "ads") == (EXPORTED_ADS, True)
    assert members(project, "ads_and_sale") == (EXPORTED_BOTH, True)


def test_funnel_from_the_condensed_table(project: Path) -> None:
    p = load_project(project)
    try:
        assert usable_current(p.warehouse, p.consent_table, AS_OF) is not None
        assert consented(p, "everyone", "ads", AS_OF).funnel().as_dict() == FUNNEL_ADS
    finally:
        p.close()


def test_a_new_decision_is_seen_at_once(project: Path) -> None:
    assert members(project, "ads")[0] == EXPORTED_ADS
    append(project, deny(112, "2026-04-01 00:00:00"))  # newer than 112's grant
    assert members(project, "ads") == ([k for k in EXPORTED_ADS if k != 112], True)


def test_a_late_arriving_older_decision_is_seen(project: Path) -> None:
    """Appended after the table was built but with an old timestamp: the newest time of the
    history does not change, the row count does."""
    assert members(project, "ads")[0] == EXPORTED_ADS
    append(project, deny(105, "2026-01-01 00:00:00"))  # same time as 105's grant: denied wins
    assert members(project, "ads") == ([k for k in EXPORTED_ADS if k != 105], True)


def test_a_past_as_of_reads_the_history(project: Path) -> None:
    """At 2026-01-15 the denials of 109 (Feb) and 104 (Mar) did not exist yet; 110's
    denial (Jan 1) is its newest decision."""
    past = datetime(2026, 1, 15, tzinfo=UTC)
    keys, used = members(project, "ads", past)
    assert used is False
    # 101 turns 18 on 2026-06-30, so is under age in January; 103's grant is valid then; 104
    # has no decision yet; 109 only granted; 110 denied (opt_out); 116's grant stands; 119's
    # grant expires 2026-02-01 (opt_out anyway)
    assert keys == [103, 105, 107, 109, 112, 116, 119, 120, 121]


def test_postgres_reads_the_history(tmp_path: Path) -> None:
    with project_on("postgres", tmp_path, AUDIENCES, CONFIG, {**ROWS_CONSENT, "consents": BEFORE_AS_OF}) as root:
        p = load_project(root)
        try:
            assert usable_current(p.warehouse, p.consent_table, AS_OF) is None
        finally:
            p.close()
        assert members(root, "ads") == (EXPORTED_ADS, False)


# ---- the condensed table agrees with the history on random histories --------------------

T0 = datetime(2026, 1, 1)
TS = st.integers(min_value=0, max_value=6).map(lambda h: T0 + timedelta(hours=h))  # few values: many ties
DECISION = st.tuples(
    st.integers(min_value=1, max_value=4),
    st.sampled_from(["ads", "sale", "other"]),
    st.sampled_from(["granted", "denied", "withdrawn"]),
    TS,
    st.one_of(st.none(), TS),
)
COLUMNS = {
    "profile_key": Column("profile_key", "number", "BIGINT"),
    "purpose": Column("purpose", "text", "VARCHAR"),
    "status": Column("status", "text", "VARCHAR"),
    "updated_at": Column("updated_at", "timestamp", "TIMESTAMP"),
    "expires_at": Column("expires_at", "timestamp", "TIMESTAMP"),
}
HISTORY = Table("consents", COLUMNS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    decisions=st.lists(DECISION, max_size=25),
    purposes=st.sampled_from([("ads",), ("ads", "sale"), ("sale", "other", "ads")]),
    as_of_hours=st.integers(min_value=6, max_value=8),
)
def test_condensed_table_agrees_with_the_history(decisions, purposes, as_of_hours) -> None:
    as_of = T0 + timedelta(hours=as_of_hours)  # never before the newest decision
    con = duckdb.connect()
    con.execute("CREATE TABLE consents (profile_key BIGINT, purpose VARCHAR, status VARCHAR, "
                "updated_at TIMESTAMP, expires_at TIMESTAMP)")
    if decisions:
        con.executemany("INSERT INTO consents VALUES (?, ?, ?, ?, ?)", [list(d) for d in decisions])
    con.execute(f"CREATE TABLE cur AS {condense_history(HISTORY).sql('duckdb')}")
    policy = ConsentPolicy("consents", None, 16, "opt_in", {})
    history = newest_decisions(policy, purposes, as_of, HISTORY).sql("duckdb")
    condensed = current_decisions(purposes, as_of, current_table("cur", HISTORY)).sql("duckdb")
    expected = sorted(con.execute(history).fetchall())
    assert sorted(con.execute(condensed).fetchall()) == expected


def test_condensed_names_are_safe_identifiers() -> None:
    assert condensed_name("crm.consents") == "audience_state.consent_current_crm_consents"


def test_a_known_history_condenses_to_known_rows() -> None:
    """Ties: a grant and a denial at the same time are a denial; two grants at the newest time
    keep the later expiry, and one without expiry makes it unlimited."""
    con = duckdb.connect()
    con.execute("CREATE TABLE consents (profile_key BIGINT, purpose VARCHAR, status VARCHAR, "
                "updated_at TIMESTAMP, expires_at TIMESTAMP)")
    t = lambda text: datetime.fromisoformat(text)  # noqa: E731
    rows = [
        (1, "ads", "granted", t("2026-01-01 00:00"), None), (1, "ads", "denied", t("2026-01-01 00:00"), None),
        (2, "ads", "denied", t("2026-01-01 00:00"), None), (2, "ads", "granted", t("2026-02-01 00:00"),
                                                              t("2026-03-01 00:00")),
        (2, "ads", "granted", t("2026-02-01 00:00"), t("2026-04-01 00:00")),
        (3, "ads", "granted", t("2026-02-01 00:00"), t("2026-03-01 00:00")),
        (3, "ads", "granted", t("2026-02-01 00:00"), None),
    ]
    con.executemany("INSERT INTO consents VALUES (?, ?, ?, ?, ?)", [list(r) for r in rows])
    got = con.execute(f"SELECT * FROM ({condense_history(HISTORY).sql('duckdb')}) ORDER BY 1").fetchall()
    assert got == [
        (1, "ads", t("2026-01-01 00:00"), 1, 1, 1, None),  # denied wins all the same
        (2, "ads", t("2026-02-01 00:00"), 0, 1, 0, t("2026-04-01 00:00")),
        (3, "ads", t("2026-02-01 00:00"), 0, 1, 1, t("2026-03-01 00:00")),
    ]


def test_a_refresh_run_reads_the_history_rather_than_rebuild(project: Path) -> None:
    """`rebuild_stale=False` (the refresh engine): a stale table is not rebuilt, a fresh one is used."""
    p = load_project(project)
    try:
        assert usable_current(p.warehouse, p.consent_table, AS_OF, rebuild_stale=False) is None  # never built
        assert usable_current(p.warehouse, p.consent_table, AS_OF) is not None  # built now
        assert usable_current(p.warehouse, p.consent_table, AS_OF, rebuild_stale=False) is not None
    finally:
        p.close()
    append(project, deny(112, "2026-04-01 00:00:00"))
    p = load_project(project)
    try:
        assert usable_current(p.warehouse, p.consent_table, AS_OF, rebuild_stale=False) is None  # stale again
    finally:
        p.close()


def test_an_unreadable_marks_table_reads_the_history_instead_of_rebuilding(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A marks table that cannot answer (here: not the columns it should have) is not "never
    # built": rebuilding could not fix it, so every check would start a whole rebuild again.
    rebuilds: list[str] = []
    monkeypatch.setattr(consent_state, "rebuild", lambda wh, table: rebuilds.append(table.name))
    p = load_project(project)
    try:
        p.warehouse.execute("CREATE SCHEMA IF NOT EXISTS audience_state")
        p.warehouse.execute("CREATE TABLE audience_state.consent_current_marks (source VARCHAR, rows BIGINT)")
        assert [usable_current(p.warehouse, p.consent_table, AS_OF) for _ in range(2)] == [None, None]
        assert rebuilds == []
    finally:
        p.close()


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "bigquery"])
def test_compiled_sql_never_names_the_private_table(project: Path, dialect: str) -> None:
    """`compile --destination` shows portable SQL over the user's own consent table, even when
    the condensed table is fresh and used for the product's own queries."""
    from audience.consented import consented_members_query

    p = load_project(project)
    try:
        assert usable_current(p.warehouse, p.consent_table, AS_OF) is not None
        sql = consented_members_query(p, "everyone", "ads", AS_OF, dialect).sql(dialect)
        assert "audience_state" not in sql and "consent_current" not in sql
        assert "FROM consents AS c" in sql
        assert "consent_current" in consented(p, "everyone", "ads", AS_OF).exportable_sql()
    finally:
        p.close()
