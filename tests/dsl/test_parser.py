"""Every construct of dsl.md parses into the expected AST (spans checked separately)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from dsl import ast
from dsl.diagnostics import NO_SPAN, Span
from dsl.parser import parse, parse_condition

S = NO_SPAN


def strip(node: Any) -> Any:
    """The node with every span replaced by NO_SPAN, so shapes compare by content only."""
    if isinstance(node, Span):
        return NO_SPAN
    if isinstance(node, tuple):
        return tuple(strip(n) for n in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {f.name: strip(getattr(node, f.name)) for f in dataclasses.fields(node)}
        return dataclasses.replace(node, **changes)
    return node


def cond(text: str) -> ast.Condition:
    parsed, diags = parse_condition(text)
    assert [d.format() for d in diags] == []
    assert parsed is not None
    return strip(parsed)


# -- small constructors for expected trees -------------------------------------------------------
def f(column: str, qualified: bool = False) -> ast.FieldRef:
    return ast.FieldRef(column, S, qualified)


def lit(value: str | int | float | bool) -> ast.Literal:
    if isinstance(value, (bool, str)):
        return ast.Literal(value, S)
    return ast.Literal(Decimal(str(value)), S)


def cmp(column: str, op: str, value: str | int | float | bool) -> ast.Compare:
    return ast.Compare(f(column), op, lit(value), S)


def ev(name: str) -> ast.EventRef:
    return ast.EventRef(name, S)


def date(text: str, value: datetime) -> ast.DateLit:
    return ast.DateLit(value, text, S)


def dur(amount: int, unit: str) -> ast.Duration:
    return ast.Duration(amount, unit, S)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_comparison_operators(op: str) -> None:
    assert cond(f'city {op} "London"') == cmp("city", op, "London")


@pytest.mark.parametrize(("text", "value"), [
    ('"London"', "London"), ("10", Decimal("10")), ("-1", Decimal("-1")), ("2.5", Decimal("2.5")),
    ("true", True), ("false", False), ('"say \\"hi\\" \\\\ now"', 'say "hi" \\ now'),
])
def test_values(text: str, value: object) -> None:
    assert cond(f"x = {text}") == ast.Compare(f("x"), "=", ast.Literal(value, S), S)  # type: ignore[arg-type]


def test_qualified_profile_column() -> None:
    assert cond('profile.city = "x"') == ast.Compare(f("city", qualified=True), "=", lit("x"), S)


def test_in_and_not_in() -> None:
    assert cond('country in ("GB", "IE")') == ast.InList(f("country"), (lit("GB"), lit("IE")), False, S)
    assert cond("score not in (1)") == ast.InList(f("score"), (lit(1),), True, S)


def test_null_tests() -> None:
    assert cond("email is null") == ast.IsNull(f("email"), False, S)
    assert cond("email is not null") == ast.IsNull(f("email"), True, S)


def test_between_contains_starts_with() -> None:
    assert cond("score between 1 and 5") == ast.Between(f("score"), lit(1), lit(5), S)
    assert cond('city contains "on"') == ast.TextMatch(f("city"), "contains", lit("on"), S)
    assert cond('city starts with "Lo"') == ast.TextMatch(f("city"), "starts_with", lit("Lo"), S)


def test_precedence_not_and_or() -> None:
    a, b, c = cmp("a", "=", 1), cmp("b", "=", 2), cmp("c", "=", 3)
    assert cond("a = 1 or b = 2 and not c = 3") == ast.Or((a, ast.And((b, ast.Not(c, S)), S)), S)
    assert cond("(a = 1 or b = 2) and c = 3") == ast.And((ast.Or((a, b), S), c), S)
    assert cond("a = 1 and b = 2 and c = 3") == ast.And((a, b, c), S)
    assert cond("not not a = 1") == ast.Not(ast.Not(a, S), S)
    assert cond("not (a = 1 or b = 2)") == ast.Not(ast.Or((a, b), S), S)


def test_event_plain_and_negated() -> None:
    assert cond("did stream") == ast.Event(False, ev("stream"), None, None, None, S)
    assert cond("did not purchase") == ast.Event(True, ev("purchase"), None, None, None, S)


def test_event_filter_count_window() -> None:
    got = cond('did stream where genre = "dubstep" at least 5 times in last 30 days')
    assert got == ast.Event(False, ev("stream"), cmp("genre", "=", "dubstep"), ast.Count(">=", 5, S),
                            ast.Window("last", S, duration=dur(30, "day")), S)


def test_bare_filter_is_one_comparison() -> None:
    got = cond('did purchase where category = "album" and city = "London"')
    assert got == ast.And((ast.Event(False, ev("purchase"), cmp("category", "=", "album"), None, None, S),
                           cmp("city", "=", "London")), S)


def test_parenthesised_filter() -> None:
    got = cond('did stream where (genre = "dubstep" and not device = "mobile")')
    flt = ast.And((cmp("genre", "=", "dubstep"), ast.Not(cmp("device", "=", "mobile"), S)), S)
    assert got == ast.Event(False, ev("stream"), flt, None, None, S)


@pytest.mark.parametrize(("text", "count"), [
    ("at least 3 times", ast.Count(">=", 3, S)), ("at most 2 times", ast.Count("<=", 2, S)),
    ("exactly 0 times", ast.Count("=", 0, S)),
])
def test_counts(text: str, count: ast.Count) -> None:
    assert cond(f"did stream {text}") == ast.Event(False, ev("stream"), None, count, None, S)


@pytest.mark.parametrize(("text", "window"), [
    ("in last 1 minute", ast.Window("last", S, duration=dur(1, "minute"))),
    ("in last 5 minutes", ast.Window("last", S, duration=dur(5, "minute"))),
    ("in last 2 hours", ast.Window("last", S, duration=dur(2, "hour"))),
    ("in last 1 day", ast.Window("last", S, duration=dur(1, "day"))),
    ("in last 52 weeks", ast.Window("last", S, duration=dur(52, "week"))),
    ('since "2016-06-23"', ast.Window("since", S, start=date("2016-06-23", utc(2016, 6, 23)))),
    ('before "2016-06-23T08:00:00Z"',
     ast.Window("before", S, end=date("2016-06-23T08:00:00Z", utc(2016, 6, 23, 8)))),
    ('between "2016-06-23" and "2016-06-24T09:30:00+01:00"',
     ast.Window("between", S, start=date("2016-06-23", utc(2016, 6, 23)),
                end=date("2016-06-24T09:30:00+01:00", utc(2016, 6, 24, 8, 30)))),
])
def test_windows(text: str, window: ast.Window) -> None:
    assert cond(f"did stream {text}") == ast.Event(False, ev("stream"), None, None, window, S)


def test_measures_and_aggregates() -> None:
    assert cond("count(stream) >= 3") == ast.Aggregate(
        ast.Measure("count", ev("stream"), None, None, None, S), ">=", lit(3), S)
    assert cond('sum(purchase.amount) where category = "ticket" in last 90 days > 100.5') == ast.Aggregate(
        ast.Measure("sum", ev("purchase"), f("amount"), cmp("category", "=", "ticket"),
                    ast.Window("last", S, duration=dur(90, "day")), S), ">", lit(100.5), S)
    assert cond("count distinct(stream.artist) = 0") == ast.Aggregate(
        ast.Measure("count_distinct", ev("stream"), f("artist"), None, None, S), "=", lit(0), S)
    for func in ("avg", "min", "max"):
        assert cond(f"{func}(stream.seconds) < -2") == ast.Aggregate(
            ast.Measure(func, ev("stream"), f("seconds"), None, None, S), "<", lit(-2), S)


def test_ranks() -> None:
    measure = ast.Measure("sum", ev("purchase"), f("amount"), None, None, S)
    assert cond("top 20% by sum(purchase.amount)") == ast.Rank(Decimal("20"), True, measure, S)
    assert cond("top 2.5% by sum(purchase.amount)") == ast.Rank(Decimal("2.5"), True, measure, S)
    assert cond("top 10 by count(stream) in last 7 days") == ast.Rank(
        Decimal("10"), False,
        ast.Measure("count", ev("stream"), None, None, ast.Window("last", S, duration=dur(7, "day")), S), S)


def test_sequence() -> None:
    got = cond('did clip_sample where artist = "a" then purchase where (category = "album") '
               "within 7 days in last 180 days")
    assert got == ast.Sequence(
        ast.Step(ev("clip_sample"), cmp("artist", "=", "a"), S),
        ast.Step(ev("purchase"), cmp("category", "=", "album"), S),
        dur(7, "day"), ast.Window("last", S, duration=dur(180, "day")), S)
    assert cond("did stream then stream within 1 hours") == ast.Sequence(
        ast.Step(ev("stream"), None, S), ast.Step(ev("stream"), None, S), dur(1, "hour"), None, S)


def test_membership() -> None:
    assert cond("in audience lapsed_fans") == ast.Membership("lapsed_fans", S)
    assert cond("not in audience a and in audience b") == ast.And(
        (ast.Not(ast.Membership("a", S), S), ast.Membership("b", S)), S)


FULL = """# a comment line
audience london_dubstep_samplers {   # trailing comment
  description: "Eclectic London dubstep fans"
  owner: "music-marketing@label.example"
  tags: ["music", "uk"]

  where: city = "London" and country = "GB"

  holdout: 10%

  sync meta_ads { schedule: "0 6 * * *" }
  sync sandbox_dsp { schedule: "0 */6 * * *", mode: additive }
}
audience b { where: did stream, holdout: 2.5%, sync x }
"""


def test_audience_block_settings() -> None:
    result = parse(FULL, "audiences/music.aud")
    assert [d.format() for d in result.diagnostics] == []
    first, second = result.audiences
    assert first.name == "london_dubstep_samplers"
    assert first.file == "audiences/music.aud"
    assert first.description == "Eclectic London dubstep fans"
    assert first.owner == "music-marketing@label.example"
    assert first.tags == ("music", "uk")
    assert first.holdout == Decimal("10")
    assert strip(first.where) == ast.And((cmp("city", "=", "London"), cmp("country", "=", "GB")), S)
    assert [(s.destination, s.schedule, s.mode) for s in first.syncs] == [
        ("meta_ads", "0 6 * * *", "mirror"), ("sandbox_dsp", "0 */6 * * *", "additive")]
    assert (second.name, second.holdout, second.description, second.tags) == ("b", Decimal("2.5"), None, ())
    assert [(s.destination, s.schedule, s.mode) for s in second.syncs] == [("x", None, "mirror")]


def test_spans_point_at_tokens() -> None:
    result = parse(FULL, "audiences/music.aud")
    first = result.audiences[0]
    assert first.name_span == Span(2, 10, 2, 33)
    where = first.where
    assert isinstance(where, ast.And)
    city = where.items[0]
    assert isinstance(city, ast.Compare)
    assert city.field.span == Span(7, 10, 7, 14)
    assert city.value.span == Span(7, 17, 7, 25)
    assert first.syncs[0].schedule_span == Span(11, 29, 11, 40)
    assert first.source_text.startswith("audience london_dubstep_samplers {")
    assert first.source_text.endswith("}")


def test_keywords_are_lowercase_and_reserved() -> None:
    _, diags = parse_condition("City = 1")
    assert [d.code for d in diags] == ["E105"]
    _, diags = parse_condition("count = 1")
    assert [d.code for d in diags] == ["E103"]
