"""The privacy rules of consent.md/dsl.md, attacked as a hostile planner would.

1. On a column with listed sensitive values (the fixture's `purchases.category`: `pharmacy`,
   `fertility`, user.health_and_medical) a condition stands only if it is false for every listed
   value — selecting by exclusion is still selecting.
2. The profile key, identifier columns and event keys may only be tested for null.

Expected diagnostics are written out by hand (columns counted in the source text); the property
tests compare `check` with a plain-Python evaluator written here, and run allowed conditions on
DuckDB.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.catalog import Catalog, SensitiveValues
from dsl.compiler import compile_audience
from dsl.diagnostics import sort_diagnostics
from tests.dsl.catalogs import fixture_catalog, parse_and_check, table
from tests.dsl.strategies import quote

F = "audiences/test.aud"
HEALTH = "user.health_and_medical"
LISTED = ("pharmacy", "fertility")
PHARMACY = (f'value "pharmacy" of column "purchases.category" is sensitive ({HEALTH}) '
            "and may never be used to target")
FERTILITY = PHARMACY.replace('"pharmacy"', '"fertility"')
REASON = "identifiers are for matching at the destination, never for picking out a person"
NULL_ONLY = 'only "is null" / "is not null" may test it'
NO_MEASURE = "a measure may not read it"


def errors(text: str, catalog: Catalog | None = None) -> list[str]:
    _, diags = parse_and_check(text, catalog or fixture_catalog(), F)
    return [d.format() for d in sort_diagnostics(diags)]


def one(where: str) -> list[str]:
    """Diagnostics of `audience a { where: <where> }`; the condition starts at column 21."""
    return errors(f"audience a {{ where: {where} }}")


# ---- 1. listed values: the attacks of issue #15, each refused ------------------------------------
EVERY_OTHER = '("merch", "vinyl", "ticket", "album", "single", "ringtone")'
ATTACKS = [
    # (where, the part the diagnostic points at (its first occurrence), the listed value named)
    (f"did purchase where category not in {EVERY_OTHER}", "category", PHARMACY),
    ('did purchase where (category != "merch" and category != "vinyl" and category != "album")', "category",
     PHARMACY),
    (f"did purchase where (not (category in {EVERY_OTHER}))", "not", PHARMACY),
    (f"did purchase where (not not not (category in {EVERY_OTHER}))", "not", PHARMACY),
    ('did purchase where (not (category = "vinyl"))', "not", PHARMACY),
    ('did purchase where category != "vinyl"', "category", PHARMACY),
    ('did purchase where category > "o"', "category", PHARMACY),
    ('did purchase where category >= "pharmacy"', "category", PHARMACY),
    ('did purchase where category < "g"', "category", FERTILITY),
    ('did purchase where category <= "fertility"', "category", FERTILITY),
    ('did purchase where category between "p" and "q"', "category", PHARMACY),
    ('did purchase where category between "fertility" and "fertility"', "category", FERTILITY),
    ('did purchase where category contains ""', "category", PHARMACY),
    ('did purchase where category contains "cy"', "category", PHARMACY),
    ('did purchase where category starts with ""', "category", PHARMACY),
    ('did purchase where category starts with "p"', "category", PHARMACY),
    ('did purchase where category starts with "pharmac"', "category", PHARMACY),
    ('did purchase where category starts with "fertility"', "category", FERTILITY),
    ("did purchase where category is not null", "category", PHARMACY),
    ("did purchase where (not (category is null))", "not", PHARMACY),
    # an unknown about another column can make it true for a pharmacy purchase over 100: the
    # whole `or` is to blame
    ('did purchase where (category = "vinyl" or amount > 100)', "category", PHARMACY),
    # blamed on the part that can hold for a listed value
    ('did purchase where (amount > 100 and (category = "vinyl" or category != "album"))', 'category !=',
     PHARMACY),
    ('did purchase where (category = "vinyl" or not (category = "vinyl"))', "not", PHARMACY),
    # measures, ranks and both steps of a sequence
    ('count(purchase) where category != "vinyl" > 2', "category", PHARMACY),
    ('sum(purchase.amount) where (not (category = "vinyl")) > 1', "not", PHARMACY),
    ('top 5 by count(purchase) where category not in ("vinyl")', "category", PHARMACY),
    ('top 10% by max(purchase.amount) where category > "o"', "category", PHARMACY),
    ('did purchase where category != "x" then stream within 1 days', "category", PHARMACY),
    ('did stream then purchase where (category contains "y") within 1 days', "category", PHARMACY),
    # inside a profile-level not, an or, a count and a window: the filter is decided on its own
    ('city = "x" or not did purchase where category != "vinyl" at least 2 times in last 9 days', "category",
     PHARMACY),
]


def at(where: str, part: str) -> int:
    """The column of `part` in `audience a { where: <where> }` (the condition starts at column 21)."""
    return 21 + where.index(part)


@pytest.mark.parametrize(("where", "part", "message"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_conditions_that_can_hold_for_a_listed_value_are_refused(where: str, part: str, message: str) -> None:
    assert one(where) == [f"{F}:1:{at(where, part)}: error[E303]: {message}"]


STANDS = [
    'did purchase where category = "vinyl"',
    'did purchase where category in ("vinyl", "merch")',
    'did purchase where (category = "vinyl" and amount > 100)',
    'did purchase where (category = "vinyl" and not (amount > 100))',
    'did purchase where (category != "vinyl" and category = "album")',
    'did purchase where (not (category != "album"))',  # null categories and albums, no listed value
    'did purchase where (not (category != "album" or amount > 5))',
    "did purchase where category is null",
    'did purchase where category < "a"',
    'did purchase where category > "pharmacy" and not did purchase where category between "g" and "p"',
    'did purchase where category between "fertilitz" and "pharmacx"',
    'did purchase where category contains "album"',
    'did purchase where category contains "Pharmacy"',  # case-sensitive
    'did purchase where category contains "pharmacy "',
    'did purchase where category starts with "pharmacyx"',
    'did purchase where category starts with "harm"',
    'did purchase where category = "pharmacy " or did purchase where category = "Pharmacy"',
    # not naming the column: the rule is about conditions on the listed column
    "did purchase where amount > 100",
    "did purchase",
    'not did purchase where category = "vinyl"',
]


@pytest.mark.parametrize("where", STANDS)
def test_conditions_false_for_every_listed_value_stand(where: str) -> None:
    assert one(where) == []


def test_one_diagnostic_per_offending_filter() -> None:
    where = ('did purchase where (category = "pharmacy" or category = "fertility") '
             'and did purchase where category != "vinyl"')
    first, second = at(where, "category ="), at(where, "category !=")
    assert one(where) == [f"{F}:1:{first}: error[E303]: {PHARMACY}", f"{F}:1:{second}: error[E303]: {PHARMACY}"]


def test_a_mistyped_test_of_the_listed_column_reports_only_the_type_error() -> None:
    where = "did purchase where category = 5"
    assert one(where) == [f'{F}:1:{at(where, "5")}: error[E204]: type mismatch: "category" on event "purchase" '
                          '(table "purchases") is string, but 5 is a number']
    # a type error elsewhere in the filter does not hide the listed-value error
    where = 'did purchase where (category != "x" and amount = "y")'
    assert one(where) == [f"{F}:1:{at(where, 'category')}: error[E303]: {PHARMACY}",
                          f'{F}:1:{at(where, chr(34) + "y")}: error[E204]: type mismatch: "amount" on event '
                          '"purchase" (table "purchases") is number, but "y" is a string']


def test_an_audience_including_a_refused_one_is_refused_with_the_path() -> None:
    text = (f"audience others {{ where: did purchase where category not in {EVERY_OTHER} }}\n"
            'audience outer { where: city = "London" and not in audience others }\n'
            "audience outermost { where: in audience outer }\n")
    assert errors(text) == [
        f"{F}:1:45: error[E303]: {PHARMACY}",
        f'{F}:2:49: error[E304]: audience "outer" reaches sensitive data ({HEALTH}) through '
        f'in audience others: value "pharmacy" of column "purchases.category" at {F}:1:45',
        f'{F}:3:29: error[E304]: audience "outermost" reaches sensitive data ({HEALTH}) through '
        f'in audience outer -> in audience others: value "pharmacy" of column "purchases.category" at {F}:1:45',
    ]


# ---- listed values on a profile column: the whole `where` is one scope, memberships inlined --------
def city_listed_catalog(city_type: str = "VARCHAR") -> Catalog:
    base = fixture_catalog()
    columns = {name: c.raw_type for name, c in base.profile.columns.items()} | {"city": city_type}
    fans = table("fans", columns, sensitive_columns=dict(base.profile.sensitive_columns),
                 sensitive_values={"city": (SensitiveValues(("Lourdes",), "user.demographic.religious_belief"),)})
    return Catalog(profile=fans, profile_key="fan_id", events=base.events, identifiers=base.identifiers)


RELIGION = ('value "Lourdes" of column "fans.city" is sensitive (user.demographic.religious_belief) '
            "and may never be used to target")


@pytest.mark.parametrize(("where", "part"), [
    ('city != "Paris"', "city"),
    ('profile.city not in ("Paris", "London")', "profile"),
    ('not (city = "Paris") and did purchase', "not"),
    ('score > 1 and (city = "Paris" or did stream)', "(city"),
    ('city starts with "Lou"', "city"),
])
def test_profile_column_with_listed_values(where: str, part: str) -> None:
    col = at(where, part) + (1 if part.startswith("(") else 0)  # the `or` inside the parentheses
    got = errors(f"audience a {{ where: {where} }}", city_listed_catalog())
    assert got == [f"{F}:1:{col}: error[E303]: {RELIGION}"]


def test_profile_conditions_that_cannot_hold_for_a_listed_value_stand() -> None:
    text = 'audience a { where: city = "Paris" and score > 1 or city in ("London") and did stream }'
    assert errors(text, city_listed_catalog()) == []


def test_negating_an_included_audience_is_decided_on_its_condition() -> None:
    # `paris` stands (false for Lourdes); `not in audience paris` keeps Lourdes: refused at the
    # `not`; an audience including `unparis` is refused through it (E304, not a second E303)
    text = ('audience paris { where: city = "Paris" }\n'
            'audience unparis { where: score > 1 and not in audience paris }\n'
            'audience wrapper { where: not in audience unparis }\n'
            'audience paris_again { where: in audience paris and did stream }\n')
    lines = text.splitlines()
    blamed = 1 + lines[1].index("not in audience paris")
    wrapped = 1 + lines[2].index("in audience unparis")
    assert errors(text, city_listed_catalog()) == [
        f"{F}:2:{blamed}: error[E303]: {RELIGION} (the condition can hold for it through in audience paris)",
        f'{F}:3:{wrapped}: error[E304]: audience "wrapper" reaches sensitive data '
        f'(user.demographic.religious_belief) through in audience unparis: value "Lourdes" of column "fans.city" '
        f"at {F}:2:{blamed}",
    ]


def test_a_long_chain_of_memberships_is_decided_without_recursion() -> None:
    chain = "".join(f"audience a{i} {{ where: not in audience a{i + 1} }}\n" for i in range(2000))
    text = chain + 'audience a2000 { where: city = "Paris" }\n'
    got = [e for e in errors(text, city_listed_catalog()) if "E404" not in e]
    # a_i is `not` 2000 - i times over city = "Paris": for odd i that keeps Lourdes (E303 at its
    # `not`); every a_i below a1999 includes a refused audience (E304)
    col = 1 + text.splitlines()[0].index("not")
    refused_itself = [f"{F}:{i + 1}:{col + len(str(i)) - 1}: error[E303]: {RELIGION} (the condition can hold "
                      f"for it through in audience a{i + 1})" for i in range(1, 2000, 2)]
    assert [e for e in got if "E303" in e] == refused_itself
    assert sum("E304" in e for e in got) == 1999
    ref = 1 + text.splitlines()[0].index("in audience a1")
    assert got[0] == (f'{F}:1:{ref}: error[E304]: audience "a0" reaches sensitive data '
                      '(user.demographic.religious_belief) through in audience a1: value "Lourdes" of column '
                      f'"fans.city" at {F}:2:{col}')


def test_char_columns_ignore_trailing_spaces_as_postgres_does() -> None:
    # PostgreSQL: 'Lourdes'::char(12) = 'Lourdes  ' is true; contains/starts with see 'Lourdes'
    catalog = city_listed_catalog("character(12)")
    assert errors('audience a { where: city = "Lourdes  " }', catalog) == [f"{F}:1:21: error[E303]: {RELIGION}"]
    assert errors('audience a { where: city contains "des " }', catalog) == []
    assert errors('audience a { where: city = "Lourdes  " }', city_listed_catalog()) == []


def test_listed_numbers_compare_as_numbers() -> None:
    base = fixture_catalog()
    fans = table("fans", {name: c.raw_type for name, c in base.profile.columns.items()},
                 sensitive_values={"score": (SensitiveValues(("13",), HEALTH),)})
    catalog = Catalog(profile=fans, profile_key="fan_id", events=base.events)
    message = f'value "13" of column "fans.score" is sensitive ({HEALTH}) and may never be used to target'
    assert errors("audience a { where: score = 13.0 }", catalog) == [f"{F}:1:21: error[E303]: {message}"]
    assert errors("audience a { where: score > 9 }", catalog) == [f"{F}:1:21: error[E303]: {message}"]
    assert errors("audience a { where: score > 13 or score < 12.5 }", catalog) == []


# ---- 2. identifiers and the key never select --------------------------------------------------------
def key_message(table_name: str, column: str, role: str, tail: str = NULL_ONLY) -> str:
    return f'column "{table_name}.{column}" is {role}: {REASON}; {tail}'


EMAIL = key_message("fans", "email", "an identifier (email)")
PHONE = key_message("fans", "phone", "an identifier (phone)")
KEY = key_message("fans", "fan_id", "the profile key")


def event_key(event: str, table_name: str, tail: str = NULL_ONLY) -> str:
    return key_message(table_name, "fan_id", f'the key of event "{event}", which joins to the profile key', tail)


IDENTIFIER_ATTACKS = [
    # (where, the part the diagnostic points at: the comparison, or a measure's column)
    ('city = "London" or email = "fan.one@example.com"', "email", EMAIL),
    ('profile.email = "fan.one@example.com"', "profile", EMAIL),
    ('email in ("fan.one@example.com", "two@example.com")', "email", EMAIL),
    ('email not in ("fan.one@example.com")', "email", EMAIL),
    ('not (email != "fan.one@example.com")', "email", EMAIL),
    ('email contains "one@"', "email", EMAIL),
    ('email starts with "Fan.One"', "email", EMAIL),
    ('email between "f" and "g"', "email", EMAIL),
    ('email > "a"', "email", EMAIL),
    ('phone = "+44 7700 900001"', "phone", PHONE),
    ("fan_id = 5", "fan_id", KEY),
    ("profile.fan_id between 5 and 5", "profile", KEY),
    ("fan_id in (1, 2, 3)", "fan_id", KEY),
    ("not fan_id != 5", "fan_id", KEY),
    ("did purchase where fan_id = 5", "fan_id", event_key("purchase", "purchases")),
    ("max(purchase.fan_id) = 5", "fan_id", event_key("purchase", "purchases", NO_MEASURE)),
    ("min(stream.fan_id) >= 5", "fan_id", event_key("stream", "streams", NO_MEASURE)),
    ("count distinct(purchase.fan_id) > 0", "fan_id", event_key("purchase", "purchases", NO_MEASURE)),
    ("top 1 by max(stream.fan_id)", "fan_id", event_key("stream", "streams", NO_MEASURE)),
    ("count(stream) where fan_id = 5 >= 1", "fan_id", event_key("stream", "streams")),
    ("did stream where fan_id in (5) then purchase within 1 days", "fan_id", event_key("stream", "streams")),
    ("did stream then clip_sample where (fan_id = 5) within 1 days", "fan_id",
     event_key("clip_sample", "clip_samples")),
]


@pytest.mark.parametrize(("where", "part", "message"), IDENTIFIER_ATTACKS, ids=[a[0] for a in IDENTIFIER_ATTACKS])
def test_identifiers_and_keys_never_select(where: str, part: str, message: str) -> None:
    assert one(where) == [f"{F}:1:{at(where, part)}: error[E305]: {message}"]


def test_each_test_of_a_key_is_reported() -> None:
    where = "did purchase where (fan_id > 4 and fan_id < 6)"
    message = event_key("purchase", "purchases")
    assert one(where) == [f"{F}:1:{at(where, 'fan_id >')}: error[E305]: {message}",
                          f"{F}:1:{at(where, 'fan_id <')}: error[E305]: {message}"]


def test_identifier_diagnostics_never_repeat_the_value() -> None:
    (got,) = one('email = "secret.person@example.com"')
    assert "secret" not in got


@pytest.mark.parametrize("where", [
    "email is not null", "profile.phone is null", "fan_id is not null",
    "did purchase where fan_id is not null", "not (email is null)",
])
def test_null_tests_of_identifiers_stand(where: str) -> None:
    assert one(where) == []


def test_an_audience_including_an_identifier_test_is_refused_with_the_path() -> None:
    text = ('audience one_person { where: email = "fan.one@example.com" }\n'
            'audience looks_innocent { where: city = "London" or in audience one_person }\n')
    lines = text.splitlines()
    test, ref = 1 + lines[0].index("email ="), 1 + lines[1].index("in audience one_person")
    assert errors(text) == [
        f"{F}:1:{test}: error[E305]: {EMAIL}",
        f'{F}:2:{ref}: error[E304]: audience "looks_innocent" reaches a use of the profile key or an identifier '
        f'through in audience one_person: column "fans.email" at {F}:1:{test}',
    ]


# ---- property: check refuses exactly when the condition can hold for a listed value ----------------
# A random tree over `purchases.category` (every comparison form, values drawn from the listed
# values and strings next to them) plus free comparisons on `amount`, evaluated here in plain
# Python: for each listed value, every assignment of the amount comparisons is tried.
NEAR = ("pharmacy", "fertility", "pharmac", "pharmacx", "pharmacz", "pharmacy ", "Pharmacy", "harm",
        "ph", "p", "q", "o", "fert", "fertilit", "fertilitz", "ility", "y", "", "f", "g", "vinyl",
        "album", "zzz", "é", "pharmacyé", "FERTILITY", "a")


@dataclass(frozen=True)
class Cmp:
    form: str  # = != < <= > >= in notin between contains starts null notnull
    values: tuple[str, ...] = ()

    def text(self) -> str:
        v = [quote(x) for x in self.values]
        if self.form in ("=", "!=", "<", "<=", ">", ">="):
            return f"category {self.form} {v[0]}"
        if self.form in ("in", "notin"):
            return f"category {'not in' if self.form == 'notin' else 'in'} ({', '.join(v)})"
        if self.form == "between":
            return f"category between {v[0]} and {v[1]}"
        if self.form in ("contains", "starts"):
            return f"category {'contains' if self.form == 'contains' else 'starts with'} {v[0]}"
        return f"category is {'not ' if self.form == 'notnull' else ''}null"

    def holds(self, x: str) -> bool:
        """The test on a row whose category is the (non-null) string x."""
        f, v = self.form, self.values
        return {
            "=": lambda: x == v[0], "!=": lambda: x != v[0], "<": lambda: x < v[0], "<=": lambda: x <= v[0],
            ">": lambda: x > v[0], ">=": lambda: x >= v[0], "in": lambda: x in v, "notin": lambda: x not in v,
            "between": lambda: v[0] <= x <= v[1], "contains": lambda: v[0] in x,
            "starts": lambda: x.startswith(v[0]), "null": lambda: False, "notnull": lambda: True,
        }[f]()


@dataclass(frozen=True)
class Other:
    """`amount > n`: its truth on a pharmacy row is not known, so both are tried."""

    n: int

    def text(self) -> str:
        return f"amount > {self.n}"


@dataclass(frozen=True)
class Node:
    op: str  # and | or | not
    items: tuple[Cond, ...]

    def text(self) -> str:
        if self.op == "not":
            return f"not ({self.items[0].text()})"
        return "(" + f" {self.op} ".join(i.text() for i in self.items) + ")"


Cond = Cmp | Other | Node


def evaluate(c: Cond, x: str, others: dict[int, bool]) -> bool:
    if isinstance(c, Cmp):
        return c.holds(x)
    if isinstance(c, Other):
        return others[id(c)]
    if c.op == "not":
        return not evaluate(c.items[0], x, others)
    parts = [evaluate(i, x, others) for i in c.items]
    return all(parts) if c.op == "and" else any(parts)


def leaves(c: Cond) -> list[Cmp | Other]:
    return [c] if not isinstance(c, Node) else [leaf for i in c.items for leaf in leaves(i)]


def listed_values_it_can_hold_for(c: Cond) -> set[str]:
    """The listed values for which some choice of the amount comparisons makes `c` true."""
    others = [leaf for leaf in leaves(c) if isinstance(leaf, Other)]
    found = set()
    for x in LISTED:
        for choice in itertools.product((False, True), repeat=len(others)):
            if evaluate(c, x, {id(o): b for o, b in zip(others, choice, strict=True)}):
                found.add(x)
    return found


near = st.sampled_from(NEAR)
comparison = st.one_of(
    st.builds(lambda op, v: Cmp(op, (v,)), st.sampled_from(("=", "!=", "<", "<=", ">", ">=")), near),
    st.builds(lambda neg, vs: Cmp("notin" if neg else "in", tuple(vs)), st.booleans(),
              st.lists(near, min_size=1, max_size=4)),
    st.builds(lambda a, b: Cmp("between", (a, b)), near, near),
    st.builds(lambda f, v: Cmp(f, (v,)), st.sampled_from(("contains", "starts")), near),
    st.builds(Cmp, st.sampled_from(("null", "notnull"))),
)
leaf = st.one_of(comparison, comparison, comparison, st.builds(Other, st.integers(0, 200)))
trees = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda i: Node("not", (i,)), inner),
        st.builds(lambda op, items: Node(op, tuple(items)), st.sampled_from(("and", "or")),
                  st.lists(inner, min_size=2, max_size=3)),
    ),
    max_leaves=8,
)


def few_unknowns(c: Cond) -> bool:
    return sum(isinstance(leaf, Other) for leaf in leaves(c)) <= 4


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees.filter(few_unknowns))
def test_check_refuses_exactly_when_the_condition_can_hold_for_a_listed_value(c: Cond) -> None:
    got = one(f"did purchase where ({c.text()})")
    names_category = any(isinstance(leaf, Cmp) for leaf in leaves(c))
    holds_for = listed_values_it_can_hold_for(c) if names_category else set()
    if not holds_for:
        assert got == []
        return
    assert len(got) == 1 and "error[E303]" in got[0], got
    named = got[0].split('value "', 1)[1].split('"', 1)[0]
    assert named in holds_for
    assert named == next(x for x in LISTED if x in holds_for)  # the first listed value it can hold for


# ---- property: what check allows never returns a profile through a listed-value row -----------------
AS_OF = datetime(2026, 6, 30, 12, tzinfo=UTC)
ROW_CATEGORIES = (*LISTED, "pharmacy ", "Pharmacy", "pharmac", "vinyl", "album", "ringtone", None)
ROW_AMOUNTS = (None, 0.0, 50.0, 150.0)
# fan k has exactly one purchase: so a returned fan's only matching row is that purchase
PURCHASES = [(k, cat, amt) for k, (cat, amt) in enumerate(itertools.product(ROW_CATEGORIES, ROW_AMOUNTS), 1)]
LISTED_ONLY = {k for k, cat, _ in PURCHASES if cat in LISTED}
WRAPPERS = (
    "did purchase where ({c})",
    "count(purchase) where ({c}) >= 1",
    "top 100% by sum(purchase.amount) where ({c})",
    "not did purchase where ({c}) at most 0 times",
)


@pytest.fixture(scope="module")
def warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE fans (fan_id BIGINT, email VARCHAR, phone VARCHAR, city VARCHAR, country VARCHAR, "
                "birth_date DATE, score INTEGER, vip BOOLEAN, signup_at TIMESTAMP, religion VARCHAR)")
    con.execute("CREATE TABLE purchases (fan_id BIGINT, purchased_at TIMESTAMP, category VARCHAR, amount DOUBLE)")
    con.executemany("INSERT INTO fans (fan_id) VALUES (?)", [[k] for k, _, _ in PURCHASES])
    when = (AS_OF - timedelta(days=1)).replace(tzinfo=None)
    con.executemany("INSERT INTO purchases VALUES (?, ?, ?, ?)", [[k, when, c, a] for k, c, a in PURCHASES])
    return con


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(trees, st.sampled_from(WRAPPERS))
def test_allowed_conditions_never_return_a_profile_through_a_listed_value(
        warehouse: duckdb.DuckDBPyConnection, c: Cond, wrapper: str) -> None:
    if not any(isinstance(leaf, Cmp) for leaf in leaves(c)):
        return  # the rule is about conditions on the listed column (`did purchase` stands)
    audiences, diags = parse_and_check(f"audience a {{ where: {wrapper.format(c=c.text())} }}", fixture_catalog(), F)
    if diags:
        return
    sql = compile_audience(audiences["a"], fixture_catalog(), audiences, AS_OF).sql(dialect="duckdb")
    members = {row[0] for row in warehouse.execute(sql).fetchall()}
    assert not members & LISTED_ONLY, c.text()


def test_the_execution_property_sees_allowed_conditions_that_return_someone(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    """Guards the property above against passing vacuously: an allowed filter does select."""
    audiences, diags = parse_and_check(
        'audience a { where: did purchase where (category >= "pharmacy " or category < "f") }', fixture_catalog(), F)
    assert diags == []
    sql = compile_audience(audiences["a"], fixture_catalog(), audiences, AS_OF).sql(dialect="duckdb")
    got = {row[0] for row in warehouse.execute(sql).fetchall()}
    expected = {k for k, cat, _ in PURCHASES if cat is not None and (cat >= "pharmacy " or cat < "f")}
    assert got == expected and expected  # "pharmacy ", "vinyl", "ringtone", "album", "Pharmacy"
