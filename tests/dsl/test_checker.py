"""Diagnostics in the exact one-line form of dsl.md: `file:line:col: error[CODE]: message`.

Lines and columns are counted by hand from the source text in each test (both from 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audience.project import load_project
from dsl.diagnostics import diagnostics_json, sort_diagnostics
from tests.dsl.catalogs import fixture_catalog, parse_and_check
from tests.warehouse_fixture import project_on

F = "audiences/test.aud"
HEALTH = "user.health_and_medical"


def errors(text: str, destinations: tuple[str, ...] = ("meta_ads",)) -> list[str]:
    _, diags = parse_and_check(text, fixture_catalog(), F, destinations)
    return [d.format() for d in sort_diagnostics(diags)]


def test_unknown_column_suggests_the_close_one() -> None:
    text = 'audience lapsed {\n  where: contry = "GB"\n}\n'
    assert errors(text) == [
        f'{F}:2:10: error[E201]: unknown column "contry" on profile table "fans"; did you mean "country"?']


def test_unknown_column_inside_an_event_filter_names_the_event_table() -> None:
    assert errors('audience a { where: did stream where genr = "x" }') == [
        f'{F}:1:38: error[E201]: unknown column "genr" on event "stream" (table "streams"); '
        'did you mean "genre"?']


def test_unknown_event() -> None:
    assert errors("audience a { where: did strem }") == [
        f'{F}:1:25: error[E202]: unknown event "strem"; did you mean "stream"?']


def test_unknown_audience() -> None:
    text = "audience londen { where: score = 1 }\naudience b { where: in audience londn }\n"
    assert errors(text) == [f'{F}:2:21: error[E203]: unknown audience "londn"; did you mean "londen"?']


def test_type_mismatch_number_vs_string() -> None:
    assert errors('audience a { where: score = "ten" }') == [
        f'{F}:1:29: error[E204]: type mismatch: "score" on profile table "fans" is number, '
        'but "ten" is a string']
    assert errors("audience a { where: city in (1) }") == [
        f'{F}:1:30: error[E204]: type mismatch: "city" on profile table "fans" is string, but 1 is a number']


def test_other_type_errors() -> None:
    assert errors("audience a { where: vip > true }") == [
        f'{F}:1:21: error[E204]: "vip" is boolean: compare it with = or !=']
    assert errors("audience a { where: sum(stream.genre) > 1 }") == [
        f'{F}:1:32: error[E204]: sum() needs a numeric column, but "genre" of event "stream" '
        '(table "streams") is string']
    assert errors('audience a { where: score contains "1" }') == [
        f'{F}:1:21: error[E204]: "contains" needs a text column, but "score" is number']
    assert errors('audience a { where: did stream where profile.city = "x" }') == [
        f"{F}:1:38: error[E207]: an event filter compares the event's own columns; "
        '"profile.city" belongs outside the filter']


def test_malformed_dates() -> None:
    assert errors('audience a { where: signup_at > "2026-13-01" }') == [
        f'{F}:1:33: error[E205]: malformed date "2026-13-01" for timestamp column "signup_at": '
        'use ISO 8601, e.g. "2016-06-23" or "2016-06-23T08:00:00Z"']
    assert errors('audience a { where: did stream since "yesterday" }') == [
        f'{F}:1:38: error[E205]: malformed date "yesterday": use ISO 8601, e.g. "2016-06-23" '
        'or "2016-06-23T08:00:00Z"']
    assert errors('audience a { where: birth_date = 19900101 }') == [
        f'{F}:1:34: error[E204]: "birth_date" is a date; compare it with a date string such as "2016-06-23"']


def test_window_that_ends_before_it_starts() -> None:
    assert errors('audience a { where: did stream between "2026-02-01" and "2026-01-01" }') == [
        f'{F}:1:40: error[E208]: window "between 2026-02-01 and 2026-01-01" ends before it starts']


def test_unknown_destination_in_sync() -> None:
    text = 'audience a {\n  where: city = "x"\n  sync meta_adz { schedule: "0 6 * * *" }\n}\n'
    assert errors(text) == [
        f'{F}:3:3: error[E403]: unknown destination "meta_adz" in audience "a"; declare it under '
        '[destinations] in audience.toml; did you mean "meta_ads"?']


def test_duplicate_audience_names_across_two_files(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, 'audience lapsed {\n  where: contry = "GB"\n}\n') as root:
        (root / "audiences" / "a_first.aud").write_text('# first\naudience lapsed { where: city = "x" }\n')
        project = load_project(root)
        try:
            assert [d.format() for d in project.diagnostics] == [
                'audiences/test.aud:1:10: error[E401]: audience "lapsed" is already defined at '
                "audiences/a_first.aud:2:10",
                # the duplicate's own errors are still reported in the same pass
                'audiences/test.aud:2:10: error[E201]: unknown column "contry" on profile table "fans"; '
                'did you mean "country"?',
            ]
        finally:
            project.close()


def test_membership_cycle() -> None:
    text = ("audience a { where: in audience b }\n"
            "audience b { where: in audience c and city = \"x\" }\n"
            "audience c { where: not in audience a }\n")
    assert errors(text) == [f"{F}:3:25: error[E402]: membership cycle: a -> b -> c -> a"]


def test_self_membership_is_a_cycle() -> None:
    assert errors("audience a { where: in audience a }") == [
        f"{F}:1:21: error[E402]: membership cycle: a -> a"]


# ---- sensitive data (consent.md): E3xx naming the category -------------------------------------
SENSITIVE = [
    ('audience a { where: religion = "x" }',
     f'{F}:1:21: error[E301]: column "fans.religion" is sensitive (user.demographic.religious_belief) '
     "and may never be used to target"),
    ("audience a { where: profile.religion is null }",
     f'{F}:1:21: error[E301]: column "fans.religion" is sensitive (user.demographic.religious_belief) '
     "and may never be used to target"),
    ("audience a { where: did mood }",
     f'{F}:1:25: error[E302]: table "mood_scores" of event "mood" is sensitive (user.inferred.emotion) '
     "and may never be used to target"),
    ("audience a { where: count(mood) > 1 }",
     f'{F}:1:27: error[E302]: table "mood_scores" of event "mood" is sensitive (user.inferred.emotion) '
     "and may never be used to target"),
    ('audience a { where: did purchase where category = "pharmacy" }',
     f'{F}:1:40: error[E303]: value "pharmacy" of column "purchases.category" is sensitive ({HEALTH}) '
     "and may never be used to target"),
    ('audience a { where: did purchase where category in ("album", "fertility") }',
     f'{F}:1:40: error[E303]: value "fertility" of column "purchases.category" is sensitive ({HEALTH}) '
     "and may never be used to target"),
    ('audience a { where: did purchase where category contains "harm" }',
     f'{F}:1:40: error[E303]: value "pharmacy" of column "purchases.category" is sensitive ({HEALTH}) '
     "and may never be used to target"),
    ('audience a { where: did purchase where category starts with "fert" }',
     f'{F}:1:40: error[E303]: value "fertility" of column "purchases.category" is sensitive ({HEALTH}) '
     "and may never be used to target"),
    ('audience a { where: sum(purchase.amount) where category = "pharmacy" > 1 }',
     f'{F}:1:48: error[E303]: value "pharmacy" of column "purchases.category" is sensitive ({HEALTH}) '
     "and may never be used to target"),
    ('audience a { where: top 5 by count(purchase) where category = "fertility" }',
     f'{F}:1:52: error[E303]: value "fertility" of column "purchases.category" is sensitive ({HEALTH}) '
     "and may never be used to target"),
    ('audience a { where: did stream then purchase where (category = "pharmacy") within 1 days }',
     f'{F}:1:53: error[E303]: value "pharmacy" of column "purchases.category" is sensitive ({HEALTH}) '
     "and may never be used to target"),
]


@pytest.mark.parametrize(("text", "expected"), SENSITIVE)
def test_sensitive_references(text: str, expected: str) -> None:
    assert errors(text) == [expected]


def test_sensitive_data_through_another_audience() -> None:
    text = ('audience devout { where: religion = "x" }\n'
            "audience wrapper { where: city = \"y\" or in audience devout }\n"
            "audience outer { where: not in audience wrapper }\n")
    assert errors(text) == [
        f'{F}:1:26: error[E301]: column "fans.religion" is sensitive (user.demographic.religious_belief) '
        "and may never be used to target",
        f'{F}:2:41: error[E304]: audience "wrapper" reaches sensitive data '
        "(user.demographic.religious_belief) through in audience devout: "
        f'column "fans.religion" at {F}:1:26',
        f'{F}:3:29: error[E304]: audience "outer" reaches sensitive data '
        "(user.demographic.religious_belief) through in audience wrapper -> in audience devout: "
        f'column "fans.religion" at {F}:1:26',
    ]


def test_contains_that_cannot_match_a_listed_value_is_allowed() -> None:
    assert errors('audience a { where: did purchase where category contains "album" }') == []


# ---- syntax and settings -------------------------------------------------------------------------
def test_invalid_cron_schedule() -> None:
    text = 'audience a {\n  where: city = "x"\n  sync meta_ads { schedule: "0 6 * *" }\n}\n'
    assert errors(text) == [
        f'{F}:3:29: error[E110]: invalid schedule "0 6 * *": expected a 5-field cron expression (UTC), '
        'e.g. "0 6 * * *"']


def test_unknown_setting() -> None:
    text = 'audience a {\n  where: city = "x"\n  color: "red"\n}\n'
    assert errors(text) == [
        f'{F}:3:3: error[E109]: unknown setting "color"; settings are description, owner, tags, where, '
        "holdout, sync"]


MANY = """# several problems, one pass
audience a {
  where: city =
  owner: 42
}
audience b {
  where: did stream at least times
}
audience c {
  where: city = "x" and contry = "GB"
  holdout: 150%
  sync meta_ads { schedule: "61 * * * *", mode: sideways }
}
audience d {
  where: did purchase where category = "pharmacy" and did mood
}
audience e { where: in audience nowhere }
"""


def test_every_error_of_a_file_in_one_pass() -> None:
    assert errors(MANY) == [
        f'{F}:4:3: error[E103]: expected a value (a string, a number, true or false) but found "owner"',
        f'{F}:4:10: error[E103]: expected a string for owner but found "42"',
        f'{F}:7:30: error[E103]: expected a whole number of times but found "times"',
        f'{F}:10:25: error[E201]: unknown column "contry" on profile table "fans"; did you mean "country"?',
        f"{F}:11:12: error[E108]: holdout must be at least 0% and below 100%",
        f'{F}:12:29: error[E110]: invalid schedule "61 * * * *": expected a 5-field cron expression '
        '(UTC), e.g. "0 6 * * *"',
        f'{F}:12:49: error[E108]: unknown sync mode "sideways"; use mirror, additive or replace',
        f'{F}:15:29: error[E303]: value "pharmacy" of column "purchases.category" is sensitive ({HEALTH}) '
        "and may never be used to target",
        f'{F}:15:59: error[E302]: table "mood_scores" of event "mood" is sensitive (user.inferred.emotion) '
        "and may never be used to target",
        f'{F}:17:21: error[E203]: unknown audience "nowhere"',
    ]


@pytest.mark.parametrize(("text", "expected"), [
    ('audience a { where: city = "x" }\n}\n', f'{F}:2:1: error[E103]: expected "audience" but found "}}"'),
    ('audience A { where: city = "x" }', f'{F}:1:10: error[E105]: invalid name "A"; names are lowercase, '
                                         'e.g. "a"'),
    ("audience a { }", f'{F}:1:10: error[E107]: audience "a" has no "where:" condition'),
    ('audience a { where: city = "x", where: city = "y" }', f'{F}:1:33: error[E106]: setting "where" is '
                                                             "given twice"),
    ("audience a { where: did stream in last 0 days }",
     f"{F}:1:40: error[E208]: a window or interval length must be at least 1"),
    ("audience a { where: did stream then stream within 101 weeks in last 5300 weeks }",
     f"{F}:1:69: error[E208]: a window or interval length must be at most 100 years"),
    ("audience a { where: score > 1234567890123456789012345678901234567890 }",
     f"{F}:1:29: error[E104]: number 1234567890123456789012345678901234567890 has more than 38 digits"),
    ("audience a { where: did stream at least 9999999999 times }",
     f"{F}:1:41: error[E104]: number 9999999999 is too large (at most 2147483647)"),
    ("audience a { where: top 2.00001% by count(stream) }",
     f"{F}:1:25: error[E104]: a percentage has at most 4 decimal places"),
    ('audience a { where: did stream where not genre = "x" }',
     f'{F}:1:38: error[E103]: a filter with "not" needs parentheses: where (not ...)'),
    ('audience a { where: city = "a\x00b" }', f"{F}:1:30: error[E102]: a string may not contain the NUL "
                                              "character"),
])
def test_syntax_errors(text: str, expected: str) -> None:
    assert errors(text) == [expected]


def test_lexer_errors_do_not_stop_the_parser() -> None:
    assert errors('audience a { where: city = "x }') == [
        f'{F}:1:28: error[E102]: unterminated string (a string ends with " on the same line)',
        f'{F}:1:32: error[E103]: expected "}}" to close audience "a" but found end of file',
    ]
    assert errors('audience a { where: city @ "x" }') == [
        f"{F}:1:26: error[E101]: unexpected character '@'",
        f'{F}:1:28: error[E103]: expected a comparison after "city" (=, !=, <, <=, >, >=, in, not in, '
        "is null, between, contains, starts with) but found a string",
    ]


def test_json_diagnostics_carry_line_and_column() -> None:
    _, diags = parse_and_check('audience a {\n  where: contry = "GB"\n}\n', fixture_catalog(), F)
    data = json.loads(diagnostics_json(diags))
    assert data == {"diagnostics": [{
        "file": F, "code": "E201", "severity": "error", "line": 2, "column": 10, "end_line": 2,
        "end_column": 16,
        "message": 'unknown column "contry" on profile table "fans"; did you mean "country"?'}]}


def test_render_shows_the_line_and_a_caret() -> None:
    text = 'audience a {\n  where: contry = "GB"\n}\n'
    _, diags = parse_and_check(text, fixture_catalog(), F)
    assert diags[0].render(text) == (
        f'{F}:2:10: error[E201]: unknown column "contry" on profile table "fans"; did you mean "country"?\n'
        '    where: contry = "GB"\n'
        "           ^^^^^^")


# ---- nesting limits: a diagnostic, never a RecursionError ------------------------------------------
def test_conditions_nested_too_deep() -> None:
    text = "audience a { where: " + "(" * 60 + 'city = "x"' + ")" * 60 + " }"
    assert errors(text) == [f"{F}:1:71: error[E104]: conditions nest more than 50 levels deep"]
    assert errors("audience a { where: " + "not " * 5000 + 'city = "x" }') == [
        f"{F}:1:221: error[E104]: conditions nest more than 50 levels deep"]


def test_nesting_at_the_limit_is_fine() -> None:
    assert errors("audience a { where: " + "(" * 49 + 'city = "x"' + ")" * 49 + " }") == []


def test_membership_chain_expanded_too_deep() -> None:
    chain = "".join(f"audience a{i} {{ where: not in audience a{i + 1} }}\n" for i in range(60))
    got = errors(chain + 'audience a60 { where: city = "x" }\n')
    # each link adds 2 levels (not, membership) to the leaf's 1: a{60-k} is 1 + 2k deep, so a0..a10
    assert got[0] == (f'{F}:1:10: error[E404]: audience "a0" nests 121 levels deep once the audiences it '
                      'includes are expanded (at most 100); shorten the chain of "in audience" or '
                      "simplify the condition")
    assert len(got) == 11  # a0 .. a10


def test_a_very_long_membership_chain_is_checked_without_recursion() -> None:
    chain = "".join(f"audience a{i} {{ where: in audience a{i + 1} }}\n" for i in range(3000))
    got = errors(chain + 'audience a3000 { where: religion = "x" }\n'
                 "audience z { where: in audience z2 }\naudience z2 { where: in audience z }\n")
    assert f"{F}:3003:22: error[E402]: membership cycle: z -> z2 -> z" in got
    assert got[0] == (f'{F}:1:10: error[E404]: audience "a0" nests 3001 levels deep once the audiences it '
                      'includes are expanded (at most 100); shorten the chain of "in audience" or '
                      "simplify the condition")
