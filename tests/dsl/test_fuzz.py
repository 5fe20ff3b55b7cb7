"""Garbage in, diagnostics out: the parser and checker never raise, whatever the input.

Property: for any text, `parse` + `check_project` return normally, and either report a
diagnostic or produce audiences that compile to SQL. Truncating a valid file anywhere inside an
audience block is always reported. The real CLI shows diagnostics (exit 1), never a traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.compiler import compile_audience
from dsl.lexer import KEYWORDS
from tests.dsl.catalogs import fixture_catalog, parse_and_check
from tests.warehouse_fixture import project_on

AS_OF = datetime(2026, 6, 30, 12, tzinfo=UTC)
CATALOG = fixture_catalog()
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

VALID = """# every construct, in one valid file (no braces inside strings or comments)
audience london_dubstep {
  description: "London dubstep fans"
  owner: "music@label.example"
  tags: ["music", "uk"]
  where: city = "London" and country in ("GB", "IE") and score between 1 and 10
     and did stream where genre = "dubstep" at least 5 times in last 30 days
     and not did purchase where (category in ("album", "vinyl") and amount > 2.5) in last 90 days
  holdout: 10%
  sync meta_ads { schedule: "0 6 * * *", mode: mirror }
}
audience spenders {
  where: top 20% by sum(purchase.amount) since "2026-01-01"
     or count distinct(stream.genre) before "2026-06-01T00:00:00Z" >= 2
     or avg(stream.seconds) between "2026-01-01" and "2026-02-01" < 100
}
audience converters {
  where: did clip_sample where artist starts with "a" then purchase within 7 days
     and (email is not null or not in audience spenders) and city contains "on"
}
"""


def outcome(text: str) -> list[str]:
    """Diagnostics for `text`; when there are none, every audience must compile."""
    audiences, diags = parse_and_check(text, CATALOG, destinations=("meta_ads",))
    if not diags:
        for aud in audiences.values():
            sql = compile_audience(aud, CATALOG, audiences, AS_OF).sql(dialect="duckdb")
            assert sql.startswith("SELECT")
    for d in diags:
        assert d.span.line >= 1 and d.span.col >= 1
        assert re.fullmatch(r"E[1-4]\d\d", d.code)
    return [d.format() for d in diags]


def test_the_valid_file_is_valid() -> None:
    assert outcome(VALID) == []


@FUZZ
@given(st.text(max_size=300))
def test_random_text_never_raises(text: str) -> None:
    outcome(text)


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=200)
       .map(lambda t: "audience a { where: " + t + " }"))
def test_random_text_inside_a_block_never_raises(text: str) -> None:
    outcome(text)


TOKENS = [
    *sorted(KEYWORDS),
    "(", ")", "{", "}", "[", "]", ",", ":", ".", "%", "-", "=", "!=", "<", "<=", ">", ">=",
    '"London"', '"2026-01-01"', '"2026-01-01T00:00:00Z"', '"0 6 * * *"', '"', "0", "1", "7", "2.5",
    "99999999999999999999999999999999999999999", "city", "score", "vip", "genre", "amount",
    "stream", "purchase", "clip_sample", "mood", "religion", "meta_ads", "\n", "#", "@", "Name",
]


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_token_soup_never_raises(tokens: list[str]) -> None:
    outcome(" ".join(tokens))


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_token_soup_inside_a_where_never_raises(tokens: list[str]) -> None:
    outcome("audience a {\n  where: " + " ".join(tokens) + "\n}\n")


@FUZZ
@given(st.data())
def test_mutations_of_a_valid_file_never_raise(data: st.DataObject) -> None:
    text = VALID
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 5))
        insert = data.draw(st.sampled_from(["", *TOKENS]))
        text = text[:pos] + insert + text[pos + cut:]
    outcome(text)


def _safe_cut(prefix: str) -> bool:
    """True when a prefix of VALID ends outside every block (only comments/space after a "}")."""
    if prefix.count("{") != prefix.count("}"):
        return False
    tail = prefix[prefix.rfind("}") + 1:] if "}" in prefix else prefix
    return re.sub(r"#[^\n]*", "", tail).strip() == ""


def test_every_truncation_of_a_valid_file() -> None:
    for cut in range(len(VALID) + 1):
        prefix = VALID[:cut]
        diags = outcome(prefix)
        assert bool(diags) != _safe_cut(prefix), (cut, prefix[-40:], diags)


def test_deeply_nested_garbage_is_a_diagnostic() -> None:
    assert outcome("audience a { where: " + "(" * 5000) == [
        "audiences/test.aud:1:71: error[E104]: conditions nest more than 50 levels deep",
        'audiences/test.aud:1:5021: error[E103]: expected "}" to close audience "a" but found end of file',
    ]


# ---- through the real command line -----------------------------------------------------------------
GARBAGE: list[bytes] = [
    b"audience { where: }}}}",
    "audience a { where: city = \"London\" and and did }\n\u202e\U0001f600 \x00".encode(),
    b"\xff\xfe\x00garbage that is not UTF-8 \x80\x81",
    ("audience a { where: " + "not (" * 400 + "city = \"x\" }").encode(),
    b"audience a { where: did stream at least 99999999999999999999999 times in last 0 days }",
    b'audience a { where: top 0% by count(mood) } sync sync sync',
]


def run_check(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audience.cli", "check", "--project", str(root), *extra],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("garbage", GARBAGE, ids=[f"garbage{i}" for i in range(len(GARBAGE))])
def test_cli_check_on_garbage(tmp_path: Path, garbage: bytes) -> None:
    with project_on("duckdb", tmp_path, "") as root:
        (root / "audiences" / "bad.aud").write_bytes(garbage)
        result = run_check(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    first = result.stdout.splitlines()[0]
    assert re.fullmatch(r"audiences/bad\.aud:\d+:\d+: error\[E[1-4]\d\d\]: .+", first), first
    assert re.search(r"^\d+ errors? in 1 file$", result.stdout, re.MULTILINE)
