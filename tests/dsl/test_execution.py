"""Audiences run on the fixture warehouse (DuckDB and PostgreSQL) against hand-written answers.

Every expected member set below was worked out by hand from the rows in
tests/warehouse_fixture.py (as_of = 2026-06-30T12:00:00Z); the `why` text says which rows decide
it. Both engines must give the same, exact answer (dsl.md: "identical on every warehouse").

Fixture cheat sheet (fans):
  1 London     GB score 10   vip true  signup 2026-01-05 10:00    born 1990-01-01
  2 London     GB score null vip false signup 2025-12-31 23:59:59 born 1985-05-05
  3 Paris      FR score 5    vip null  signup 2026-02-01          born 2000-02-02
  4 (null)     US score 1    vip false signup null                born null
  5 Lon%don    DE score 7    vip false signup 2026-03-01          born 1995-03-03
  6 london     GB score 10   vip false signup 2026-04-01          born 1999-09-09
  7 O'Brien... IE score 3    vip false signup 2026-05-01          born 1980-08-08
  8 Manchester GB score 2    vip false signup 2026-06-01          born 2001-01-01
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from audience.build import member_keys
from audience.project import Project, load_project
from tests.warehouse_fixture import AS_OF, project_on

ALL = frozenset(range(1, 9))


@dataclass(frozen=True)
class Case:
    name: str
    where: str
    expected: frozenset[int]
    why: str


def case(name: str, where: str, expected: set[int] | frozenset[int], why: str) -> Case:
    return Case(name, where, frozenset(expected), why)


COMPARE = [
    case("eq_string", 'city = "London"', {1, 2}, "case-sensitive: fan 6 is 'london', fan 5 'Lon%don'"),
    case("neq_drops_null", "score != 10", {3, 4, 5, 7, 8}, "fan 2's score is null: != is false"),
    case("not_eq_keeps_null", "not (score = 10)", {2, 3, 4, 5, 7, 8}, "not flips false to true for fan 2"),
    case("not_eq_bare", "not score = 10", {2, 3, 4, 5, 7, 8}, "not binds the comparison"),
    case("neq_string_null", 'city != "London"', {3, 5, 6, 7, 8}, "fan 4's city is null"),
    case("not_eq_string", 'not city = "London"', {3, 4, 5, 6, 7, 8}, "fan 4 kept by not"),
    case("is_null", "score is null", {2}, "only fan 2 has no score"),
    case("is_not_null", "score is not null", ALL - {2}, "everyone but fan 2"),
    case("not_is_null", "not city is null", ALL - {4}, "fan 4 has no city"),
    case("lt", "score < 5", {4, 7, 8}, "scores 1, 3, 2"),
    case("le", "score <= 5", {3, 4, 7, 8}, "fan 3 has exactly 5"),
    case("gt", "score > 7", {1, 6}, "two tens"),
    case("ge", "score >= 7", {1, 5, 6}, "fan 5 has exactly 7"),
    case("negative", "score > -1", ALL - {2}, "every non-null score is positive"),
    case("decimal", "score > 6.5", {1, 5, 6}, "7, 10, 10"),
    case("in_numbers", "score in (1, 2, 3)", {4, 7, 8}, "scores 1, 3, 2"),
    case("not_in_drops_null", "score not in (1, 2, 3)", {1, 3, 5, 6}, "fan 2 (null) left out"),
    case("not_of_in", "not score in (1, 2, 3)", {1, 2, 3, 5, 6}, "fan 2 kept by not"),
    case("in_strings", 'city in ("London", "Paris")', {1, 2, 3}, "exact strings only"),
    case("in_single", 'country in ("GB")', {1, 2, 6, 8}, "the four GB fans"),
    case("between_incl", "score between 3 and 7", {3, 5, 7}, "inclusive: 5, 7 and 3"),
    case("between_point", "score between 10 and 10", {1, 6}, "both ends inclusive"),
    case("between_reversed", "score between 7 and 3", set(), "a <= x <= b with a > b is empty"),
    case("not_between", "not score between 3 and 7", {1, 2, 4, 6, 8}, "fan 2 kept by not"),
    case("contains_on", 'city contains "on"', {1, 2, 5, 6}, "London x2, Lon%don, london"),
    case("contains_case", 'city contains "Lon"', {1, 2, 5}, "fan 6 'london' is lower-case"),
    case("contains_percent", 'city contains "%"', {5}, "% is a plain character"),
    case("contains_underscore", 'city contains "_"', set(), "_ is a plain character"),
    case("contains_pattern", 'city contains "n%d"', {5}, "only 'Lon%don' holds 'n%d'"),
    case("contains_quote", "city contains \"O'Brien\"", {7}, "a quote inside the string"),
    case("not_contains", 'not city contains "on"', {3, 4, 7, 8}, "fan 4 (null city) kept by not"),
    case("starts_with", 'city starts with "Lon"', {1, 2, 5}, "case-sensitive prefix"),
    case("starts_with_lower", 'city starts with "lon"', {6}, "only 'london'"),
    case("starts_with_percent", 'city starts with "Lon%"', {5}, "% is a plain character"),
    case("starts_with_underscore", 'city starts with "L_n"', set(), "_ is a plain character"),
    case("starts_with_only_percent", 'city starts with "%"', set(), "no city starts with %"),
    case("bool_true", "vip = true", {1}, "fan 1 only"),
    case("bool_false", "vip = false", {2, 4, 5, 6, 7, 8}, "fan 3's vip is null"),
    case("bool_neq", "vip != true", {2, 4, 5, 6, 7, 8}, "fan 3 (null) left out"),
    case("bool_not", "not vip = true", ALL - {1}, "fan 3 kept by not"),
    case("bool_null", "vip is null", {3}, "fan 3"),
    case("ts_ge", 'signup_at >= "2026-01-05T10:00:00Z"', {1, 3, 5, 6, 7, 8}, "fan 1 exactly on it"),
    case("ts_gt", 'signup_at > "2026-01-05T10:00:00Z"', {3, 5, 6, 7, 8}, "fan 1 exactly on it"),
    case("ts_lt_date", 'signup_at < "2026-01-01"', {2}, "date = midnight UTC; fan 2 at 23:59:59"),
    case("ts_eq_date", 'signup_at = "2026-02-01"', {3}, "fan 3 signed up at midnight"),
    case("ts_between", 'signup_at between "2026-01-01" and "2026-03-01"', {1, 3, 5},
         "inclusive: fan 5 exactly at 2026-03-01 00:00"),
    case("ts_offset_le", 'signup_at <= "2026-01-01T00:59:59+01:00"', {2}, "= 2025-12-31T23:59:59Z"),
    case("ts_offset_lt", 'signup_at < "2026-01-01T00:59:59+01:00"', set(), "strict"),
    case("ts_naive_is_utc", 'signup_at >= "2026-06-01T00:00:00"', {8}, "a naive time is UTC"),
    case("ts_null", "signup_at is null", {4}, "fan 4"),
    case("date_lt", 'birth_date < "1990-01-01"', {2, 7}, "1985 and 1980"),
    case("date_le", 'birth_date <= "1990-01-01"', {1, 2, 7}, "fan 1 born on it"),
    case("date_between", 'birth_date between "1995-03-03" and "2000-02-02"', {3, 5, 6},
         "both ends inclusive: fans 5 and 3 are on them"),
    case("date_neq", 'birth_date != "1990-01-01"', {2, 3, 5, 6, 7, 8}, "fan 4 (null) left out"),
    case("qualified", 'profile.city = "Paris"', {3}, "profile.column is the profile table"),
]

LOGIC = [
    case("or_and_not", '(city = "London" or city = "Paris") and not (score = 10)', {2, 3},
         "fan 1 has 10; fan 2's null score passes not"),
    case("not_and", 'not (city = "London" and score = 10) and country = "GB"', {2, 6, 8},
         "GB fans 1, 2, 6, 8 minus fan 1"),
    case("double_not", 'not not city = "Paris"', {3}, "two nots cancel"),
    case("and_binds_tighter", 'city = "Paris" or city = "London" and score = 10', {1, 3},
         "Paris, or (London and 10)"),
    case("parens_override", '(city = "Paris" or city = "London") and score = 10', {1},
         "only fan 1 is London/Paris with 10"),
    case("deep_not", 'not (city = "London" or score is null or (country = "GB" and not vip = true))',
         {3, 4, 5, 7}, "inner part holds for 1, 2, 6, 8"),
]

EVENTS = [
    case("did_plain", "did purchase", {1, 2, 3, 4, 5, 6}, "fans 7, 8 never bought"),
    case("did_not", "did not purchase", {7, 8}, "no events at all satisfies did not"),
    case("did_filter", 'did purchase where category = "album"', {2, 3, 6}, "album rows"),
    case("filter_neq", 'did stream where genre != "dubstep"', {1, 3, 4, 5, 7},
         "grime, pop, house, dub%step, house; null genres never match !="),
    case("filter_not_eq", 'did stream where (not genre = "pop")', {1, 2, 3, 4, 5, 6, 7},
         "fan 3's null-genre row passes not"),
    case("filter_neq_pop", 'did stream where genre != "pop"', {1, 2, 4, 5, 6, 7},
         "fan 3 has only pop and a null genre"),
    case("filter_is_null", "did stream where genre is null", {3}, "fan 3's unknown genre"),
    case("filter_parens", 'did stream where (genre = "house" and seconds >= 300)', {4, 7},
         "house streams of 300 s"),
    case("filter_or_count", 'did stream where (genre = "dubstep" or genre = "grime") at least 7 times',
         {1}, "fan 1: 6 dubstep + 1 grime up to as_of"),
    case("bare_filter_then_profile", 'did purchase where category = "album" and city = "London"', {2},
         "a bare filter is one comparison; city is the profile's"),
    case("filter_between", "did stream where seconds between 180 and 200", {1}, "fan 1's 180/200 s"),
    case("filter_contains", 'did stream where genre contains "%"', {5}, "'dub%step'"),
    case("filter_starts", 'did stream where genre starts with "dub"', {1, 2, 5, 6}, "dubstep, dub%step"),
    case("at_least_window", 'did stream where genre = "dubstep" at least 5 times in last 30 days', {1},
         "fan 1: 5 (one at as_of, one 1 s after the bound); fan 6's 5 are on the bound"),
    case("at_least_6_window", 'did stream where genre = "dubstep" at least 6 times in last 30 days',
         set(), "fan 1's sixth is exactly on the exclusive bound"),
    case("at_least_6", 'did stream where genre = "dubstep" at least 6 times', {1}, "no window"),
    case("at_least_5", 'did stream where genre = "dubstep" at least 5 times', {1, 6}, "fan 6 has 5"),
    case("exactly_5", 'did stream where genre = "dubstep" exactly 5 times', {6}, "fan 1 has 6"),
    case("exactly_4_future", 'did stream where genre = "dubstep" exactly 4 times', {2},
         "fan 2's fifth stream is after as_of"),
    case("exactly_5_window", 'did stream where genre = "dubstep" exactly 5 times in last 30 days', {1},
         "fan 1's 5 in the window"),
    case("at_most_window", 'did stream where genre = "dubstep" at most 4 times in last 30 days',
         ALL - {1}, "holds for profiles without events"),
    case("at_most_1", "did stream at most 1 times", {5, 7, 8}, "one stream each; fan 8 none"),
    case("exactly_0_window", "did stream exactly 0 times in last 30 days", {6, 8},
         "fan 6's streams are on the exclusive bound; fan 8 never streamed"),
    case("exactly_0", "did purchase exactly 0 times", {7, 8}, "never bought"),
    case("at_most_0", "did purchase at most 0 times", {7, 8}, "never bought"),
    case("at_least_0", "did purchase at least 0 times", ALL, "always true"),
    case("did_not_at_least_0", "did not purchase at least 0 times", set(), "never true"),
    case("did_not_at_least_5", 'did not stream where genre = "dubstep" at least 5 times',
         {2, 3, 4, 5, 7, 8}, "complement of {1, 6}"),
    case("did_not_at_most_1", "did not purchase at most 1 times", {2, 3, 5},
         "complement of {1, 4, 6, 7, 8} (fans 7, 8 have 0 <= 1)"),
    case("did_not_exactly_0", "did not purchase exactly 0 times", {1, 2, 3, 4, 5, 6}, "bought something"),
    case("not_did_filter_window",
         'not did purchase where category in ("album", "merch", "ticket", "vinyl") in last 90 days',
         {1, 3, 7, 8}, "2, 4, 5, 6 bought non-ringtones after 2026-04-01 12:00; fan 3's are older"),
]

WINDOWS = [
    case("last_minute", "did stream in last 1 minutes", {1}, "as_of inclusive; fan 2's is 1 s after"),
    case("since_as_of", 'did stream since "2026-06-30T12:00:00Z"', {1}, "since is inclusive"),
    case("since_day", 'did stream since "2026-06-30"', {1}, "fan 2's 12:00:01 is after as_of"),
    case("future_never_counts", 'count(stream) where genre = "dubstep" = 4', {2},
         "fan 2: 4 before as_of, 1 after"),
    case("since_date", 'did purchase since "2026-06-10"', {4, 6}, "fan 6 exactly at midnight"),
    case("before_date", 'did purchase before "2026-06-10"', {1, 2, 3, 5}, "fan 6 at midnight excluded"),
    case("between_dates", 'did purchase between "2026-06-03" and "2026-06-10"', {2, 5},
         "a inclusive (fan 2 on 06-03), b exclusive (fan 6 on 06-10)"),
    case("since_z", 'did purchase since "2026-06-10T10:30:00Z"', {4}, "fan 4 exactly at it"),
    case("since_z_plus_1", 'did purchase since "2026-06-10T10:30:01Z"', set(), "one second later"),
    case("since_offset", 'did purchase since "2026-06-10T11:30:00+01:00"', {4}, "= 10:30Z"),
    case("before_z", 'did purchase before "2026-06-10T10:30:00Z"', {1, 2, 3, 5, 6}, "fan 4 excluded"),
    case("before_z_plus_1", 'did purchase before "2026-06-10T10:30:01Z"', {1, 2, 3, 4, 5, 6}, "strict"),
    case("between_times", 'did purchase between "2026-06-10T00:00:00Z" and "2026-06-10T10:30:00Z"', {6},
         "fan 6 at a (inclusive), fan 4 at b (exclusive)"),
    case("last_30_days_bound", 'did stream where genre = "dubstep" in last 30 days', {1, 2},
         "fan 6's streams are exactly as_of - 30 days: excluded"),
    case("last_720_hours", "did stream in last 720 hours", {1, 2, 3, 4, 5, 7}, "fan 6 on the bound"),
    case("last_4320_minutes", "did stream in last 4320 minutes", {1}, "3 days: fan 1's 06-29 and 06-30"),
    case("last_week", 'did stream where genre = "dubstep" in last 1 weeks', {1}, "after 06-23 12:00"),
    case("last_10_days", "did clip_sample in last 10 days", {1}, "06-21 in; 06-20 00:00 out"),
    case("last_4_weeks", "did purchase in last 4 weeks", {2, 4, 5, 6}, "after 2026-06-02 12:00"),
]

AGGREGATES = [
    case("count_eq_0", "count(purchase) = 0", {7, 8}, "count over nothing is 0"),
    case("count_lt_1", "count(purchase) < 1", {7, 8}, "count over nothing is 0"),
    case("count_ge_2", "count(purchase) >= 2", {2, 3, 5}, "two purchases each"),
    case("count_ne_1", "count(purchase) != 1", {2, 3, 5, 7, 8}, "0 != 1 holds for 7, 8"),
    case("count_window", "count(stream) in last 30 days > 0", {1, 2, 3, 4, 5, 7}, "fan 6 on the bound"),
    case("count_filter_window_le", 'count(stream) where genre = "dubstep" in last 30 days <= 4',
         ALL - {1}, "fan 1 has 5; no events is 0"),
    case("sum_le_0", "sum(purchase.amount) <= 0", {7, 8}, "sum over nothing is 0"),
    case("sum_lt_1", "sum(purchase.amount) < 1", {1, 7, 8}, "fan 1 spent 0.99"),
    case("sum_null_amount", 'sum(purchase.amount) where category = "ticket" = 0', {1, 2, 3, 5, 6, 7, 8},
         "fan 5's ticket has a NULL amount: sum ignores it and is 0"),
    case("sum_merch", 'sum(purchase.amount) where category = "merch" > 29', {5}, "fan 5's 30"),
    case("sum_ge_30", "sum(purchase.amount) >= 30", {3, 4, 5}, "35, 50, 30 (+ NULL ignored)"),
    case("sum_int", "sum(stream.seconds) > 1000", {1}, "fan 1: 200 + 5 x 180 + 100 = 1200"),
    case("sum_int_eq", "sum(stream.seconds) = 600", {4}, "the twin 300 s streams"),
    case("sum_window", 'sum(purchase.amount) between "2026-06-01" and "2026-06-04" > 10', {2},
         "fan 2: 9.99 + 1.99"),
    case("avg_nothing_false", "avg(purchase.amount) < 100", {1, 2, 3, 4, 5, 6}, "avg over nothing is null"),
    case("not_avg", "not (avg(purchase.amount) < 100)", {7, 8}, "not flips the false"),
    case("avg_ignores_null", "avg(purchase.amount) = 30", {5}, "avg(30, NULL) = 30"),
    case("min_null_only", 'min(purchase.amount) where category = "ticket" < 100', {4},
         "fan 5's only ticket amount is NULL"),
    case("max_null_only", 'max(purchase.amount) where category = "ticket" >= 0', {4}, "same"),
    case("max_ge_0", "max(purchase.amount) >= 0", {1, 2, 3, 4, 5, 6}, "max over nothing is null"),
    case("avg_seconds", "avg(stream.seconds) > 180", {4, 7}, "fan 1 averages 1200/7"),
    case("min_seconds", "min(stream.seconds) >= 300", {4, 7}, "house streams"),
    case("max_seconds", "max(stream.seconds) < 101", {2, 3, 5}, "fan 6's max is 104"),
    case("count_distinct_ge_2", "count distinct(stream.genre) >= 2", {1}, "dubstep + grime"),
    case("count_distinct_1", "count distinct(stream.genre) = 1", {2, 3, 4, 5, 6, 7},
         "fan 3: pop and NULL -> 1 (nulls ignored)"),
    case("count_distinct_0", "count distinct(stream.genre) = 0", {8}, "no events: 0"),
    case("count_distinct_cat", "count distinct(purchase.category) = 2", {2, 3, 5}, "two categories"),
    case("count_distinct_window", "count distinct(stream.genre) in last 30 days = 0", {6, 8},
         "fan 6 on the bound, fan 8 none"),
]

RANKS = [
    case("top_1", "top 1 by count(stream)", {1}, "counts: 1:7 6:5 2:4 3:2 4:2 5:1 7:1"),
    case("top_3", "top 3 by count(stream)", {1, 2, 6}, "ranks 1..3"),
    case("top_4_tie", "top 4 by count(stream)", {1, 2, 3, 4, 6}, "fans 3 and 4 share rank 4"),
    case("top_5_rank_gap", "top 5 by count(stream)", {1, 2, 3, 4, 6}, "RANK: next is 6"),
    case("top_6", "top 6 by count(stream)", {1, 2, 3, 4, 5, 6, 7}, "fans 5, 7 share rank 6"),
    case("top_50pct", "top 50% by count(stream)", {1, 2, 3, 4, 6}, "n=7, ceil(3.5)=4"),
    case("top_10pct", "top 10% by count(stream)", {1}, "ceil(0.7)=1"),
    case("top_42_8pct", "top 42.8% by count(stream)", {1, 2, 6}, "ceil(2.996)=3"),
    case("top_42_9pct", "top 42.9% by count(stream)", {1, 2, 3, 4, 6}, "ceil(3.003)=4"),
    case("top_100pct", "top 100% by count(stream)", {1, 2, 3, 4, 5, 6, 7}, "every ranked profile"),
    case("top_50pct_exact", "top 50% by sum(purchase.amount)", {3, 4, 5},
         "n=6: 50% is exactly 3 (sums 4:50 3:35 5:30 2:11.98 6:10 1:0.99)"),
    case("top_50_0001pct", "top 50.0001% by sum(purchase.amount)", {2, 3, 4, 5}, "ceil(3.000006)=4"),
    case("top_20pct", "top 20% by sum(purchase.amount)", {3, 4}, "ceil(1.2)=2"),
    case("top_filtered", 'top 1 by sum(purchase.amount) where category = "ticket"', {4},
         "fan 4's 50 beats fan 5's 0"),
    case("top_window_all", "top 100% by count(stream) in last 30 days", {1, 2, 3, 4, 5, 7},
         "only profiles with a matching event are ranked (fan 6's are on the bound)"),
    case("top_window_1", "top 1 by count(stream) in last 30 days", {1}, "fan 1: 6 in the window"),
    case("top_independent", 'city = "Paris" and top 1 by count(stream)', set(),
         "ranking ignores the rest of the condition"),
    case("top_and_london", 'city = "London" and top 3 by count(stream)', {1, 2}, "1, 2 are London"),
    case("not_top", "not top 3 by count(stream)", {3, 4, 5, 7, 8}, "complement of {1, 2, 6}"),
    case("top_avg_tie", "top 1 by avg(stream.seconds)", {4, 7}, "both average 300"),
    case("top_avg_3", "top 3 by avg(stream.seconds)", {1, 4, 7}, "fan 1 averages 171.4"),
    case("top_count_distinct", "top 1 by count distinct(stream.genre)", {1}, "two genres"),
]

SEQUENCES = [
    case("seq_7_days", "did clip_sample then purchase within 7 days", {1, 3, 5},
         "fan 1 exactly 7 days (inclusive), fan 3 5 days, fan 5 same instant"),
    case("seq_6_days", "did clip_sample then purchase within 6 days", {3, 5}, "fan 1 needs 7"),
    case("seq_168_hours", "did clip_sample then purchase within 168 hours", {1, 3, 5}, "= 7 days"),
    case("seq_167_hours", "did clip_sample then purchase within 167 hours", {3, 5}, "one hour short"),
    case("seq_1_week", "did clip_sample then purchase within 1 weeks", {1, 3, 5}, "= 7 days"),
    case("seq_9_days", "did clip_sample then purchase within 9 days", {1, 3, 5, 6}, "fan 6: 9 days"),
    case("seq_8_days", "did clip_sample then purchase within 8 days", {1, 3, 5}, "fan 6 needs 9"),
    case("seq_window_last", "did clip_sample then purchase within 7 days in last 30 days", {5},
         "both inside the window: fan 1's clip of 05-25 is outside"),
    case("seq_window_since", 'did clip_sample then purchase within 7 days since "2026-01-01"', {1, 3, 5},
         "all inside"),
    case("seq_window_before", 'did clip_sample then purchase within 7 days before "2026-06-01"', {3},
         "fan 1's purchase at 06-01 00:00 is not before"),
    case("seq_window_between",
         'did clip_sample then purchase within 7 days between "2026-01-10" and "2026-06-05"', {1, 3},
         "fan 3's clip on a (inclusive); fan 5 on b (exclusive)"),
    case("seq_filters", 'did clip_sample where artist = "a" then purchase where category = "ringtone" '
         "within 7 days", {1}, "fan 1's clip of artist a, ringtone 7 days later"),
    case("seq_then_filter", 'did clip_sample then purchase where category = "album" within 7 days', {3},
         "fan 3's album; fan 1's is a ringtone, fan 5's merch"),
    case("seq_same_instant", "did clip_sample then purchase within 1 minutes", {5}, "same instant"),
    case("seq_order", "did purchase then clip_sample within 1 days", {2, 5},
         "fan 2's clip 12 h after a purchase; fan 5 same instant"),
    case("seq_b_before_a", "did clip_sample then purchase within 1 days", {5},
         "fan 2's purchases precede the clip"),
    case("seq_30_minutes", "did stream then purchase within 30 minutes", {4}, "exactly 30 min"),
    case("seq_29_minutes", "did stream then purchase within 29 minutes", set(), "one short"),
    case("seq_13_hours", "did stream then purchase within 13 hours", {1, 2, 4}, "fan 2: 11:00 -> 00:00"),
    case("seq_12_hours", "did stream then purchase within 12 hours", {1, 4}, "fan 2 needs 13"),
    case("seq_self_1_min", "did stream then stream within 1 minutes", {1, 4, 6},
         "fan 1 1 s apart; fan 4 identical twins; fan 6 five at one instant; fan 7's single row "
         "cannot pair with itself"),
    case("seq_self_59_min", "did stream then stream within 59 minutes", {1, 4, 6}, "fan 2 hourly"),
    case("seq_self_1_hour", "did stream then stream within 1 hours", {1, 2, 4, 6}, "fan 2 exactly 1 h"),
    case("seq_self_1_day", "did stream then stream within 1 days", {1, 2, 3, 4, 6}, "fan 3 exactly 1 day"),
    case("seq_self_filters", 'did stream where genre = "house" then stream where genre = "house" '
         "within 1 minutes", {4}, "twins count, fan 7's single house row does not"),
    case("seq_genres", 'did stream where genre = "dubstep" then stream where genre = "grime" '
         "within 10 days", {1}, "06-20 dubstep -> 06-25 grime"),
    case("seq_genres_reverse_4d", 'did stream where genre = "grime" then stream where genre = "dubstep" '
         "within 4 days", {1}, "06-25 08:00 grime -> 06-29 08:00 dubstep"),
    case("seq_genres_reverse_3d", 'did stream where genre = "grime" then stream where genre = "dubstep" '
         "within 3 days", set(), "the next dubstep is 4 days later"),
    case("seq_self_first_filter", 'did stream where genre = "house" then stream within 1 minutes', {4},
         "fan 4's twin house rows pair; fan 7's single house row has no partner"),
    case("seq_self_then_filter_5d", 'did stream then stream where genre = "grime" within 5 days', {1},
         "fan 1's dubstep of 06-20 08:00 is exactly 5 days before the grime"),
    case("seq_self_then_filter_4d", 'did stream then stream where genre = "grime" within 4 days', set(),
         "within 4 days only the grime row itself, which cannot pair with itself"),
    case("seq_self_dubstep_instant", 'did stream where genre = "dubstep" then stream within 1 minutes',
         {1, 6}, "fan 1: 12:00:00 -> 12:00:01; fan 6: five rows of one instant"),
    case("seq_self_instant_other_row", "did stream then stream where seconds = 104 within 1 minutes", {6},
         "fan 6's 104 s row and another row of the same instant"),
    case("seq_self_same_single_row", "did stream where seconds = 104 then stream where seconds = 104 "
         "within 1 minutes", set(), "only one row has 104 s: a and b must be distinct rows"),
    case("seq_self_two_rows_of_instant", "did stream where seconds = 104 then stream where seconds = 103 "
         "within 1 minutes", {6}, "two distinct rows of fan 6's instant"),
    case("seq_self_window", "did stream then stream within 1 minutes in last 30 days", {4},
         "fan 1's pair starts on the exclusive bound; fan 6's are on it"),
    case("not_seq", "not did clip_sample then purchase within 7 days", {2, 4, 6, 7, 8}, "complement"),
]

MEMBERSHIP = [
    case("in_london", "in audience m_london", {1, 2}, "m_london is city = London (holdout ignored)"),
    case("not_in_london", "not in audience m_london", {3, 4, 5, 6, 7, 8}, "complement"),
    case("in_and", 'in audience m_london and did purchase where category = "album"', {2}, "fan 2"),
    case("in_chain", "in audience m_chain", {2, 3}, "m_chain = m_london_album_buyers or Paris"),
    case("london_dubstep", 'city = "London" and country = "GB" '
         'and did stream where genre = "dubstep" at least 5 times in last 30 days '
         "and did clip_sample at least 2 times in last 30 days "
         'and not did purchase where category in ("album", "merch", "ticket", "vinyl") in last 90 days', {1},
         "fan 1: 5 dubstep, clips 06-20/06-21, only a ringtone"),
    case("london_dubstep_3_clips", 'city = "London" and country = "GB" '
         'and did stream where genre = "dubstep" at least 5 times in last 30 days '
         "and did clip_sample at least 3 times in last 30 days", set(),
         "fan 1's third clip (05-25) is outside the window"),
]

HELPERS = """
audience m_london {
  where: city = "London"
  holdout: 50%
}
audience m_london_album_buyers { where: in audience m_london and did purchase where category = "album" }
audience m_chain { where: in audience m_london_album_buyers or city = "Paris" }
"""

CASES = COMPARE + LOGIC + EVENTS + WINDOWS + AGGREGATES + RANKS + SEQUENCES + MEMBERSHIP


def project_text() -> str:
    blocks = [f"audience {c.name} {{\n  where: {c.where}\n}}\n" for c in CASES]
    return HELPERS + "\n".join(blocks)


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    tmp: Path = tmp_path_factory.mktemp(f"exec_{request.param}")
    with project_on(request.param, tmp, project_text()) as root:
        loaded = load_project(root)
        try:
            yield loaded
        finally:
            loaded.close()


def test_case_names_are_unique() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))


def test_every_audience_checks_clean(project: Project) -> None:
    assert [d.format() for d in project.diagnostics] == []


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_members(project: Project, c: Case) -> None:
    assert member_keys(project, c.name, AS_OF) == sorted(c.expected), c.why
