"""Building audiences in the warehouse: SQL for a dialect, member keys, the consent funnel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlglot import exp

from audience.project import Project
from dsl.compiler import compile_audience


def definition_query(project: Project, name: str, as_of: datetime) -> exp.Select:
    """The audience's members before consent (one column, profile_key)."""
    assert project.catalog is not None
    return compile_audience(project.audience(name), project.catalog, project.audiences, as_of)


def audience_sql(project: Project, name: str, as_of: datetime, dialect: str,
                 destination: str | None = None, *, pretty: bool = False) -> str:
    if destination is None:
        query = definition_query(project, name, as_of)
    else:
        from audience.consented import consented_members_query

        query = consented_members_query(project, name, destination, as_of, dialect)
    return query.sql(dialect=_sqlglot_dialect(dialect), pretty=pretty)


def _sqlglot_dialect(dialect: str) -> str:
    from audience.config import DIALECTS
    from audience.errors import UserError

    if dialect not in DIALECTS:
        raise UserError(f'unknown dialect "{dialect}"; use one of {", ".join(DIALECTS)}')
    return dialect


def sort_keys(keys: list[Any]) -> list[Any]:
    """Numbers in numeric order, everything else as text (stable across warehouses)."""
    return sorted(keys, key=lambda k: (0, k, "") if isinstance(k, int | float) else (1, 0, str(k)))


def member_keys(project: Project, name: str, as_of: datetime) -> list[Any]:
    sql = audience_sql(project, name, as_of, project.warehouse.dialect)
    return sort_keys([row[0] for row in project.warehouse.query(sql)])

