"""Counts of people as the service may show them, and the overlap of several audiences.

consent.md: a count below the threshold (a destination's ``min_size``, or 100 without one) is
shown only as "fewer than N", never exactly, so nobody can be singled out. Everything that
leaves the service with a count in it goes through :func:`rounded` (or, for free text such as
a run's error message, :func:`redact_small_counts`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from functools import reduce
from itertools import combinations

from sqlglot import exp

from audience.build import definition_query
from audience.project import Project
from consent_filter.funnel import DEFAULT_THRESHOLD

# An integer standing alone: not part of a word, a decimal, a date or time, an id, a percentage.
_STANDALONE_INT = re.compile(r"(?<![\w.:/-])\d+(?![\w.:/%-])")


def threshold_of(min_size: int | None) -> int:
    """The rounding threshold: the destination's ``min_size``, else 100 (as rounded_funnel)."""
    return min_size or DEFAULT_THRESHOLD


def rounded(count: int, threshold: int) -> tuple[str, int, int]:
    """(display, value, fewer_than): the exact value only at or above the threshold."""
    if count < threshold:
        return f"fewer than {threshold}", 0, threshold
    return str(count), count, 0


def redact_small_counts(text: str, threshold: int) -> str:
    """Free text with every standalone integer below *threshold* replaced by "fewer than N".

    Run errors are written for operators and may quote counts ("held: 3 adds and 2 removes
    exceed max_change"); through the service they must not reveal a small exact count.
    """
    def replace(match: re.Match[str]) -> str:
        return match.group(0) if int(match.group(0)) >= threshold else f"fewer than {threshold}"

    return _STANDALONE_INT.sub(replace, text)


def overlap_query(project: Project, names: Sequence[str], as_of: datetime) -> exp.Select:
    """One row: the size of each audience, then the intersection of each pair (i < j).

    Set-based, in one scan per definition: the members of every audience are tagged with the
    audience's index, grouped per profile into one 0/1 flag per audience, and summed.
    """
    branches: list[exp.Query] = [
        exp.select(exp.column("profile_key"), exp.alias_(exp.Literal.number(i), "aud_index"))
        .from_(definition_query(project, name, as_of).subquery(f"a{i}"))
        for i, name in enumerate(names)
    ]
    tagged = reduce(lambda left, right: exp.union(left, right, distinct=False), branches)
    flags = [
        exp.alias_(exp.Max(this=exp.Case(ifs=[exp.If(
            this=exp.EQ(this=exp.column("aud_index"), expression=exp.Literal.number(i)),
            true=exp.Literal.number(1))], default=exp.Literal.number(0))), f"m{i}")
        for i in range(len(names))
    ]
    per_profile = (exp.select(exp.column("profile_key"), *flags)
                   .from_(tagged.subquery("tagged")).group_by(exp.column("profile_key")))
    zero = exp.Literal.number(0)
    sums = [exp.Sum(this=exp.column(f"m{i}")) for i in range(len(names))]
    sums += [exp.Sum(this=exp.Mul(this=exp.column(f"m{i}"), expression=exp.column(f"m{j}")))
             for i, j in combinations(range(len(names)), 2)]
    return exp.select(*(exp.Coalesce(this=s, expressions=[zero.copy()]) for s in sums)).from_(
        per_profile.subquery("per_profile"))


def overlap_counts(project: Project, names: Sequence[str], as_of: datetime
                   ) -> tuple[list[int], dict[tuple[int, int], int]]:
    """Exact sizes (in the order of *names*) and intersections by index pair (i < j)."""
    sql = overlap_query(project, names, as_of).sql(dialect=project.warehouse.dialect)
    row = [int(v) for v in project.warehouse.query(sql)[0]]
    sizes = row[: len(names)]
    pairs = dict(zip(combinations(range(len(names)), 2), row[len(names):], strict=True))
    return sizes, pairs
