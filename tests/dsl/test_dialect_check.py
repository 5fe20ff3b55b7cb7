"""Every dialect's consent-filtered SQL is something that dialect accepts (engines.check).

DuckDB and PostgreSQL run it for real in the execution tests; for the compile-only dialects the
check is sqlglot's parser in the target dialect plus the constructs the engine's traits forbid.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlglot

from audience.consented import consented_members_query
from audience.project import load_project
from engines import TRAITS
from engines.check import dialect_problems
from tests.consent.test_consent_rules import CONFIG, ROWS_CONSENT
from tests.dsl.test_golden_sql import AUDIENCES, DIALECTS, NAMES
from tests.warehouse_fixture import project_on

AS_OF = datetime(2026, 6, 30, 12, 0, 0, tzinfo=UTC)
# `windows` reads a `checkin` event of the golden catalog that the fixture warehouse does not have.
RUNNABLE = tuple(n for n in NAMES if n != "windows")


@pytest.fixture(scope="module")
def consented_sql(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    root = tmp_path_factory.mktemp("dialects")
    with project_on("duckdb", Path(root), AUDIENCES, CONFIG, ROWS_CONSENT):
        project = load_project(Path(root))
        try:
            return {(name, d): consented_members_query(project, name, "ads", AS_OF, d).sql(dialect=d, pretty=True)
                    for name in RUNNABLE for d in DIALECTS}
        finally:
            project.close()


def test_every_dialect_has_traits() -> None:
    assert sorted(TRAITS) == sorted(DIALECTS)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", RUNNABLE)
def test_consent_filtered_sql_passes_the_dialect_check(consented_sql: dict[tuple[str, str], str],
                                                       name: str, dialect: str) -> None:
    assert dialect_problems(consented_sql[(name, dialect)], dialect) == []


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_engines_with_the_hint_keep_it(consented_sql: dict[tuple[str, str], str], dialect: str) -> None:
    assert "AS MATERIALIZED (" in consented_sql[("london_dubstep_samplers", dialect)]


# What `compile --destination --dialect spark` rendered before the engine traits: PostgreSQL's
# CTE hint, which Spark (and every engine but PostgreSQL) rejects. sqlglot parses it anyway.
OLD_SPARK_OUTPUT = ("WITH audience_members AS NOT MATERIALIZED (SELECT p.fan_id AS profile_key FROM fans AS p) "
                    "SELECT profile_key FROM audience_members")


@pytest.mark.parametrize("dialect", [d for d in DIALECTS if d != "postgres"])
def test_the_old_not_materialized_output_fails_the_check(dialect: str) -> None:
    sqlglot.parse(OLD_SPARK_OUTPUT, read=dialect)  # sqlglot alone would let it through
    assert any("AS NOT MATERIALIZED" in p for p in dialect_problems(OLD_SPARK_OUTPUT, dialect))


def test_the_check_reports_sql_that_does_not_parse() -> None:
    assert dialect_problems("SELECT FROM WHERE (", "spark") != []
