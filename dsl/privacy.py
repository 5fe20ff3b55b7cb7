"""Two privacy rules of dsl.md/consent.md, decided on checked conditions for the checker.

**Listed sensitive values.** On a column with listed values (`purchases.category` = `pharmacy`,
`fertility`), a condition stands only if it is false for every listed value. This is decided by
*evaluating* the condition, not by recognising forms: for one scope (an event filter is a
condition over one event row; a profile-level `where` over one profile row) each listed value
is put in the column, every comparison on that column is then true or false exactly as the
compiled SQL makes it (two-valued: a comparison with null is false, `not` flips), and every
other part of the condition (comparisons on other columns, events, aggregates) is an unknown
that may be true or false. The scope is refused when some choice of the unknowns makes it true
for a listed value. Each occurrence of an unknown is chosen on its own, even when the same
comparison is written twice: conservative (it can only refuse more), and it keeps the decision
linear in the size of the condition. Scopes that never mention the column are not decided here.

**Identifiers and the key.** The profile key, the `[profiles.identifiers]` columns and an event
table's key column (it joins to the profile key) may only be tested with `is null` / `is not
null`: a test of their values, or a measure over them, picks out a person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Protocol

from dsl import ast
from dsl.catalog import BOOLEAN, NUMBER, STRING, Column, SensitiveValues
from dsl.diagnostics import Span

Atom = ast.Compare | ast.InList | ast.IsNull | ast.Between | ast.TextMatch
ATOMS = (ast.Compare, ast.InList, ast.IsNull, ast.Between, ast.TextMatch)

IDENTIFIER_REASON = "identifiers are for matching at the destination, never for picking out a person"


# ---- listed sensitive values -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Outcomes:
    """The truth values a condition can take for one listed value, its unknowns chosen freely."""

    can_be_true: bool
    can_be_false: bool


UNKNOWN = Outcomes(True, True)
_TRUE, _FALSE = Outcomes(True, False), Outcomes(False, True)


@dataclass(frozen=True, slots=True)
class ListedHit:
    """A condition that can be true for a listed value: where to point, and what to name."""

    value: str
    column: str
    category: str
    span: Span
    through: str | None = None  # the audience whose condition makes it true, when it is inlined


@dataclass(frozen=True, slots=True)
class _Target:
    """One listed value put into one column, typed as the column compares it."""

    column: str
    kind: str
    padded: bool  # CHAR(n): trailing spaces do not count in =, <, in, between
    value: str | Decimal | float | bool | None  # None: not comparable here, every test is unknown


def _typed(listed: str, column: Column) -> _Target:
    raw = column.raw_type.strip().lower()
    padded = raw.startswith("bpchar") or (raw.startswith("char") and "varying" not in raw)
    value: str | Decimal | float | bool | None = None
    if column.kind == STRING:
        value = listed.rstrip(" ") if padded else listed
    elif column.kind == NUMBER:
        value = _number(listed, raw)
    elif column.kind == BOOLEAN and listed.strip().lower() in ("true", "false"):
        value = listed.strip().lower() == "true"
    return _Target(column.name, column.kind, padded, value)


def _number(text: str, raw_type: str) -> Decimal | float | None:
    """A number as the column holds it: exact, or a binary double for approximate types."""
    try:
        number = Decimal(str(text).strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return float(number) if raw_type.startswith(_APPROXIMATE) else number


_APPROXIMATE = ("double", "float", "real")
_LITERAL_KIND = {STRING: "string", NUMBER: "number", BOOLEAN: "boolean"}


def _literal(lit: ast.Literal, target: _Target) -> str | Decimal | float | bool | None:
    """The literal as the warehouse compares it with the column, or None if it cannot say."""
    if lit.kind != _LITERAL_KIND.get(target.kind):
        return None  # a type error (E204), or a column kind whose comparisons we do not model
    value = lit.value
    if target.padded and isinstance(value, str):
        return value.rstrip(" ")
    if isinstance(target.value, float) and isinstance(value, Decimal):
        return float(value)
    return value


def atom_truth(atom: Atom, target: _Target) -> bool | None:
    """The compiled comparison's value on a row whose column holds the listed value.

    Mirrors dsl/compiler.py: `col IS NOT NULL AND col op lit` (the listed value is not null, so
    only `col op lit` decides), `between` inclusive, `not in` as `NOT (col IN (...))`,
    `contains` as STRPOS(col, s) > 0 and `starts with` as SUBSTRING(col, 1, len(s)) = s, both
    case-sensitive with `%`/`_` plain. Strings compare by code point (UTF-8 byte order), as
    DuckDB, BigQuery, Snowflake and C-collated PostgreSQL do. None: not decidable here.
    """
    if isinstance(atom, ast.IsNull):
        return atom.negated
    v = target.value
    if v is None:
        return None
    match atom:
        case ast.Compare(op=op, value=lit):
            other = _literal(lit, target)
            return None if other is None else _compare(v, op, other)
        case ast.InList(values=values, negated=negated):
            items = [_literal(lit, target) for lit in values]
            if any(item is None for item in items):
                return None
            return (v in items) != negated
        case ast.Between(low=low, high=high):
            lo, hi = _literal(low, target), _literal(high, target)
            if lo is None or hi is None:
                return None
            return _compare(v, ">=", lo) and _compare(v, "<=", hi)
        case ast.TextMatch(mode=mode, text=text):
            if target.kind != STRING or not isinstance(v, str) or text.kind != "string":
                return None
            needle = str(text.value)  # contains/starts with read the text as it is, even CHAR(n)
            return needle in v if mode == "contains" else v.startswith(needle)
    return None


def _compare(left: object, op: str, right: object) -> bool:
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    try:
        return {"<": left < right, "<=": left <= right,  # type: ignore[operator]
                ">": left > right, ">=": left >= right}[op]  # type: ignore[operator]
    except TypeError:  # pragma: no cover - literals are typed to the column before we get here
        return True


class IncludedAudiences(Protocol):
    """What the audiences named by `in audience x` do for a listed value (profile level only)."""

    def outcomes(self, name: str, column: str, listed: str) -> Outcomes: ...

    def mentions(self, name: str, column: str) -> bool: ...


class _NoAudiences:
    """Event filters: an `in audience` inside one is an unknown that names no event column."""

    def outcomes(self, name: str, column: str, listed: str) -> Outcomes:
        return UNKNOWN

    def mentions(self, name: str, column: str) -> bool:
        return False


def _event_column(ref: ast.FieldRef) -> bool:
    return not ref.qualified  # `profile.x` inside a filter is an error (E207), not the event's x


def _any_column(ref: ast.FieldRef) -> bool:
    return True  # at the profile level `x` and `profile.x` are the same column


@dataclass(frozen=True)
class _Scope:
    """Which field references are the scope's own columns, and what included audiences do."""

    owns: Callable[[ast.FieldRef], bool]
    included: IncludedAudiences

    def names(self, cond: ast.Condition, column: str) -> bool:
        """Whether the condition tests the column (directly or through an included audience)."""
        match cond:
            case ast.And(items=items) | ast.Or(items=items):
                return any(self.names(i, column) for i in items)
            case ast.Not(item=item):
                return self.names(item, column)
            case ast.Membership(audience=name):
                return self.included.mentions(name, column)
        return isinstance(cond, ATOMS) and self.owns(cond.field) and cond.field.column == column


EVENT_SCOPE = _Scope(_event_column, _NoAudiences())


@dataclass(frozen=True)
class _Evaluator:
    """Outcomes of one scope's condition for one listed value in one column."""

    scope: _Scope
    listed: str
    target: _Target

    def outcomes(self, cond: ast.Condition) -> Outcomes:
        match cond:
            case ast.And(items=items):
                parts = [self.outcomes(i) for i in items]
                return Outcomes(all(p.can_be_true for p in parts), any(p.can_be_false for p in parts))
            case ast.Or(items=items):
                parts = [self.outcomes(i) for i in items]
                return Outcomes(any(p.can_be_true for p in parts), all(p.can_be_false for p in parts))
            case ast.Not(item=item):
                inner = self.outcomes(item)
                return Outcomes(inner.can_be_false, inner.can_be_true)
            case ast.Membership(audience=name):
                return self.scope.included.outcomes(name, self.target.column, self.listed)
        if isinstance(cond, ATOMS) and self.scope.owns(cond.field) and cond.field.column == self.target.column:
            truth = atom_truth(cond, self.target)
            if truth is not None:
                return _TRUE if truth else _FALSE
        return UNKNOWN

    def blame(self, cond: ast.Condition) -> ast.Condition:
        """The smallest part of a condition that can be true for the value that is to blame.

        An `and` that can be true is blamed on its first part naming the column (each part can
        be true); an `or` on its first part naming the column that can be true, or on itself
        when only parts about other things can; a `not` and an atom on themselves.
        """
        column = self.target.column
        while True:
            match cond:
                case ast.And(items=items):
                    nxt = next((i for i in items if self.scope.names(i, column)), None)
                case ast.Or(items=items):
                    nxt = next((i for i in items
                                if self.scope.names(i, column) and self.outcomes(i).can_be_true), None)
                case _:
                    nxt = None
            if nxt is None:
                return cond
            cond = nxt


def _memberships(cond: ast.Condition) -> list[ast.Membership]:
    match cond:
        case ast.And(items=items) | ast.Or(items=items):
            return [m for i in items for m in _memberships(i)]
        case ast.Not(item=item):
            return _memberships(item)
        case ast.Membership():
            return [cond]
    return []


def comparisons_of(cond: ast.Condition, columns: Iterable[str]) -> list[Atom]:
    """The comparisons of a filter that test one of `columns` (an event's own columns)."""
    wanted = set(columns)
    match cond:
        case ast.And(items=items) | ast.Or(items=items):
            return [a for i in items for a in comparisons_of(i, wanted)]
        case ast.Not(item=item):
            return comparisons_of(item, wanted)
    if isinstance(cond, ATOMS) and _event_column(cond.field) and cond.field.column in wanted:
        return [cond]
    return []


def listed_value_hits(cond: ast.Condition, columns: Mapping[str, Column],
                      listings: Mapping[str, tuple[SensitiveValues, ...]],
                      scope: _Scope = EVENT_SCOPE) -> list[ListedHit]:
    """For each column with listed values that `cond` names: the first listed value the
    condition can be true for (one hit per offending condition and column), with its blame.
    By default `cond` is an event filter; ProfileListedValues passes the profile-level scope."""
    hits: list[ListedHit] = []
    for column_name, column_listings in listings.items():
        column = columns.get(column_name)
        if column is None or not scope.names(cond, column_name):
            continue
        hit = _first_hit(cond, column, column_listings, scope)
        if hit is not None:
            hits.append(hit)
    return hits


def _first_hit(cond: ast.Condition, column: Column, listings: tuple[SensitiveValues, ...],
               scope: _Scope) -> ListedHit | None:
    for listing in listings:
        for listed in listing.values:
            ev = _Evaluator(scope, listed, _typed(listed, column))
            if ev.outcomes(cond).can_be_true:
                blamed = ev.blame(cond)
                through = next((m.audience for m in _memberships(blamed)
                                if scope.included.mentions(m.audience, column.name)), None)
                return ListedHit(listed, column.name, listing.category, blamed.span, through)
    return None


class ProfileListedValues:
    """The listed-value rule for profile-level conditions across a project's audiences.

    An included audience is compiled inline, so `not in audience x` must be decided on x's
    condition. Audiences are fed in post-order (each after those it includes) and their
    outcomes remembered, which keeps long chains linear and free of recursion; an audience not
    yet seen (a cycle, reported elsewhere, or an unknown name) is an unknown.
    """

    def __init__(self, columns: Mapping[str, Column], listings: Mapping[str, tuple[SensitiveValues, ...]]) -> None:
        self.columns = columns
        self.listings = listings
        self.scope = _Scope(_any_column, self)
        self._outcomes: dict[tuple[str, str, str], Outcomes] = {}  # (audience, column, listed value)
        self._mentions: dict[tuple[str, str], bool] = {}  # (audience, column)
        self._refused: set[tuple[str, str]] = set()  # (audience, column) that can hold for a listed value

    def outcomes(self, name: str, column: str, listed: str) -> Outcomes:
        return self._outcomes.get((name, column, listed), UNKNOWN)

    def mentions(self, name: str, column: str) -> bool:
        return self._mentions.get((name, column), False)

    def audience(self, aud: ast.Audience, remember: bool = True) -> list[ListedHit]:
        """Hits this audience adds itself. One that holds only through an included audience
        that is refused already is left to the E304 report of that path (no duplicate)."""
        hits = listed_value_hits(aud.where, self.columns, self.listings, self.scope)
        if remember:
            self._remember(aud)
            self._refused.update((aud.name, hit.column) for hit in hits)
        return [hit for hit in hits if hit.through is None or (hit.through, hit.column) not in self._refused]

    def _remember(self, aud: ast.Audience) -> None:
        for column_name, column_listings in self.listings.items():
            column = self.columns.get(column_name)
            if column is None:
                continue
            self._mentions[(aud.name, column_name)] = self.scope.names(aud.where, column_name)
            for listing in column_listings:
                for listed in listing.values:
                    ev = _Evaluator(self.scope, listed, _typed(listed, column))
                    self._outcomes[(aud.name, column_name, listed)] = ev.outcomes(aud.where)


# ---- identifiers and the key ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KeyColumns:
    """The columns of one scope's table that pick out a person: the key and identifiers."""

    table: str
    key: str | None
    key_role: str  # "the profile key" or 'the key of event "purchase", which joins to the profile key'
    identifiers: Mapping[str, str]  # column -> identifier type (email, phone, maid, external_id)

    def role(self, column: str) -> str | None:
        """How the column identifies a person, or None when it is an ordinary column."""
        if column == self.key:
            return self.key_role
        kind = self.identifiers.get(column)
        return f"an identifier ({kind})" if kind else None


def identifier_test_message(keys: KeyColumns, column: str, role: str) -> str:
    return (f'column "{keys.table}.{column}" is {role}: {IDENTIFIER_REASON}; '
            'only "is null" / "is not null" may test it')


def identifier_measure_message(keys: KeyColumns, column: str, role: str) -> str:
    return f'column "{keys.table}.{column}" is {role}: {IDENTIFIER_REASON}; a measure may not read it'
