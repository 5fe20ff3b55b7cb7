"""Shared pieces of the refresh-run tests: data rows, hand-computed hashes, the CLI, drop readers.

Expected hashes are computed here from normalized identifiers written out by hand in the tests
(exports.md: trim + lowercase; E.164 with `+`; `meta` phones without `+`; `uid2` gmail rules;
base64 for uid2), never by calling `exporters.hashing`.
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

REPO_ROOT = Path(__file__).resolve().parents[2]
AS_OF0 = datetime(2026, 7, 1, 6, 0, 0, tzinfo=UTC)
ADULT = date(1990, 1, 1)

CONSENT_CONFIG = '''
[consent]
table = "consents"
suppression_table = "suppressions"
minimum_age = 18
default_basis = "opt_in"

[consent.basis]
GB = "opt_in"
US = "opt_out"
'''


def destination(name: str, **keys: Any) -> str:
    """A `[destinations.NAME]` table of audience.toml: sha256 of emails, for ads_personalization,
    min_size 1, unless `keys` say otherwise (values are written as TOML)."""
    defaults = {"format": "sha256", "identifiers": ["email"], "purposes": ["ads_personalization"], "min_size": 1}
    keys = {**keys, **{key: value for key, value in defaults.items() if key not in keys}}
    lines = [f"{key} = {str(value).lower() if isinstance(value, bool) else json.dumps(value)}"
             for key, value in keys.items()]
    return "\n".join(["", f"[destinations.{name}]", *lines, ""])


def file_destination(name: str = "files", uri: str = "file:out/files", **keys: Any) -> str:
    return destination(name, type="file", uri=uri, **keys)


def grpc_destination(name: str, port: int, **keys: Any) -> str:
    """The sandbox receiver on loopback, without TLS."""
    return destination(name, type="grpc", target=f"127.0.0.1:{port}", tls=False, **keys)


def as_of(step: int) -> datetime:
    """The reference time of the n-th refresh of a scripted life cycle: one day apart."""
    return AS_OF0 + timedelta(days=step)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fan(key: int, email: str | None, phone: str | None = None, *, score: int = 10, country: str = "GB",
        birth: date | None = ADULT) -> tuple[Any, ...]:
    """A row of the fixture's `fans` table (fan_id, email, phone, city, country, birth_date, score, ...)."""
    return (key, email, phone, "London", country, birth, score, False, None, None)


def grant(key: int, when: str = "2026-01-01 00:00:00", purpose: str = "ads_personalization") -> tuple[Any, ...]:
    return (key, purpose, "granted", datetime.fromisoformat(when), None, "first_party")


def deny(key: int, when: str, purpose: str = "ads_personalization") -> tuple[Any, ...]:
    return (key, purpose, "denied", datetime.fromisoformat(when), None, "first_party")


def withdraw_sql(key: int, when: str) -> str:
    """SQL: fan `key` denies ads_personalization at `when` (a consent row from the web)."""
    return (f"INSERT INTO consents VALUES ({key}, 'ads_personalization', 'denied', TIMESTAMP '{when}', NULL, "
            "'web')")


def copy_fan_sql(key: int, email: str, like: int) -> str:
    """SQL: a new fan `key` with `email`, otherwise a copy of fan `like`."""
    return (f"INSERT INTO fans SELECT {key}, '{email}', phone, city, country, birth_date, score, vip, signup_at, "
            f"religion FROM fans WHERE fan_id = {like}")


# ---- hashes, computed independently ---------------------------------------------------------
def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def hashed_row(values: Sequence[str | None], encode: str = "hex") -> tuple[str, ...]:
    """The hashed cells of one member from its normalized identifiers ("" where absent)."""
    fn = sha256_hex if encode == "hex" else sha256_b64
    return tuple(fn(v) if v else "" for v in values)


# ---- warehouse edits between runs ---------------------------------------------------------------
def duck(project: Path, *statements: str) -> None:
    """Change the project's DuckDB warehouse (no other process may have it open)."""
    import duckdb

    con = duckdb.connect(str(project / "wh.duckdb"))
    try:
        for sql in statements:
            con.execute(sql)
    finally:
        con.close()


def change(engine: str, project: Path, *statements: str) -> None:
    """Change the warehouse of a fixture project on either engine."""
    if engine == "duckdb":
        duck(project, *statements)
        return
    import tomllib

    import psycopg

    url = tomllib.loads((project / "audience.toml").read_text(encoding="utf-8"))["warehouse"]["url"]
    with psycopg.connect(url, autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


def rename_project(project: Path, name: str) -> None:
    """Give a fixture project its own `[project] name` (the key of its snapshot rows)."""
    path = project / "audience.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('name = "fixture"', f'name = "{name}"', 1),
                    encoding="utf-8")


# ---- the command line, as a real subprocess ---------------------------------------------------
def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("AUDIENCE_TEST_PAUSE_AT", None)
    env.update(extra or {})
    return env


def cli_command(project: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "audience.cli", *args, "--project", str(project)]


def run_cli(project: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(project, *args), cwd=REPO_ROOT, env=cli_env(env), capture_output=True,
                          text=True, timeout=timeout, check=False)


def kill_at_pause(project: Path, point: str, marker: Path, *args: str) -> int:
    """Start `audience ARGS`, wait until it pauses at `point` (testhook.py), SIGKILL it there;
    its exit status."""
    env = cli_env({"AUDIENCE_TEST_PAUSE_AT": point, "AUDIENCE_TEST_PAUSE_FILE": str(marker)})
    process = subprocess.Popen(cli_command(project, *args), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for_file(marker, process)
    finally:
        process.kill()  # SIGKILL: no handler, no cleanup, as in a crash
        process.communicate(timeout=60)
    return process.returncode


def runs_json(project: Path) -> list[dict[str, Any]]:
    """`audience runs --json`, oldest first."""
    out = run_cli(project, "runs", "--json")
    assert out.returncode == 0, out.stderr
    return list(reversed(json.loads(out.stdout)["runs"]))


def wait_for_file(path: Path, process: subprocess.Popen[str], timeout: float = 120) -> None:
    """Wait until `path` exists (a pause point was reached); fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"process ended ({process.returncode}) before pausing:\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout}s")
        time.sleep(0.05)


# ---- reading S3 / file drops back ----------------------------------------------------------------
class DropSource(Protocol):
    def keys(self, prefix: str) -> list[str]: ...
    def read(self, key: str) -> bytes: ...


@dataclass
class LocalDrops:
    root: Path

    def keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.exists():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


@dataclass
class S3Drops:
    client: Any
    bucket: str
    prefix: str  # ends with "/"

    def keys(self, prefix: str) -> list[str]:
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=self.prefix + prefix):
            out += [item["Key"][len(self.prefix):] for item in page.get("Contents", [])]
        return sorted(out)

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()


@dataclass
class RunFolder:
    run_id: str
    manifest: dict[str, Any]
    rows: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)  # kind -> rows, parts in order

    @property
    def kinds(self) -> set[str]:
        return {f["kind"] for f in self.manifest["files"]}

    def count(self, kind: str) -> int:
        return len(self.rows.get(kind, []))


def parse_part(data: bytes, columns: Sequence[str]) -> list[tuple[str, ...]]:
    reader = csv.reader(io.StringIO(gzip.decompress(data).decode("utf-8")))
    header = next(reader)
    assert header == list(columns), f"header {header} != {list(columns)}"
    return [tuple(row) for row in reader]


def read_runs(source: DropSource, audience: str, columns: Sequence[str]) -> list[RunFolder]:
    """Every run folder of `audience`, oldest `as_of` first, each checked against its manifest.

    Checks: every folder has a manifest (no unfinished run), the manifest lists exactly the data
    files present, and each file's SHA-256 and row count match the manifest.
    """
    by_run: dict[str, list[str]] = defaultdict(list)
    for key in source.keys(f"{audience}/"):
        _, run_id, name = key.split("/")
        by_run[run_id].append(name)
    folders = []
    for run_id, names in by_run.items():
        assert "manifest.json" in names, f"run folder {run_id} has no manifest (unfinished)"
        manifest = json.loads(source.read(f"{audience}/{run_id}/manifest.json"))
        assert manifest["run_id"] == run_id and manifest["audience"] == audience
        listed = {f["key"] for f in manifest["files"]}
        assert listed == set(names) - {"manifest.json"}, f"{run_id}: files {sorted(names)} vs manifest {listed}"
        folder = RunFolder(run_id, manifest)
        for entry in sorted(manifest["files"], key=lambda f: f["key"]):
            data = source.read(f"{audience}/{run_id}/{entry['key']}")
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], f"{entry['key']}: SHA-256 differs"
            assert len(data) == entry["bytes"]
            rows = parse_part(data, columns)
            assert len(rows) == entry["rows"], f"{entry['key']}: {len(rows)} rows, manifest says {entry['rows']}"
            folder.rows.setdefault(entry["kind"], []).extend(rows)
        folders.append(folder)
    return sorted(folders, key=lambda f: f.manifest["as_of"])


def replay(folders: Iterable[RunFolder]) -> set[tuple[str, ...]]:
    """What a consumer holds after applying the folders in order: members-* replace the list,
    then adds are added and removes removed."""
    members: set[tuple[str, ...]] = set()
    for folder in folders:
        if "members" in folder.kinds:
            assert folder.manifest["mode"] == "replace"
            members = set(folder.rows["members"])
        members |= set(folder.rows.get("adds", []))
        members -= set(folder.rows.get("removes", []))
    return members


def sandbox_members(store: Any, segment: str, columns: Sequence[str]) -> set[tuple[str, ...]]:
    return {tuple(m.get(c, "") for c in columns) for m in store.members(segment)}
