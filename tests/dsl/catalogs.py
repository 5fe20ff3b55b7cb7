"""Catalogs built by hand (no warehouse) for compiler tests, mirroring tests/warehouse_fixture.py."""

from __future__ import annotations

from dsl import ast
from dsl.catalog import Catalog, Column, EventSource, SensitiveValues, Table, kind_of
from dsl.checker import check_project
from dsl.diagnostics import Diagnostic
from dsl.parser import parse


def table(name: str, columns: dict[str, str], **kwargs: object) -> Table:
    cols = {c: Column(c, kind_of(t), t) for c, t in columns.items()}
    return Table(name=name, columns=cols, **kwargs)  # type: ignore[arg-type]


def fixture_catalog(profile_table: str = "fans") -> Catalog:
    """The fixture warehouse's catalog; `profile_table` may be schema-qualified."""
    fans = table(profile_table, {
        "fan_id": "BIGINT", "email": "VARCHAR", "phone": "VARCHAR", "city": "VARCHAR",
        "country": "VARCHAR", "birth_date": "DATE", "score": "INTEGER", "vip": "BOOLEAN",
        "signup_at": "TIMESTAMP", "religion": "VARCHAR",
    }, sensitive_columns={"religion": "user.demographic.religious_belief"})
    streams = table("streams", {"fan_id": "BIGINT", "played_at": "TIMESTAMP", "genre": "VARCHAR",
                                "seconds": "INTEGER"})
    purchases = table("purchases", {"fan_id": "BIGINT", "purchased_at": "TIMESTAMP",
                                    "category": "VARCHAR", "amount": "DOUBLE"},
                      sensitive_values={"category": (SensitiveValues(("pharmacy", "fertility"),
                                                                     "user.health_and_medical"),)})
    clips = table("clip_samples", {"fan_id": "BIGINT", "sampled_at": "TIMESTAMP", "artist": "VARCHAR"})
    checkins = table("checkins", {"fan_id": "BIGINT", "checked_in_at": "TIMESTAMP WITH TIME ZONE",
                                  "venue": "VARCHAR"})
    moods = table("mood_scores", {"fan_id": "BIGINT", "scored_at": "TIMESTAMP", "mood": "VARCHAR"},
                  sensitive="user.inferred.emotion")
    return Catalog(
        profile=fans, profile_key="fan_id",
        events={
            "stream": EventSource("stream", streams, "fan_id", "played_at"),
            "purchase": EventSource("purchase", purchases, "fan_id", "purchased_at"),
            "clip_sample": EventSource("clip_sample", clips, "fan_id", "sampled_at"),
            "checkin": EventSource("checkin", checkins, "fan_id", "checked_in_at"),
            "mood": EventSource("mood", moods, "fan_id", "scored_at"),
        },
        country_column="country", birth_date_column="birth_date",
        identifiers={"email": "email", "phone": "phone"},
    )


def parse_and_check(text: str, catalog: Catalog, filename: str = "audiences/test.aud",
                    destinations: tuple[str, ...] = ()) -> tuple[dict[str, ast.Audience], list[Diagnostic]]:
    """Parse one file and check it alone; return audiences by name and every diagnostic."""
    result = parse(text, filename)
    diags = list(result.diagnostics)
    diags += check_project(result.audiences, catalog, destinations)
    by_name: dict[str, ast.Audience] = {}
    for aud in result.audiences:
        by_name.setdefault(aud.name, aud)
    return by_name, diags
