"""The `audience` console script, run for real as a subprocess (interfaces.md).

Exit status: 0 success, 1 the user's input is wrong (diagnostics printed), 2 an operational
failure with one clear line on stderr and never a traceback.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlglot

from tests.warehouse_fixture import AS_OF_TEXT, ROWS, project_on

DIALECTS = ("duckdb", "postgres", "bigquery", "snowflake", "spark", "databricks", "trino", "redshift")
SCRIPT = Path(sys.executable).with_name("audience")

GOOD = """
audience london {
  where: city = "London"
}
audience sampled_then_bought {
  where: did clip_sample then purchase within 7 days
}
"""
BROKEN = 'audience lapsed {\n  where: contry = "GB"\n}\n'


def audience_cmd() -> list[str]:
    """The installed console script when present, else the module (same entry point)."""
    return [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "audience.cli"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*audience_cmd(), *args], capture_output=True, text=True, timeout=180,
                          check=False, cwd=cwd)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr


def rows_with_fan_10() -> dict[str, list[tuple[Any, ...]]]:
    """Adds fan 10 in London, so sorting must be numeric (1, 2, 10) rather than textual."""
    rows = {table: list(data) for table, data in ROWS.items()}
    rows["fans"].append((10, "ten@example.com", None, "London", "GB", date(1990, 1, 1), 4, False, None, None))
    return rows


def test_init_then_check(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    result = run("init", str(target))
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert (target / "audience.toml").is_file()
    assert list((target / "audiences").glob("*.aud"))
    checked = run("check", "--project", str(target))
    no_traceback(checked)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("ok: ") and checked.stdout.rstrip().endswith("no problems")
    assert not list(tmp_path.glob(".proj.init-tmp*"))  # no half-written leftovers


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    target.mkdir()
    (target / "audience.toml").write_text("# mine\n")
    result = run("init", str(target))
    no_traceback(result)
    assert result.returncode == 1
    assert (target / "audience.toml").read_text() == "# mine\n"
    assert result.stderr.strip().count("\n") == 0


def test_check_broken_project_prints_the_exact_diagnostic(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, BROKEN) as root:
        result = run("check", "--project", str(root))
    no_traceback(result)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == ('audiences/test.aud:2:10: error[E201]: unknown column "contry" on profile table '
                        '"fans"; did you mean "country"?')
    assert lines[-1] == "1 error in 1 file"


def test_check_json(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, BROKEN) as root:
        result = run("check", "--project", str(root), "--format", "json")
    no_traceback(result)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data == {"diagnostics": [{
        "file": "audiences/test.aud", "code": "E201", "severity": "error", "line": 2, "column": 10,
        "end_line": 2, "end_column": 16,
        "message": 'unknown column "contry" on profile table "fans"; did you mean "country"?'}]}


def test_check_json_when_clean(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, GOOD) as root:
        result = run("check", "--project", str(root), "--format", "json")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"diagnostics": []}


def test_compile_prints_sql_that_parses_in_each_dialect(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, GOOD) as root:
        for dialect in DIALECTS:
            result = run("compile", "sampled_then_bought", "--project", str(root), "--dialect", dialect,
                         "--as-of", AS_OF_TEXT)
            no_traceback(result)
            assert result.returncode == 0, (dialect, result.stderr)
            tree = sqlglot.parse_one(result.stdout, read=dialect)
            assert tree.named_selects == ["profile_key"], dialect


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_members_prints_sorted_keys(tmp_path: Path, engine: str) -> None:
    with project_on(engine, tmp_path, GOOD, rows=rows_with_fan_10()) as root:
        london = run("members", "london", "--project", str(root), "--as-of", AS_OF_TEXT)
        sampled = run("members", "sampled_then_bought", "--project", str(root), "--as-of", AS_OF_TEXT)
    for result in (london, sampled):
        no_traceback(result)
        assert result.returncode == 0, result.stderr
    assert london.stdout == "1\n2\n10\n"  # numeric order, one per line
    # fan 1: purchase exactly 7 days after a clip; fan 3: 5 days; fan 5: the same instant
    assert sampled.stdout == "1\n3\n5\n"


def test_members_as_of_decides_the_window(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, GOOD) as root:
        # at 2026-01-12 fan 3's purchase (2026-01-15) has not happened yet
        early = run("members", "sampled_then_bought", "--project", str(root), "--as-of", "2026-01-12T00:00:00Z")
    assert early.returncode == 0, early.stderr
    assert early.stdout == ""


def test_members_of_a_clean_audience_while_another_file_is_broken(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, GOOD) as root:
        (root / "audiences" / "broken.aud").write_text(BROKEN)
        result = run("members", "london", "--project", str(root), "--as-of", AS_OF_TEXT)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1\n2\n"


def test_unknown_audience_is_one_clear_line(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, GOOD) as root:
        for command in ("members", "compile"):
            result = run(command, "londn", "--project", str(root), "--as-of", AS_OF_TEXT)
            no_traceback(result)
            assert result.returncode == 1
            assert result.stdout == ""
            assert result.stderr == 'error: unknown audience "londn"; did you mean "london"?\n'


def test_unknown_dialect_is_a_user_error(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, GOOD) as root:
        result = run("compile", "london", "--project", str(root), "--dialect", "oracle")
    no_traceback(result)
    assert result.returncode == 1
    assert result.stderr.startswith('error: unknown dialect "oracle"; use one of duckdb, postgres')
    assert result.stderr.count("\n") == 1


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_warehouse_is_exit_2_one_line(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, GOOD) as root:
        toml = root / "audience.toml"
        url = f"postgresql://postgres@127.0.0.1:{closed_port()}/test"
        toml.write_text(toml.read_text().replace('url = "duckdb:///wh.duckdb"', f'url = "{url}"'))
        for args in (("check",), ("members", "london", "--as-of", AS_OF_TEXT)):
            result = run(*args, "--project", str(root))
            no_traceback(result)
            assert result.returncode == 2, result.stderr
            assert result.stdout == ""
            assert result.stderr.startswith("error: cannot connect to PostgreSQL: ")
            assert result.stderr.count("\n") == 1


def test_missing_project_is_a_user_error(tmp_path: Path) -> None:
    result = run("check", "--project", str(tmp_path / "nowhere"))
    no_traceback(result)
    assert result.returncode == 1
    assert "audience.toml:1:1: error[E406]: no audience.toml in " in result.stdout


def test_console_script_is_installed() -> None:
    assert SCRIPT.exists() or shutil.which("audience"), "run `.venv/bin/pip install -e .`"
