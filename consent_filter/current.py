"""The current consent decision per (profile, purpose): a compact table instead of the history.

The consent table is append-only (consent.md) and the newest decision per (profile, purpose)
decides. Reading the whole history for every consent query costs a scan and an aggregation of
every decision ever recorded; when no decision is newer than `as_of`, the outcome depends on
the history only through the newest decision per (profile, purpose) — whether it includes a
denial, whether it includes a grant, and until when that grant is valid. This module writes the
SQL that condenses the history into one row per (profile, purpose) and the SQL that reads it
back into the same per-profile `granted` / `denied` counts as `query.newest_decisions`.
Deciding when the condensed table is fresh enough to use is the caller's job
(`audience.consent_state`).
"""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from dsl.catalog import Column, Table
from dsl.compiler import col, table_ref, timestamp_literal
from dsl.compiler import string_literal as _s


def _flag(cond: exp.Expr) -> exp.Max:
    return exp.Max(this=exp.Case().when(cond, exp.Literal.number(1)).else_(exp.Literal.number(0)))


def condense_history(consent_table: Table) -> exp.Select:
    """One row per (profile, purpose) from the newest decisions in the whole history.

    Columns: profile_key, purpose, newest (the newest `updated_at`), and over the decisions at
    that time: denied (1 when one is a denial: ties go to denied), granted (1 when one is a
    grant), grant_forever (1 when such a grant has no expiry), grant_expires (their latest
    expiry). Flags are 0/1 integers, portable where booleans are not.

    Sorted by purpose then profile so an engine with zone maps reads only the row groups of the
    purposes a destination requires.
    """
    c, n = "c", "n"
    newest = (
        exp.select(col("profile_key", c), col("purpose", c), exp.alias_(exp.Max(this=col("updated_at", c)), "newest"))
        .from_(table_ref(consent_table, c))
        .group_by(col("profile_key", c), col("purpose", c))
    )
    same = exp.and_(
        exp.EQ(this=col("profile_key", n), expression=col("profile_key", c)),
        exp.EQ(this=col("purpose", n), expression=col("purpose", c)),
        exp.EQ(this=col("newest", n), expression=col("updated_at", c)),
    )
    granted = exp.EQ(this=col("status", c), expression=_s("granted"))
    no_expiry = exp.Is(this=col("expires_at", c), expression=exp.Null())
    return (
        exp.select(
            col("profile_key", c),
            col("purpose", c),
            exp.alias_(col("newest", n), "newest"),
            exp.alias_(_flag(exp.EQ(this=col("status", c), expression=_s("denied"))), "denied"),
            exp.alias_(_flag(granted.copy()), "granted"),
            exp.alias_(_flag(exp.and_(granted.copy(), no_expiry)), "grant_forever"),
            exp.alias_(
                exp.Max(this=exp.Case().when(granted.copy(), col("expires_at", c)).else_(exp.Null())),
                "grant_expires",
            ),
        )
        .from_(table_ref(consent_table, c))
        .join(newest.subquery(n), on=same)
        .group_by(col("profile_key", c), col("purpose", c), col("newest", n))
        .order_by(col("purpose", c), col("profile_key", c))
    )


def current_table(name: str, consent_table: Table) -> Table:
    """The condensed table as a catalog `Table`, typed from the consent table's columns."""
    source = consent_table.columns
    columns = {
        "profile_key": source["profile_key"],
        "newest": Column("newest", source["updated_at"].kind, source["updated_at"].raw_type),
        "grant_expires": Column("grant_expires", source["expires_at"].kind, source["expires_at"].raw_type),
    }
    return Table(name, columns)


def current_decisions(
    purposes: tuple[str, ...],
    as_of: datetime,
    current: Table,
    member_keys: exp.Select | None = None,
) -> exp.Select:
    """Per profile: how many required purposes are validly granted, and how many are denied —
    the same columns and meaning as `query.newest_decisions`, read from the condensed table.

    Only valid when no decision in the history is newer than `as_of` (the caller checks).
    """
    k = "k"
    expires_kind = current.columns["grant_expires"].kind
    one, zero = exp.Literal.number(1), exp.Literal.number(0)
    valid_grant = exp.and_(
        exp.EQ(this=col("granted", k), expression=one.copy()),
        exp.EQ(this=col("denied", k), expression=zero.copy()),
        exp.or_(
            exp.EQ(this=col("grant_forever", k), expression=one.copy()),
            exp.GTE(this=col("grant_expires", k), expression=timestamp_literal(as_of, expires_kind)),
        ),
    )
    granted_n = exp.Case().when(valid_grant, one.copy()).else_(zero.copy())
    denied_n = col("denied", k)
    rows = exp.select(exp.alias_(col("profile_key", k), "profile_key")).from_(table_ref(current, k))
    rows = rows.where(exp.In(this=col("purpose", k), expressions=[_s(p) for p in sorted(set(purposes))]))
    if member_keys is not None:  # only the audience's members' decisions are read
        rows = rows.where(exp.In(this=col("profile_key", k), query=member_keys.subquery()))
    if len(set(purposes)) == 1:  # one row per profile already: no aggregation
        return rows.select(exp.alias_(granted_n, "granted"), exp.alias_(denied_n, "denied"))
    return rows.select(
        exp.alias_(exp.Sum(this=granted_n), "granted"), exp.alias_(exp.Sum(this=denied_n), "denied")
    ).group_by(col("profile_key", k))
