"""Hypothesis strategies that write random *valid* audience conditions as DSL text.

Grammar-based (dsl.md "Conditions"), over the fixture catalog (tests/warehouse_fixture.py), so
every generated condition parses and checks without diagnostics and can run on both engines.
Values are drawn from pools that include the fixture's edge cases (null columns, `%`, quotes,
window bounds) so random programs actually hit them.
"""

from __future__ import annotations

from hypothesis import strategies as st

STRING, NUMBER, BOOLEAN, TEMPORAL, CATEGORY = "string", "number", "boolean", "temporal", "category"

PROFILE_COLUMNS = {"city": STRING, "country": STRING, "email": STRING, "score": NUMBER,
                   "fan_id": NUMBER, "vip": BOOLEAN, "signup_at": TEMPORAL, "birth_date": TEMPORAL}
# the profile key and identifiers may only be tested for null (dsl.md "Catalog and types")
NULL_TESTS_ONLY = frozenset({"email", "fan_id"})
EVENT_COLUMNS = {
    "stream": {"genre": STRING, "seconds": NUMBER, "played_at": TEMPORAL},
    # purchases.category lists sensitive values: only tests that cannot match them are generated
    "purchase": {"category": CATEGORY, "amount": NUMBER, "purchased_at": TEMPORAL},
    "clip_sample": {"artist": STRING, "sampled_at": TEMPORAL},
}
NUMERIC_EVENT_COLUMNS = {"stream": "seconds", "purchase": "amount"}

STRINGS = ("London", "london", "Lon", "on", "%", "_", "Lon%don", "O'Brien; DROP TABLE fans; --",
           "GB", "FR", "", "dubstep", "dub%step", "house", "a", "b", "Paris", 'quote"inside',
           "back\\slash", "é", "Fan.One@Example.com")
CATEGORIES = ("album", "ringtone", "ticket", "merch", "vinyl")
NUMBERS = ("0", "1", "2", "3", "5", "7", "10", "-1", "2.5", "30", "35", "50", "100", "1000", "0.5")
DATES = ("1990-01-01", "2025-12-31T23:59:59Z", "2026-01-01", "2026-01-01T00:59:59+01:00",
         "2026-03-01", "2026-05-31T12:00:00Z", "2026-06-01", "2026-06-10", "2026-06-10T10:30:00Z",
         "2026-06-30T12:00:00Z")
SORTED_DAYS = ("2025-01-01", "2026-01-01", "2026-03-01", "2026-06-01", "2026-06-03", "2026-06-10",
               "2026-06-30", "2026-07-01")
PERCENTS = ("1", "10", "20", "33.3333", "42.8", "42.9", "50", "50.0001", "99.99", "100")
UNITS = ("minutes", "hours", "days", "weeks", "day", "hour", "minute", "week")
OPS = ("=", "!=", "<", "<=", ">", ">=")
HELPER_AUDIENCES = ("h_london", "h_album_buyers")
HELPERS_TEXT = """
audience h_london { where: city = "London" }
audience h_album_buyers { where: did purchase where category = "album" and in audience h_london }
"""


def quote(text: str) -> str:
    """A DSL string literal for `text` (escapes per dsl lexer: \\" and \\\\)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(draw: st.DrawFn, kind: str) -> str:
    if kind == STRING:
        return quote(draw(st.sampled_from(STRINGS)))
    if kind == CATEGORY:
        return quote(draw(st.sampled_from(CATEGORIES)))
    if kind == NUMBER:
        return draw(st.sampled_from(NUMBERS))
    if kind == BOOLEAN:
        return draw(st.sampled_from(("true", "false")))
    return quote(draw(st.sampled_from(DATES)))


@st.composite
def compare(draw: st.DrawFn, columns: dict[str, str], qualify: bool = False) -> str:
    """One comparison over `columns` (name -> kind)."""
    name = draw(st.sampled_from(sorted(columns)))
    kind = columns[name]
    field = f"profile.{name}" if qualify and draw(st.booleans()) else name
    forms = ["op", "null"]
    if name in NULL_TESTS_ONLY:
        forms = ["null"]
    elif kind != BOOLEAN:
        forms += ["in"]
    if kind in (STRING, NUMBER, TEMPORAL) and name not in NULL_TESTS_ONLY:
        forms += ["between"]
    if kind == STRING and name not in NULL_TESTS_ONLY:
        forms += ["contains", "starts"]
    form = draw(st.sampled_from(forms))
    if form == "op":
        ops = ("=", "!=") if kind in (BOOLEAN, CATEGORY) else OPS
        return f"{field} {draw(st.sampled_from(ops))} {_value(draw, kind)}"
    if form == "null":
        return f"{field} is {'not ' if draw(st.booleans()) else ''}null"
    if form == "in":
        values = draw(st.lists(st.just(None), min_size=1, max_size=3))
        items = ", ".join(_value(draw, kind) for _ in values)
        return f"{field} {'not ' if draw(st.booleans()) else ''}in ({items})"
    if form == "between":
        return f"{field} between {_value(draw, kind)} and {_value(draw, kind)}"
    word = "contains" if form == "contains" else "starts with"
    return f"{field} {word} {_value(draw, kind)}"


@st.composite
def boolean_of(draw: st.DrawFn, leaf: st.SearchStrategy[str], depth: int) -> str:
    """and / or / not / parentheses over `leaf` conditions, at most `depth` levels deep."""
    if depth <= 0 or draw(st.integers(0, 2)) == 0:
        return draw(leaf)
    shape = draw(st.sampled_from(("and", "or", "not", "parens")))
    if shape == "not":
        return f"not {draw(boolean_of(leaf, depth - 1))}"
    if shape == "parens":
        return f"({draw(boolean_of(leaf, depth - 1))})"
    parts = draw(st.lists(boolean_of(leaf, depth - 1), min_size=2, max_size=3))
    return "(" + f" {shape} ".join(parts) + ")"


@st.composite
def event_filter(draw: st.DrawFn, event: str) -> str:
    if draw(st.integers(0, 2)) == 0:
        return ""
    columns = EVENT_COLUMNS[event]
    bare = draw(st.booleans())
    inner = draw(compare(columns)) if bare else draw(boolean_of(compare(columns), 2))
    if "category" in inner:
        # a filter naming purchases.category stands only if it is false for its listed values
        # (pharmacy, fertility): guarded by an `and` with a test that is
        listed_free = ", ".join(quote(c) for c in CATEGORIES)
        return f" where (category in ({listed_free}) and ({inner}))"
    return f" where {inner}" if bare else f" where ({inner})"


@st.composite
def window(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(("", "", "last", "since", "before", "between")))
    if kind == "last":
        return f" in last {draw(st.integers(1, 60))} {draw(st.sampled_from(UNITS))}"
    if kind in ("since", "before"):
        return f" {kind} {quote(draw(st.sampled_from(DATES)))}"
    if kind == "between":
        a, b = sorted(draw(st.lists(st.sampled_from(SORTED_DAYS), min_size=2, max_size=2)))
        return f" between {quote(a)} and {quote(b)}"
    return ""


@st.composite
def count(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(("", "at least", "at most", "exactly")))
    return f" {kind} {draw(st.integers(0, 7))} times" if kind else ""


@st.composite
def event(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(sorted(EVENT_COLUMNS)))
    negated = "not " if draw(st.booleans()) else ""
    return f"did {negated}{name}{draw(event_filter(name))}{draw(count())}{draw(window())}"


@st.composite
def measure(draw: st.DrawFn) -> str:
    func = draw(st.sampled_from(("count", "count distinct", "sum", "avg", "min", "max")))
    if func == "count":
        name = draw(st.sampled_from(sorted(EVENT_COLUMNS)))
        head = f"count({name})"
    elif func == "count distinct":
        name = draw(st.sampled_from(sorted(EVENT_COLUMNS)))
        column = draw(st.sampled_from(sorted(EVENT_COLUMNS[name])))
        head = f"count distinct({name}.{column})"
    else:
        name = draw(st.sampled_from(sorted(NUMERIC_EVENT_COLUMNS)))
        head = f"{func}({name}.{NUMERIC_EVENT_COLUMNS[name]})"
    return f"{head}{draw(event_filter(name))}{draw(window())}"


@st.composite
def aggregate(draw: st.DrawFn) -> str:
    return f"{draw(measure())} {draw(st.sampled_from(OPS))} {draw(st.sampled_from(NUMBERS))}"


@st.composite
def rank(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return f"top {draw(st.sampled_from(PERCENTS))}% by {draw(measure())}"
    return f"top {draw(st.integers(1, 8))} by {draw(measure())}"


@st.composite
def sequence(draw: st.DrawFn) -> str:
    first = draw(st.sampled_from(sorted(EVENT_COLUMNS)))
    then = draw(st.sampled_from(sorted(EVENT_COLUMNS)))
    within = f"within {draw(st.integers(1, 60))} {draw(st.sampled_from(UNITS))}"
    return (f"did {first}{draw(event_filter(first))} then {then}{draw(event_filter(then))} "
            f"{within}{draw(window())}")


def membership() -> st.SearchStrategy[str]:
    return st.sampled_from(HELPER_AUDIENCES).map(lambda name: f"in audience {name}")


def primary() -> st.SearchStrategy[str]:
    return st.one_of(compare(PROFILE_COLUMNS, qualify=True), event(), aggregate(), rank(),
                     sequence(), membership())


def condition(depth: int = 3) -> st.SearchStrategy[str]:
    """A random valid `where:` condition over the fixture catalog."""
    return boolean_of(primary(), depth)


def audience_text(name: str, where: str) -> str:
    return f"{HELPERS_TEXT}\naudience {name} {{\n  where: {where}\n}}\n"
