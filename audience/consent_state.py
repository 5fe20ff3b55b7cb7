"""Keeps the condensed table of current consent decisions fresh, and says when it may be used.

Why: reading the whole consent history (every decision ever recorded) is most of what the
consent filter costs on a small audience. The consent table is append-only (consent.md), so
its row count and newest `updated_at` change whenever a decision is added: the condensed table
(`consent_filter.current`) records the count and newest time it was built from, and is rebuilt
when they no longer match. It answers for an `as_of` only when no decision is newer than
`as_of`; a query about the past reads the history as before.

Only on DuckDB, where the count and the newest time come from table statistics (well under a
millisecond at 5M rows). On PostgreSQL each check would itself scan the table, so the history
is read directly there.
"""

from __future__ import annotations

import re
import threading
import weakref
from datetime import datetime

import structlog

from audience.warehouse import STATE_SCHEMA as SCHEMA
from audience.warehouse import Warehouse, WarehouseError, quoted
from consent_filter.current import condense_history, current_table
from dsl.catalog import Table
from dsl.compiler import table_ref, timestamp_literal

log = structlog.get_logger()

MARKS = f"{SCHEMA}.consent_current_marks"
_REBUILD = threading.Lock()  # one rebuild at a time per process: the others read the history meanwhile
_REQUIRED = ("profile_key", "purpose", "status", "updated_at", "expires_at")
# Per open warehouse: consent table -> the history mark its condensed table was last seen built
# from. Saves two catalog lookups per query; a rebuild elsewhere from the same history leaves
# the same mark, and a changed history changes the source mark, which is read every time.
_SEEN: weakref.WeakKeyDictionary[object, dict[str, tuple[int, str]]] = weakref.WeakKeyDictionary()


def condensed_name(consent_table: str) -> str:
    return f"{SCHEMA}.consent_current_{re.sub(r'[^A-Za-z0-9_]', '_', consent_table)}"


def _ref(table: Table) -> str:
    return table_ref(table, "").sql("duckdb")


def usable_current(wh: Warehouse, consent_table: Table | None, as_of: datetime, *,
                   rebuild_stale: bool = True) -> Table | None:
    """The condensed table when it is fresh for `as_of`, or None when the consent query must
    read the history.

    A stale table is rebuilt first unless `rebuild_stale` is false: a caller that reads the
    decisions of every profile once (a refresh run) would pay the whole aggregation of the
    history and then still read the result — reading the history directly is cheaper there.
    """
    if wh.dialect != "duckdb" or consent_table is None or not all(c in consent_table.columns for c in _REQUIRED):
        return None
    try:
        return _fresh(wh, consent_table, as_of, rebuild_stale)
    except WarehouseError as err:  # e.g. a concurrent rebuild elsewhere: the history is always right
        log.warning("consent_current_unavailable", error=str(err))
        return None


def _source_mark(wh: Warehouse, consent_table: Table, as_of: datetime) -> tuple[int, str, bool]:
    as_of_sql = timestamp_literal(as_of, consent_table.columns["updated_at"].kind).sql("duckdb")
    rows, newest, not_after = wh.query(
        f"SELECT COUNT(*), CAST(MAX(updated_at) AS VARCHAR), COALESCE(MAX(updated_at) <= {as_of_sql}, TRUE) "
        f"FROM {_ref(consent_table)}"
    )[0]
    return int(rows), newest or "", bool(not_after)


def _recorded_mark(wh: Warehouse, consent_table: Table) -> tuple[int, str] | None:
    """The mark the condensed table was built from; None before the first build.

    Asked directly, the catalog consulted only when that fails (a lookup first cost more, ~13 ms,
    than the question): a missing marks table means never built; any other failure is raised,
    for `usable_current` to read the history instead of rebuilding again and again."""
    try:
        found = wh.query(f"SELECT row_count, newest FROM {MARKS} WHERE source = {quoted(consent_table.name)}")
    except WarehouseError:
        if wh.table_columns(MARKS) is not None:
            raise
        return None
    return (int(found[0][0]), found[0][1] or "") if found else None


def _fresh(wh: Warehouse, consent_table: Table, as_of: datetime, rebuild_stale: bool) -> Table | None:
    rows, newest, not_after_as_of = _source_mark(wh, consent_table, as_of)
    if not not_after_as_of:
        return None
    table = current_table(condensed_name(consent_table.name), consent_table)
    seen = _SEEN.setdefault(wh, {})
    if seen.get(consent_table.name) == (rows, newest) or _recorded_mark(wh, consent_table) == (rows, newest):
        seen[consent_table.name] = (rows, newest)
        return table
    if not rebuild_stale:
        return None
    with _REBUILD:
        if _recorded_mark(wh, consent_table) != (rows, newest):
            rebuild(wh, consent_table)
    # Decisions added while rebuilding may be newer than `as_of`: use the table only if it was
    # built from exactly the history checked above.
    if _recorded_mark(wh, consent_table) != (rows, newest):
        return None
    seen[consent_table.name] = (rows, newest)
    return table


def rebuild(wh: Warehouse, consent_table: Table) -> None:
    """Rebuild the condensed table and its mark in one transaction (one snapshot of the history)."""
    name = condensed_name(consent_table.name)
    source = quoted(consent_table.name)
    wh.transaction([
        f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
        f"CREATE TABLE IF NOT EXISTS {MARKS} (source VARCHAR, row_count BIGINT, newest VARCHAR)",
        f"CREATE OR REPLACE TABLE {name} AS {condense_history(consent_table).sql('duckdb')}",
        f"DELETE FROM {MARKS} WHERE source = {source}",
        f"INSERT INTO {MARKS} SELECT {source}, COUNT(*), CAST(MAX(updated_at) AS VARCHAR) FROM {_ref(consent_table)}",
    ])
    log.info("consent_current_rebuilt", table=name)
