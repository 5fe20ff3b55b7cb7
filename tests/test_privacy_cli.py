"""Issue #15's attacks through the real `audience` command on the DuckDB fixture.

Fans 7 and 8 bought only at the pharmacy (rows added here), so before the fix `audience
members` printed exactly "7\n8\n" for the exclusion attack. Now `check` and `members` exit 1 with
the diagnostic, and an innocent audience of the same project still runs.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import no_traceback, run
from tests.warehouse_fixture import AS_OF_TEXT, ROWS, project_on

HEALTH = "user.health_and_medical"
PHARMACY = (f'value "pharmacy" of column "purchases.category" is sensitive ({HEALTH}) '
            "and may never be used to target")
REASON = "identifiers are for matching at the destination, never for picking out a person"

LINES = {
    "by_exclusion": 'did purchase where category not in ("merch", "vinyl", "ticket", "album", "single", "ringtone")',
    "neq_chain": 'did purchase where (category != "merch" and category != "vinyl" and category != "ticket" '
                 'and category != "album" and category != "ringtone")',
    "not_in_parens": 'did purchase where (not (category in ("merch", "vinyl", "ticket", "album", "ringtone")))',
    "above_o": 'did purchase where category > "o"',
    "contains_nothing": 'did purchase where category contains ""',
    "prefix": 'did purchase where category starts with "pharm"',
    "one_email": 'city = "London" or email = "seven@example.com"',
    "one_key": 'city = "London" or fan_id = 7',
    "london": 'city = "London"',
}


def rows_with_pharmacy_buyers() -> dict[str, list[tuple[Any, ...]]]:
    rows = {table: list(data) for table, data in ROWS.items()}
    rows["purchases"] += [(7, datetime(2026, 6, 1), "pharmacy", 12.5),
                          (8, datetime(2026, 6, 2), "fertility", 80.0)]
    return rows


def audiences_text() -> str:
    return "".join(f"audience {name} {{\n  where: {where}\n}}\n" for name, where in LINES.items())


def expected_line(name: str, part: str, code: str, message: str) -> str:
    """`file:line:col` of `part` in the block of `name` (each block is 3 lines; where: is on the 2nd)."""
    line = 3 * list(LINES).index(name) + 2
    col = len("  where: ") + 1 + LINES[name].index(part)
    return f"audiences/test.aud:{line}:{col}: error[{code}]: {message}"


EXPECTED = {
    "by_exclusion": expected_line("by_exclusion", "category", "E303", PHARMACY),
    "neq_chain": expected_line("neq_chain", "category", "E303", PHARMACY),
    "not_in_parens": expected_line("not_in_parens", "not", "E303", PHARMACY),
    "above_o": expected_line("above_o", "category", "E303", PHARMACY),
    "contains_nothing": expected_line("contains_nothing", "category", "E303", PHARMACY),
    "prefix": expected_line("prefix", "category", "E303", PHARMACY),
    "one_email": expected_line("one_email", "email", "E305",
                               f'column "fans.email" is an identifier (email): {REASON}; '
                               'only "is null" / "is not null" may test it'),
    "one_key": expected_line("one_key", "fan_id", "E305",
                             f'column "fans.fan_id" is the profile key: {REASON}; '
                             'only "is null" / "is not null" may test it'),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp: Path = tmp_path_factory.mktemp("privacy_cli")
    with project_on("duckdb", tmp, audiences_text(), rows=rows_with_pharmacy_buyers()) as root:
        yield root


def test_check_reports_every_attack(project: Path) -> None:
    result = run("check", "--project", str(project))
    no_traceback(result)
    assert result.returncode == 1
    reported = [line for line in result.stdout.splitlines() if "error[" in line]
    assert reported == list(EXPECTED.values())
    assert result.stdout.splitlines()[-1] == f"{len(EXPECTED)} errors in 1 file"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_members_of_an_attack_prints_no_one(project: Path, name: str) -> None:
    result = run("members", name, "--project", str(project), "--as-of", AS_OF_TEXT)
    no_traceback(result)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == EXPECTED[name]


def test_an_innocent_audience_of_the_same_project_still_runs(project: Path) -> None:
    result = run("members", "london", "--project", str(project), "--as-of", AS_OF_TEXT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1\n2\n"


def test_the_fixture_really_holds_the_pharmacy_buyers(project: Path) -> None:
    """Without the rule the attack would print exactly them: the same rows by hand-written SQL."""
    import duckdb

    con = duckdb.connect(str(project / "wh.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT DISTINCT fan_id FROM purchases WHERE category NOT IN "
                           "('merch', 'vinyl', 'ticket', 'album', 'single', 'ringtone') ORDER BY 1").fetchall()
    finally:
        con.close()
    assert rows == [(7,), (8,)]
