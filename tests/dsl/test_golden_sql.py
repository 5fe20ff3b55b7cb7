"""Golden SQL per dialect, and a property: random valid audiences compile to SQL every dialect parses.

The golden files pin the SQL shape a reviewer has read and approved; any compiler change shows
up as a diff. Regenerate them with `UPDATE_GOLDEN=1 .venv/bin/pytest tests/dsl/test_golden_sql.py`
and review the diff before committing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings

from audience.project import Project, load_project
from dsl.compiler import compile_audience
from tests.dsl.catalogs import fixture_catalog, parse_and_check
from tests.dsl.strategies import HELPERS_TEXT, audience_text, condition
from tests.warehouse_fixture import project_on

DIALECTS = ("duckdb", "postgres", "bigquery", "snowflake", "spark", "databricks", "trino", "redshift")
GOLDEN = Path(__file__).parent / "golden"
AS_OF = datetime(2026, 6, 30, 12, 0, 0, tzinfo=UTC)
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

AUDIENCES = """
audience london_dubstep_samplers {
  where: city = "London" and country = "GB"
     and did stream where genre = "dubstep" at least 5 times in last 30 days
     and did clip_sample at least 3 times in last 30 days
     and not did purchase where category = "ringtone" in last 90 days
}

audience two_valued {
  where: not (score = 10) and city != "O'Brien; DROP TABLE fans; --"
     and (score not in (1, 2, 3) or score between 3 and 7 or email is null)
     and (city contains "50%_off" or city starts with "Lon") and vip = true
     and birth_date < "2000-01-01" and signup_at >= "2026-01-05T10:00:00Z"
}

audience counted {
  where: did purchase at most 1 times in last 52 weeks
     and did stream exactly 0 times in last 12 hours
     and did not clip_sample where (artist = "a" or artist is null)
     and did stream where seconds > 30 exactly 3 times
}

audience windows {
  where: did purchase since "2026-01-01" or did purchase before "2016-06-23T08:00:00Z"
     or did checkin between "2026-01-01" and "2026-02-01T12:30:00+01:00"
}

audience measures {
  where: sum(purchase.amount) where category = "ticket" in last 90 days >= 100
     and avg(stream.seconds) < 200.5
     and count distinct(stream.genre) in last 30 days > 2
     and count(purchase) <= 3
}

audience lapsed_top_spenders {
  where: top 20% by sum(purchase.amount) between "2024-11-01" and "2025-11-01"
     and not did purchase in last 180 days
     and not top 10 by count(stream)
}

audience sampled_then_bought {
  where: did clip_sample then purchase where category in ("album", "single", "vinyl")
         within 7 days in last 180 days
}

audience streamed_twice_fast {
  where: did stream where genre = "house" then stream within 30 minutes
     and in audience london_dubstep_samplers
}
"""

NAMES = ("london_dubstep_samplers", "two_valued", "counted", "windows", "measures",
         "lapsed_top_spenders", "sampled_then_bought", "streamed_twice_fast")


def compiled(name: str, dialect: str) -> str:
    catalog = fixture_catalog("crm.fans")
    audiences, diags = parse_and_check(AUDIENCES, catalog)
    assert [d.format() for d in diags] == []
    return compile_audience(audiences[name], catalog, audiences, AS_OF).sql(dialect=dialect, pretty=True) + "\n"


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", NAMES)
def test_golden_sql(name: str, dialect: str) -> None:
    path = GOLDEN / dialect / f"{name}.sql"
    sql = compiled(name, dialect)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert sql == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", NAMES)
def test_golden_parses_back(name: str, dialect: str) -> None:
    text = (GOLDEN / dialect / f"{name}.sql").read_text(encoding="utf-8")
    tree = sqlglot.parse_one(text, read=dialect)
    assert isinstance(tree, sqlglot.exp.Select)
    assert tree.named_selects == ["profile_key"]


def test_golden_files_are_exactly_the_expected_set() -> None:
    found = sorted(p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*.sql"))
    assert found == sorted(f"{d}/{n}.sql" for d in DIALECTS for n in NAMES)


def test_golden_duckdb_reads_as_reviewed() -> None:
    """A few facts a reviewer checks by eye, asserted on the golden text itself."""
    text = (GOLDEN / "duckdb" / "london_dubstep_samplers.sql").read_text(encoding="utf-8")
    assert "FROM crm.fans AS p" in text
    # in last 30 days from 2026-06-30T12:00Z: exclusive lower bound, inclusive as_of
    assert "> CAST('2026-05-31 12:00:00.000000' AS TIMESTAMP)" in text
    assert "<= CAST('2026-06-30 12:00:00.000000' AS TIMESTAMP)" in text
    two = (GOLDEN / "postgres" / "two_valued.sql").read_text(encoding="utf-8")
    assert "'O''Brien; DROP TABLE fans; --'" in two
    assert "LIKE" not in two.upper()
    windows = (GOLDEN / "postgres" / "windows.sql").read_text(encoding="utf-8")
    # the checkin timestamp is a timestamptz column: literals carry the UTC offset
    assert "CAST('2026-02-01 11:30:00.000000+00:00' AS TIMESTAMPTZ)" in windows


# ---- property: random valid audiences --------------------------------------------------------
PROPERTY_SETTINGS = settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "80")), deadline=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY_SETTINGS
@given(where=condition())
def test_random_audiences_compile_to_sql_every_dialect_parses(where: str) -> None:
    catalog = fixture_catalog()
    audiences, diags = parse_and_check(audience_text("prop", where), catalog)
    assert [d.format() for d in diags] == [], where
    tree = compile_audience(audiences["prop"], catalog, audiences, AS_OF)
    for dialect in DIALECTS:
        parsed = sqlglot.parse_one(tree.sql(dialect=dialect), read=dialect)
        assert parsed.named_selects == ["profile_key"], (dialect, where)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Project]]:
    with ExitStack() as stack:
        projects = []
        for engine in ("duckdb", "postgres"):
            root = stack.enter_context(project_on(engine, tmp_path_factory.mktemp(engine), HELPERS_TEXT))
            project = load_project(root)
            stack.callback(project.close)
            assert project.diagnostics == []
            projects.append(project)
        yield projects[0], projects[1]


def members_on(project: Project, where: str) -> list[object]:
    assert project.catalog is not None
    audiences, diags = parse_and_check(audience_text("prop", where), project.catalog)
    assert [d.format() for d in diags] == [], where
    sql = compile_audience(audiences["prop"], project.catalog, audiences, AS_OF).sql(
        dialect=project.warehouse.dialect)
    return sorted(row[0] for row in project.warehouse.query(sql))


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(where=condition())
def test_random_audiences_agree_on_duckdb_and_postgres(engines: tuple[Project, Project], where: str) -> None:
    duck, pg = engines
    assert members_on(duck, where) == members_on(pg, where), where
