"""The synthetic demo warehouse: exact schema, determinism, integrity and the data shapes that
the demo audiences, the consent filter and the exporters rely on."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone

import duckdb
import phonenumbers
import psycopg
import pytest

from audience.demo import DemoSizes, build_demo_warehouse, export_to_postgres
from audience.demo import warehouse as warehouse_module

AS_OF = datetime(2025, 6, 1, 12, 0, 0)
SIZES = DemoSizes(fans=20_000)
PG_CONNINFO = "host=127.0.0.1 port=5432 dbname=test user=postgres"

EXPECTED_SCHEMA = {
    "fans": [
        ("fan_id", "BIGINT"), ("email", "VARCHAR"), ("phone", "VARCHAR"),
        ("device_id", "VARCHAR"), ("city", "VARCHAR"), ("country", "VARCHAR"),
        ("birth_date", "DATE"), ("signup_at", "TIMESTAMP"), ("favourite_genre", "VARCHAR"),
        ("lifetime_value", "DOUBLE"), ("religion", "VARCHAR"),
    ],
    "streams": [
        ("fan_id", "BIGINT"), ("played_at", "TIMESTAMP"), ("genre", "VARCHAR"),
        ("artist", "VARCHAR"), ("track", "VARCHAR"), ("device", "VARCHAR"),
        ("seconds", "INTEGER"),
    ],
    "clip_samples": [
        ("fan_id", "BIGINT"), ("sampled_at", "TIMESTAMP"), ("artist", "VARCHAR"),
        ("genre", "VARCHAR"), ("seconds", "INTEGER"),
    ],
    "purchases": [
        ("fan_id", "BIGINT"), ("purchased_at", "TIMESTAMP"), ("category", "VARCHAR"),
        ("artist", "VARCHAR"), ("amount", "DOUBLE"),
    ],
    "checkins": [
        ("fan_id", "BIGINT"), ("checked_in_at", "TIMESTAMP"), ("venue", "VARCHAR"),
        ("city", "VARCHAR"), ("artist", "VARCHAR"),
    ],
    "mood_scores": [
        ("fan_id", "BIGINT"), ("scored_at", "TIMESTAMP"), ("mood", "VARCHAR"),
        ("score", "DOUBLE"),
    ],
    "consents": [
        ("profile_key", "BIGINT"), ("purpose", "VARCHAR"), ("status", "VARCHAR"),
        ("updated_at", "TIMESTAMP"), ("expires_at", "TIMESTAMP"), ("source", "VARCHAR"),
    ],
    "suppressions": [("profile_key", "BIGINT")],
}
EVENT_TABLES = {"streams": "played_at", "clip_samples": "sampled_at",
                "purchases": "purchased_at", "checkins": "checked_in_at",
                "mood_scores": "scored_at"}
GENRES = {"dubstep", "drum_and_bass", "grime", "house", "techno", "pop", "indie", "hip_hop",
          "jazz", "classical"}
CITIES = {
    "GB": {"London", "Manchester", "Bristol", "Glasgow"},
    "US": {"New York", "Los Angeles", "Austin", "Chicago"},
    "DE": {"Berlin", "Munich", "Hamburg"},
    "FR": {"Paris", "Lyon", "Marseille"},
    "IE": {"Dublin", "Cork"},
    "NL": {"Amsterdam", "Rotterdam"},
    "ES": {"Madrid", "Barcelona"},
    "SE": {"Stockholm", "Gothenburg"},
    "NO": {"Oslo", "Bergen"},
    "BR": {"São Paulo", "Rio de Janeiro"},
    "JP": {"Tokyo", "Osaka"},
    "CA": {"Toronto", "Montreal", "Vancouver"},
}
Con = duckdb.DuckDBPyConnection
Built = tuple[duckdb.DuckDBPyConnection, dict[str, int]]
TS = "TIMESTAMP '2025-06-01 12:00:00'"


def _build(sizes: DemoSizes = SIZES, seed: int = 42, as_of: datetime = AS_OF,
           schema: str = "main") -> tuple[duckdb.DuckDBPyConnection, dict[str, int]]:
    con = duckdb.connect()
    return con, build_demo_warehouse(con, sizes=sizes, as_of=as_of, seed=seed, schema=schema)


def _fingerprint(con: duckdb.DuckDBPyConnection, schema: str = "main") -> dict[str, int]:
    """Order-independent content hash of every table."""
    out = {}
    for table, cols in EXPECTED_SCHEMA.items():
        names = ", ".join(c for c, _ in cols)
        row = con.execute(
            f"SELECT bit_xor(hash(x)) FROM (SELECT {names} FROM {schema}.{table}) x").fetchone()
        out[table] = row[0]
    return out


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture(scope="module")
def built() -> Iterator[Built]:
    con, counts = _build()
    yield con, counts
    con.close()


@pytest.fixture(scope="module")
def con(built: Built) -> duckdb.DuckDBPyConnection:
    return built[0]


# --- contract: schema, counts, determinism ----------------------------------------------------

def test_tables_have_exactly_the_documented_columns_and_types(con: Con) -> None:
    for table, expected in EXPECTED_SCHEMA.items():
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
            [table]).fetchall()
        assert rows == expected, table


def test_fan_id_is_the_primary_key_and_runs_from_one(con: Con) -> None:
    assert con.execute("SELECT count(*), count(DISTINCT fan_id), min(fan_id), max(fan_id) "
                       "FROM fans").fetchone() == (20_000, 20_000, 1, 20_000)
    with pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO fans (fan_id) VALUES (1)")


def test_returned_counts_are_the_table_row_counts(built: Built) -> None:
    con, counts = built
    assert set(counts) == set(EXPECTED_SCHEMA)
    for table, n in counts.items():
        assert _one(con, f"SELECT count(*) FROM {table}") == n
    assert counts["fans"] == 20_000


def test_per_fan_averages_follow_the_sizes(built: Built) -> None:
    _, counts = built
    # DemoSizes defaults: 12 streams, 4 clips, 1.5 purchases, 0.5 check-ins, 2.5 consents.
    assert 11.4 < counts["streams"] / 20_000 < 12.6
    assert 3.7 < counts["clip_samples"] / 20_000 < 4.3
    assert 1.35 < counts["purchases"] / 20_000 < 1.65
    assert 0.42 < counts["checkins"] / 20_000 < 0.58
    assert 2.3 < counts["consents"] / 20_000 < 2.7
    assert counts["mood_scores"] < counts["fans"]


def test_same_seed_builds_the_same_data_and_another_seed_does_not() -> None:
    small = DemoSizes(fans=2_000)
    con_a, counts_a = _build(small, seed=7)
    con_b, counts_b = _build(small, seed=7)
    _, counts_c = _build(small, seed=8)
    assert counts_a == counts_b
    assert _fingerprint(con_a) == _fingerprint(con_b)
    assert counts_a["fans"] == counts_c["fans"] == 2_000
    assert counts_a != counts_c


def test_aware_as_of_means_the_same_utc_instant() -> None:
    small = DemoSizes(fans=1_000)
    naive, _ = _build(small, as_of=datetime(2025, 6, 1, 12, 0))
    aware, _ = _build(small, as_of=datetime(2025, 6, 1, 14, 0,
                                            tzinfo=timezone(timedelta(hours=2))))
    assert _fingerprint(naive) == _fingerprint(aware)


def test_rebuild_replaces_tables_in_a_named_schema() -> None:
    con = duckdb.connect()
    first = build_demo_warehouse(con, sizes=DemoSizes(fans=500), as_of=AS_OF, schema="demo")
    second = build_demo_warehouse(con, sizes=DemoSizes(fans=800), as_of=AS_OF, schema="demo")
    assert first["fans"] == 500
    assert second["fans"] == 800
    assert _one(con, "SELECT count(*) FROM demo.fans") == 800
    assert _one(con, "SELECT count(*) FROM information_schema.tables "
                     "WHERE table_schema = 'main'") == 0


def test_failed_build_leaves_the_previous_warehouse(monkeypatch: pytest.MonkeyPatch) -> None:
    con, _ = _build(DemoSizes(fans=500))
    before = _fingerprint(con)
    monkeypatch.setattr(warehouse_module, "_suppressions_sql",
                        lambda schema: "INSERT INTO no_such_table VALUES (1)")
    with pytest.raises(duckdb.CatalogException):
        build_demo_warehouse(con, sizes=DemoSizes(fans=900), as_of=AS_OF)
    assert _one(con, "SELECT count(*) FROM fans") == 500
    assert _fingerprint(con) == before


def test_zero_fans_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        build_demo_warehouse(duckdb.connect(), sizes=DemoSizes(fans=0), as_of=AS_OF)


# --- referential integrity and time ranges ----------------------------------------------------

def test_every_row_belongs_to_an_existing_fan(con: Con) -> None:
    for table in EVENT_TABLES:
        orphans = f"SELECT count(*) FROM {table} WHERE fan_id NOT IN (SELECT fan_id FROM fans)"
        assert _one(con, orphans) == 0, table
    for table in ("consents", "suppressions"):
        orphans = (f"SELECT count(*) FROM {table} "
                   f"WHERE profile_key NOT IN (SELECT fan_id FROM fans)")
        assert _one(con, orphans) == 0, table


def test_events_span_400_days_with_a_few_after_as_of(con: Con) -> None:
    for table in ("streams", "clip_samples", "purchases", "checkins"):
        ts = EVENT_TABLES[table]
        low, high, future, total = con.execute(
            f"SELECT min({ts}), max({ts}), count(*) FILTER (WHERE {ts} > {TS}), count(*) "
            f"FROM {table}").fetchone()
        assert low >= AS_OF - timedelta(days=400), table
        assert high <= AS_OF + timedelta(days=31), table
        assert 0 < future / total < 0.03, table


# --- fans --------------------------------------------------------------------------------------

def test_ages_include_children_teenagers_and_unknowns(con: Con) -> None:
    under_16, under_18, unknown = con.execute(
        "SELECT count(*) FILTER (WHERE birth_date > DATE '2009-06-01'), "
        "count(*) FILTER (WHERE birth_date > DATE '2007-06-01'), "
        "count(*) FILTER (WHERE birth_date IS NULL) FROM fans").fetchone()
    assert 0.06 < under_16 / 20_000 < 0.10
    assert 0.03 < (under_18 - under_16) / 20_000 < 0.07
    assert 0.03 < unknown / 20_000 < 0.07


def test_countries_are_weighted_with_unknown_and_unlisted_codes(con: Con) -> None:
    rows = dict(con.execute("SELECT country, count(*) FROM fans GROUP BY 1").fetchall())
    assert set(rows) == set(CITIES) | {None, "ZZ"}
    assert rows["GB"] > rows["US"] > rows["DE"] > rows["NO"]
    assert 0.005 < rows[None] / 20_000 < 0.02
    assert 0.005 < rows["ZZ"] / 20_000 < 0.02


def test_cities_match_countries(con: Con) -> None:
    pairs = con.execute("SELECT DISTINCT country, city FROM fans").fetchall()
    for country, city in pairs:
        if country in CITIES:
            assert city in CITIES[country], (country, city)
        else:
            assert city is None, (country, city)
    assert {c for _, c in pairs} >= {"London", "Manchester", "Bristol", "New York", "Berlin"}


def test_emails_are_messy_like_real_crm_data(con: Con) -> None:
    emails = [e for (e,) in con.execute("SELECT email FROM fans").fetchall()]
    present = [e for e in emails if e is not None]
    assert 0.07 < 1 - len(present) / len(emails) < 0.13
    spaced = [e for e in present if e != e.strip()]
    assert 0.015 < len(spaced) / len(emails) < 0.045
    assert any(e != e.lower() for e in present)
    invalid = [e for e in present if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z.]+", e.strip(),
                                                      re.IGNORECASE)]
    assert 0.01 < len(invalid) / len(emails) < 0.03
    assert "no-at-sign" in invalid
    gmail = [e.strip().lower() for e in present if e.strip().lower().endswith("@gmail.com")]
    assert 0.18 < len(gmail) / len(emails) < 0.30
    assert any("+" in g for g in gmail)
    assert any(g.split("@")[0].count(".") >= 2 for g in gmail)


def test_phones_mix_e164_and_national_formats_that_mostly_validate(con: Con) -> None:
    rows = con.execute("SELECT phone, country FROM fans").fetchall()
    present = [(p, c) for p, c in rows if p is not None]
    assert 0.26 < 1 - len(present) / len(rows) < 0.34
    e164 = [p for p, _ in present if p.startswith("+")]
    national = [(p, c) for p, c in present if not p.startswith("+")]
    assert len(e164) > 0.3 * len(present)
    assert len(national) > 0.3 * len(present)
    valid = 0
    for phone, country in present:
        region = country if country in CITIES else "GB"
        with contextlib.suppress(phonenumbers.NumberParseException):
            valid += phonenumbers.is_valid_number(phonenumbers.parse(phone, region))
    assert 0.9 < valid / len(present) < 0.99  # ~3% of all fans have a deliberately bad phone
    assert any(p.startswith("(") and c == "US" for p, c in national)
    assert any(p.startswith("07") and c == "GB" for p, c in national)


def test_device_ids_are_uuids_in_both_cases(con: Con) -> None:
    ids = [d for (d,) in con.execute("SELECT device_id FROM fans").fetchall()]
    present = [d for d in ids if d is not None]
    assert 0.36 < 1 - len(present) / len(ids) < 0.44
    for d in present:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            d, re.IGNORECASE), d
        uuid.UUID(d)
    assert any(d.isupper() for d in present)
    assert any(d.islower() for d in present)


def test_religion_is_mostly_null_and_genres_are_known(con: Con) -> None:
    assert _one(con, "SELECT count(*) FROM fans WHERE religion IS NOT NULL") / 20_000 < 0.1
    assert _one(con, "SELECT count(*) FROM fans WHERE religion IS NOT NULL") > 0
    genres = {g for (g,) in con.execute("SELECT DISTINCT favourite_genre FROM fans").fetchall()}
    assert genres == GENRES


def test_lifetime_value_is_past_spend(con: Con) -> None:
    mismatches = _one(con, f"""
        SELECT count(*) FROM fans f LEFT JOIN (
            SELECT fan_id, sum(amount) s FROM purchases WHERE purchased_at <= {TS} GROUP BY 1
        ) p USING (fan_id)
        WHERE abs(f.lifetime_value - coalesce(p.s, 0)) > 0.01""")
    assert mismatches == 0


# --- events ------------------------------------------------------------------------------------

def test_event_vocabularies(con: Con) -> None:
    def distinct(sql: str) -> set[object]:
        return {v for (v,) in con.execute(sql).fetchall()}

    assert distinct("SELECT DISTINCT genre FROM streams") == GENRES
    assert distinct("SELECT DISTINCT device FROM streams") == {
        "mobile", "desktop", "smart_speaker"}
    assert distinct("SELECT DISTINCT category FROM purchases") == {
        "ringtone", "album", "single", "vinyl", "ticket", "merch"}
    assert distinct("SELECT DISTINCT genre FROM clip_samples") == GENRES
    assert _one(con, "SELECT count(*) FROM streams WHERE artist IS NULL OR track IS NULL") == 0


def test_an_artist_belongs_to_one_genre(con: Con) -> None:
    for table in ("streams", "clip_samples"):
        multi = (f"SELECT count(*) FROM (SELECT artist FROM {table} GROUP BY 1 "
                 f"HAVING count(DISTINCT genre) > 1)")
        assert _one(con, multi) == 0, table


def test_prices_are_realistic_per_category(con: Con) -> None:
    ranges = dict((c, (lo, hi)) for c, lo, hi in con.execute(
        "SELECT category, min(amount), max(amount) FROM purchases GROUP BY 1").fetchall())
    assert ranges["ringtone"][0] >= 0.99 and ranges["ringtone"][1] <= 2.99
    assert ranges["single"][0] >= 0.99 and ranges["single"][1] <= 1.99
    assert ranges["album"][0] >= 7.99 and ranges["album"][1] <= 12.99
    assert ranges["vinyl"][0] >= 19.99 and ranges["vinyl"][1] <= 34.99
    assert ranges["ticket"][0] >= 25.99 and ranges["ticket"][1] <= 119.99
    assert ranges["merch"][0] >= 15.99 and ranges["merch"][1] <= 44.99


def test_london_dubstep_ringtone_audience_is_a_few_percent_of_london(con: Con) -> None:
    counts = con.execute(f"""
        WITH london AS (SELECT fan_id FROM fans WHERE city = 'London'),
        s AS (SELECT fan_id, count(*) n FROM streams WHERE genre = 'dubstep'
              AND played_at <= {TS} AND played_at > {TS} - INTERVAL 30 DAY GROUP BY 1),
        c AS (SELECT fan_id, count(*) n FROM clip_samples
              WHERE sampled_at <= {TS} AND sampled_at > {TS} - INTERVAL 30 DAY GROUP BY 1),
        p AS (SELECT fan_id, bool_and(category = 'ringtone') only_ringtones FROM purchases
              WHERE purchased_at <= {TS} AND purchased_at > {TS} - INTERVAL 90 DAY GROUP BY 1)
        SELECT count(*),
               count(*) FILTER (WHERE s.n >= 5 AND c.n >= 3 AND p.only_ringtones),
               count(*) FILTER (WHERE s.n >= 5 AND c.n >= 3 AND NOT p.only_ringtones)
        FROM london LEFT JOIN s USING (fan_id) LEFT JOIN c USING (fan_id)
        LEFT JOIN p USING (fan_id)""").fetchone()
    london, matching, near_miss = counts
    assert 0.02 < matching / london < 0.08
    assert near_miss > 0


def test_clip_then_purchase_of_same_artist_within_a_week(con: Con) -> None:
    within, later_only = con.execute("""
        WITH pairs AS (
            SELECT c.fan_id, p.purchased_at - c.sampled_at AS gap
            FROM clip_samples c JOIN purchases p
              ON p.fan_id = c.fan_id AND p.artist = c.artist AND p.purchased_at > c.sampled_at
        ), per_fan AS (
            SELECT fan_id, bool_or(gap <= INTERVAL 7 DAY) quick,
                   bool_or(gap > INTERVAL 7 DAY AND gap <= INTERVAL 21 DAY) slow
            FROM pairs GROUP BY 1
        )
        SELECT count(*) FILTER (WHERE quick), count(*) FILTER (WHERE slow AND NOT quick)
        FROM per_fan""").fetchone()
    assert within / 20_000 > 0.08
    assert later_only / 20_000 > 0.01


def test_lapsed_high_spenders_exist(con: Con) -> None:
    lapsed = _one(con, f"""
        SELECT count(*) FROM (SELECT fan_id FROM purchases GROUP BY 1 HAVING
            coalesce(sum(amount) FILTER (WHERE purchased_at BETWEEN {TS} - INTERVAL 400 DAY
                                         AND {TS} - INTERVAL 200 DAY), 0) >= 200
            AND count(*) FILTER (WHERE purchased_at > {TS} - INTERVAL 180 DAY) = 0)""")
    assert 0.015 < lapsed / 20_000 < 0.05


# --- consent -----------------------------------------------------------------------------------

def test_consent_vocabularies(con: Con) -> None:
    rows = con.execute("SELECT DISTINCT purpose, status, source FROM consents").fetchall()
    assert {p for p, _, _ in rows} == {"ads_personalization", "ad_user_data", "sale_or_share"}
    assert {s for _, s, _ in rows} == {"granted", "denied"}
    assert {s for _, _, s in rows} == {"first_party", "tcf", "gpp", "usp", "gpc"}
    # Opt-out signals (GPC, US Privacy) can only ever deny.
    assert _one(con, "SELECT count(*) FROM consents "
                     "WHERE status = 'granted' AND source IN ('gpc', 'usp')") == 0


def test_consent_history_has_every_story(con: Con) -> None:
    stories = con.execute(f"""
        WITH ap AS (SELECT * FROM consents WHERE purpose = 'ads_personalization'),
        newest AS (
            SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY profile_key
                ORDER BY updated_at DESC, status = 'denied' DESC) rn FROM ap) WHERE rn = 1
        ), grants AS (SELECT DISTINCT profile_key FROM ap WHERE status = 'granted'),
        ties AS (SELECT profile_key FROM ap GROUP BY profile_key, updated_at
                 HAVING count(DISTINCT status) = 2)
        SELECT
          (SELECT count(*) FROM grants),
          (SELECT count(*) FROM newest WHERE status = 'granted'
             AND (expires_at IS NULL OR expires_at > {TS})),
          (SELECT count(*) FROM newest WHERE status = 'granted' AND expires_at <= {TS}),
          (SELECT count(*) FROM newest n JOIN grants g USING (profile_key)
             WHERE n.status = 'denied'),
          (SELECT count(DISTINCT profile_key) FROM ties)""").fetchone()
    with_grant, valid, expired, denied_after_grant, tied = stories
    assert 0.66 < with_grant / 20_000 < 0.74
    assert 0.5 < valid / 20_000 < 0.62
    assert expired / 20_000 > 0.03
    assert denied_after_grant / 20_000 > 0.05
    assert 0.003 < tied / 20_000 < 0.02


def test_suppressions_are_a_small_distinct_set(con: Con) -> None:
    n, distinct = con.execute(
        "SELECT count(*), count(DISTINCT profile_key) FROM suppressions").fetchone()
    assert n == distinct
    assert 0.002 < n / 20_000 < 0.01


# --- export to PostgreSQL ------------------------------------------------------------------------

@pytest.fixture
def pg_schema() -> Iterator[str]:
    name = "demo_wh_test"
    try:
        conn = psycopg.connect(PG_CONNINFO, autocommit=True)
    except psycopg.OperationalError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    with conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        yield name
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def test_export_to_postgres_round_trips_counts_and_rows(pg_schema: str) -> None:
    con, counts = _build(DemoSizes(fans=300))
    export_to_postgres(con, PG_CONNINFO, pg_schema, batch_rows=500)
    with psycopg.connect(PG_CONNINFO) as pg:
        for table, n in counts.items():
            got = pg.execute(f"SELECT count(*) FROM {pg_schema}.{table}").fetchone()
            assert got == (n,), table
        pg_fan = pg.execute(
            f"SELECT fan_id, email, birth_date, signup_at, lifetime_value "
            f"FROM {pg_schema}.fans WHERE fan_id = 17").fetchone()
        types = pg.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'consents' ORDER BY ordinal_position", [pg_schema]).fetchall()
    duck_fan = con.execute("SELECT fan_id, email, birth_date, signup_at, lifetime_value "
                           "FROM fans WHERE fan_id = 17").fetchone()
    assert pg_fan == duck_fan
    assert [t for (t,) in types] == ["bigint", "text", "text", "timestamp without time zone",
                                     "timestamp without time zone", "text"]
    # A second export replaces the tables instead of appending.
    export_to_postgres(con, PG_CONNINFO, pg_schema)
    with psycopg.connect(PG_CONNINFO) as pg:
        assert pg.execute(f"SELECT count(*) FROM {pg_schema}.streams").fetchone() == (
            counts["streams"],)


def test_birth_date_type_round_trips_as_date(con: Con) -> None:
    value = _one(con, "SELECT birth_date FROM fans WHERE birth_date IS NOT NULL LIMIT 1")
    assert isinstance(value, date)
