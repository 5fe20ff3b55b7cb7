"""A tiny hand-made warehouse whose every row exists to pin down one rule of dsl.md/consent.md.

Loaded identically into DuckDB and into a private PostgreSQL schema, so the same audiences can
be run on both and compared with member sets written out by hand in the tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

AS_OF = datetime(2026, 6, 30, 12, 0, 0)
AS_OF_TEXT = "2026-06-30T12:00:00Z"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


TABLES: dict[str, list[tuple[str, str]]] = {
    "fans": [
        ("fan_id", "BIGINT"),
        ("email", "VARCHAR"),
        ("phone", "VARCHAR"),
        ("city", "VARCHAR"),
        ("country", "VARCHAR"),
        ("birth_date", "DATE"),
        ("score", "INTEGER"),
        ("vip", "BOOLEAN"),
        ("signup_at", "TIMESTAMP"),
        ("religion", "VARCHAR"),
    ],
    "streams": [("fan_id", "BIGINT"), ("played_at", "TIMESTAMP"), ("genre", "VARCHAR"), ("seconds", "INTEGER")],
    "purchases": [("fan_id", "BIGINT"), ("purchased_at", "TIMESTAMP"), ("category", "VARCHAR"), ("amount", "DOUBLE")],
    "clip_samples": [("fan_id", "BIGINT"), ("sampled_at", "TIMESTAMP"), ("artist", "VARCHAR")],
    "mood_scores": [("fan_id", "BIGINT"), ("scored_at", "TIMESTAMP"), ("mood", "VARCHAR")],
    "consents": [
        ("profile_key", "BIGINT"),
        ("purpose", "VARCHAR"),
        ("status", "VARCHAR"),
        ("updated_at", "TIMESTAMP"),
        ("expires_at", "TIMESTAMP"),
        ("source", "VARCHAR"),
    ],
    "suppressions": [("profile_key", "BIGINT")],
}

INJECTION_CITY = "O'Brien; DROP TABLE fans; --"

ROWS: dict[str, list[tuple[Any, ...]]] = {
    "fans": [
        (
            1,
            "Fan.One@Example.com",
            "+44 7700 900001",
            "London",
            "GB",
            date(1990, 1, 1),
            10,
            True,
            ts("2026-01-05 10:00:00"),
            None,
        ),
        (2, "two@example.com", None, "London", "GB", date(1985, 5, 5), None, False, ts("2025-12-31 23:59:59"), "x"),
        (3, "three@example.com", None, "Paris", "FR", date(2000, 2, 2), 5, None, ts("2026-02-01 00:00:00"), None),
        (4, "four@example.com", None, None, "US", None, 1, False, None, None),
        (5, "five@example.com", None, "Lon%don", "DE", date(1995, 3, 3), 7, False, ts("2026-03-01 00:00:00"), None),
        (6, "six@example.com", None, "london", "GB", date(1999, 9, 9), 10, False, ts("2026-04-01 00:00:00"), None),
        (
            7,
            "seven@example.com",
            None,
            INJECTION_CITY,
            "IE",
            date(1980, 8, 8),
            3,
            False,
            ts("2026-05-01 00:00:00"),
            None,
        ),
        (8, None, None, "Manchester", "GB", date(2001, 1, 1), 2, False, ts("2026-06-01 00:00:00"), None),
    ],
    "streams": [
        # fan 1: five dubstep streams inside "last 30 days" (one exactly at as_of, one a second
        # after the exclusive lower bound), one exactly on the bound (excluded), one grime
        (1, ts("2026-06-30 12:00:00"), "dubstep", 200),
        (1, ts("2026-06-29 08:00:00"), "dubstep", 180),
        (1, ts("2026-06-20 08:00:00"), "dubstep", 180),
        (1, ts("2026-06-10 08:00:00"), "dubstep", 180),
        (1, ts("2026-05-31 12:00:01"), "dubstep", 180),
        (1, ts("2026-05-31 12:00:00"), "dubstep", 180),
        (1, ts("2026-06-25 08:00:00"), "grime", 100),
        # fan 2: four dubstep streams in the window and one after as_of (never counts)
        (2, ts("2026-06-01 08:00:00"), "dubstep", 100),
        (2, ts("2026-06-01 09:00:00"), "dubstep", 100),
        (2, ts("2026-06-01 10:00:00"), "dubstep", 100),
        (2, ts("2026-06-01 11:00:00"), "dubstep", 100),
        (2, ts("2026-06-30 12:00:01"), "dubstep", 100),
        # fan 3: one pop stream and one with an unknown genre
        (3, ts("2026-06-15 08:00:00"), "pop", 100),
        (3, ts("2026-06-16 08:00:00"), None, 100),
        # fan 4: two identical rows (distinct rows for a same-event sequence)
        (4, ts("2026-06-10 10:00:00"), "house", 300),
        (4, ts("2026-06-10 10:00:00"), "house", 300),
        # fan 5: a genre containing the LIKE wildcard %
        (5, ts("2026-06-12 08:00:00"), "dub%step", 100),
        # fan 6: five dubstep streams exactly on the exclusive lower bound of "last 30 days"
        *[(6, ts("2026-05-31 12:00:00"), "dubstep", 100 + i) for i in range(5)],
        # fan 7: a single house stream (cannot pair with itself in a sequence)
        (7, ts("2026-06-10 10:00:00"), "house", 300),
    ],
    "purchases": [
        (1, ts("2026-06-01 00:00:00"), "ringtone", 0.99),
        (2, ts("2026-06-02 00:00:00"), "album", 9.99),
        (2, ts("2026-06-03 00:00:00"), "ringtone", 1.99),
        (3, ts("2025-01-01 00:00:00"), "vinyl", 25.0),
        (3, ts("2026-01-15 00:00:00"), "album", 10.0),
        (4, ts("2026-06-10 10:30:00"), "ticket", 50.0),
        (5, ts("2026-06-05 00:00:00"), "merch", 30.0),
        (5, ts("2026-06-06 00:00:00"), "ticket", None),
        (6, ts("2026-06-10 00:00:00"), "album", 10.0),
    ],
    "clip_samples": [
        (1, ts("2026-05-25 00:00:00"), "a"),  # purchase exactly 7 days later
        (1, ts("2026-06-20 00:00:00"), "a"),
        (1, ts("2026-06-21 00:00:00"), "a"),
        (2, ts("2026-06-03 12:00:00"), "b"),  # after both of fan 2's purchases
        (3, ts("2026-01-10 00:00:00"), "c"),  # purchase 5 days later
        (5, ts("2026-06-05 00:00:00"), "d"),  # purchase at the same instant
        (6, ts("2026-06-01 00:00:00"), "e"),  # purchase 9 days later
    ],
    "mood_scores": [(1, ts("2026-06-01 00:00:00"), "sad")],
    "consents": [],
    "suppressions": [],
}


def config_text(warehouse_url: str, extra: str = "") -> str:
    return f'''
[project]
name = "fixture"

[warehouse]
url = "{warehouse_url}"

[profiles]
table = "fans"
key = "fan_id"
country = "country"
birth_date = "birth_date"

[profiles.identifiers]
email = "email"
phone = "phone"

[events.stream]
table = "streams"
key = "fan_id"
timestamp = "played_at"

[events.purchase]
table = "purchases"
key = "fan_id"
timestamp = "purchased_at"

[events.clip_sample]
table = "clip_samples"
key = "fan_id"
timestamp = "sampled_at"

[events.mood]
table = "mood_scores"
key = "fan_id"
timestamp = "scored_at"

[sensitive]
columns = {{ "fans.religion" = "user.demographic.religious_belief" }}
values = [
  {{ column = "purchases.category", values = ["pharmacy", "fertility"], category = "user.health_and_medical" }},
]
tables = {{ "mood_scores" = "user.inferred.emotion" }}
{extra}
'''


def _insert_sql(table: str, placeholder: str, schema: str | None = None) -> str:
    cols = ", ".join(c for c, _ in TABLES[table])
    marks = ", ".join(placeholder for _ in TABLES[table])
    target = f"{schema}.{table}" if schema else table
    return f"INSERT INTO {target} ({cols}) VALUES ({marks})"


def load_duckdb(path: Path, rows: dict[str, list[tuple[Any, ...]]] | None = None) -> None:
    import duckdb

    con = duckdb.connect(str(path))
    for table, cols in TABLES.items():
        con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in cols)})")
        data = (rows or ROWS).get(table, [])
        if data:
            con.executemany(_insert_sql(table, "?"), [list(r) for r in data])
    con.close()


def load_postgres(schema: str, rows: dict[str, list[tuple[Any, ...]]] | None = None) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        for table, cols in TABLES.items():
            pg_cols = ", ".join(f"{c} {t.replace('DOUBLE', 'DOUBLE PRECISION')}" for c, t in cols)
            conn.execute(f"CREATE TABLE {schema}.{table} ({pg_cols})")
            data = (rows or ROWS).get(table, [])
            if data:
                with conn.cursor() as cur:
                    cur.executemany(_insert_sql(table, "%s", schema), data)


def drop_postgres(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def pg_url(schema: str) -> str:
    return f"{PG_DSN}?options=-csearch_path%3D{schema}"


@contextmanager
def project_on(
    engine: str, tmp: Path, audiences: str, extra_config: str = "", rows: dict[str, list[tuple[Any, ...]]] | None = None
) -> Iterator[Path]:
    """A project folder over the fixture warehouse on `engine` ("duckdb" or "postgres")."""
    (tmp / "audiences").mkdir(parents=True, exist_ok=True)
    (tmp / "audiences" / "test.aud").write_text(audiences, encoding="utf-8")
    schema = None
    if engine == "duckdb":
        load_duckdb(tmp / "wh.duckdb", rows)
        url = "duckdb:///wh.duckdb"
    else:
        schema = f"t_{uuid.uuid4().hex[:10]}"
        load_postgres(schema, rows)
        url = pg_url(schema)
    (tmp / "audience.toml").write_text(config_text(url, extra_config), encoding="utf-8")
    try:
        yield tmp
    finally:
        if schema:
            drop_postgres(schema)
