"""Runs write file parts from warehouse-built line blocks; destination changes between runs.

A destination's format or identifier list may change between runs. Removals then carry what was
sent before: they must go out (format change) or fail the run loudly with a clear one-line error
(a type dropped from the list, so a member's removal has no value left to send) — never vanish.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from audience.project import load_project
from audience.runs.api import open_store
from audience.runs.engine import RunEngine, find_sync
from tests.runs.helpers import (
    CONSENT_CONFIG,
    as_of,
    change,
    fan,
    file_destination,
    grant,
    rename_project,
    sha256_hex,
)
from tests.warehouse_fixture import ROWS, project_on

AUDIENCE = "audience fans {\n  where: score >= 5\n  sync drop { mode: mirror }\n}\n"
UUID = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"


def refresh(root: Path, step: int) -> tuple[str, str | None, dict[str, int]]:
    project = load_project(root)
    store = open_store(project)
    try:
        (sync,) = find_sync(project, "fans", "drop")
        run = RunEngine(project, store).refresh(sync, as_of=as_of(step))
        return run.state, run.error_text(), {k: run.counts.get(k, 0) for k in ("adds_sent", "removes_sent")}
    finally:
        store.close()
        project.close()


def parts(root: Path) -> list[dict[str, list[str]]]:
    """Per finished run folder, in `as_of` order: part kind -> its lines after the header."""
    runs = []
    for manifest in (root / "out" / "fans").glob("*/manifest.json"):
        document = json.loads(manifest.read_text(encoding="utf-8"))
        runs.append((document["as_of"], {
            f["kind"]: gzip.decompress((manifest.parent / f["key"]).read_bytes()).decode().splitlines()[1:]
            for f in document["files"]}))
    return [files for _, files in sorted(runs)]


def project_with_maids(tmp_path: Path, engine: str, fmt: str, fans: list[tuple[int, str | None, str | None]]):
    config = CONSENT_CONFIG + file_destination("drop", uri="file:out", format=fmt, identifiers=["email", "maid"],
                                               max_change=1.0)
    rows = {**ROWS, "fans": [fan(key, email) for key, email, _ in fans],
            "consents": [grant(key) for key, _, _ in fans], "suppressions": []}
    return project_on(engine, tmp_path, AUDIENCE, config, rows)


def add_maids(engine: str, root: Path, fans: list[tuple[int, str | None, str | None]]) -> None:
    toml = root / "audience.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(text.replace('phone = "phone"\n', 'phone = "phone"\nmaid = "maid"\n', 1), encoding="utf-8")
    change(engine, root, "ALTER TABLE fans ADD COLUMN maid VARCHAR",
           *(f"UPDATE fans SET maid = '{maid}' WHERE fan_id = {key}" for key, _, maid in fans if maid))


def edit_config(root: Path, old: str, new: str) -> None:
    toml = root / "audience.toml"
    text = toml.read_text(encoding="utf-8")
    assert old in text
    toml.write_text(text.replace(old, new), encoding="utf-8")


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_a_format_change_removes_what_was_sent_under_the_old_format(tmp_path: Path, engine: str,
                                                                     project_name: str) -> None:
    fans = [(1, "a@example.com", UUID), (2, "b@example.com", None)]
    with project_with_maids(tmp_path, engine, "google", fans) as root:
        rename_project(root, project_name)  # its own rows in PostgreSQL's shared snapshot schema
        add_maids(engine, root, fans)
        assert refresh(root, 0) == ("succeeded", None, {"adds_sent": 2, "removes_sent": 0})
        edit_config(root, 'format = "google"', 'format = "sha256"')

        # the fingerprint includes the format: everyone is added again, and fan 1's tuple as sent
        # (with its plain MAID) removed; fan 2's email hash is the same in both formats, so its
        # old tuple stays at the destination through the new add and is not removed
        assert refresh(root, 1) == ("succeeded", None, {"adds_sent": 2, "removes_sent": 1})

        first, second = parts(root)
        a, b = sha256_hex("a@example.com"), sha256_hex("b@example.com")
        assert sorted(first["members"]) == sorted([f"{a},{UUID}", f"{b},"])
        assert second["removes"] == [f"{a},{UUID}"]
        assert sorted(second["adds"]) == sorted([f"{a},{sha256_hex(UUID)}", f"{b},"])


def test_a_removal_left_without_a_value_fails_the_run_clearly(tmp_path: Path) -> None:
    fans = [(1, "a@example.com", None), (2, None, UUID)]  # fan 2 was sent by its MAID alone
    with project_with_maids(tmp_path, "duckdb", "sha256", fans) as root:
        add_maids("duckdb", root, fans)
        assert refresh(root, 0) == ("succeeded", None, {"adds_sent": 2, "removes_sent": 0})
        edit_config(root, 'identifiers = ["email", "maid"]', 'identifiers = ["email"]')

        state, error, _ = refresh(root, 1)

        assert state == "failed"
        assert error == "destination drop: removes part 0: row 1 has no identifier"
        assert len(parts(root)) == 1  # no manifest for the failed run
