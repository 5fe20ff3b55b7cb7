"""The consent funnel: why an audience shrank, and how counts are shown to planners."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from consent_filter.policy import NO_IDENTIFIER, NO_PERMISSION, PASSES, SUPPRESSED, UNDER_AGE

DEFAULT_THRESHOLD = 100


@dataclass(frozen=True)
class Funnel:
    """Exact counts: matched, removed by each rule in order, held out, exportable."""

    matched: int = 0
    suppressed: int = 0
    under_age: int = 0
    no_permission: int = 0
    no_identifier: int = 0
    held_out: int = 0
    exportable: int = 0

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, bool, int]]) -> Funnel:
        """Build from (stage, held_out, count) rows of `funnel_query`."""
        by_stage = {SUPPRESSED: 0, UNDER_AGE: 0, NO_PERMISSION: 0, NO_IDENTIFIER: 0}
        held = passing = 0
        for stage, held_out, n in rows:
            if stage == PASSES:
                held, passing = (held + n, passing) if held_out else (held, passing + n)
            else:
                by_stage[stage] += n
        matched = sum(by_stage.values()) + held + passing
        return cls(matched, by_stage[SUPPRESSED], by_stage[UNDER_AGE], by_stage[NO_PERMISSION],
                   by_stage[NO_IDENTIFIER], held, passing)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def step_members(rows: Iterable[tuple[object, int, bool]]) -> dict[str, list[object]]:
    """The profiles behind each of :class:`Funnel`'s counts, from (profile_key, stage,
    held_out) rows of ``funnel_members_query`` (same names, same rule as ``from_rows``)."""
    steps: dict[str, list[object]] = {name: [] for name in Funnel().as_dict()}
    names = {SUPPRESSED: "suppressed", UNDER_AGE: "under_age", NO_PERMISSION: "no_permission",
             NO_IDENTIFIER: "no_identifier"}
    for key, stage, held_out in rows:
        steps["matched"].append(key)
        if stage == PASSES:
            steps["held_out" if held_out else "exportable"].append(key)
        else:
            steps[names[stage]].append(key)
    return steps


def threshold_of(min_size: int | None) -> int:
    """The aggregation threshold: the destination's ``min_size``, else 100 (consent.md)."""
    return min_size or DEFAULT_THRESHOLD


def shown(count: int, threshold: int) -> tuple[str, int, int]:
    """The aggregation rule, in its one home: (display, value, fewer_than).

    Below the threshold only "fewer than N" (value 0, fewer_than N): nobody is singled out.
    At or above it the count itself (fewer_than 0).
    """
    if count < threshold:
        return f"fewer than {threshold}", 0, threshold
    return str(count), count, 0


def two_significant(count: int) -> int:
    """*count* rounded to two significant digits, halves up (1,373 -> 1,400; 2,954 -> 3,000).

    Meta shows audience sizes this way: small changes of an audience do not show in its size.
    """
    if count < 100:
        return count
    unit = 10 ** (len(str(count)) - 2)
    return (count + unit // 2) // unit * unit


def shown_to_planner(count: int, threshold: int) -> tuple[str, int, int]:
    """What the planner service shows (consent.md): aggregation, then two significant digits.

    Below the threshold "fewer than N"; at or above it the count rounded by
    :func:`two_significant`. The command line shows :func:`shown` (an operator's exact counts).
    """
    if count < threshold:
        return shown(count, threshold)
    value = two_significant(count)
    return str(value), value, 0


def rounded(count: int, threshold: int) -> str:
    """A count a planner may see, as text (:func:`shown`'s display)."""
    return shown(count, threshold)[0]


def rounded_funnel(funnel: Funnel, threshold: int | None) -> dict[str, str]:
    limit = threshold_of(threshold)
    return {name: rounded(value, limit) for name, value in funnel.as_dict().items()}
