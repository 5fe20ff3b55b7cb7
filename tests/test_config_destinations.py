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

[destinations.drop]
type = "file"
uri = "file:exports/drop"
format = "sha256"
identifiers = ["email"]
purposes = ["ads_personalization"]
{drop}
[destinations.dsp]
type = "grpc"
target = "127.0.0.1:50061"
format = "{fmt}"
identifiers = {identifiers}
purposes = ["ads_personalization"]
"""


def problems(tmp_path: Path, extra: str = "", fmt: str = "sha256", identifiers: str = '["email"]',
             drop: str = "") -> list[str]:
    """The messages of load_config; `extra` goes into the grpc destination, `drop` into the file one."""
    text = BASE.format(fmt=fmt, identifiers=identifiers, drop=drop) + extra
    (tmp_path / "audience.toml").write_text(text, encoding="utf-8")
    try:
        load_config(tmp_path)
    except ConfigError as err:
        return [d.message for d in err.diagnostics]
    return []


def test_a_valid_destination_loads(tmp_path: Path) -> None:
    assert problems(tmp_path, "batch_size = 1\ndeadline_seconds = 0.5\n", drop="rows_per_file = 1\n") == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("batch_size = 0\n", "destinations.dsp.batch_size: must be at least 1 (identifiers per gRPC batch)"),
        ("deadline_seconds = 0\n", "destinations.dsp.deadline_seconds: must be a number of seconds above 0"),
        ("deadline_seconds = -1.5\n", "destinations.dsp.deadline_seconds: must be a number of seconds above 0"),
    ],
)
def test_sizes_and_deadlines_out_of_range_are_refused(tmp_path: Path, extra: str, message: str) -> None:
    assert problems(tmp_path, extra) == [message]


def test_rows_per_file_below_one_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, drop="rows_per_file = -5\n") == [
        "destinations.drop.rows_per_file: must be at least 1 (rows per file part)"]


@pytest.mark.parametrize("identifier", ["maid", "external_id"])
def test_uid2_refuses_identifier_types_it_cannot_map(tmp_path: Path, identifier: str) -> None:
    assert problems(tmp_path, fmt="uid2", identifiers=f'["email", "{identifier}"]') == [
        f"destinations.dsp.identifiers: the uid2 format does not accept {identifier} identifiers"
    ]


@pytest.mark.parametrize(("drop", "message"), [
    ('uri = "s3://bucket/x/"\n', 'destinations.drop.uri: a file destination needs a uri such as "file:///abs/path" or '
     '"file:relative/path"'),
    ('uri = "file:"\n', 'destinations.drop.uri: a file destination needs a uri such as "file:///abs/path" or '
     '"file:relative/path"'),
])
def test_a_file_destination_needs_a_file_uri(tmp_path: Path, drop: str, message: str) -> None:
    (tmp_path / "audience.toml").write_text(
        BASE.format(fmt="sha256", identifiers='["email"]', drop="").replace('uri = "file:exports/drop"\n', drop),
        encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert [d.message for d in err.value.diagnostics] == [message]


def test_a_missing_uri_or_target_is_named_once(tmp_path: Path) -> None:
    text = BASE.format(fmt="sha256", identifiers='["email"]', drop="")
    text = text.replace('uri = "file:exports/drop"\n', "").replace('target = "127.0.0.1:50061"\n', "")
    (tmp_path / "audience.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert [d.message for d in err.value.diagnostics] == [
        'destinations.drop.uri: missing required key for a file destination (such as "file:exports/NAME")',
        'destinations.dsp.target: missing required key for a grpc destination (such as "127.0.0.1:50061")',
    ]


def test_relative_file_uris_in_both_spellings_stay_in_the_project(tmp_path: Path) -> None:
    for uri in ("file:exports/drop", "file://exports/drop", "file:./exports/../exports/drop"):
        text = BASE.format(fmt="sha256", identifiers='["email"]', drop="").replace("file:exports/drop", uri)
        (tmp_path / "audience.toml").write_text(text, encoding="utf-8")
        config = load_config(tmp_path)
        assert config.file_uri_path(config.destinations["drop"].uri or "").resolve() == \
            tmp_path.resolve() / "exports" / "drop", uri
