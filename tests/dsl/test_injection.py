"""Hostile strings and names cannot change a query's shape (dsl.md: "never build SQL by pasting").

Values become typed literals: they match nothing, or exactly the row holding that very value.
Names are checked against the catalog, so anything odd is a diagnostic before SQL exists. After
everything ran, the warehouse has the same tables with the same row counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience.build import member_keys
from audience.project import Project, load_project
from dsl.compiler import compile_audience
from tests.dsl.catalogs import fixture_catalog, parse_and_check
from tests.warehouse_fixture import AS_OF, INJECTION_CITY, ROWS, TABLES, project_on

# fan 9: a city made of every character that matters to SQL string syntax somewhere
NASTY_CITY = "back\\slash 'single' \"double\" ü😀 -- /* c */ ; $$ %_ \\' ''"


def rows_with_nasty_fan() -> dict[str, list[tuple[Any, ...]]]:
    rows = {table: list(data) for table, data in ROWS.items()}
    rows["fans"].append((9, "nine@example.com", None, NASTY_CITY, "GB", date(1990, 1, 1), 4, False,
                         None, None))
    return rows


def dsl_string(text: str) -> str:
    """A DSL string literal for `text`, using the lexer's escapes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


# (name, where, expected members)
MATCHING = [
    ("exact_injection_city", f"city = {dsl_string(INJECTION_CITY)}", [7]),
    ("exact_nasty_city", f"city = {dsl_string(NASTY_CITY)}", [9]),
    ("contains_nasty_tail", f"city contains {dsl_string(NASTY_CITY[-12:])}", [9]),
    ("starts_obrien", "city starts with \"O'Brien;\"", [7]),
    ("contains_drop", 'city contains "DROP TABLE fans"', [7]),
    ("or_true", "city = \"x' OR '1'='1\"", []),
    ("close_and_drop", "city = \"'; DROP TABLE fans; --\"", []),
    ("backslash_quote", "city = \"\\\\'; DROP TABLE fans; --\"", []),
    ("in_list_drop", "city in (\"x\", \"'); DROP TABLE fans; --\")", []),
    ("block_comment", 'city = "/* comment */"', []),
    ("line_comment", 'city = "-- comment"', []),
    ("dollar_quote", 'city = "$$; DROP TABLE fans; $$"', []),
    ("unicode", 'city = "é😀\u202eevil"', []),
    ("newline_escape", 'city = "London\\n; DROP TABLE fans"', []),
    ("filter_drop", "did purchase where category = \"'; DROP TABLE purchases; --\"", []),
    ("not_drop", "not city = \"'; DROP TABLE fans; --\" and city starts with \"Lon\" and country = \"GB\"", [1, 2]),
]

REJECTED = [
    ("did stream; DROP TABLE fans", "E101"),
    ('city = "x"; DROP TABLE fans', "E101"),
    ("score = 1 -- comment", "E103"),
    ("score = 1; DROP TABLE fans", "E101"),
    ('did streams', "E202"),
    ('did stream where "genre" = "x"', "E103"),
    ('fans.city = "x"', "E103"),
    ('profile.city; = "x"', "E101"),
    ('did stream since "2026-01-01\'; DROP TABLE fans; --"', "E205"),
    ('signup_at > "2026-01-01T00:00:00Z\'); DROP TABLE fans; --"', "E205"),
    ('CITY = "x"', "E105"),
    ("city = 'London'", "E101"),
    ('city = "a" UNION SELECT 1', "E105"),
]


def table_counts(project: Project) -> dict[str, int]:
    wh = project.warehouse
    return {table: wh.query(f"SELECT count(*) FROM {table}")[0][0] for table in TABLES}


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    text = "\n".join(f"audience {name} {{ where: {where} }}" for name, where, _ in MATCHING)
    tmp: Path = tmp_path_factory.mktemp(f"inj_{request.param}")
    with project_on(request.param, tmp, text, rows=rows_with_nasty_fan()) as root:
        loaded = load_project(root)
        before = table_counts(loaded)
        assert before == {"fans": 9, "streams": 23, "purchases": 9, "clip_samples": 7, "mood_scores": 1,
                          "consents": 0, "suppressions": 0}
        try:
            yield loaded
            assert table_counts(loaded) == before
        finally:
            loaded.close()


def test_checks_clean(project: Project) -> None:
    assert [d.format() for d in project.diagnostics] == []


@pytest.mark.parametrize(("name", "where", "expected"), MATCHING, ids=[m[0] for m in MATCHING])
def test_hostile_values_are_plain_literals(project: Project, name: str, where: str, expected: list[int]) -> None:
    assert member_keys(project, name, AS_OF) == expected


@pytest.mark.parametrize(("where", "code"), REJECTED, ids=[r[0] for r in REJECTED])
def test_hostile_names_and_syntax_are_rejected(where: str, code: str) -> None:
    _, diags = parse_and_check(f"audience a {{ where: {where} }}", fixture_catalog())
    assert code in [d.code for d in diags], [d.format() for d in diags]


def test_hostile_audience_and_destination_names_are_rejected() -> None:
    text = ('audience x; DROP TABLE fans { where: city = "x" }\n'
            'audience y { where: city = "x"\n sync "meta; DROP" { schedule: "0 6 * * *" } }\n')
    _, diags = parse_and_check(text, fixture_catalog(), destinations=("meta",))
    assert diags[0].format() == "audiences/test.aud:1:11: error[E101]: unexpected character ';'"
    assert any(d.span.line == 3 and d.code == "E103" for d in diags), [d.format() for d in diags]


def members_of(project: Project, where: str) -> list[int]:
    assert project.catalog is not None
    audiences, diags = parse_and_check(f"audience r {{ where: {where} }}", project.catalog)
    assert [d.format() for d in diags] == []
    sql = compile_audience(audiences["r"], project.catalog, audiences, AS_OF).sql(
        dialect=project.warehouse.dialect)
    return sorted(row[0] for row in project.warehouse.query(sql))


CITIES = {1: "London", 2: "London", 3: "Paris", 5: "Lon%don", 6: "london", 7: INJECTION_CITY,
          8: "Manchester", 9: NASTY_CITY}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=["Cs"]),
            max_size=30),
    st.sampled_from(sorted(set(CITIES.values()))),
    st.sampled_from(["'", "''", "\\", "\\'", "%", "_", "$$", "--", "/*", ";", "O'Brien"])))
def test_random_strings_match_only_their_own_value(project: Project, text: str) -> None:
    """`city = s` holds exactly for the fans whose city is s; `contains` for those holding it."""
    assert members_of(project, f"city = {dsl_string(text)}") == sorted(
        k for k, c in CITIES.items() if c == text)
    assert members_of(project, f"city contains {dsl_string(text)}") == sorted(
        k for k, c in CITIES.items() if text in c)
    assert members_of(project, f"city starts with {dsl_string(text)}") == sorted(
        k for k, c in CITIES.items() if c.startswith(text))


def test_warehouse_unchanged(project: Project) -> None:
    assert table_counts(project) == {"fans": 9, "streams": 23, "purchases": 9, "clip_samples": 7,
                                     "mood_scores": 1, "consents": 0, "suppressions": 0}
