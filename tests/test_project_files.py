"""Paths named by a project stay what the user meant, through the real `audience` command.

A mistyped DuckDB path is an error naming the path, and nothing but `audience init` and
`audience demo` creates a warehouse; definitions and relative file drops stay inside the
project folder; a state path that cannot hold the state store is an error naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.test_cli import GOOD, no_traceback, run
from tests.warehouse_fixture import AS_OF_TEXT, ROWS, project_on, ts

CONSENT_AND_DROP = """
[consent]
table = "consents"
suppression_table = "suppressions"

[destinations.drop]
type = "file"
uri = "file:exports/drop"
format = "sha256"
identifiers = ["email"]
purposes = ["ads_personalization"]
min_size = 1
"""
# fans 1 and 2 (London, adults, with emails) consented to ads_personalization
CONSENTED = {**ROWS, "consents": [(k, "ads_personalization", "granted", ts("2026-01-01 00:00:00"), None, "test")
                                  for k in (1, 2)]}
SYNCED = GOOD + 'audience synced {\n  where: city = "London"\n  sync drop { mode: mirror }\n}\n'


def files_under(root: Path) -> set[str]:
    """Every file and folder in the project, as paths relative to it."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def set_config(root: Path, old: str, new: str) -> str:
    toml = root / "audience.toml"
    text = toml.read_text(encoding="utf-8")
    assert old in text
    text = text.replace(old, new)
    toml.write_text(text, encoding="utf-8")
    return text


def project_args(root: Path, command: str) -> list[str]:
    return {
        "check": ["check"],
        "compile": ["compile", "london", "--as-of", AS_OF_TEXT],
        "members": ["members", "london", "--as-of", AS_OF_TEXT],
        "estimate": ["estimate", "synced", "--as-of", AS_OF_TEXT],
        "plan": ["plan", "--as-of", AS_OF_TEXT],
        "refresh": ["refresh", "synced", "--as-of", AS_OF_TEXT],
    }[command] + ["--project", str(root)]


# ---- 1. a DuckDB path that is not there ---------------------------------------------------
COMMANDS = ("check", "compile", "members", "estimate", "plan", "refresh")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_mistyped_duckdb_path_is_an_error_naming_it_and_nothing_is_created(tmp_path: Path, command: str) -> None:
    with project_on("duckdb", tmp_path, SYNCED, CONSENT_AND_DROP) as root:
        text = set_config(root, 'url = "duckdb:///wh.duckdb"', 'url = "duckdb:///wh.duckbd"')
        before = files_under(root)
        result = run(*project_args(root, command))
    no_traceback(result)
    assert result.returncode == 1
    expected = (f"audience.toml:{line_of(text, 'duckdb:///wh.duckbd')}:1: error[E406]: warehouse.url: there is no "
                f"DuckDB database at {root.resolve()}/wh.duckbd (only `audience init` and `audience demo` create "
                "one; check the path)\n1 error in 1 file\n")
    assert (result.stdout if command == "check" else result.stderr) == expected
    assert files_under(root) == before  # no empty wh.duckbd, no .wal, no state store


def test_an_absolute_duckdb_path_that_is_missing_or_a_folder(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path / "p", GOOD) as root:
        missing = tmp_path / "elsewhere" / "wh.duckdb"
        set_config(root, 'url = "duckdb:///wh.duckdb"', f'url = "duckdb:///{missing}"')
        gone = run("check", "--project", str(root))
        (tmp_path / "folder.duckdb").mkdir()
        set_config(root, f'url = "duckdb:///{missing}"', f'url = "duckdb:///{tmp_path / "folder.duckdb"}"')
        folder = run("check", "--project", str(root))
    assert gone.returncode == folder.returncode == 1
    assert f"error[E406]: warehouse.url: there is no DuckDB database at {missing} (" in gone.stdout
    assert not missing.parent.exists()
    assert f"error[E406]: warehouse.url: {tmp_path / 'folder.duckdb'} is a folder, not a DuckDB database file\n" \
        in folder.stdout


def test_consent_import_refuses_a_missing_duckdb_file_in_one_line(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, GOOD, CONSENT_AND_DROP) as root:
        set_config(root, 'url = "duckdb:///wh.duckdb"', 'url = "duckdb:///gone.duckdb"')
        signals = root / "signals.csv"
        signals.write_text("1,1,2026-06-01T00:00:00Z\n", encoding="utf-8")
        result = run("consent", "import", str(signals), "--format", "gpc", "--project", str(root))
    no_traceback(result)
    assert result.returncode == 1
    assert result.stderr == (f"error: audience.toml: warehouse.url: there is no DuckDB database at "
                             f"{root.resolve()}/gone.duckdb (only `audience init` and `audience demo` create one; "
                             "check the path)\n")
    assert not (root / "gone.duckdb").exists()


@pytest.mark.parametrize("command", ("check", "compile", "members", "estimate"))
def test_commands_that_only_read_create_no_file(tmp_path: Path, command: str) -> None:
    with project_on("duckdb", tmp_path, SYNCED, CONSENT_AND_DROP) as root:
        before = files_under(root)
        result = run(*project_args(root, command))
        after = files_under(root)
    assert result.returncode == 0, result.stderr
    assert after == before


# ---- 2. the state store's path --------------------------------------------------------------
def test_a_state_path_under_a_file_names_the_path(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, SYNCED, CONSENT_AND_DROP) as root:
        set_config(root, "[consent]", '[state]\nurl = "sqlite:///audience.toml/state.db"\n\n[consent]')
        results = [run("runs", "--project", str(root)), run(*project_args(root, "refresh"))]
    for result in results:
        no_traceback(result)
        assert result.returncode == 1
        assert result.stderr.endswith(
            f"error: audience.toml: state.url: cannot use {root.resolve()}/audience.toml/state.db as the state "
            f"database (cannot create its folder: {root.resolve()}/audience.toml is not a folder)\n")


@pytest.mark.parametrize(("make", "reason"), [
    (lambda p: p.mkdir(parents=True), "unable to open database file"),
    (lambda p: (p.parent.mkdir(parents=True), p.write_text("not sqlite\n" * 200)), "file is not a database"),
])
def test_a_state_path_that_cannot_be_a_database_names_the_path(tmp_path: Path, make, reason: str) -> None:
    with project_on("duckdb", tmp_path, GOOD) as root:
        make(root / ".audience" / "state.db")
        result = run("runs", "--project", str(root))
    no_traceback(result)
    assert result.returncode == 1
    assert result.stderr == (f"error: audience.toml: state.url: cannot use {root.resolve()}/.audience/state.db as the "
                             f"state database ({reason})\n")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_state_folder_names_the_path(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, GOOD) as root:
        (root / ".audience").mkdir()
        (root / ".audience").chmod(0o500)
        try:
            result = run("runs", "--project", str(root))
        finally:
            (root / ".audience").chmod(0o700)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: audience.toml: state.url: cannot use {root.resolve()}/.audience/state.db ")


# ---- 3. files stay inside the project --------------------------------------------------------
OUTSIDER = 'audience outsider {\n  where: city = "Paris"\n}\n'


def test_an_aud_file_symlinked_from_outside_is_an_error(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.aud").write_text(OUTSIDER, encoding="utf-8")
    with project_on("duckdb", tmp_path / "p", GOOD) as root:
        (root / "audiences" / "x.aud").symlink_to(outside / "x.aud")
        (root / "audiences" / "more").symlink_to(outside, target_is_directory=True)
        result = run("check", "--project", str(root))
        members = run("members", "outsider", "--project", str(root), "--as-of", AS_OF_TEXT)
    no_traceback(result)
    assert result.returncode == 1
    assert result.stdout == (
        f"audiences/more:1:1: error[E408]: this folder is a symlink to {outside}, outside the project folder; "
        "audience definitions must live inside the project (copy it in, or link within the project)\n"
        f"audiences/x.aud:1:1: error[E408]: this file is a symlink to {outside / 'x.aud'}, outside the project "
        "folder; audience definitions must live inside the project (copy it in, or link within the project)\n"
        "2 errors in 2 files\n")
    assert members.returncode == 1
    assert members.stderr == 'error: unknown audience "outsider"\n'  # never read from outside


def test_symlinks_inside_the_project_are_followed_once(tmp_path: Path) -> None:
    with project_on("duckdb", tmp_path, GOOD) as root:
        (root / "shared").mkdir()
        (root / "shared" / "extra.aud").write_text(OUTSIDER, encoding="utf-8")
        (root / "audiences" / "extra.aud").symlink_to(root / "shared" / "extra.aud")  # a file link
        (root / "audiences" / "lib").symlink_to(Path("../shared"), target_is_directory=True)  # the same, by folder
        (root / "audiences" / "again.aud").symlink_to("test.aud")  # a second name for a file
        (root / "audiences" / "loop").symlink_to(Path("."), target_is_directory=True)  # a cycle
        result = run("check", "--project", str(root))
        members = run("members", "outsider", "--project", str(root), "--as-of", AS_OF_TEXT)
    no_traceback(result)
    assert result.returncode == 0, result.stdout
    # london, sampled_then_bought (test.aud, read once) and outsider (read once): no E401 duplicates
    assert result.stdout == "ok: 3 audiences in 2 files, no problems\n"
    assert members.stdout == "3\n"


def test_the_audiences_folder_stays_inside_the_project(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    with project_on("duckdb", tmp_path / "p", GOOD) as root:
        text = set_config(root, 'name = "', 'audiences = "../other"\nname = "')
        outside = run("check", "--project", str(root))
        set_config(root, 'audiences = "../other"', 'audiences = "audiencs"')
        missing = run("check", "--project", str(root))
    assert outside.returncode == missing.returncode == 1
    line = line_of(text, 'audiences = "../other"')
    assert outside.stdout == (
        f'audience.toml:{line}:1: error[E408]: project.audiences: the audiences folder "../other" leads outside the '
        f"project folder (to {tmp_path / 'other'}); definitions live inside the project\n1 error in 1 file\n")
    assert missing.stdout == (f"audience.toml:{line}:1: error[E406]: project.audiences: there is no folder "
                              f"{root.resolve()}/audiencs\n1 error in 1 file\n")


@pytest.mark.parametrize("uri", ["file:../elsewhere", "file://../elsewhere", "file:exports/../../elsewhere"])
def test_a_relative_file_destination_leaving_the_project_is_an_error(tmp_path: Path, uri: str) -> None:
    with project_on("duckdb", tmp_path / "p", SYNCED, CONSENT_AND_DROP) as root:
        text = set_config(root, 'uri = "file:exports/drop"', f'uri = "{uri}"')
        result = run("check", "--project", str(root))
        refresh = run(*project_args(root, "refresh"))
    no_traceback(result)
    assert result.returncode == refresh.returncode == 1
    assert result.stdout == (
        f'audience.toml:{line_of(text, uri)}:1: error[E408]: destinations.drop.uri: "{uri}" leads outside the project '
        f"folder (to {tmp_path / 'elsewhere'}); a relative path stays inside the project, a folder elsewhere is "
        "written as an absolute uri, file:///path\n1 error in 1 file\n")
    assert refresh.stderr == result.stdout
    assert not (tmp_path / "elsewhere").exists()


def test_a_relative_file_destination_through_an_outside_symlink_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    with project_on("duckdb", tmp_path / "p", SYNCED, CONSENT_AND_DROP) as root:
        (root / "exports").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
        result = run("check", "--project", str(root))
    assert result.returncode == 1
    assert (f'error[E408]: destinations.drop.uri: "file:exports/drop" leads outside the project folder '
            f"(to {tmp_path / 'elsewhere' / 'drop'}); ") in result.stdout


def test_an_absolute_file_destination_may_point_anywhere(tmp_path: Path) -> None:
    drop = tmp_path / "drops" / "meta"
    with project_on("duckdb", tmp_path / "p", SYNCED, CONSENT_AND_DROP, CONSENTED) as root:
        set_config(root, 'uri = "file:exports/drop"', f'uri = "file://{drop}"')
        check = run("check", "--project", str(root))
        refresh = run(*project_args(root, "refresh"))
    assert check.returncode == 0, check.stdout
    assert refresh.returncode == 0, refresh.stderr
    assert (drop / "synced").is_dir()  # the run wrote its parts there

