"""Snapshots of what each destination holds, and the frozen plan of a run — in the warehouse.

Why the warehouse (a private `audience_state` schema) rather than the state database: the
diff between "who should be there now" and "who was sent" is a join over millions of keys,
and the members are already in the warehouse; shipping them to SQLite each run would move the
whole audience over the wire to compute a 1% change. This is how Hightouch and Census plan
syncs too. The state database keeps the small things: runs, checkpoints, leases.

Tables (all keys as text, so any key type works):
  members(project, audience, destination, member_key, fingerprint)   current tuple per member
  sent(project, audience, destination, member_key, fingerprint, id_type, hashed)   every tuple sent
  stage(run_id, member_key, consent_stage, held_out, in_definition, fingerprint, prev_fingerprint, n,
        country, id_<type>...)   scratch, see below
  plan_adds(run_id, member_key, fingerprint, id_type, hashed)
  plan_removes(run_id, member_key, fingerprint, forced, reason, shared)   one row per tuple to remove
  plan_remove_rows(run_id, member_key, fingerprint, id_type, hashed)   its hashes, as sent before
The fingerprint is a digest (DuckDB: hash(), elsewhere MD5) of the destination's format,
identifier types, the profile's country and its raw identifiers: it tells that a member's
identifiers changed without storing them.

A sync is keyed by (project, audience, destination): one warehouse (a PostgreSQL database)
often serves several projects, whose audience names need not differ. `shared` marks a removal
whose hashed tuple stays at the destination through another row (two profiles sharing an
email, or a raw change that normalizes to the same hashes): the destination identifies members
by their hashed identifiers only, so sending that removal would drop someone who stays.

`stage` holds one row per member whose state at the destination must change (to add: new or
changed identifiers; to remove: sent before and now leaving, failing consent or changed), with
the fingerprint last sent, and for members to add their raw identifiers (read in the pass that
computed their fingerprint, so the hashes always match it). Everyone else (members who stay
unchanged, nearly all of them run after run, and profiles never sent that still may not be) is
summed up in summary rows (member_key NULL, counted in `n` per consent stage; a
`prev_fingerprint` of '' marks the summary of members sent before), which the consent funnel
needs. So a 1% change stores 1% of the audience. It is scratch: it lives only while a plan is
built, and a build that dies is redone from the start, so it need not survive a crash. On
DuckDB it sits in an in-memory database attached to the warehouse connection
(`audience_scratch`, shared by its cursors); on PostgreSQL it is UNLOGGED. Its rows are deleted
as soon as the plan tables are written. Writing a million durable stage rows per run, only to
delete them, was the largest cost of an incremental run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlglot import exp

from audience.warehouse import STATE_SCHEMA as SCHEMA
from audience.warehouse import Warehouse, quoted
from consent_filter.policy import NO_PERMISSION, RULE_NAMES, SUPPRESSED, UNDER_AGE
from dsl.compiler import PROFILE_ALIAS, col
from exporters.vocabulary import IDENTIFIER_TYPES

SCRATCH = "audience_scratch"
# Identifier types (exporters.vocabulary), raw in the stage for members to add only.
STAGE_COLUMNS = ("run_id VARCHAR, member_key VARCHAR, consent_stage INTEGER, held_out BOOLEAN, "
                 "in_definition BOOLEAN, fingerprint VARCHAR, prev_fingerprint VARCHAR, n INTEGER, country VARCHAR, "
                 + ", ".join(f"id_{k} VARCHAR" for k in IDENTIFIER_TYPES))
TABLES = {
    "members": "project VARCHAR, audience VARCHAR, destination VARCHAR, member_key VARCHAR, fingerprint VARCHAR",
    "sent": "project VARCHAR, audience VARCHAR, destination VARCHAR, member_key VARCHAR, fingerprint VARCHAR, "
            "id_type VARCHAR, hashed VARCHAR",
    "plan_adds": "run_id VARCHAR, member_key VARCHAR, fingerprint VARCHAR, id_type VARCHAR, hashed VARCHAR",
    "plan_removes": "run_id VARCHAR, member_key VARCHAR, fingerprint VARCHAR, forced BOOLEAN, reason VARCHAR, "
                    "shared BOOLEAN",
    "plan_remove_rows": "run_id VARCHAR, member_key VARCHAR, fingerprint VARCHAR, id_type VARCHAR, hashed VARCHAR",
}
# PostgreSQL only: lookups by sync and by run. DuckDB does not use indexes for joins, and
# they would slow its bulk inserts and deletes.
INDEXES = {
    "members": ("project", "audience", "destination", "member_key"),
    "sent": ("project", "audience", "destination", "member_key"),
    "stage": ("run_id", "member_key"),
    "plan_adds": ("run_id", "member_key"),
    "plan_removes": ("run_id", "member_key"),
    "plan_remove_rows": ("run_id", "member_key"),
}
# Any constant: serializes concurrent CREATE ... IF NOT EXISTS, which PostgreSQL does not.
_PG_DDL_LOCK = 7_201_115_001
# The consent rules whose removals are sent in every mode, under their rule names (consent.md).
FORCED_RULES = (SUPPRESSED, UNDER_AGE, NO_PERMISSION)
# Why a member leaves, and whether the removal is sent in every mode (consent.md, dsl.md).
FORCED_REASONS = ("deleted", *(RULE_NAMES[rule] for rule in FORCED_RULES), "held_out", "sensitive")


def table(name: str) -> str:
    return f"{SCHEMA}.{name}"


def stage_table(dialect: str) -> str:
    return f"{SCRATCH}.stage" if dialect == "duckdb" else table("stage")


def _columns(spec: str) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind in (part.strip().split(" ", 1) for part in spec.split(","))]


def ensure_schema(wh: Warehouse) -> None:
    """Create the schema, tables and columns that are missing; safe when several workers start
    at the same time, and when an older version created the tables with fewer columns.

    Changes are additive only (`ADD COLUMN IF NOT EXISTS`), so a worker that races another
    never undoes its work. PostgreSQL's `CREATE ... IF NOT EXISTS` is not safe under concurrency
    (two sessions can both see "missing" and one fails on a catalog unique index), so the
    statements run in one transaction under an advisory lock there. DuckDB allows one writing
    process per file.
    """
    if wh.dialect == "duckdb":
        wh.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {SCRATCH}")
        wh.execute(f"CREATE TABLE IF NOT EXISTS {stage_table(wh.dialect)} ({STAGE_COLUMNS})")
    wanted = {**TABLES, **({} if wh.dialect == "duckdb" else {"stage": STAGE_COLUMNS})}
    have: dict[str, set[str]] = {}
    for name, column in wh.query("SELECT table_name, column_name FROM information_schema.columns "
                                 f"WHERE table_schema = {quoted(SCHEMA)}"):
        have.setdefault(name, set()).add(column)
    if all({c for c, _ in _columns(spec)} <= have.get(name, set()) for name, spec in wanted.items()):
        return
    statements = [f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"]
    for name, spec in wanted.items():
        unlogged = "UNLOGGED " if name == "stage" else ""
        statements.append(f"CREATE {unlogged}TABLE IF NOT EXISTS {table(name)} ({spec})")
        statements += [f"ALTER TABLE {table(name)} ADD COLUMN IF NOT EXISTS {column} {kind}"
                       for column, kind in _columns(spec) if name in have and column not in have[name]]
    if wh.dialect == "postgres":
        statements.insert(0, f"SELECT pg_advisory_xact_lock({_PG_DDL_LOCK})")
        statements += [f"CREATE INDEX IF NOT EXISTS {name}_lookup ON {table(name)} ({', '.join(cols)})"
                       for name, cols in INDEXES.items()]
    wh.transaction(statements)


def fingerprint(fmt: str, kinds: Sequence[str], country: exp.Expression | None,
                identifier_columns: Sequence[exp.Expression], dialect: str = "") -> exp.Expression:
    """A digest of format, identifier types, country and the raw identifier values.

    It only has to tell, per member, whether the identifiers changed since the last run on the
    same warehouse: DuckDB's 64-bit `hash()` does (a miss needs a 2^-64 collision for that one
    member) at a third of MD5's cost; elsewhere MD5, which every engine has.
    """
    sep = exp.Literal.string("\x1f")
    pieces: list[exp.Expr] = [exp.Literal.string(f"{fmt}|{','.join(kinds)}")]
    for value in [country, *identifier_columns]:
        text: exp.Expr = exp.Coalesce(this=exp.cast(value, exp.DataType.Type.VARCHAR),
                                      expressions=[exp.Literal.string("")]) \
            if value is not None else exp.Literal.string("")
        pieces += [sep.copy(), text]
    line = exp.func("CONCAT", *pieces)
    if dialect == "duckdb":
        return exp.cast(exp.func("HASH", line), exp.DataType.Type.VARCHAR)
    return exp.MD5(this=line)


def profile_fingerprint(catalog: Any, fmt: str, kinds: Sequence[str], dialect: str = "") -> exp.Expression:
    country = col(catalog.country_column, PROFILE_ALIAS) if catalog.country_column else None
    ids = [col(catalog.identifiers[k], PROFILE_ALIAS) if k in catalog.identifiers else exp.Null() for k in kinds]
    return fingerprint(fmt, kinds, country, ids, dialect)


def sync_filter(project: str, audience: str, destination: str, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return (f"{prefix}project = {quoted(project)} AND {prefix}audience = {quoted(audience)} "
            f"AND {prefix}destination = {quoted(destination)}")


def signature(kinds: Sequence[str], alias: str = "") -> str:
    """One text per (member, tuple) group: the destination's identity of that member.

    Receivers key a member by its hashed identifiers, so two rows with the same signature are
    one member there. Hashes never contain `|` (hex, base64, lowercase MAIDs).
    """
    prefix = f"{alias}." if alias else ""
    parts = [f"COALESCE(MAX(CASE WHEN {prefix}id_type = {quoted(k)} THEN {prefix}hashed END), '')" for k in kinds]
    return "CONCAT(" + ", '|', ".join(parts) + ")" if len(parts) > 1 else parts[0]


def clear_run(wh: Warehouse, run_id: str) -> None:
    for name in (stage_table(wh.dialect), table("plan_adds"), table("plan_removes"), table("plan_remove_rows")):
        wh.execute(f"DELETE FROM {name} WHERE run_id = {quoted(run_id)}")


def pivot(source: str, where: str, kinds: Sequence[str]) -> str:
    """One row per (member, tuple), unordered: member_key, fingerprint, then one column per identifier type.

    Unordered so that the consumer sorts once: ``ordered`` for rows, ``lines`` for CSV lines
    (a subquery's ORDER BY would be a second sort of the whole list)."""
    cases = ", ".join(f"MAX(CASE WHEN id_type = {quoted(k)} THEN hashed END) AS {k}" for k in kinds)
    return f"SELECT member_key, fingerprint, {cases} FROM {source} WHERE {where} GROUP BY member_key, fingerprint"


def ordered(pivot_sql: str) -> str:
    """The rows of a ``pivot`` in the order every export sends them."""
    return f"{pivot_sql} ORDER BY member_key, fingerprint"


def lines(pivot_sql: str, kinds: Sequence[str], dialect: str) -> str:
    """The rows of a ``pivot`` as CSV lines built by the warehouse (``exporters.csv_lines``), same order.

    Every row gets a line: one without any value (a tuple sent under an identifier type the
    destination no longer has) must fail the run, as the row path does, never vanish."""
    from exporters.csv_lines import line_expression

    line = line_expression([exp.column(kind) for kind in kinds], every_row=True).sql(dialect=dialect)
    return ordered(f"SELECT {line} AS line FROM ({pivot_sql}) AS p")


def iter_rows(wh: Warehouse, sql: str, batch: int = 50_000) -> Iterator[tuple[Any, ...]]:
    for rows in wh.stream(sql, batch):
        yield from rows
