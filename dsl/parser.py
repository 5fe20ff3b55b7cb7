"""Recursive-descent parser for `.aud` files (grammar: shared/spec/dsl.md).

Chosen over a generated parser for the messages: each rule knows what it expected, so a planner
reads "expected a value after "=" but found end of file" rather than a token dump. Errors inside
a setting skip to the next setting, so one pass reports every independent error of a file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import NoReturn

from dsl import ast
from dsl.diagnostics import Diagnostic, Span
from dsl.lexer import Kind, Token, line_starts, tokenize

SETTING_NAMES = ("description", "owner", "tags", "where", "holdout")
MODES = ("mirror", "additive", "replace")
UNITS = {"minute": "minute", "minutes": "minute", "hour": "hour", "hours": "hour",
         "day": "day", "days": "day", "week": "week", "weeks": "week"}
COMPARE_OPS = ("=", "!=", "<", "<=", ">", ">=")
# Limits that keep every literal inside what all supported warehouses can represent: DECIMAL(38)
# values, 32-bit counts, intervals well inside the timestamp range, and `top P%` arithmetic that
# stays inside 64-bit integers (the compiler compares `(rank - 1) * 100 * 10^d < P * 10^d * n`).
MAX_DIGITS = 38
MAX_INT = 2_147_483_647
MAX_DURATION_SECONDS = 100 * 366 * 86400
MAX_PERCENT_DECIMALS = 4
# Parentheses and `not` nest at most this deep: the parser, checker, compiler and SQL generator
# all recurse per level, and a planner never needs more (deeper input would hit RecursionError).
MAX_NESTING = 50


class _Abort(Exception):
    """Raised to unwind to the nearest recovery point; the diagnostic is already recorded."""


@dataclass
class ParseResult:
    audiences: list[ast.Audience] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def parse(source: str, filename: str) -> ParseResult:
    """Parse one file's text into audiences plus every diagnostic found."""
    tokens, lex_errors = tokenize(source)
    parser = _Parser(tokens, filename, source)
    for err in lex_errors:
        parser.result.diagnostics.append(Diagnostic(filename, err.span, err.code, err.message))
    parser.parse_file()
    return parser.result


def parse_condition(source: str, filename: str = "<condition>") -> tuple[ast.Condition | None, list[Diagnostic]]:
    """Parse a bare condition (used by the service's ValidateAudience on `where` drafts)."""
    tokens, lex_errors = tokenize(source)
    parser = _Parser(tokens, filename, source)
    diags = [Diagnostic(filename, e.span, e.code, e.message) for e in lex_errors]
    try:
        cond = parser.condition()
        if not parser.peek().is_(Kind.EOF):
            parser.fail(parser.peek(), "E103", f"unexpected {parser.peek().describe()} after the condition")
    except _Abort:
        cond = None
    return cond, diags + parser.result.diagnostics


class _Parser:
    def __init__(self, tokens: list[Token], filename: str, source: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.file = filename
        self.source = source
        self.result = ParseResult()
        self.depth = 0
        self._line_starts: list[int] | None = None  # computed once, on the first audience

    # ---- token helpers -------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def prev(self) -> Token:
        return self.tokens[max(self.pos - 1, 0)]

    def next(self) -> Token:
        tok = self.peek()
        if tok.kind is not Kind.EOF:
            self.pos += 1
        return tok

    def at(self, kind: Kind, text: str | None = None, ahead: int = 0) -> bool:
        return self.peek(ahead).is_(kind, text)

    def at_kw(self, *words: str) -> bool:
        return self.peek().kind is Kind.KEYWORD and self.peek().text in words

    def accept(self, kind: Kind, text: str | None = None) -> Token | None:
        if self.at(kind, text):
            return self.next()
        return None

    def error(self, span: Span, code: str, message: str) -> None:
        self.result.diagnostics.append(Diagnostic(self.file, span, code, message))

    def fail(self, tok: Token, code: str, message: str) -> NoReturn:
        self.error(tok.span, code, message)
        raise _Abort

    def expect(self, kind: Kind, text: str | None, what: str) -> Token:
        tok = self.peek()
        if tok.is_(kind, text):
            return self.next()
        self.fail(tok, "E103", f"expected {what} but found {tok.describe()}")

    def expect_kw(self, word: str, context: str = "") -> Token:
        return self.expect(Kind.KEYWORD, word, f'"{word}"{context}')

    def expect_name(self, what: str) -> Token:
        tok = self.peek()
        if tok.kind is Kind.NAME:
            return self.next()
        if tok.kind is Kind.KEYWORD:
            self.fail(tok, "E104", f'"{tok.text}" is a reserved word and cannot be used as {what}')
        self.fail(tok, "E103", f"expected {what} but found {tok.describe()}")

    # ---- file and blocks -------------------------------------------------------------------
    def parse_file(self) -> None:
        while not self.at(Kind.EOF):
            if self.at(Kind.KEYWORD, "audience"):
                try:
                    self.audience_block()
                except _Abort:
                    self.skip_to_block()
            else:
                tok = self.next()
                self.error(tok.span, "E103", f'expected "audience" but found {tok.describe()}')
                self.skip_to_block()

    def skip_to_block(self) -> None:
        while not self.at(Kind.EOF) and not self.at(Kind.KEYWORD, "audience"):
            self.next()

    def audience_block(self) -> None:
        start = self.expect_kw("audience")
        name = self.expect_name("an audience name")
        self.expect(Kind.PUNCT, "{", '"{" after the audience name')
        settings = _Settings()
        last_end: Token | None = None
        while not self.at(Kind.PUNCT, "}"):
            if self.at(Kind.EOF) or self.at(Kind.KEYWORD, "audience"):
                self.error(self.peek().span, "E103",
                           f'expected "}}" to close audience "{name.text}" but found {self.peek().describe()}')
                break
            if last_end is not None:
                self.require_separator(last_end)
            try:
                self.setting(settings)
            except _Abort:
                self.skip_to_setting()
            last_end = self.prev()
            self.accept(Kind.PUNCT, ",")
        end = self.accept(Kind.PUNCT, "}") or self.prev()
        self.finish_audience(start, name, end, settings)

    def require_separator(self, last: Token) -> None:
        """Settings are separated by newlines or commas (dsl.md)."""
        tok = self.peek()
        if self.prev().is_(Kind.PUNCT, ","):
            return
        if tok.span.line == last.span.end_line and not tok.is_(Kind.PUNCT, "}"):
            self.error(tok.span, "E103", f"expected a newline or \",\" before {tok.describe()}")

    def at_setting_start(self) -> bool:
        tok = self.peek()
        if tok.kind is Kind.PUNCT and tok.text == "}":
            return True
        if tok.is_(Kind.KEYWORD, "sync") or tok.is_(Kind.KEYWORD, "audience"):
            return True
        return tok.text in SETTING_NAMES and self.at(Kind.PUNCT, ":", ahead=1)

    def skip_to_setting(self) -> None:
        depth = 0
        while not self.at(Kind.EOF):
            if depth == 0 and self.pos > 0 and self.at_setting_start():
                return
            tok = self.next()
            if tok.is_(Kind.PUNCT, "{"):
                depth += 1
            elif tok.is_(Kind.PUNCT, "}"):
                depth = max(0, depth - 1)

    def finish_audience(self, start: Token, name: Token, end: Token, s: _Settings) -> None:
        span = start.span.to(end.span)
        if s.where is None:
            if not any(d.span.line >= start.span.line and d.span.line <= end.span.end_line
                       for d in self.result.diagnostics):
                self.error(name.span, "E107", f'audience "{name.text}" has no "where:" condition')
            return
        if self._line_starts is None:
            self._line_starts = line_starts(self.source)
        text = _slice(self.source, self._line_starts, span)
        self.result.audiences.append(ast.Audience(
            name=name.text, where=s.where, file=self.file, span=span, name_span=name.span,
            description=s.description, owner=s.owner, tags=tuple(s.tags), holdout=s.holdout,
            syncs=tuple(s.syncs), source_text=text,
        ))

    def setting(self, s: _Settings) -> None:
        tok = self.peek()
        if tok.is_(Kind.KEYWORD, "sync"):
            s.syncs.append(self.sync_block())
            return
        if tok.text not in SETTING_NAMES:
            known = ", ".join([*SETTING_NAMES, "sync"])
            self.fail(tok, "E109", f"unknown setting {tok.describe()}; settings are {known}")
        self.next()
        if tok.text in s.seen:
            self.error(tok.span, "E106", f'setting "{tok.text}" is given twice')
        s.seen.add(tok.text)
        self.expect(Kind.PUNCT, ":", f'":" after "{tok.text}"')
        handlers: dict[str, Callable[[], None]] = {
            "description": lambda: setattr(s, "description", self.string_value("description")),
            "owner": lambda: setattr(s, "owner", self.string_value("owner")),
            "tags": lambda: setattr(s, "tags", self.string_list()),
            "where": lambda: setattr(s, "where", self.condition()),
            "holdout": lambda: setattr(s, "holdout", self.holdout()),
        }
        handlers[tok.text]()

    def string_value(self, what: str) -> str:
        return self.expect(Kind.STRING, None, f"a string for {what}").text

    def string_list(self) -> list[str]:
        self.expect(Kind.PUNCT, "[", '"[" to start the list of tags')
        items: list[str] = []
        while not self.at(Kind.PUNCT, "]"):
            items.append(self.expect(Kind.STRING, None, "a string tag").text)
            if not self.accept(Kind.PUNCT, ","):
                break
        self.expect(Kind.PUNCT, "]", '"]" to close the list of tags')
        return items

    def holdout(self) -> Decimal:
        tok = self.peek()
        value = self.number("a percentage for holdout")
        self.expect(Kind.PUNCT, "%", '"%" after the holdout percentage')
        if not Decimal(0) <= value < Decimal(100):
            self.error(tok.span, "E108", "holdout must be at least 0% and below 100%")
        return value

    def sync_block(self) -> ast.Sync:
        start = self.expect_kw("sync")
        dest = self.expect_name("a destination name")
        schedule: str | None = None
        schedule_span: Span | None = None
        mode = "mirror"
        seen: set[str] = set()
        if self.accept(Kind.PUNCT, "{"):
            last: Token | None = None
            while not self.at(Kind.PUNCT, "}"):
                if self.at(Kind.EOF) or self.at(Kind.KEYWORD, "audience"):
                    break
                if last is not None:
                    self.require_separator(last)
                try:
                    key, tok = self.sync_setting(seen)
                except _Abort:  # recover inside the sync block: its "}" must not close the audience
                    self.skip_in_braces()
                    break
                if key == "schedule":
                    schedule, schedule_span = tok.text, tok.span
                else:
                    mode = tok.text
                last = self.prev()
                self.accept(Kind.PUNCT, ",")
            end = self.expect(Kind.PUNCT, "}", '"}" to close the sync block')
        else:
            end = dest
        return ast.Sync(dest.text, schedule, mode, start.span.to(end.span), schedule_span)

    def skip_in_braces(self) -> None:
        while not (self.at(Kind.EOF) or self.at(Kind.PUNCT, "}") or self.at(Kind.KEYWORD, "audience")):
            self.next()

    def sync_setting(self, seen: set[str]) -> tuple[str, Token]:
        """One `schedule: "<cron>"` or `mode: <mode>` inside a sync block."""
        key = self.peek()
        if key.text not in ("schedule", "mode"):
            self.fail(key, "E109", f'unknown sync setting {key.describe()}; use "schedule" or "mode"')
        self.next()
        if key.text in seen:
            self.error(key.span, "E106", f'sync setting "{key.text}" is given twice')
        seen.add(key.text)
        self.expect(Kind.PUNCT, ":", f'":" after "{key.text}"')
        if key.text == "schedule":
            tok = self.expect(Kind.STRING, None, 'a cron string for "schedule"')
            self.check_cron(tok)
            return key.text, tok
        tok = self.peek()
        if tok.text not in MODES:
            self.fail(tok, "E108", f"unknown sync mode {tok.describe()}; use mirror, additive or replace")
        return key.text, self.next()

    def check_cron(self, tok: Token) -> None:
        from croniter import croniter

        fields = tok.text.split()
        if len(fields) != 5 or not croniter.is_valid(tok.text):
            self.error(tok.span, "E110",
                       f'invalid schedule "{tok.text}": expected a 5-field cron expression (UTC), e.g. "0 6 * * *"')

    # ---- conditions ----------------------------------------------------------------------
    def condition(self) -> ast.Condition:
        self.enter()
        try:
            return self.or_()
        finally:
            self.depth -= 1

    def enter(self) -> None:
        """One more level of nesting; too deep is a diagnostic, never a RecursionError."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.depth -= 1
            self.fail(self.peek(), "E104", f"conditions nest more than {MAX_NESTING} levels deep")

    def or_(self) -> ast.Condition:
        items = [self.and_()]
        while self.accept(Kind.KEYWORD, "or"):
            items.append(self.and_())
        return items[0] if len(items) == 1 else ast.Or(tuple(items), items[0].span.to(items[-1].span))

    def and_(self) -> ast.Condition:
        items = [self.unary()]
        while self.accept(Kind.KEYWORD, "and"):
            items.append(self.unary())
        return items[0] if len(items) == 1 else ast.And(tuple(items), items[0].span.to(items[-1].span))

    def unary(self) -> ast.Condition:
        tok = self.accept(Kind.KEYWORD, "not")
        if tok:
            self.enter()
            try:
                item = self.unary()
            finally:
                self.depth -= 1
            return ast.Not(item, tok.span.to(item.span))
        return self.primary()

    def primary(self) -> ast.Condition:
        tok = self.peek()
        if tok.is_(Kind.PUNCT, "("):
            self.next()
            inner = self.condition()
            self.expect(Kind.PUNCT, ")", '")" to close "("')
            return inner
        if tok.is_(Kind.KEYWORD, "did"):
            return self.event()
        if tok.kind is Kind.KEYWORD and tok.text in ("sum", "avg", "min", "max", "count"):
            return self.aggregate()
        if tok.is_(Kind.KEYWORD, "top"):
            return self.rank()
        if tok.is_(Kind.KEYWORD, "in") and self.at(Kind.KEYWORD, "audience", ahead=1):
            self.next()
            self.next()
            name = self.expect_name("an audience name after \"in audience\"")
            return ast.Membership(name.text, tok.span.to(name.span))
        if tok.kind is Kind.NAME or tok.is_(Kind.KEYWORD, "profile"):
            return self.compare()
        if tok.kind is Kind.EOF:
            self.fail(tok, "E103", "expected a condition but the file ended")
        self.fail(tok, "E103", f"expected a condition (a comparison, did ..., an aggregate, top ..., "
                                f"or in audience ...) but found {tok.describe()}")

    def field_ref(self) -> ast.FieldRef:
        tok = self.peek()
        if tok.is_(Kind.KEYWORD, "profile"):
            self.next()
            self.expect(Kind.PUNCT, ".", '"." after "profile"')
            col = self.expect_name("a column name after \"profile.\"")
            return ast.FieldRef(col.text, tok.span.to(col.span), qualified=True)
        col = self.expect_name("a column name")
        return ast.FieldRef(col.text, col.span)

    def compare(self) -> ast.Condition:
        fld = self.field_ref()
        tok = self.peek()
        if tok.kind is Kind.OP:
            self.next()
            value = self.value()
            return ast.Compare(fld, tok.text, value, fld.span.to(value.span))
        if tok.is_(Kind.KEYWORD, "not") or tok.is_(Kind.KEYWORD, "in"):
            negated = bool(self.accept(Kind.KEYWORD, "not"))
            self.expect_kw("in", ' after "not"' if negated else "")
            self.expect(Kind.PUNCT, "(", '"(" to start the list of values')
            values = [self.value()]
            while self.accept(Kind.PUNCT, ","):
                values.append(self.value())
            end = self.expect(Kind.PUNCT, ")", '")" to close the list of values')
            return ast.InList(fld, tuple(values), negated, fld.span.to(end.span))
        if self.accept(Kind.KEYWORD, "is"):
            negated = bool(self.accept(Kind.KEYWORD, "not"))
            end = self.expect_kw("null", ' after "is"')
            return ast.IsNull(fld, negated, fld.span.to(end.span))
        if self.accept(Kind.KEYWORD, "between"):
            low = self.value()
            self.expect_kw("and", " between the two bounds")
            high = self.value()
            return ast.Between(fld, low, high, fld.span.to(high.span))
        if self.accept(Kind.KEYWORD, "contains"):
            text = self.string_literal('after "contains"')
            return ast.TextMatch(fld, "contains", text, fld.span.to(text.span))
        if self.accept(Kind.KEYWORD, "starts"):
            self.expect_kw("with", ' after "starts"')
            text = self.string_literal('after "starts with"')
            return ast.TextMatch(fld, "starts_with", text, fld.span.to(text.span))
        self.fail(tok, "E103", f"expected a comparison after \"{fld.column}\" (=, !=, <, <=, >, >=, in, "
                               f"not in, is null, between, contains, starts with) but found {tok.describe()}")

    def string_literal(self, where: str) -> ast.Literal:
        tok = self.expect(Kind.STRING, None, f"a string {where}")
        return ast.Literal(tok.text, tok.span)

    def value(self) -> ast.Literal:
        tok = self.peek()
        if tok.kind is Kind.STRING:
            self.next()
            return ast.Literal(tok.text, tok.span)
        if tok.is_(Kind.KEYWORD, "true") or tok.is_(Kind.KEYWORD, "false"):
            self.next()
            return ast.Literal(tok.text == "true", tok.span)
        if tok.kind is Kind.NUMBER or tok.is_(Kind.PUNCT, "-"):
            start = tok
            value = self.number("a value")
            return ast.Literal(value, start.span.to(self.prev().span))
        self.fail(tok, "E103", f"expected a value (a string, a number, true or false) but found {tok.describe()}")

    def number(self, what: str) -> Decimal:
        neg = self.accept(Kind.PUNCT, "-")
        tok = self.expect(Kind.NUMBER, None, what)
        try:
            value = Decimal(tok.text)
        except InvalidOperation:  # pragma: no cover - the lexer only produces digits
            self.fail(tok, "E104", f"invalid number {tok.text}")
        if sum(ch.isdigit() for ch in tok.text) > MAX_DIGITS:
            self.error(tok.span, "E104", f"number {tok.text} has more than {MAX_DIGITS} digits")
        return -value if neg else value

    def integer(self, what: str) -> tuple[int, Token]:
        tok = self.peek()
        if tok.kind is not Kind.NUMBER or "." in tok.text:
            self.fail(tok, "E103", f"expected a whole number {what} but found {tok.describe()}")
        self.next()
        if int(tok.text) > MAX_INT:
            self.error(tok.span, "E104", f"number {tok.text} is too large (at most {MAX_INT})")
            return MAX_INT, tok
        return int(tok.text), tok

    # ---- events ----------------------------------------------------------------------------
    def event_ref(self) -> ast.EventRef:
        tok = self.expect_name("an event name")
        return ast.EventRef(tok.text, tok.span)

    def filter(self) -> ast.Condition | None:
        if not self.accept(Kind.KEYWORD, "where"):
            return None
        if self.at(Kind.PUNCT, "("):
            self.next()
            inner = self.condition()
            self.expect(Kind.PUNCT, ")", '")" to close the event filter')
            return inner
        if self.at(Kind.KEYWORD, "not"):
            self.fail(self.peek(), "E103", 'a filter with "not" needs parentheses: where (not ...)')
        # A bare filter is one comparison: a following and/or belongs to the profile condition.
        return self.compare()

    def event(self) -> ast.Condition:
        start = self.expect_kw("did")
        negated = bool(self.accept(Kind.KEYWORD, "not"))
        ev = self.event_ref()
        flt = self.filter()
        if self.at(Kind.KEYWORD, "then"):
            if negated:
                self.fail(self.peek(), "E103", '"did not ... then" is not allowed; write "not did ... then ..."')
            return self.sequence(start, ev, flt)
        count = self.count()
        window = self.window()
        end = self.prev()
        return ast.Event(negated, ev, flt, count, window, start.span.to(end.span))

    def count(self) -> ast.Count | None:
        tok = self.peek()
        if tok.is_(Kind.KEYWORD, "at"):
            self.next()
            which = self.peek()
            if not (which.is_(Kind.KEYWORD, "least") or which.is_(Kind.KEYWORD, "most")):
                self.fail(which, "E103", f'expected "least" or "most" after "at" but found {which.describe()}')
            self.next()
            op = ">=" if which.text == "least" else "<="
        elif tok.is_(Kind.KEYWORD, "exactly"):
            self.next()
            op = "="
        else:
            return None
        n, _ = self.integer("of times")
        end = self.expect_kw("times", " after the number")
        return ast.Count(op, n, tok.span.to(end.span))

    def window(self) -> ast.Window | None:
        tok = self.peek()
        if tok.is_(Kind.KEYWORD, "in") and self.at(Kind.KEYWORD, "last", ahead=1):
            self.next()
            self.next()
            duration = self.duration()
            return ast.Window("last", tok.span.to(duration.span), duration=duration)
        if tok.is_(Kind.KEYWORD, "since") or tok.is_(Kind.KEYWORD, "before"):
            self.next()
            date = self.date()
            if tok.text == "since":
                return ast.Window("since", tok.span.to(date.span), start=date)
            return ast.Window("before", tok.span.to(date.span), end=date)
        if tok.is_(Kind.KEYWORD, "between"):
            self.next()
            start = self.date()
            self.expect_kw("and", " between the two dates")
            end = self.date()
            if end.value < start.value:
                self.error(start.span.to(end.span), "E208",
                           f'window "between {start.text} and {end.text}" ends before it starts')
            return ast.Window("between", tok.span.to(end.span), start=start, end=end)
        return None

    def duration(self) -> ast.Duration:
        n, tok = self.integer("for the window length")
        unit_tok = self.peek()
        if unit_tok.text not in UNITS:
            self.fail(unit_tok, "E103",
                      f"expected a unit (minutes, hours, days, weeks) but found {unit_tok.describe()}")
        self.next()
        if n <= 0:
            self.error(tok.span, "E208", "a window or interval length must be at least 1")
        duration = ast.Duration(n, UNITS[unit_tok.text], tok.span.to(unit_tok.span))
        if duration.seconds() > MAX_DURATION_SECONDS:
            self.error(duration.span, "E208",
                       "a window or interval length must be at most 100 years")
        return duration

    def date(self) -> ast.DateLit:
        tok = self.expect(Kind.STRING, None, 'a date string such as "2016-06-23"')
        value = parse_iso_datetime(tok.text)
        if value is None:
            self.error(tok.span, "E205",
                       f'malformed date "{tok.text}": use ISO 8601, e.g. "2016-06-23" or "2016-06-23T08:00:00Z"')
            value = datetime(1970, 1, 1, tzinfo=UTC)
        return ast.DateLit(value, tok.text, tok.span)

    def sequence(self, start: Token, ev: ast.EventRef, flt: ast.Condition | None) -> ast.Sequence:
        first = ast.Step(ev, flt, start.span.to(self.prev().span))
        self.expect_kw("then")
        then_ev = self.event_ref()
        then_flt = self.filter()
        then = ast.Step(then_ev, then_flt, then_ev.span.to(self.prev().span))
        self.expect_kw("within", " and a time limit after the second event of a sequence")
        within = self.duration()
        window = self.window()
        return ast.Sequence(first, then, within, window, start.span.to(self.prev().span))

    # ---- aggregates and ranks --------------------------------------------------------------
    def measure(self) -> ast.Measure:
        tok = self.next()
        func = tok.text
        if func == "count" and self.accept(Kind.KEYWORD, "distinct"):
            func = "count_distinct"
        self.expect(Kind.PUNCT, "(", f'"(" after "{tok.text}"')
        ev = self.event_ref()
        column: ast.FieldRef | None = None
        if func == "count":
            if self.at(Kind.PUNCT, "."):
                self.fail(self.peek(), "E103", 'count takes an event, not a column: write count(stream); '
                                               'use count distinct(stream.column) for distinct values')
        else:
            self.expect(Kind.PUNCT, ".", f'"." and a column after the event in {tok.text}(...)')
            col = self.expect_name("a column name")
            column = ast.FieldRef(col.text, col.span)
        self.expect(Kind.PUNCT, ")", '")" to close the measure')
        flt = self.filter()
        window = self.window()
        return ast.Measure(func, ev, column, flt, window, tok.span.to(self.prev().span))

    def aggregate(self) -> ast.Aggregate:
        measure = self.measure()
        op = self.peek()
        if op.kind is not Kind.OP:
            self.fail(op, "E103",
                      f"expected a comparison (=, !=, <, <=, >, >=) after the measure but found {op.describe()}")
        self.next()
        start = self.peek()
        value = self.number("a number to compare the measure with")
        lit = ast.Literal(value, start.span.to(self.prev().span))
        return ast.Aggregate(measure, op.text, lit, measure.span.to(lit.span))

    def rank(self) -> ast.Rank:
        start = self.expect_kw("top")
        tok = self.peek()
        amount = self.number("a number after \"top\"")
        percent = bool(self.accept(Kind.PUNCT, "%"))
        if not percent and amount != amount.to_integral_value():
            self.error(tok.span, "E104", 'top N needs a whole number (or a percentage such as "top 20%")')
        if amount <= 0 or (percent and amount > 100):
            self.error(tok.span, "E104", "top needs a positive number (percentages at most 100%)")
        elif percent and -amount.as_tuple().exponent > MAX_PERCENT_DECIMALS:  # type: ignore[operator]
            self.error(tok.span, "E104",
                       f"a percentage has at most {MAX_PERCENT_DECIMALS} decimal places")
        elif not percent and amount > MAX_INT:
            self.error(tok.span, "E104", f"top N is at most {MAX_INT}")
        self.expect_kw("by", ' after "top N"')
        if not self.at_kw("sum", "avg", "min", "max", "count"):
            self.fail(self.peek(), "E103", "expected a measure (sum, avg, min, max, count) after \"by\" "
                                           f"but found {self.peek().describe()}")
        measure = self.measure()
        return ast.Rank(amount, percent, measure, start.span.to(measure.span))


@dataclass
class _Settings:
    where: ast.Condition | None = None
    description: str | None = None
    owner: str | None = None
    tags: list[str] = field(default_factory=list)
    holdout: Decimal = Decimal(0)
    syncs: list[ast.Sync] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)


def parse_iso_datetime(text: str) -> datetime | None:
    """ISO 8601 date or date-time; a date alone is midnight UTC, a naive time is UTC."""
    if len(text) < 10 or not text[:4].isdigit() or text[4] != "-":
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _slice(source: str, starts: list[int], span: Span) -> str:
    """The text of a span, by offsets (lines counted as the lexer counts them): constant time per
    block, so a file of many blocks is parsed in time linear in its size."""
    if not 1 <= span.line <= len(starts) or not 1 <= span.end_line <= len(starts):
        return ""
    begin = starts[span.line - 1] + span.col - 1
    end = starts[span.end_line - 1] + span.end_col - 1
    return source[begin:end]
