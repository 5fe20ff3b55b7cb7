"""One `EngineTraits` per dialect: the facts about an engine that change the SQL we render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp


def _s(text: str) -> exp.Literal:
    return exp.Literal.string(text)


def _hex_via_0x(hex8: exp.Expr) -> exp.Expr:
    return exp.cast(exp.func("CONCAT", _s("0x"), hex8), exp.DataType.Type.BIGINT)


def _hex_via_conv(hex8: exp.Expr) -> exp.Expr:
    return exp.cast(exp.func("CONV", hex8, exp.Literal.number(16), exp.Literal.number(10)), exp.DataType.Type.BIGINT)


def _hex_via_to_number(hex8: exp.Expr) -> exp.Expr:
    return exp.func("TO_NUMBER", hex8, _s("XXXXXXXX"))


def _hex_via_from_base(hex8: exp.Expr) -> exp.Expr:
    return exp.func("FROM_BASE", hex8, exp.Literal.number(16))


def _hex_via_strtol(hex8: exp.Expr) -> exp.Expr:
    return exp.func("STRTOL", hex8, exp.Literal.number(16))


def _hex_via_bits(hex8: exp.Expr) -> exp.Expr:
    bits = exp.cast(exp.func("CONCAT", _s("x"), hex8), exp.DataType.build("BIT(32)", dialect="postgres"))
    return exp.cast(bits, exp.DataType.Type.BIGINT)


@dataclass(frozen=True)
class EngineTraits:
    """What one engine accepts, as far as our SQL depends on it.

    `cte_materialized`: the engine accepts `WITH x AS MATERIALIZED (...)` (PostgreSQL 12+,
    DuckDB); everywhere else the CTE is written without any hint — `NOT MATERIALIZED` is
    PostgreSQL's own and no other engine parses it.
    `hex8_to_int`: the first 8 hex digits of a digest as an integer (the holdout bucket).
    `hashes_in_sql`: exports can hash identifiers inside the engine with exactly the product's
    normalization (exporters.hashing.sql); elsewhere hashing happens in Python.
    `hashes_plan_in_engine`: a refresh hashes its adds inside the engine (DuckDB: every core,
    2-3x Python); PostgreSQL's exact expressions are slower than Python, so it does not.
    `runs_here`: a warehouse this build connects to (the others are compile targets).
    `forbidden`: constructs of other engines that must never appear in this dialect's SQL;
    the dialect check (engines.check) looks for them in the rendered text.
    """

    name: str
    cte_materialized: bool
    hex8_to_int: Callable[[exp.Expr], exp.Expr]
    hashes_in_sql: bool = False
    hashes_plan_in_engine: bool = False
    runs_here: bool = False
    forbidden: tuple[str, ...] = field(default=())


_NO_CTE_HINT = ("AS MATERIALIZED", "AS NOT MATERIALIZED")

TRAITS: dict[str, EngineTraits] = {
    t.name: t
    for t in (
        EngineTraits("duckdb", cte_materialized=True, hex8_to_int=_hex_via_0x, hashes_in_sql=True,
                     hashes_plan_in_engine=True, runs_here=True,
                     forbidden=("AS NOT MATERIALIZED",)),
        EngineTraits("postgres", cte_materialized=True, hex8_to_int=_hex_via_bits, hashes_in_sql=True,
                     runs_here=True),
        EngineTraits("spark", cte_materialized=False, hex8_to_int=_hex_via_conv, forbidden=_NO_CTE_HINT),
        EngineTraits("databricks", cte_materialized=False, hex8_to_int=_hex_via_conv, forbidden=_NO_CTE_HINT),
        EngineTraits("bigquery", cte_materialized=False, hex8_to_int=_hex_via_0x, forbidden=_NO_CTE_HINT),
        EngineTraits("snowflake", cte_materialized=False, hex8_to_int=_hex_via_to_number, forbidden=_NO_CTE_HINT),
        EngineTraits("trino", cte_materialized=False, hex8_to_int=_hex_via_from_base, forbidden=_NO_CTE_HINT),
        EngineTraits("redshift", cte_materialized=False, hex8_to_int=_hex_via_strtol, forbidden=_NO_CTE_HINT),
    )
}


def traits(dialect: str) -> EngineTraits:
    """The traits of `dialect`; an unknown name is a programming error (config validates names)."""
    try:
        return TRAITS[dialect]
    except KeyError:
        raise ValueError(f"unknown dialect {dialect!r}; known: {', '.join(TRAITS)}") from None
