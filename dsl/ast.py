"""The checked audience AST. Every node carries its source span for diagnostics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from dsl.diagnostics import Span

Value = str | Decimal | bool


@dataclass(frozen=True, slots=True)
class Literal:
    value: Value
    span: Span

    @property
    def kind(self) -> str:
        if isinstance(self.value, bool):
            return "boolean"
        if isinstance(self.value, Decimal):
            return "number"
        return "string"


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A column: of the profile table (`scope=None`) or of an event table inside a filter."""

    column: str
    span: Span
    qualified: bool = False  # written as profile.column


@dataclass(frozen=True, slots=True)
class Compare:
    field: FieldRef
    op: str  # = != < <= > >=
    value: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class InList:
    field: FieldRef
    values: tuple[Literal, ...]
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class IsNull:
    field: FieldRef
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Between:
    field: FieldRef
    low: Literal
    high: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class TextMatch:
    """`contains` / `starts with`: case-sensitive, `%` and `_` are plain characters."""

    field: FieldRef
    mode: str  # "contains" | "starts_with"
    text: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Condition, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Condition, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition
    span: Span


@dataclass(frozen=True, slots=True)
class Count:
    """`at least N times` (>=), `at most N times` (<=), `exactly N times` (=)."""

    op: str
    n: int
    span: Span


@dataclass(frozen=True, slots=True)
class Duration:
    amount: int
    unit: str  # minute | hour | day | week
    span: Span

    def seconds(self) -> int:
        return self.amount * {"minute": 60, "hour": 3600, "day": 86400, "week": 604800}[self.unit]


@dataclass(frozen=True, slots=True)
class DateLit:
    value: datetime  # UTC, tz-aware
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Window:
    """in last N unit | since d | before d | between a and b."""

    kind: str  # "last" | "since" | "before" | "between"
    span: Span
    duration: Duration | None = None
    start: DateLit | None = None
    end: DateLit | None = None


@dataclass(frozen=True, slots=True)
class EventRef:
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Event:
    negated: bool
    event: EventRef
    filter: Condition | None
    count: Count | None
    window: Window | None
    span: Span


@dataclass(frozen=True, slots=True)
class Measure:
    func: str  # sum | avg | min | max | count | count_distinct
    event: EventRef
    column: FieldRef | None
    filter: Condition | None
    window: Window | None
    span: Span


@dataclass(frozen=True, slots=True)
class Aggregate:
    measure: Measure
    op: str
    value: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class Rank:
    amount: Decimal
    percent: bool
    measure: Measure
    span: Span


@dataclass(frozen=True, slots=True)
class Step:
    event: EventRef
    filter: Condition | None
    span: Span


@dataclass(frozen=True, slots=True)
class Sequence:
    first: Step
    then: Step
    within: Duration
    window: Window | None
    span: Span


@dataclass(frozen=True, slots=True)
class Membership:
    audience: str
    span: Span


Condition = (
    Compare | InList | IsNull | Between | TextMatch | And | Or | Not | Event | Aggregate | Rank
    | Sequence | Membership
)


@dataclass(frozen=True, slots=True)
class Sync:
    destination: str
    schedule: str | None
    mode: str  # mirror | additive | replace
    span: Span
    schedule_span: Span | None = None


@dataclass(frozen=True, slots=True)
class Audience:
    name: str
    where: Condition
    file: str
    span: Span
    name_span: Span
    description: str | None = None
    owner: str | None = None
    tags: tuple[str, ...] = ()
    holdout: Decimal = Decimal(0)
    syncs: tuple[Sync, ...] = field(default_factory=tuple)
    source_text: str = ""  # the block's own text, for content hashes
