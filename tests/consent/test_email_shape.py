"""Rule 4's email test in SQL (``consent_filter.query.identifier_present``), on DuckDB and PostgreSQL.

The expression replaces most of a regular expression with LIKE tests for speed; the expected
answers are written out by hand from the shape in exports.md (exactly one ``@``, a character
other than a space before it after leading spaces, a dot after it), and a property checks the
expression against the regex itself on generated text in both engines.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from consent_filter.query import EMAIL_SHAPE, identifier_present

PG_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=5"

CASES = [
    ("fan@example.com", True),
    ("  fan@example.com", True),  # leading spaces are trimmed by the normaliser
    ("fan@example.com  ", True),
    ("f an@ex ample.com", True),
    ("a@.b", True),  # a dot anywhere after the @
    ("a@b.", True),
    ("\tx@b.c", True),  # a tab is not a space here; the hashing step drops what it cannot normalise
    ("a@b.c\n", True),
    ("Émile@exemple.fr", True),
    ("@example.com", False),
    ("   @example.com", False),
    (" ", False),
    ("", False),
    (None, False),
    ("a@b", False),
    ("a.b@c", False),  # the dot must come after the @
    ("a@b@c.d", False),
    ("a@@b.c", False),
    ("@", False),
    ("no-at-sign.example.com", False),
]


def sql(dialect: str) -> str:
    expression = identifier_present("email", exp.column("x"), "sha256")
    return expression.sql(dialect)


@pytest.fixture(scope="module")
def pg() -> Iterator[psycopg.Connection]:
    connection = psycopg.connect(PG_DSN, autocommit=True)
    yield connection
    connection.close()


def in_duckdb(values: list[str | None]) -> list[tuple[bool, bool]]:
    """(the expression, the bare regex) per value, in order."""
    rows = duckdb.sql(
        f"SELECT i, {sql('duckdb')}, COALESCE(REGEXP_MATCHES(x, '{EMAIL_SHAPE}'), FALSE) "
        "FROM (SELECT UNNEST(range(len($v))) AS i, UNNEST($v) AS x) ORDER BY i",
        params={"v": values},
    ).fetchall()
    return [(row[1], row[2]) for row in rows]


def in_postgres(pg: psycopg.Connection, values: list[str | None]) -> list[tuple[bool, bool]]:
    expression = sql("postgres").replace("%", "%%")  # psycopg placeholders: a literal % is %%
    rows = pg.execute(
        f"SELECT {expression}, COALESCE(x ~ '{EMAIL_SHAPE}', FALSE) "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS t(x, i) ORDER BY i",
        [values],
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def test_email_shape_answers_by_hand_in_both_engines(pg: psycopg.Connection) -> None:
    values = [value for value, _ in CASES]
    expected = [valid for _, valid in CASES]
    assert [answer for answer, _ in in_duckdb(values)] == expected
    assert [answer for answer, _ in in_postgres(pg, values)] == expected


_body = st.lists(st.sampled_from(["@", ".", " ", "a", "\t", "\n", "é", "%", "_", "\\"]), max_size=10).map("".join)
# the start is where the LIKE tests hand over to the regex: make the odd starts common
_texts = st.tuples(st.sampled_from(["", " ", "  ", "@", " @", "a"]), _body).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(st.none(), _texts), min_size=1, max_size=20))
def test_the_like_tests_agree_with_the_regex_on_any_text(pg: psycopg.Connection, values: list[str | None]) -> None:
    for answers in (in_duckdb(values), in_postgres(pg, values)):
        assert [bool(answer) for answer, _ in answers] == [regex for _, regex in answers]
