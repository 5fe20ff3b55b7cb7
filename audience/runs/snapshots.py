"""Snapshots of what each destination holds, and the frozen plan of a run — in the warehouse.

Why the warehouse (a private `audience_state` schema) rather than the state database: the
diff between "who should be there now" and "who was sent" is a join over millions of keys,
and the members are already in the warehouse; shipping them to SQLite each run would move the
whole audience over the wire to compute a 1% change. This is how Hightouch and Census plan
syncs too. The state database keeps the small things: runs, checkpoints, leases.

Tables (all keys as text, so any key type works):
  members(audience, destination, member_key, fingerprint)       current tuple per member
  sent(audience, destination, member_key, fingerprint, id_type, hashed)   every tuple sent
  stage(run_id, member_key, consent_stage, held_out, in_definition, fingerprint)
  plan_adds(run_id, member_key, fingerprint, id_type, hashed)
  plan_removes(run_id, member_key, fingerprint, forced, reason)
The fingerprint is an MD5 of the destination's format, identifier types, the profile's country
and its raw identifiers: it tells that a member's identifiers changed without storing them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlglot import exp

from audience.warehouse import Warehouse
from dsl.compiler import PROFILE_ALIAS, col

SCHEMA = "audience_state"
TABLES = {
    "members": "audience VARCHAR, destination VARCHAR, member_key VARCHAR, fingerprint VARCHAR",
    "sent": "audience VARCHAR, destination VARCHAR, member_key VARCHAR, fingerprint VARCHAR, "
            "id_type VARCHAR, hashed VARCHAR",
    "stage": "run_id VARCHAR, member_key VARCHAR, consent_stage INTEGER, held_out BOOLEAN, "
             "in_definition BOOLEAN, fingerprint VARCHAR",
    "plan_adds": "run_id VARCHAR, member_key VARCHAR, fingerprint VARCHAR, id_type VARCHAR, hashed VARCHAR",
    "plan_removes": "run_id VARCHAR, member_key VARCHAR, fingerprint VARCHAR, forced BOOLEAN, reason VARCHAR",
}
# Why a member leaves, and whether the removal is sent in every mode (consent.md, dsl.md).
FORCED_REASONS = ("deleted", "suppressed", "under_age", "no_permission", "held_out")


def table(name: str) -> str:
    return f"{SCHEMA}.{name}"


def lit(value: str) -> str:
    """A SQL string literal, quoted by sqlglot (values here are our own names and ids)."""
    return exp.Literal.string(value).sql()


def ensure_schema(wh: Warehouse) -> None:
    wh.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for name, columns in TABLES.items():
        wh.execute(f"CREATE TABLE IF NOT EXISTS {table(name)} ({columns})")


def fingerprint(fmt: str, kinds: Sequence[str], country: exp.Expression | None,
                identifier_columns: Sequence[exp.Expression]) -> exp.Expression:
    """MD5 over format, identifier types, country and the raw identifier values."""
    sep = exp.Literal.string("\x1f")
    pieces: list[exp.Expression] = [exp.Literal.string(f"{fmt}|{','.join(kinds)}")]
    for value in [country, *identifier_columns]:
        text = exp.Coalesce(this=exp.cast(value, exp.DataType.Type.VARCHAR), expressions=[exp.Literal.string("")]) \
            if value is not None else exp.Literal.string("")
        pieces += [sep.copy(), text]
    return exp.MD5(this=exp.func("CONCAT", *pieces))


def profile_fingerprint(catalog: Any, fmt: str, kinds: Sequence[str]) -> exp.Expression:
    country = col(catalog.country_column, PROFILE_ALIAS) if catalog.country_column else None
    ids = [col(catalog.identifiers[k], PROFILE_ALIAS) if k in catalog.identifiers else exp.Null() for k in kinds]
    return fingerprint(fmt, kinds, country, ids)


def sync_filter(audience: str, destination: str, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return f"{prefix}audience = {lit(audience)} AND {prefix}destination = {lit(destination)}"


def clear_run(wh: Warehouse, run_id: str) -> None:
    for name in ("stage", "plan_adds", "plan_removes"):
        wh.execute(f"DELETE FROM {table(name)} WHERE run_id = {lit(run_id)}")


def pivot(source: str, where: str, kinds: Sequence[str], order: bool = True) -> str:
    """One row per (member, tuple): member_key, fingerprint, then one column per identifier type."""
    cases = ", ".join(f"MAX(CASE WHEN id_type = {lit(k)} THEN hashed END) AS {k}" for k in kinds)
    tail = " ORDER BY member_key, fingerprint" if order else ""
    return f"SELECT member_key, fingerprint, {cases} FROM {source} WHERE {where} GROUP BY member_key, fingerprint{tail}"


def iter_rows(wh: Warehouse, sql: str, batch: int = 50_000) -> Iterator[tuple[Any, ...]]:
    for rows in wh.stream(sql, batch):
        yield from rows
