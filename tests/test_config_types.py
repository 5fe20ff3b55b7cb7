"""Every key of audience.toml given a value of the wrong type is one diagnostic naming the key
and the file, from `audience check` (exit 1), never a traceback or an exit 2.

The keys and their TOML types below are written out from the contract (shared/spec/project.md)
and docs/project.md, not read from the code, so a key the schema forgets or types wrongly fails.
"""

from __future__ import annotations

import io
import json
import math
import re
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from copy import deepcopy
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience.cli import main

# A project using every key, each with a valid value.
BASE: dict[str, Any] = {
    "project": {"name": "shop", "audiences": "audiences"},
    "warehouse": {"url": "duckdb:///wh.duckdb", "dialect": "duckdb"},
    "profiles": {
        "table": "crm.fans", "key": "fan_id", "country": "country", "birth_date": "birth_date",
        "identifiers": {"email": "email", "phone": "phone", "maid": "device_id", "external_id": "crm_id"},
        "columns": {"fan_id": "bigint"},
    },
    "events": {"stream": {"table": "streams", "key": "fan_id", "timestamp": "played_at",
                          "columns": {"genre": "varchar"}}},
    "sensitive": {
        "columns": {"fans.religion": "user.demographic.religious_belief"},
        "values": [{"column": "purchases.category", "values": ["pharmacy"], "category": "user.health_and_medical"}],
        "tables": {"mood_scores": "user.inferred.emotion"},
        "categories": ["user.custom"],
    },
    "consent": {"table": "consents", "suppression_table": "suppressions", "minimum_age": 16,
                "default_basis": "opt_in", "basis": {"GB": "opt_in", "EEA": "opt_in", "US": "opt_out"},
                "tcf_vendor_id": 755},
    "destinations": {
        "bucket": {"type": "s3", "uri": "s3://exports/meta/", "endpoint_url": "http://127.0.0.1:8333",
                   "region": "eu-west-1", "sse": "aws:kms", "kms_key_id": "key-1", "format": "meta",
                   "identifiers": ["email", "phone"], "purposes": ["ads_personalization"], "min_size": 100,
                   "max_change": 0.5, "rows_per_file": 1000},
        "dsp": {"type": "grpc", "target": "127.0.0.1:50061", "token_env": "SANDBOX_DSP_TOKEN", "tls": False,
                "ca_cert": "ca.pem", "deadline_seconds": 30, "batch_size": 100, "format": "uid2",
                "identifiers": ["email"], "purposes": ["ads_personalization"], "min_size": 1000, "max_change": 1},
        "drop": {"type": "file", "uri": "file:exports/drop", "format": "sha256", "identifiers": ["email"],
                 "purposes": ["ads_personalization"], "min_size": 1, "max_change": 0.25, "rows_per_file": 10},
    },
    "state": {"url": "sqlite:///.audience/state.db"},
}

# key path -> its TOML type: string, integer, number (integer or float), boolean, strings (an
# array of strings), table, tables (an array of tables)
KEYS: dict[tuple[str, ...], str] = {
    ("project",): "table", ("project", "name"): "string", ("project", "audiences"): "string",
    ("warehouse",): "table", ("warehouse", "url"): "string", ("warehouse", "dialect"): "string",
    ("profiles",): "table", ("profiles", "table"): "string", ("profiles", "key"): "string",
    ("profiles", "country"): "string", ("profiles", "birth_date"): "string",
    ("profiles", "identifiers"): "table", ("profiles", "columns"): "table",
    ("profiles", "columns", "fan_id"): "string",
    **{("profiles", "identifiers", kind): "string" for kind in ("email", "phone", "maid", "external_id")},
    ("events",): "table", ("events", "stream"): "table",
    **{("events", "stream", key): "string" for key in ("table", "key", "timestamp")},
    ("events", "stream", "columns"): "table", ("events", "stream", "columns", "genre"): "string",
    ("sensitive",): "table", ("sensitive", "columns"): "table", ("sensitive", "columns", "fans.religion"): "string",
    ("sensitive", "values"): "tables", ("sensitive", "tables"): "table",
    ("sensitive", "tables", "mood_scores"): "string", ("sensitive", "categories"): "strings",
    ("consent",): "table", ("consent", "table"): "string", ("consent", "suppression_table"): "string",
    ("consent", "minimum_age"): "integer", ("consent", "default_basis"): "string", ("consent", "basis"): "table",
    ("consent", "basis", "GB"): "string", ("consent", "tcf_vendor_id"): "integer",
    ("destinations",): "table",
    **{("destinations", name): "table" for name in ("bucket", "dsp", "drop")},
    **{("destinations", name, key): kind for name in ("bucket", "dsp", "drop")
       for key, kind in (("type", "string"), ("format", "string"), ("identifiers", "strings"),
                         ("purposes", "strings"), ("min_size", "integer"), ("max_change", "number"))},
    **{("destinations", "bucket", key): "string" for key in ("uri", "endpoint_url", "region", "sse", "kms_key_id")},
    ("destinations", "bucket", "rows_per_file"): "integer", ("destinations", "drop", "uri"): "string",
    ("destinations", "drop", "rows_per_file"): "integer",
    **{("destinations", "dsp", key): "string" for key in ("target", "token_env", "ca_cert")},
    ("destinations", "dsp", "tls"): "boolean", ("destinations", "dsp", "deadline_seconds"): "number",
    ("destinations", "dsp", "batch_size"): "integer",
    ("state",): "table", ("state", "url"): "string",
}


# ---- a small TOML writer (tomllib only reads) ------------------------------------------------
def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")) if not math.isfinite(value) \
            else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(doc: dict[str, Any]) -> str:
    lines: list[str] = []

    def table(prefix: str, data: dict[str, Any]) -> None:
        lines.append(f"[{prefix}]" if prefix else "")
        subs = {k: v for k, v in data.items() if isinstance(v, dict)}
        lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in data.items() if k not in subs)
        for key, sub in subs.items():
            table(f"{prefix}.{toml_key(key)}" if prefix else toml_key(key), sub)

    table("", doc)
    return "\n".join(lines) + "\n"


def with_value(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc = deepcopy(BASE)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def dotted(path: tuple[str, ...]) -> str:
    return ".".join(toml_key(k) for k in path)


def check(project: Path, doc: dict[str, Any] | str) -> tuple[int, str, str]:
    (project / "audiences").mkdir(exist_ok=True)
    (project / "audience.toml").write_text(doc if isinstance(doc, str) else toml_document(doc), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["check", "--project", str(project)])
    return code, out.getvalue(), err.getvalue()


def diagnostics(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if re.match(r"audience\.toml:\d+:\d+: error\[E\d+\]: ", line)]


def test_the_base_project_uses_every_key_and_is_valid(tmp_path: Path) -> None:
    for path in KEYS:
        node: Any = BASE
        for key in path:
            node = node[key]
    from audience.config import load_config

    (tmp_path / "audiences").mkdir()
    (tmp_path / "audience.toml").write_text(toml_document(BASE), encoding="utf-8")
    config = load_config(tmp_path)  # no ConfigError
    assert config.destinations["dsp"].tls is False
    assert config.destinations["dsp"].deadline_seconds == 30.0
    assert config.consent is not None and config.consent.tcf_vendor_id == 755


# ---- wrong values, with the exact messages ----------------------------------------------------
@pytest.mark.parametrize(("path", "value", "message"), [
    (("consent", "minimum_age"), "sixteen", "consent.minimum_age: must be an integer, not a string"),
    (("consent", "minimum_age"), 16.0, "consent.minimum_age: must be an integer, not a float"),
    (("consent", "minimum_age"), True, "consent.minimum_age: must be an integer, not a boolean"),
    (("consent", "minimum_age"), 121, "consent.minimum_age: must be between 0 and 120"),
    (("destinations", "drop", "identifiers"), "email",
     'destinations.drop.identifiers: must be an array of strings, not a string (write ["email"])'),
    (("destinations", "drop", "identifiers"), ["email", 7],
     "destinations.drop.identifiers: must be an array of strings; item 2 is an integer"),
    (("destinations", "drop", "identifiers"), [], "destinations.drop.identifiers: must name at least one "
     "identifier type to export"),
    (("destinations", "drop", "identifiers"), ["email", "email"], 'destinations.drop.identifiers: "email" is '
     "listed twice"),
    (("destinations", "drop", "purposes"), [], "destinations.drop.purposes: must name at least one purpose (a "
     "profile goes out only when every purpose is permitted, so an empty list would let every profile out)"),
    (("destinations", "drop", "min_size"), 0,
     "destinations.drop.min_size: must be at least 1 (the smallest audience that may be exported)"),
    (("destinations", "bucket", "min_size"), -3,
     "destinations.bucket.min_size: must be at least 1 (the smallest audience that may be exported)"),
    (("destinations", "dsp", "tls"), "no", "destinations.dsp.tls: must be true or false, not a string"),
    (("destinations", "dsp", "deadline_seconds"), math.inf, "destinations.dsp.deadline_seconds: must be a finite "
     "number, not inf"),
    (("destinations", "bucket", "max_change"), "half", "destinations.bucket.max_change: must be a number, not a "
     "string"),
    (("destinations", "bucket", "sse"), "DES", 'destinations.bucket.sse: unknown value "DES"; use one of AES256, '
     "aws:kms"),
    (("destinations", "drop", "type"), "ftp", 'destinations.drop.type: unknown value "ftp"; use one of s3, grpc, '
     "file"),
    (("consent", "tcf_vendor_id"), 0, "consent.tcf_vendor_id: must be an IAB vendor id between 1 and 65535"),
    (("consent", "basis", "GB"), "maybe", 'consent.basis.GB: unknown value "maybe"; use one of opt_in, opt_out'),
    (("profiles", "identifiers"), "email", "profiles.identifiers: must be a table, not a string"),
    (("profiles", "key"), "fan id", 'profiles.key: "fan id" is not a valid column name'),
    (("events",), ["stream"], "events: must be a table of [events.NAME] sections, not an array"),
    (("events", "stream"), 5, "events.stream: must be a table, not an integer"),
    (("sensitive", "columns", "fans.religion"), 3, 'sensitive.columns."fans.religion": must be a string, not an '
     "integer"),
    (("sensitive", "values"), [{"column": "category", "values": ["x"], "category": "user.health_and_medical"}],
     'sensitive.values[1].column: "category" must be written "table.column"'),
    (("state", "url"), "mysql://db/state", 'state.url: "mysql:..." is not supported; use sqlite:///path or '
     "postgresql://..."),
    (("state", "url"), "sqlite:///", 'state.url: names no file; write "sqlite:///path/state.db"'),
    (("state",), "sqlite:///x.db", "state: must be a table, not a string"),
    (("warehouse", "url"), "wh.duckdb", 'warehouse.url: "wh.duckdb" is not a url; write duckdb:///path.duckdb, '
     "postgresql://... or sc://host:port"),
    (("warehouse", "url"), "duckdb:wh.duckdb", 'warehouse.url: a DuckDB url is written '
     '"duckdb:///relative/path.duckdb" or "duckdb:////absolute/path.duckdb"'),
])
def test_a_wrong_value_is_one_diagnostic_naming_the_key(tmp_path: Path, path: tuple[str, ...], value: Any,
                                                       message: str) -> None:
    code, out, err = check(tmp_path, with_value(path, value))
    assert (code, err) == (1, "")
    assert [line.split(": error[E406]: ", 1)[1] for line in diagnostics(out)] == [message]
    assert out.endswith("1 error in 1 file\n")


def test_the_diagnostic_points_at_the_line_of_the_key(tmp_path: Path) -> None:
    text = toml_document(with_value(("consent", "minimum_age"), "sixteen"))
    line = text.splitlines().index('minimum_age = "sixteen"') + 1
    code, out, _ = check(tmp_path, text)
    assert code == 1
    assert out == f"audience.toml:{line}:1: error[E406]: consent.minimum_age: must be an integer, not a string\n" \
                  "1 error in 1 file\n"


@pytest.mark.parametrize(("dest", "key", "value", "applies"), [
    ("dsp", "rows_per_file", 10, "s3 and file"),
    ("drop", "batch_size", 10, "grpc"),
    ("drop", "tls", True, "grpc"),
    ("bucket", "target", "127.0.0.1:1", "grpc"),
    ("dsp", "uri", "s3://x/", "s3 and file"),
    ("drop", "sse", "AES256", "s3"),
])
def test_a_key_of_another_destination_type_is_refused(tmp_path: Path, dest: str, key: str, value: Any,
                                                      applies: str) -> None:
    kind = BASE["destinations"][dest]["type"]
    code, out, _ = check(tmp_path, with_value(("destinations", dest, key), value))
    assert code == 1
    assert [line.split(": error[E406]: ", 1)[1] for line in diagnostics(out)] == [
        f"destinations.{dest}.{key}: applies only to {applies} destinations, not {kind}"]


def test_a_secret_in_the_file_is_refused(tmp_path: Path) -> None:
    code, out, _ = check(tmp_path, with_value(("destinations", "dsp", "token"), "s3cr3t"))
    assert code == 1
    assert [line.split(": error[E406]: ", 1)[1] for line in diagnostics(out)] == [
        "destinations.dsp.token: secrets are never written in the file; name an environment variable in token_env"]
    assert "s3cr3t" not in out


def test_keys_left_out_take_the_documented_defaults(tmp_path: Path) -> None:
    from audience.config import load_config

    doc = deepcopy(BASE)
    for name in ("bucket", "dsp", "drop"):
        for key in ("min_size", "max_change", "rows_per_file", "tls", "deadline_seconds", "batch_size"):
            doc["destinations"][name].pop(key, None)
    for key in ("minimum_age", "default_basis"):
        doc["consent"].pop(key)
    del doc["state"]
    (tmp_path / "audiences").mkdir()
    (tmp_path / "audience.toml").write_text(toml_document(doc), encoding="utf-8")
    config = load_config(tmp_path)
    bucket, dsp = config.destinations["bucket"], config.destinations["dsp"]
    # docs/project.md and shared/spec: min_size 100, max_change 0.5, rows_per_file 1000000,
    # tls true, deadline 30 s, batch 5000; minimum_age 16, opt_in; state in .audience/state.db
    assert (bucket.min_size, bucket.max_change, bucket.rows_per_file) == (100, 0.5, 1_000_000)
    assert (dsp.tls, dsp.deadline_seconds, dsp.batch_size) == (True, 30.0, 5000)
    assert config.consent is not None
    assert (config.consent.minimum_age, config.consent.default_basis) == (16, "opt_in")
    assert config.state.url == "sqlite:///.audience/state.db"


# ---- fuzz: random values of a wrong type at every key ------------------------------------------
_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
_scalars: dict[str, st.SearchStrategy[Any]] = {
    "string": _text,
    "integer": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "float": st.floats(allow_nan=True, allow_infinity=True),
    "boolean": st.booleans(),
    "datetime": st.datetimes(min_value=datetime(1000, 1, 1)),
    "date": st.dates(min_value=date(1000, 1, 1)),
    "time": st.times(),
}
_any_value = st.recursive(
    st.one_of(*_scalars.values()),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), inner, max_size=3)),
    max_leaves=6,
)
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "strings": (list,), "table": (dict,), "tables": (list,),
}


def wrong_for(kind: str, value: Any) -> bool:
    """Whether `value` has a TOML type other than the key's (an array of strings with a
    non-string item, or an array of tables with a non-table item, is also wrong)."""
    if kind in ("integer", "number") and isinstance(value, bool):
        return True
    if kind == "integer" and isinstance(value, float):
        return True
    if kind == "strings" and isinstance(value, list):
        return any(not isinstance(v, str) for v in value)
    if kind == "tables" and isinstance(value, list):
        return any(not isinstance(v, dict) for v in value)
    return not isinstance(value, _ACCEPTS[kind])


@st.composite
def wrong_key_values(draw: st.DrawFn) -> tuple[tuple[str, ...], Any]:
    path = draw(st.sampled_from(sorted(KEYS)))
    value = draw(_any_value.filter(lambda v: wrong_for(KEYS[path], v)))
    return path, value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(wrong_key_values())
def test_fuzz_a_wrong_type_at_any_key_is_one_diagnostic_never_a_traceback(case: tuple[tuple[str, ...], Any]) -> None:
    path, value = case
    with tempfile.TemporaryDirectory() as tmp:
        code, out, err = check(Path(tmp), with_value(path, value))
    assert "Traceback" not in out + err and "unexpected" not in err
    assert code == 1, (out, err)
    lines = diagnostics(out)
    assert len(lines) == 1, out
    file_and_place, _, message = lines[0].partition(": error[E406]: ")
    assert file_and_place.startswith("audience.toml:")
    assert message.startswith((f"{dotted(path)}: ", f"{dotted(path)}[")), message
    assert "unknown key" not in message and "missing required" not in message


@st.composite
def any_key_values(draw: st.DrawFn) -> list[tuple[tuple[str, ...], Any]]:
    """Several keys (known, or a new name under a known table) set to any value at all."""
    cases = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(sorted(KEYS)))
        if draw(st.booleans()) and KEYS[path] == "table":
            path = (*path, draw(st.from_regex(r"[a-z_]{1,8}", fullmatch=True)))
        cases.append((path, draw(_any_value)))
    return cases


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_key_values())
def test_fuzz_any_values_anywhere_give_diagnostics_never_a_traceback(cases: list[tuple[tuple[str, ...], Any]]) -> None:
    doc = deepcopy(BASE)
    for path, value in cases:
        node = doc
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value
    with tempfile.TemporaryDirectory() as tmp:
        code, out, err = check(Path(tmp), doc)  # there is no wh.duckdb: a valid file still ends in E406
    assert "Traceback" not in out + err and "unexpected" not in err
    assert code == 1, (out, err)
    assert diagnostics(out), out


def test_a_missing_key_points_at_its_section_and_a_quoted_key_at_its_line(tmp_path: Path) -> None:
    doc = with_value(("sensitive", "columns", "fans.religion"), 3)
    del doc["events"]["stream"]["timestamp"]
    text = toml_document(doc)
    lines = text.splitlines()
    code, out, _ = check(tmp_path, text)
    assert code == 1
    assert diagnostics(out) == [
        f"audience.toml:{lines.index('[events.stream]') + 1}:1: error[E406]: events.stream.timestamp: "
        "missing required key",
        f"audience.toml:{lines.index('[sensitive.columns]') + 2}:2: error[E406]: "
        'sensitive.columns."fans.religion": must be a string, not an integer',
    ]
