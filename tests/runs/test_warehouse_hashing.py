"""A refresh on DuckDB hashes emails and MAIDs inside the warehouse, phones in Python; on PostgreSQL
everything in Python (faster there); and the result is the same either way.

Two file destinations of one audience, on DuckDB and on PostgreSQL: `plain` (sha256 of email and
MAID: both hashed in SQL on DuckDB) and `google` (email, plain MAID, phone: on DuckDB the phone
alone goes through Python). Every tuple recorded as sent, and every exported row, must equal (1) the hashes of
normalized values written out by hand below and (2) what the Python path (`hash_rows`) makes of
the same raw values, for a first (full) run and an incremental one. A spy on `hash_rows` shows
which identifier types and how many rows were hashed in Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import exporters.hashing
from audience.project import load_project
from audience.runs.api import open_store
from audience.runs.engine import RunEngine, find_sync
from exporters.hashing.batch import hash_rows as python_hash_rows
from tests.runs.helpers import (
    CONSENT_CONFIG,
    LocalDrops,
    as_of,
    change,
    fan,
    file_destination,
    grant,
    read_runs,
    rename_project,
    sha256_hex,
)
from tests.warehouse_fixture import ROWS, project_on

AUDIENCE = """
audience fans {
  where: score >= 5
  sync plain { mode: mirror }
  sync google { mode: mirror }
}
"""
KINDS = {"plain": ("email", "maid"), "google": ("email", "maid", "phone")}
FORMATS = {"plain": "sha256", "google": "google"}
CONFIG = (CONSENT_CONFIG
          + file_destination("plain", uri="file:out/plain", identifiers=list(KINDS["plain"]), max_change=1.0)
          + file_destination("google", uri="file:out/google", format="google", identifiers=list(KINDS["google"]),
                             max_change=1.0))

UUID_A = "aece52e7-03ee-455a-b3c4-e57283966239"
UUID_B = "0f8fad5b-d9cb-469f-a165-70867728950e"
UUID_C = "8e1f2c3d-0000-4000-8000-00000000000a"
UUID_D = "0f8fad5b-d9cb-469f-a165-70867728950f"
ZERO = "00000000-0000-0000-0000-000000000000"

# fan -> (email, maid, phone), raw; every fan is in the audience and consented, country GB
RAW: dict[int, tuple[str | None, str | None, str | None]] = {
    1: (" Ann.Lee@Example.COM ", f" {UUID_A.upper()} ", None),
    2: ("bad-email", UUID_B, "+44 7911 123456"),
    3: ("C.K+x@GMail.com", ZERO, None),
    4: (None, None, None),  # no identifier at all (the consent filter says so)
    5: ("jo hn@Example.com", "not-a-uuid", "12"),
    6: ("ÉMILE@Exemple.FR", "{" + UUID_A + "}", None),
    7: ("", "", "07911 123457"),  # a GB national number: the only identifier for google
    8: (" \tdee@example.com\n", UUID_A.replace("-", "").upper(), None),
    9: ("@example.com", None, None),
    10: (None, "not-a-uuid", None),  # a MAID is there, but no valid identifier once normalized
    11: (None, ZERO, "12"),  # likewise, for both destinations
}
# before the second run: fan 2 gets a valid email, 8 and 10 a valid MAID, 1 loses every identifier
CHANGES = {2: ("Bea@Example.com", UUID_B, "+44 7911 123456"), 8: (" \tdee@example.com\n", UUID_C.upper(), None),
           10: (None, UUID_D.upper(), None), 1: (None, "nope", None)}

# Normalized by hand (exports.md): trim + ASCII lowercase; google also drops all whitespace in
# emails and the dots of gmail local parts, sends MAIDs as plain lowercase UUIDs, phones E.164.
PLAIN_1 = {1: {"email": "ann.lee@example.com", "maid": UUID_A}, 2: {"maid": UUID_B},
           3: {"email": "c.k+x@gmail.com"}, 5: {"email": "jo hn@example.com"}, 6: {"email": "Émile@exemple.fr"},
           8: {"email": "dee@example.com"}}
GOOGLE_1 = {1: {"email": "ann.lee@example.com", "maid": UUID_A}, 2: {"maid": UUID_B, "phone": "+447911123456"},
            3: {"email": "ck+x@gmail.com"}, 5: {"email": "john@example.com"}, 6: {"email": "Émile@exemple.fr"},
            7: {"phone": "+447911123457"}, 8: {"email": "dee@example.com"}}
ADDED_2 = {"plain": {2: {"email": "bea@example.com", "maid": UUID_B}, 8: {"email": "dee@example.com", "maid": UUID_C},
                     10: {"maid": UUID_D}},
           "google": {2: {"email": "bea@example.com", "maid": UUID_B, "phone": "+447911123456"},
                      8: {"email": "dee@example.com", "maid": UUID_C}, 10: {"maid": UUID_D}}}


def hashed(dest: str, normalized: dict[int, dict[str, str]]) -> dict[str, dict[str, str]]:
    """member key -> {type: value sent}: SHA-256 hex of the normalized value; google MAIDs are plain."""
    return {str(key): {kind: value if (dest, kind) == ("google", "maid") else sha256_hex(value)
                       for kind, value in values.items()} for key, values in normalized.items()}


def as_rows(dest: str, members: dict[str, dict[str, str]]) -> set[tuple[str, ...]]:
    """The exported rows of these members: one column per identifier type, "" where absent."""
    return {tuple(values.get(kind, "") for kind in KINDS[dest]) for values in members.values()}


def by_python_path(dest: str, raw: dict[int, tuple[str | None, str | None, str | None]]) -> dict[str, dict[str, str]]:
    """What `hash_rows` (the Python path) makes of the raw values, for members left with a value."""
    columns = {"email": 0, "maid": 1, "phone": 2}
    keys = sorted(raw)
    inputs = [(*(raw[key][columns[kind]] for kind in KINDS[dest]), "GB") for key in keys]
    out = {}
    for key, values in zip(keys, python_hash_rows(FORMATS[dest], KINDS[dest], inputs), strict=True):
        present = {kind: value for kind, value in zip(KINDS[dest], values, strict=True) if value is not None}
        if present:
            out[str(key)] = present
    return out


@dataclass
class PythonHashing:
    """Calls of `exporters.hashing.hash_rows` that hashed rows: (identifier types, rows)."""

    calls: list[tuple[tuple[str, ...], int]]


@pytest.fixture
def python_hashing(monkeypatch: pytest.MonkeyPatch) -> PythonHashing:
    """Record what the engine hashes in Python (it imports `hash_rows` from the package at call time)."""
    real = exporters.hashing.hash_rows
    seen = PythonHashing([])

    def spy(fmt: str, kinds: Any, rows: Any, *args: Any, **kwargs: Any) -> Iterator[tuple[str | None, ...]]:
        rows = list(rows)
        if rows:
            seen.calls.append((tuple(kinds), len(rows)))
        return real(fmt, kinds, rows, *args, **kwargs)

    monkeypatch.setattr(exporters.hashing, "hash_rows", spy)
    return seen


def refresh(root: Path, dest: str, step: int) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """One run of `fans -> dest` in this process: its counts and what `sent` holds afterwards."""
    project = load_project(root)
    store = open_store(project)
    try:
        (sync,) = find_sync(project, "fans", dest)
        run = RunEngine(project, store).refresh(sync, as_of=as_of(step))
        assert run.state == "succeeded", run.error
        mark = "%s" if project.warehouse.dialect == "postgres" else "?"
        sent: dict[str, dict[str, str]] = {}
        for key, kind, value in project.warehouse.query(
                "SELECT member_key, id_type, hashed FROM audience_state.sent "
                f"WHERE project = {mark} AND audience = 'fans' AND destination = {mark}", [project.config.name, dest]):
            assert kind not in sent.setdefault(key, {}), (key, kind)
            sent[key][kind] = value
        return run.counts, sent
    finally:
        store.close()
        project.close()


def set_raw(key: int, values: tuple[str | None, str | None, str | None]) -> str:
    """SQL giving fan `key` these raw (email, maid, phone) values, on either engine."""
    literal = lambda v: "NULL" if v is None else "'" + v.replace("'", "''") + "'"  # noqa: E731
    email, maid, phone = (literal(v) for v in values)
    return f"UPDATE fans SET email = {email}, maid = {maid}, phone = {phone} WHERE fan_id = {key}"


def assert_hashed_in_python(engine: str, dest: str, seen: PythonHashing, on_duckdb: list) -> None:
    """DuckDB: exactly `on_duckdb` went through Python; PostgreSQL: every type did (HASHES_IN_WAREHOUSE)."""
    if engine == "duckdb":
        assert seen.calls == on_duckdb, dest
    else:
        assert seen.calls and {kinds for kinds, _ in seen.calls} == {KINDS[dest]}, dest


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_hashes_made_in_the_warehouse_equal_the_python_path(tmp_path: Path, engine: str, project_name: str,
                                                            python_hashing: PythonHashing) -> None:
    rows = {**ROWS, "fans": [fan(key, email, phone) for key, (email, _, phone) in RAW.items()],
            "consents": [grant(key) for key in RAW], "suppressions": []}
    with project_on(engine, tmp_path, AUDIENCE, CONFIG, rows) as project:
        rename_project(project, project_name)
        toml = project / "audience.toml"
        text = toml.read_text(encoding="utf-8")
        toml.write_text(text.replace('phone = "phone"\n', 'phone = "phone"\nmaid = "maid"\n', 1), encoding="utf-8")
        change(engine, project, "ALTER TABLE fans ADD COLUMN maid VARCHAR", *(set_raw(k, v) for k, v in RAW.items()))

        # first run: everyone is new, the whole list is exported
        expected = {"plain": hashed("plain", PLAIN_1), "google": hashed("google", GOOGLE_1)}
        for dest, exportable, no_identifier, phones in (("plain", 6, 5, []), ("google", 7, 4, [(("phone",), 4)])):
            python_hashing.calls.clear()
            counts, sent = refresh(project, dest, 0)
            assert sent == expected[dest] == by_python_path(dest, RAW)
            (folder,) = read_runs(LocalDrops(project / "out" / dest), "fans", KINDS[dest])
            assert set(folder.rows["members"]) == as_rows(dest, expected[dest])
            assert (counts["adds_sent"], counts["funnel_exportable"], counts["funnel_no_identifier"]) == (
                exportable, exportable, no_identifier), dest
            # DuckDB: emails and MAIDs never went through Python; of the 9 consented fans, 4 have a phone
            assert_hashed_in_python(engine, dest, python_hashing, phones)

        # second run: only the changed members are hashed again (1, 2, 8, 10 and 11, never sent)
        raw = {**RAW, **CHANGES}
        change(engine, project, *(set_raw(k, v) for k, v in CHANGES.items()))
        for dest, exportable, no_identifier, phones in (("plain", 6, 5, []), ("google", 7, 4, [(("phone",), 2)])):
            python_hashing.calls.clear()
            counts, sent = refresh(project, dest, 1)
            added = hashed(dest, ADDED_2[dest])
            now = {key: values for key, values in expected[dest].items() if key not in ("1", "2", "8")} | added
            assert sent == now == by_python_path(dest, raw)
            folder = read_runs(LocalDrops(project / "out" / dest), "fans", KINDS[dest])[-1]
            assert set(folder.rows["adds"]) == as_rows(dest, added)
            assert set(folder.rows["removes"]) == as_rows(dest, {k: expected[dest][k] for k in ("1", "2", "8")})
            assert (counts["adds"], counts["adds_sent"], counts["removes_sent"], counts["funnel_exportable"],
                    counts["funnel_no_identifier"]) == (3, 3, 3, exportable, no_identifier), dest
            assert_hashed_in_python(engine, dest, python_hashing, phones)

