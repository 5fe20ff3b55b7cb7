"""The consented audience of one (audience, destination): query, funnel, estimate, members."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlglot import exp

from audience.build import definition_query, sort_keys, sql_text
from audience.config import DestinationConfig
from audience.consent_state import usable_current
from audience.errors import UserError
from audience.project import Project
from consent_filter.funnel import Funnel
from consent_filter.policy import ConsentPolicy, ExportTarget
from consent_filter.query import consent_query, exportable, funnel_query
from dsl.catalog import Table
from dsl.diagnostics import did_you_mean


def destination(project: Project, name: str) -> DestinationConfig:
    dest = project.config.destinations.get(name)
    if dest is None:
        raise UserError(f'unknown destination "{name}"' + did_you_mean(name, project.config.destinations))
    return dest


def policy_of(project: Project) -> ConsentPolicy:
    c = project.config.consent
    if c is None:
        raise UserError("audience.toml has no [consent] section; nothing can be exported without it")
    return ConsentPolicy(c.table, c.suppression_table, c.minimum_age, c.default_basis, dict(c.basis))


def target_of(dest: DestinationConfig) -> ExportTarget:
    return ExportTarget(dest.name, dest.purposes, dest.identifiers, dest.min_size, dest.format)


@dataclass
class ConsentedAudience:
    """Everything needed to build or count one audience for one destination."""

    project: Project
    audience: str
    destination: DestinationConfig
    as_of: datetime
    dialect: str

    @property
    def query(self) -> exp.Select:
        """The portable consent query over the consent history: what `compile` shows."""
        return self.query_reading(current=None)

    def warehouse_query(self) -> exp.Select:
        """The query this product runs in its own warehouse: it may read the condensed table of
        current decisions (`audience.consent_state`), a private table no compiled SQL names."""
        return self.query_reading(_current_decisions(self.project, self.as_of, self.dialect))

    def query_reading(self, current: Table | None) -> exp.Select:
        """The consent query reading ``current`` (the condensed decisions) or, if None, the history."""
        aud = self.project.audience(self.audience)
        assert self.project.catalog is not None
        return consent_query(
            definition_query(self.project, self.audience, self.as_of),
            self.project.catalog,
            policy_of(self.project),
            target_of(self.destination),
            self.as_of,
            audience=self.audience,
            holdout_percent=float(aud.holdout),
            dialect=self.dialect,
            consent_table=self.project.consent_table,
            current=current,
        )

    def exportable_sql(self) -> str:
        return exportable(self.warehouse_query()).sql(dialect=self.dialect)

    def funnel(self) -> Funnel:
        return self.funnel_of(funnel_query(self.warehouse_query()).sql(dialect=self.dialect))

    def funnel_of(self, sql: str) -> Funnel:
        return Funnel.from_rows((int(s), bool(h), int(n)) for s, h, n in self.project.warehouse.query(sql))


def funnels(project: Project, audience: str, destinations: list[str], as_of: datetime) -> dict[str, Funnel]:
    """The funnel per destination; destinations asking the same question (same purposes,
    identifiers and what the format accepts) share one query — the SQL text is the key."""
    by_sql: dict[str, Funnel] = {}
    result = {}
    current = _current_decisions(project, as_of, project.warehouse.dialect)  # one freshness check for all
    for name in destinations:
        ca = consented(project, audience, name, as_of)
        sql = funnel_query(ca.query_reading(current)).sql(dialect=ca.dialect)
        if sql not in by_sql:
            by_sql[sql] = ca.funnel_of(sql)
        result[name] = by_sql[sql]
    return result


def _current_decisions(project: Project, as_of: datetime, dialect: str) -> Table | None:
    """The condensed table of current decisions when the query runs on the warehouse's own engine."""
    wh = project.warehouse
    return usable_current(wh, project.consent_table, as_of) if dialect == wh.dialect else None


def consented(project: Project, audience: str, dest_name: str, as_of: datetime,
              dialect: str | None = None) -> ConsentedAudience:
    """*dialect* defaults to the warehouse's own (which opens its connection)."""
    return ConsentedAudience(project, audience, destination(project, dest_name), as_of,
                             dialect or project.warehouse.dialect)


def consented_members_query(
    project: Project, audience: str, dest_name: str, as_of: datetime, dialect: str | None = None
) -> exp.Select:
    """SQL for `compile --destination`: the exportable profile keys after consent and holdout."""
    ca = consented(project, audience, dest_name, as_of, dialect or project.config.warehouse.dialect)
    return exp.select("profile_key").from_(exportable(ca.query).subquery("x"))


def compiled_sql(project: Project, name: str, as_of: datetime, dialect: str,
                 destination: str | None = None, *, pretty: bool = False) -> str:
    """What `compile` prints: the definition's SQL, or with *destination* its consented members'."""
    if destination is None:
        query = definition_query(project, name, as_of)
    else:
        query = consented_members_query(project, name, destination, as_of, dialect)
    return sql_text(query, dialect, pretty=pretty)


def exported_members(project: Project, audience: str, dest_name: str, as_of: datetime) -> list[object]:
    """Keys that would be exported: consent rules, holdout, and identifiers valid after normalization."""
    from exporters.hashing import hash_rows

    ca = consented(project, audience, dest_name, as_of)
    kinds = list(ca.destination.identifiers)
    keys: list[object] = []
    for batch in project.warehouse.stream(ca.exportable_sql()):
        # columns: profile_key, profile_country, id_<kind>..., consent_stage, held_out
        rows = [(*r[2 : 2 + len(kinds)], r[1]) for r in batch]
        for row, hashed in zip(batch, hash_rows(ca.destination.format, kinds, rows), strict=True):
            if any(h is not None for h in hashed):
                keys.append(row[0])
    return sort_keys(keys)
