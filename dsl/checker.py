"""Semantic checks: names, types, dates, sensitive data, duplicates, cycles, destinations.

The checker never stops at the first problem: it walks every audience and collects every
diagnostic, so `audience check` shows a planner all of them at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from dsl import ast
from dsl.catalog import BOOLEAN, DATE, NUMBER, STRING, TIMESTAMP, TIMESTAMPTZ, Catalog, Table
from dsl.diagnostics import Diagnostic, Span, did_you_mean
from dsl.parser import parse_iso_datetime
from dsl.privacy import (
    KeyColumns,
    ListedHit,
    ProfileListedValues,
    comparisons_of,
    identifier_measure_message,
    identifier_test_message,
    listed_value_hits,
)

TEMPORAL = (DATE, TIMESTAMP, TIMESTAMPTZ)


@dataclass(frozen=True, slots=True)
class SensitiveUse:
    """One way an audience touches sensitive data, kept to report paths through memberships."""

    what: str  # e.g. 'column "fans.religion"'
    category: str | None  # None: a test of an identifier or of the key, not a data category
    span: Span
    file: str

    def reached(self) -> str:
        return f"sensitive data ({self.category})" if self.category else "a use of the profile key or an identifier"


@dataclass
class _Scope:
    table: Table
    label: str  # 'profile table "fans"' or 'event "stream" (table "streams")'
    keys: KeyColumns  # the columns that may only be tested for null


def check_project(
    audiences: list[ast.Audience], catalog: Catalog, destinations: Iterable[str]
) -> list[Diagnostic]:
    """Check every audience of a project; return all diagnostics (empty when it compiles)."""
    by_name: dict[str, ast.Audience] = {}
    diags: list[Diagnostic] = []
    duplicates: list[ast.Audience] = []
    for aud in audiences:
        first = by_name.get(aud.name)
        if first is not None:
            diags.append(Diagnostic(aud.file, aud.name_span, "E401",
                                    f'audience "{aud.name}" is already defined at '
                                    f"{first.file}:{first.name_span.line}:{first.name_span.col}"))
            duplicates.append(aud)
            continue
        by_name[aud.name] = aud
    for aud in duplicates:  # a duplicate's own errors are still reported in the same pass
        checker = _AudienceChecker(aud, catalog, by_name)
        checker.check(aud.where)
        diags.extend(checker.diags)
    dest_names = set(destinations)
    direct: dict[str, list[SensitiveUse]] = {}
    for aud in by_name.values():
        checker = _AudienceChecker(aud, catalog, by_name)
        checker.check(aud.where)
        diags.extend(checker.diags)
        direct[aud.name] = checker.sensitive
        diags.extend(_check_syncs(aud, dest_names))
    graph = _walk(by_name)
    diags.extend(_profile_listed_values(catalog, by_name, duplicates, graph, direct))
    diags.extend(_check_cycles(graph))
    diags.extend(_sensitive_through_membership(by_name, direct, graph))
    diags.extend(_check_depth(by_name, graph))
    return diags


def _profile_listed_values(catalog: Catalog, by_name: Mapping[str, ast.Audience], duplicates: list[ast.Audience],
                           graph: _Graph, direct: dict[str, list[SensitiveUse]]) -> Iterator[Diagnostic]:
    """Profile columns with listed values: each audience's whole `where` is one scope, with the
    audiences it includes decided inline (post-order, so a chain is walked once)."""
    profile = catalog.profile
    if not profile.sensitive_values:
        return
    rule = ProfileListedValues(profile.columns, profile.sensitive_values)
    checked = [(by_name[name], True) for name in graph.order] + [(aud, False) for aud in duplicates]
    for aud, registered in checked:
        for hit in rule.audience(aud, remember=registered):
            if registered:
                direct.setdefault(aud.name, []).append(_listed_use(hit, profile.name, aud.file))
            yield Diagnostic(aud.file, hit.span, "E303", _listed_message(hit, profile.name))


def _listed_what(hit: ListedHit, table: str) -> str:
    return f'value "{hit.value}" of column "{table}.{hit.column}"'


def _listed_use(hit: ListedHit, table: str, file: str) -> SensitiveUse:
    return SensitiveUse(_listed_what(hit, table), hit.category, hit.span, file)


def _listed_message(hit: ListedHit, table: str) -> str:
    message = f"{_listed_what(hit, table)} is sensitive ({hit.category}) and may never be used to target"
    if hit.through:
        message += f" (the condition can hold for it through in audience {hit.through})"
    return message


def _within(inner: Span, outer: Span) -> bool:
    return (outer.line, outer.col) <= (inner.line, inner.col) <= (outer.end_line, outer.end_col)


def _check_syncs(aud: ast.Audience, destinations: set[str]) -> Iterator[Diagnostic]:
    seen: set[str] = set()
    for sync in aud.syncs:
        if sync.destination not in destinations:
            hint = did_you_mean(sync.destination, destinations)
            known = f" (declared: {', '.join(sorted(destinations))})" if destinations and not hint else ""
            yield Diagnostic(aud.file, sync.span, "E403",
                             f'unknown destination "{sync.destination}" in audience "{aud.name}"{known}; '
                             f"declare it under [destinations] in audience.toml{hint}")
        elif sync.destination in seen:
            yield Diagnostic(aud.file, sync.span, "E405",
                             f'audience "{aud.name}" syncs to "{sync.destination}" more than once')
        seen.add(sync.destination)


def memberships(cond: ast.Condition) -> Iterator[ast.Membership]:
    """Every `in audience X` inside a condition."""
    if isinstance(cond, ast.Membership):
        yield cond
    elif isinstance(cond, ast.And | ast.Or):
        for item in cond.items:
            yield from memberships(item)
    elif isinstance(cond, ast.Not):
        yield from memberships(cond.item)


@dataclass
class _Graph:
    """The `in audience` graph walked once, without recursion (chains may be thousands long)."""

    order: list[str]  # post-order: every audience after the audiences it includes
    cycles: list[tuple[ast.Audience, ast.Membership, list[str]]]  # back edges, in DFS order


def _walk(by_name: Mapping[str, ast.Audience]) -> _Graph:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    graph = _Graph([], [])
    for root in by_name:
        if root in state:
            continue
        state[root] = 1
        path = [root]
        stack = [(root, iter(list(memberships(by_name[root].where))))]
        while stack:
            name, refs = stack[-1]
            ref = next(refs, None)
            if ref is None:
                stack.pop()
                path.pop()
                state[name] = 2
                graph.order.append(name)
            elif ref.audience in by_name and state.get(ref.audience) == 1:
                graph.cycles.append((by_name[name], ref, [*path[path.index(ref.audience):], ref.audience]))
            elif ref.audience in by_name and ref.audience not in state:
                state[ref.audience] = 1
                path.append(ref.audience)
                stack.append((ref.audience, iter(list(memberships(by_name[ref.audience].where)))))
    return graph


def _check_cycles(graph: _Graph) -> Iterator[Diagnostic]:
    """Report each membership cycle once, at the reference that closes it."""
    reported: set[frozenset[str]] = set()
    for aud, ref, cycle in graph.cycles:
        key = frozenset(cycle)
        if key not in reported:
            reported.add(key)
            yield Diagnostic(aud.file, ref.span, "E402", "membership cycle: " + " -> ".join(cycle))


def _sensitive_through_membership(
    by_name: Mapping[str, ast.Audience], direct: Mapping[str, list[SensitiveUse]], graph: _Graph
) -> Iterator[Diagnostic]:
    """An audience that includes another audience built on sensitive data is itself rejected."""
    reach: dict[str, tuple[list[str], SensitiveUse]] = {}  # first path to sensitive data
    for name in graph.order:
        if direct.get(name):
            reach[name] = ([name], direct[name][0])
            continue
        for ref in memberships(by_name[name].where):
            if ref.audience in reach:
                path, use = reach[ref.audience]
                reach[name] = ([name, *path], use)
                break
    for aud in by_name.values():
        for ref in memberships(aud.where):
            found = reach.get(ref.audience)
            if found is None:
                continue
            path, use = found
            yield Diagnostic(aud.file, ref.span, "E304",
                             f'audience "{aud.name}" reaches {use.reached()} through '
                             f"{' -> '.join(f'in audience {p}' for p in path)}: {use.what} at "
                             f"{use.file}:{use.span.line}:{use.span.col}")


MAX_EXPANDED_DEPTH = 100


def _nesting(cond: ast.Condition, level: int, refs: list[tuple[int, ast.Membership]]) -> int:
    """How deep `cond` nests (its deepest node's level); collects each membership's level."""
    match cond:
        case ast.And(items=items) | ast.Or(items=items):
            return max(_nesting(item, level + 1, refs) for item in items)
        case ast.Not(item=item):
            return _nesting(item, level + 1, refs)
        case ast.Membership():
            refs.append((level, cond))
            return level
        case ast.Event(filter=flt) | ast.Aggregate(measure=ast.Measure(filter=flt)) | \
                ast.Rank(measure=ast.Measure(filter=flt)):
            return _nesting(flt, level + 1, refs) if flt is not None else level
        case ast.Sequence(first=first, then=then):
            steps = [s.filter for s in (first, then) if s.filter is not None]
            return max([level, *(_nesting(f, level + 1, refs) for f in steps)])
    return level


def _check_depth(by_name: Mapping[str, ast.Audience], graph: _Graph) -> Iterator[Diagnostic]:
    """Memberships are compiled inline: the expanded condition must stay shallow enough for the
    compiler and SQL generator (which recurse per level) and for warehouses' parsers."""
    expanded: dict[str, int] = {}
    for name in graph.order:
        refs: list[tuple[int, ast.Membership]] = []
        depth = _nesting(by_name[name].where, 1, refs)
        for level, ref in refs:
            depth = max(depth, level + expanded.get(ref.audience, 0))
        expanded[name] = depth
        if depth > MAX_EXPANDED_DEPTH:
            aud = by_name[name]
            yield Diagnostic(aud.file, aud.name_span, "E404",
                             f'audience "{name}" nests {depth} levels deep once the audiences it '
                             f'includes are expanded (at most {MAX_EXPANDED_DEPTH}); '
                             'shorten the chain of "in audience" or simplify the condition')


class _AudienceChecker:
    def __init__(self, aud: ast.Audience, catalog: Catalog, audiences: Mapping[str, ast.Audience]) -> None:
        self.aud = aud
        self.catalog = catalog
        self.audiences = audiences
        self.diags: list[Diagnostic] = []
        self.sensitive: list[SensitiveUse] = []
        identifiers = {column: kind for kind, column in catalog.identifiers.items()}
        self.profile_scope = _Scope(catalog.profile, f'profile table "{catalog.profile.name}"',
                                    KeyColumns(catalog.profile.name, catalog.profile_key, "the profile key",
                                               identifiers))

    def error(self, span: Span, code: str, message: str) -> None:
        self.diags.append(Diagnostic(self.aud.file, span, code, message))

    def check(self, cond: ast.Condition, scope: _Scope | None = None) -> None:
        scope = scope or self.profile_scope
        match cond:
            case ast.And(items=items) | ast.Or(items=items):
                for item in items:
                    self.check(item, scope)
            case ast.Not(item=item):
                self.check(item, scope)
            case ast.Compare() | ast.InList() | ast.IsNull() | ast.Between() | ast.TextMatch():
                self.check_compare(cond, scope)
            case ast.Event():
                source = self.event_scope(cond.event)
                if source and cond.filter is not None:
                    self.check_filter(cond.filter, source)
            case ast.Aggregate(measure=measure):
                self.check_measure(measure)
            case ast.Rank(measure=measure):
                self.check_measure(measure)
            case ast.Sequence():
                for step in (cond.first, cond.then):
                    source = self.event_scope(step.event)
                    if source and step.filter is not None:
                        self.check_filter(step.filter, source)
            case ast.Membership():
                if cond.audience not in self.audiences:
                    self.error(cond.span, "E203", f'unknown audience "{cond.audience}"'
                               + did_you_mean(cond.audience, self.audiences))

    def event_scope(self, ref: ast.EventRef) -> _Scope | None:
        source = self.catalog.event(ref.name)
        if source is None:
            self.error(ref.span, "E202", f'unknown event "{ref.name}"' + did_you_mean(ref.name, self.catalog.events))
            return None
        if source.table.sensitive:
            self.flag_sensitive(ref.span, f'table "{source.table.name}" of event "{ref.name}"',
                                source.table.sensitive, "E302")
        role = f'the key of event "{ref.name}", which joins to the profile key'
        return _Scope(source.table, f'event "{ref.name}" (table "{source.table.name}")',
                      KeyColumns(source.table.name, source.key, role, {}))

    def check_filter(self, flt: ast.Condition, scope: _Scope) -> None:
        """An event filter: its names and types, then the listed-value rule over the event row
        (skipped while a comparison on a listed column is itself broken: that error says it)."""
        before = len(self.diags)
        self.check(flt, scope)
        broken = [d.span for d in self.diags[before:] if d.code.startswith("E2")]
        if any(_within(span, atom.span) for atom in comparisons_of(flt, scope.table.sensitive_values)
               for span in broken):
            return
        for hit in listed_value_hits(flt, scope.table.columns, scope.table.sensitive_values):
            use = _listed_use(hit, scope.table.name, self.aud.file)
            self.sensitive.append(use)
            self.error(hit.span, "E303", _listed_message(hit, scope.table.name))

    def check_measure(self, m: ast.Measure) -> None:
        scope = self.event_scope(m.event)
        if scope is None:
            return
        if m.column is not None:
            column = self.column(m.column, scope)
            if column is not None and m.func in ("sum", "avg", "min", "max") and column.kind != NUMBER:
                self.error(m.column.span, "E204",
                           f'{m.func}() needs a numeric column, but "{m.column.column}" of {scope.label} '
                           f"is {column.kind}")
            role = scope.keys.role(m.column.column) if column is not None else None
            if role is not None:
                self.flag_identifier(m.column.span, identifier_measure_message(scope.keys, m.column.column, role),
                                     scope, m.column.column)
        if m.filter is not None:
            self.check_filter(m.filter, scope)

    def column(self, ref: ast.FieldRef, scope: _Scope):  # -> Column | None
        if ref.qualified and scope is not self.profile_scope:
            self.error(ref.span, "E207", "an event filter compares the event's own columns; "
                                         f'"profile.{ref.column}" belongs outside the filter')
            return None
        table = scope.table
        column = table.columns.get(ref.column)
        if column is None:
            self.error(ref.span, "E201", f'unknown column "{ref.column}" on {scope.label}'
                       + did_you_mean(ref.column, table.columns))
            return None
        category = table.sensitive_columns.get(ref.column)
        if category:
            self.flag_sensitive(ref.span, f'column "{table.name}.{ref.column}"', category, "E301")
        return column

    def flag_sensitive(self, span: Span, what: str, category: str, code: str) -> None:
        self.sensitive.append(SensitiveUse(what, category, span, self.aud.file))
        self.error(span, code, f"{what} is sensitive ({category}) and may never be used to target")

    def flag_identifier(self, span: Span, message: str, scope: _Scope, column: str) -> None:
        """E305: a test of the key or an identifier; an audience including this one is refused too."""
        self.sensitive.append(SensitiveUse(f'column "{scope.table.name}.{column}"', None, span, self.aud.file))
        self.error(span, "E305", message)

    def check_compare(self, cond: ast.Compare | ast.InList | ast.IsNull | ast.Between | ast.TextMatch,
                      scope: _Scope) -> None:
        column = self.column(cond.field, scope)
        if column is None:
            return
        name = cond.field.column
        role = scope.keys.role(name)
        if role is not None and not isinstance(cond, ast.IsNull):
            self.flag_identifier(cond.span, identifier_test_message(scope.keys, name, role), scope, name)
        match cond:
            case ast.Compare(op=op, value=value):
                self.check_value(column, name, value, scope)
                if column.kind == BOOLEAN and op not in ("=", "!="):
                    self.error(cond.span, "E204", f'"{name}" is boolean: compare it with = or !=')
            case ast.InList(values=values):
                for value in values:
                    self.check_value(column, name, value, scope)
            case ast.Between(low=low, high=high):
                self.check_value(column, name, low, scope)
                self.check_value(column, name, high, scope)
            case ast.TextMatch(mode=mode):
                if column.kind != STRING:
                    word = "contains" if mode == "contains" else "starts with"
                    self.error(cond.span, "E204", f'"{word}" needs a text column, but "{name}" is {column.kind}')

    def check_value(self, column, name: str, value: ast.Literal, scope: _Scope) -> None:
        kind = column.kind
        if kind in TEMPORAL:
            if value.kind != "string":
                self.error(value.span, "E204",
                           f'"{name}" is a {kind}; compare it with a date string such as "2016-06-23"')
            elif parse_iso_datetime(str(value.value)) is None:
                self.error(value.span, "E205", f'malformed date "{value.value}" for {kind} column "{name}": '
                                               'use ISO 8601, e.g. "2016-06-23" or "2016-06-23T08:00:00Z"')
            return
        expected = {STRING: "string", NUMBER: "number", BOOLEAN: "boolean"}.get(kind)
        if expected is None:
            self.error(value.span, "E204",
                       f'column "{name}" has type {column.raw_type or kind}, which the language cannot compare')
        elif value.kind != expected:
            shown = f'"{value.value}"' if value.kind == "string" else str(value.value).lower()
            self.error(value.span, "E204",
                       f'type mismatch: "{name}" on {scope.label} is {kind}, but {shown} is a {value.kind}')
