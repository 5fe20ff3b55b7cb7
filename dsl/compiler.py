"""Compile a checked audience into a sqlglot expression tree (never by pasting text).

Shape of the SQL, chosen for exact semantics on every warehouse and for speed:

* every predicate is two-valued: a comparison is wrapped as `col IS NOT NULL AND col op lit`,
  so `NOT` flips true/false and never meets SQL's NULL;
* an event condition becomes `p.key IN (SELECT key FROM events ... [GROUP BY key HAVING ...])`
  — a semi-join every engine plans well — and conditions that hold for profiles without events
  (`did not`, `at most`, `exactly 0`, `count < n`) become the complement `NOT (p.key IN (...))`
  of the condition that fails, so no outer join or COALESCE over a joined aggregate is needed;
* windows are typed timestamp literals computed from `as_of`; events after `as_of` never count;
* `top P%` compares integers, `(rank - 1) * 100 * 10^d < P * 10^d * n`, instead of CEIL over
  floats, which would misround (10% of 30 is 3.0000000000000004 in binary floating point).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlglot import exp

from dsl import ast
from dsl.catalog import DATE, TIMESTAMPTZ, Catalog, EventSource, Table

_SAFE_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
PROFILE_ALIAS = "p"
ROW_ID = "audience_row_id"
ORDERABLE = ("string", "number", "boolean", "date", "timestamp", "timestamptz")


@dataclass
class CompileContext:
    catalog: Catalog
    audiences: Mapping[str, ast.Audience]
    as_of: datetime
    _aliases: int = field(default=0)

    def alias(self, prefix: str) -> str:
        self._aliases += 1
        return f"{prefix}{self._aliases}"


def ident(name: str) -> exp.Identifier:
    """An identifier node, quoted only when the name is not plain lower-case."""
    return exp.Identifier(this=name, quoted=not _SAFE_NAME.match(name))


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.Column(this=ident(name), table=ident(table) if table else None)


def string_literal(text: str) -> exp.Literal:
    """A SQL string literal; sqlglot quotes it for each dialect (the one helper for every layer)."""
    return exp.Literal.string(text)


def table_ref(table: Table, alias: str) -> exp.Expr:
    """The table as a FROM item; aliased it is an exp.Alias-like node, hence the wider type."""
    parts = table.name.split(".")
    node = exp.Table(this=ident(parts[-1]), db=ident(parts[-2]) if len(parts) > 1 else None,
                     catalog=ident(parts[-3]) if len(parts) > 2 else None)
    return node.as_(alias, copy=False) if alias else node


def compile_audience(aud: ast.Audience, catalog: Catalog, audiences: Mapping[str, ast.Audience],
                     as_of: datetime) -> exp.Select:
    """`SELECT p.key AS profile_key FROM profiles AS p WHERE <condition>` for one audience."""
    ctx = CompileContext(catalog, audiences, _utc(as_of))
    key = col(catalog.profile_key, PROFILE_ALIAS)
    where = exp.and_(_not_null(key),
                     predicate(aud.where, ctx), copy=False)
    return (exp.select(exp.alias_(key, "profile_key", copy=False), copy=False)
            .from_(table_ref(catalog.profile, PROFILE_ALIAS), copy=False).where(where, copy=False))


def predicate(cond: ast.Condition, ctx: CompileContext) -> exp.Expr:
    """A never-NULL boolean expression over the profile row `p`."""
    return _Compiler(ctx).cond(cond, PROFILE_ALIAS, ctx.catalog.profile)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def timestamp_literal(value: datetime, kind: str) -> exp.Expr:
    """A typed literal for a UTC instant, in the type of the column it is compared with."""
    value = _utc(value)
    if kind == DATE:
        return exp.cast(exp.Literal.string(value.date().isoformat()), exp.DataType.Type.DATE, copy=False)
    text = value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if kind == TIMESTAMPTZ:
        return exp.cast(exp.Literal.string(text + "+00:00"), exp.DataType.Type.TIMESTAMPTZ, copy=False)
    return exp.cast(exp.Literal.string(text), exp.DataType.Type.TIMESTAMP, copy=False)


def value_literal(lit: ast.Literal, kind: str) -> exp.Expr:
    """A typed literal node for a checked DSL value compared with a column of `kind`."""
    value = lit.value
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, Decimal):
        return exp.Literal.number(format(value, "f"))
    if kind in ("date", "timestamp", "timestamptz"):
        from dsl.parser import parse_iso_datetime

        parsed = parse_iso_datetime(value)
        assert parsed is not None, "the checker rejects malformed dates"
        return timestamp_literal(parsed, kind)
    return exp.Literal.string(value)


def _not_null(e: exp.Expr) -> exp.Expr:
    """`e IS NOT NULL` (rendered so; DuckDB pushes it into scans, `NOT e IS NULL` it does not)."""
    return exp.Is(this=e.copy(), expression=exp.Null(), negate=True)


_OPS: dict[str, type[exp.Binary]] = {
    "=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE,
}
_PYOPS = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _binary(op: str, left: exp.Expr, right: exp.Expr) -> exp.Expr:
    return _OPS[op](this=left, expression=right)


class _Compiler:
    def __init__(self, ctx: CompileContext) -> None:
        self.ctx = ctx

    # ---- boolean structure -------------------------------------------------------------
    def cond(self, cond: ast.Condition, alias: str, table: Table) -> exp.Expr:
        match cond:
            case ast.And(items=items):
                return exp.and_(*(self.cond(i, alias, table) for i in items), copy=False)
            case ast.Or(items=items):
                return exp.or_(*(self.cond(i, alias, table) for i in items), copy=False)
            case ast.Not(item=item):
                return exp.Not(this=exp.Paren(this=self.cond(item, alias, table)))
            case ast.Compare() | ast.InList() | ast.IsNull() | ast.Between() | ast.TextMatch():
                return exp.Paren(this=self.compare(cond, alias, table))
            case ast.Event():
                return self.event(cond)
            case ast.Aggregate():
                return self.aggregate(cond)
            case ast.Rank():
                return self.rank(cond)
            case ast.Sequence():
                return self.sequence(cond)
            case ast.Membership(audience=name):
                return exp.Paren(this=self.cond(self.ctx.audiences[name].where, alias, table))
        raise TypeError(f"not a condition: {cond!r}")  # pragma: no cover

    def compare(self, cond: ast.Condition, alias: str, table: Table) -> exp.Expr:
        ref: ast.FieldRef = cond.field  # type: ignore[union-attr]
        column = col(ref.column, alias)
        kind = table.columns[ref.column].kind
        match cond:
            case ast.IsNull(negated=negated):
                return exp.Is(this=column, expression=exp.Null(), negate=negated)
            case ast.Compare(op=op, value=value):
                test = _binary(op, column, value_literal(value, kind))
            case ast.InList(values=values, negated=negated):
                test = exp.In(this=column, expressions=[value_literal(v, kind) for v in values])
                if negated:
                    test = exp.Not(this=test)
            case ast.Between(low=low, high=high):
                test = exp.and_(exp.GTE(this=column, expression=value_literal(low, kind)),
                                exp.LTE(this=column.copy(), expression=value_literal(high, kind)))
            case ast.TextMatch(mode="contains", text=text):
                position = exp.StrPosition(this=column, substr=exp.Literal.string(str(text.value)))
                test = exp.GT(this=position, expression=exp.Literal.number(0))
            case ast.TextMatch(text=text):
                prefix = str(text.value)
                head = exp.Substring(this=column, start=exp.Literal.number(1),
                                     length=exp.Literal.number(len(prefix)))
                test = exp.EQ(this=head, expression=exp.Literal.string(prefix))
            case _:  # pragma: no cover
                raise TypeError(cond)
        return exp.and_(_not_null(column), test, copy=False)

    # ---- events --------------------------------------------------------------------------
    def source(self, ref: ast.EventRef) -> EventSource:
        source = self.ctx.catalog.event(ref.name)
        assert source is not None, "the checker rejects unknown events"
        return source

    def time_bounds(self, source: EventSource, alias: str, window: ast.Window | None) -> list[exp.Expr]:
        """Window bounds on the event timestamp; `ts <= as_of` always (no future events)."""
        ts = col(source.timestamp, alias)
        kind = source.table.columns[source.timestamp].kind
        lit = lambda dt: timestamp_literal(dt, kind)  # noqa: E731
        as_of = self.ctx.as_of
        bounds: list[exp.Expr] = [exp.LTE(this=ts.copy(), expression=lit(as_of))]
        if window is None:
            return bounds
        if window.kind == "last":
            assert window.duration is not None
            try:
                start = as_of - timedelta(seconds=window.duration.seconds())
            except OverflowError:  # reaches before year 1: every event is inside the window
                return bounds
            bounds.append(exp.GT(this=ts.copy(), expression=lit(start)))
        elif window.kind == "since":
            bounds.append(exp.GTE(this=ts.copy(), expression=lit(window.start.value)))  # type: ignore[union-attr]
        elif window.kind == "before":
            bounds.append(exp.LT(this=ts.copy(), expression=lit(window.end.value)))  # type: ignore[union-attr]
        else:
            bounds.append(exp.GTE(this=ts.copy(), expression=lit(window.start.value)))  # type: ignore[union-attr]
            bounds.append(exp.LT(this=ts.copy(), expression=lit(window.end.value)))  # type: ignore[union-attr]
        return bounds

    def event_rows(self, source: EventSource, alias: str, flt: ast.Condition | None,
                   window: ast.Window | None) -> exp.Select:
        """SELECT alias.key FROM table AS alias WHERE key not null, window and filter hold."""
        key = col(source.key, alias)
        conds = [_not_null(key), *self.time_bounds(source, alias, window)]
        if flt is not None:
            conds.append(self.cond(flt, alias, source.table))
        return (exp.select(key, copy=False).from_(table_ref(source.table, alias), copy=False)
                .where(exp.and_(*conds, copy=False), copy=False))

    def member_of(self, keys: exp.Select, negate: bool = False) -> exp.Expr:
        test = exp.In(this=col(self.ctx.catalog.profile_key, PROFILE_ALIAS), query=keys.subquery(copy=False))
        return exp.Not(this=exp.Paren(this=test)) if negate else test

    def event(self, ev: ast.Event) -> exp.Expr:
        source = self.source(ev.event)
        alias = self.ctx.alias("e")
        rows = self.event_rows(source, alias, ev.filter, ev.window)
        op, n = (ev.count.op, ev.count.n) if ev.count else (">=", 1)
        holds_for_zero = _PYOPS[op](0, n)
        if (op == ">=" and n <= 1) or (op == "=" and n == 0) or (op == "<=" and n == 0):
            # at least once / never: plain (anti) semi-join, no counting needed
            if n == 0 and op == ">=":
                result: exp.Expr = exp.true()
                return exp.Not(this=result) if ev.negated else result
            rows = rows.distinct(copy=False)
        else:
            having_op = op if not holds_for_zero else _NEGATED[op]
            count = exp.Count(this=exp.Star())
            rows = rows.group_by(col(source.key, alias), copy=False).having(
                _binary(having_op, count, exp.Literal.number(n)), copy=False)
        return self.member_of(rows, holds_for_zero != ev.negated)

    # ---- measures, aggregates, ranks --------------------------------------------------------
    def measure_expr(self, m: ast.Measure, alias: str) -> exp.Expr:
        if m.func == "count":
            return exp.Count(this=exp.Star())
        assert m.column is not None
        column = col(m.column.column, alias)
        if m.func == "count_distinct":
            return exp.Count(this=exp.Distinct(expressions=[column]))
        if m.func == "sum":
            return exp.Coalesce(this=exp.Sum(this=column), expressions=[exp.Literal.number(0)])
        if m.func == "avg":
            return exp.Avg(this=exp.cast(column, exp.DataType.Type.DOUBLE, copy=False))
        return (exp.Min if m.func == "min" else exp.Max)(this=column)

    def aggregate(self, agg: ast.Aggregate) -> exp.Expr:
        m = agg.measure
        source = self.source(m.event)
        alias = self.ctx.alias("e")
        rows = self.event_rows(source, alias, m.filter, m.window)
        n = agg.value.value
        assert isinstance(n, Decimal)
        # count, count distinct and sum over no events are 0; avg/min/max are NULL (never true)
        holds_for_zero = m.func in ("count", "count_distinct", "sum") and _PYOPS[agg.op](Decimal(0), n)
        test = _binary(agg.op, self.measure_expr(m, alias), exp.Literal.number(format(n, "f")))
        having = exp.Not(this=exp.Paren(this=test)) if holds_for_zero else test
        rows = rows.group_by(col(source.key, alias), copy=False).having(having, copy=False)
        return self.member_of(rows, negate=holds_for_zero)

    def rank(self, rank: ast.Rank) -> exp.Expr:
        m = rank.measure
        source = self.source(m.event)
        alias = self.ctx.alias("e")
        grouped = self.event_rows(source, alias, m.filter, m.window)
        grouped.set("expressions", [exp.alias_(col(source.key, alias), "k", copy=False),
                                    exp.alias_(self.measure_expr(m, alias), "m", copy=False)])
        grouped = grouped.group_by(col(source.key, alias), copy=False)
        order = exp.Order(expressions=[exp.Ordered(this=col("m"), desc=True, nulls_first=False)])
        ranked = exp.select(
            col("k"),
            exp.alias_(exp.Window(this=exp.Anonymous(this="RANK"), order=order), "r", copy=False),
            exp.alias_(exp.Window(this=exp.Count(this=exp.Star())), "n", copy=False),
            copy=False,
        ).from_(grouped.subquery(self.ctx.alias("g"), copy=False), copy=False)
        r, total = col("r"), col("n")
        if rank.percent:
            scale = 10 ** max(0, -rank.amount.as_tuple().exponent)  # type: ignore[operator]
            scaled = int(rank.amount * scale)
            left = exp.Mul(this=exp.Paren(this=exp.Sub(this=r, expression=exp.Literal.number(1))),
                           expression=exp.Literal.number(100 * scale))
            keep: exp.Expr = exp.LT(this=left, expression=exp.Mul(this=exp.Literal.number(scaled), expression=total))
        else:
            keep = exp.LTE(this=r, expression=exp.Literal.number(int(rank.amount)))
        top = (exp.select(col("k"), copy=False)
               .from_(ranked.subquery(self.ctx.alias("t"), copy=False), copy=False).where(keep, copy=False))
        return self.member_of(top)

    # ---- sequences ----------------------------------------------------------------------------
    def sequence(self, seq: ast.Sequence) -> exp.Expr:
        first, then = self.source(seq.first.event), self.source(seq.then.event)
        if (first.table.name, first.key, first.timestamp) == (then.table.name, then.key, then.timestamp):
            return self.same_table_sequence(seq, first)
        a, b = self.ctx.alias("a"), self.ctx.alias("b")
        same = first.table.name == then.table.name
        left = self.step_from(first, a, seq.window, numbered=same)
        right = self.step_from(then, b, seq.window, numbered=same)
        ts_a, ts_b = col(first.timestamp, a), col(then.timestamp, b)
        within = _interval(seq.within)
        conds: list[exp.Expr] = [
            exp.EQ(this=col(first.key, a), expression=col(then.key, b)),
            exp.GTE(this=ts_b, expression=ts_a),
            exp.LTE(this=ts_b.copy(), expression=exp.Add(this=ts_a.copy(), expression=within)),
        ]
        if same:
            conds.append(exp.NEQ(this=col(ROW_ID, a), expression=col(ROW_ID, b)))
        if seq.first.filter is not None:
            conds.append(self.cond(seq.first.filter, a, first.table))
        if seq.then.filter is not None:
            conds.append(self.cond(seq.then.filter, b, then.table))
        query = (exp.select(col(first.key, a), copy=False).distinct(copy=False).from_(left, copy=False)
                 .join(right, on=exp.and_(*conds[:1], copy=False), copy=False)
                 .where(exp.and_(*conds[1:], copy=False), copy=False))
        return self.member_of(query)

    def same_table_sequence(self, seq: ast.Sequence, source: EventSource) -> exp.Expr:
        """a then b over one table: b strictly later within the limit, or two distinct rows of the
        same instant — counted per (key, ts) group, which is exact without any row identity
        (identical twins are two rows; a single row never pairs with itself)."""
        table = source.table
        a, b = self.ctx.alias("a"), self.ctx.alias("b")
        ts_a, ts_b = col(source.timestamp, a), col(source.timestamp, b)
        conds = [_not_null(col(source.key, a)), *self.time_bounds(source, a, seq.window),
                 *self.time_bounds(source, b, seq.window),
                 exp.GT(this=ts_b, expression=ts_a),
                 exp.LTE(this=ts_b.copy(), expression=exp.Add(this=ts_a.copy(), expression=_interval(seq.within)))]
        if seq.first.filter is not None:
            conds.append(self.cond(seq.first.filter, a, table))
        if seq.then.filter is not None:
            conds.append(self.cond(seq.then.filter, b, table))
        later = (exp.select(col(source.key, a), copy=False).distinct(copy=False)
                 .from_(table_ref(table, a), copy=False)
                 .join(table_ref(table, b), on=exp.EQ(this=col(source.key, a), expression=col(source.key, b)),
                       copy=False)
                 .where(exp.and_(*conds, copy=False), copy=False))
        g = self.ctx.alias("g")
        two = exp.GTE(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(2))
        if seq.first.filter is None or seq.then.filter is None:
            # one side takes any row: two rows of the instant, one of them passing the other filter
            flt = seq.first.filter or seq.then.filter
            rows = self.event_rows(source, g, None, seq.window)
            having: exp.Expr = two if flt is None else exp.and_(
                two, _at_least(self.cond(flt, g, table), 1), copy=False)
        else:
            # rows passing neither filter cannot be a or b, so only the others are grouped
            rows = self.event_rows(source, g, ast.Or((seq.first.filter, seq.then.filter), seq.span), seq.window)
            having = exp.and_(two, _at_least(self.cond(seq.first.filter, g, table), 1),
                              _at_least(self.cond(seq.then.filter, g, table), 1), copy=False)
        instant = rows.group_by(col(source.key, g), col(source.timestamp, g), copy=False).having(having, copy=False)
        return exp.Paren(this=exp.or_(self.member_of(later), self.member_of(instant), copy=False))

    def step_from(self, source: EventSource, alias: str, window: ast.Window | None,
                  numbered: bool) -> exp.Expr:
        """The step's table, pre-filtered to the window; numbered rows when a and b share a table.

        Rows are numbered per profile in an order over every column, so identical rows are the
        only ones whose numbers can swap between evaluations — and identical twins are genuinely
        distinct rows, so the pair test `a.row_id <> b.row_id` is exact either way.
        """
        inner = self.ctx.alias("s")
        bounds = self.time_bounds(source, inner, window)
        bounds.insert(0, _not_null(col(source.key, inner)))
        columns = [col(c, inner) for c in source.table.columns]
        if not numbered:
            select = exp.select(*columns, copy=False)
        else:
            order_cols = [col(c.name, inner) for c in source.table.columns.values() if c.kind in ORDERABLE]
            row_id = exp.Window(this=exp.Anonymous(this="ROW_NUMBER"),
                                partition_by=[col(source.key, inner)],
                                order=exp.Order(expressions=[exp.Ordered(this=c, nulls_first=True)
                                                             for c in order_cols]))
            select = exp.select(*columns, exp.alias_(row_id, ROW_ID, copy=False), copy=False)
        select = select.from_(table_ref(source.table, inner), copy=False).where(
            exp.and_(*bounds, copy=False), copy=False)
        return select.subquery(alias, copy=False)


_NEGATED = {"=": "!=", "!=": "=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def _at_least(predicate: exp.Expr, n: int) -> exp.Expr:
    """SUM(CASE WHEN predicate THEN 1 ELSE 0 END) >= n (predicates here are never NULL)."""
    case = exp.Case(ifs=[exp.If(this=predicate, true=exp.Literal.number(1))], default=exp.Literal.number(0))
    return exp.GTE(this=exp.Sum(this=case), expression=exp.Literal.number(n))


def _interval(duration: ast.Duration) -> exp.Interval:
    amount, unit = duration.amount, duration.unit
    if unit == "week":
        amount, unit = amount * 7, "day"
    return exp.Interval(this=exp.Literal.string(str(amount)), unit=exp.var(unit.upper()))
