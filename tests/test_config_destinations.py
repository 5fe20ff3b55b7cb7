"""Destination settings a user can get wrong are refused by ``load_config`` with one clear
diagnostic each (``audience check`` prints them), before any run starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from audience.config import ConfigError, load_config

BASE = """
[project]
name = "shop"

[warehouse]
url = "duckdb:///wh.duckdb"

[profiles]
table = "fans"
key = "fan_id"

[profiles.identifiers]
email = "email"

[consent]
table = "consents"

[destinations.dsp]
type = "grpc"
target = "127.0.0.1:50061"
format = "{fmt}"
identifiers = {identifiers}
purposes = ["ads_personalization"]
"""


def problems(tmp_path: Path, extra: str = "", fmt: str = "sha256", identifiers: str = '["email"]') -> list[str]:
    (tmp_path / "audience.toml").write_text(BASE.format(fmt=fmt, identifiers=identifiers) + extra, encoding="utf-8")
    try:
        load_config(tmp_path)
    except ConfigError as err:
        return [d.message for d in err.diagnostics]
    return []


def test_a_valid_destination_loads(tmp_path: Path) -> None:
    assert problems(tmp_path, "batch_size = 1\nrows_per_file = 1\ndeadline_seconds = 0.5\n") == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("batch_size = 0\n", "destinations.dsp.batch_size: must be at least 1 (identifiers per gRPC batch)"),
        ("rows_per_file = -5\n", "destinations.dsp.rows_per_file: must be at least 1 (rows per file part)"),
        ("deadline_seconds = 0\n", "destinations.dsp.deadline_seconds: must be a number of seconds above 0"),
        ("deadline_seconds = -1.5\n", "destinations.dsp.deadline_seconds: must be a number of seconds above 0"),
    ],
)
def test_sizes_and_deadlines_out_of_range_are_refused(tmp_path: Path, extra: str, message: str) -> None:
    assert problems(tmp_path, extra) == [message]


@pytest.mark.parametrize("identifier", ["maid", "external_id"])
def test_uid2_refuses_identifier_types_it_cannot_map(tmp_path: Path, identifier: str) -> None:
    assert problems(tmp_path, fmt="uid2", identifiers=f'["email", "{identifier}"]') == [
        f"destinations.dsp.identifiers: the uid2 format does not accept {identifier} identifiers"
    ]
