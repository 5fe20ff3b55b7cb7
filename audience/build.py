"""Building audiences in the warehouse before consent: the definition's SQL for a dialect, member keys.

The consented audience (per destination) is audience/consented.py, which builds on this module."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlglot import exp

from audience.config import DIALECTS
from audience.errors import UserError
from audience.project import Project
from dsl.compiler import compile_audience


def definition_query(project: Project, name: str, as_of: datetime) -> exp.Select:
    """The audience's members before consent (one column, profile_key)."""
    assert project.catalog is not None
    return compile_audience(project.audience(name), project.catalog, project.audiences, as_of)


def audience_sql(project: Project, name: str, as_of: datetime, dialect: str, *, pretty: bool = False) -> str:
    """The definition's SQL in *dialect* (the consented one: audience.consented.compiled_sql)."""
    return sql_text(definition_query(project, name, as_of), dialect, pretty=pretty)


def sql_text(query: exp.Select, dialect: str, *, pretty: bool = False) -> str:
    """*query* as text in *dialect*, one of the dialects a project may name."""
    if dialect not in DIALECTS:
        raise UserError(f'unknown dialect "{dialect}"; use one of {", ".join(DIALECTS)}')
    return query.sql(dialect=dialect, pretty=pretty)


def sort_keys(keys: list[Any]) -> list[Any]:
    """Numbers in numeric order, everything else as text (stable across warehouses)."""
    return sorted(keys, key=lambda k: (0, k, "") if isinstance(k, int | float) else (1, 0, str(k)))


def member_keys(project: Project, name: str, as_of: datetime) -> list[Any]:
    sql = audience_sql(project, name, as_of, project.warehouse.dialect)
    return sort_keys([row[0] for row in project.warehouse.query(sql)])

