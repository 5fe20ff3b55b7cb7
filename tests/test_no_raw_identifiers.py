"""No raw email, phone number or device id leaves: not in an export, not in a log line.

Runs the whole path through the real command line with JSON logs at DEBUG level — the demo
(file drops), then one audience of everyone to a gRPC destination (the sandbox receiver in its
own process, logging at DEBUG) and to an S3 destination (SeaweedFS; ``sha256``, which hashes
device ids too, where ``meta`` and ``google`` send them plain by contract) — and then scans every
exported file and object, the sandbox's database, and every output line of the command and
of the sandbox, for every identifier in the warehouse, raw and normalized.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import phonenumbers
import pytest

from exporters.grpc_ingest.client import IngestClient
from tests.conftest import S3_BUCKET
from tests.exporters.grpc_helpers import sandbox_process, target_of
from tests.exporters.s3_server import SeaweedS3

AS_OF = "2026-11-22T06:00:00Z"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audience.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def _identifiers(warehouse: Path) -> set[str]:
    """Every email, phone and device id in the warehouse, also lower-cased/trimmed and as digits."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute("SELECT email, phone, device_id, country FROM fans").fetchall()
    finally:
        con.close()
    found: set[str] = set()
    for email, phone, device, country in rows:
        if email and "@" in email:
            found.update({email.strip(), email.strip().lower()})
        if phone:
            digits = re.sub(r"\D", "", phone)
            if len(digits) >= 7:
                found.update({phone.strip(), digits, *_e164_forms(phone, country)})
        if device:
            found.update({device, device.lower()})
    return found


def _e164_forms(phone: str, country: str | None) -> set[str]:
    """The number in E.164, with and without ``+`` (what a hasher would have hashed), read with
    ``phonenumbers`` directly: a national-format number leaks in this form, not as typed."""
    try:
        number = phonenumbers.parse(phone, country)
    except phonenumbers.NumberParseException:
        return set()
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return {e164, e164.lstrip("+")} if len(e164) > 7 else set()


def test_exports_and_logs_hold_no_raw_identifiers(tmp_path: Path, s3_env: SeaweedS3, s3_prefix: str, s3_admin: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "demo"
    monkeypatch.setenv("AUDIENCE_LOG_FORMAT", "json")
    monkeypatch.setenv("AUDIENCE_LOG_LEVEL", "DEBUG")  # the sandbox process reads them too
    env = dict(os.environ)
    outputs: list[str] = []
    demo = _cli("demo", "--dir", str(project), "--fans", "2000", "--as-of", AS_OF, env=env)
    outputs += [demo.stdout, demo.stderr]
    assert demo.returncode == 0, demo.stderr
    with sandbox_process(tmp_path / "sandbox.db", token="s3cret") as sandbox:
        config = (project / "audience.toml").read_text()
        config += (f'\n[destinations.dsp]\ntype = "grpc"\ntarget = "{target_of(sandbox.port)}"\n'
                   'tls = false\ntoken_env = "DSP_TOKEN"\nformat = "uid2"\nidentifiers = ["email", "phone"]\n'
                   'purposes = ["ads_personalization"]\nmin_size = 1\n'
                   f'\n[destinations.bucket]\ntype = "s3"\nuri = "s3://{S3_BUCKET}/{s3_prefix}"\n'
                   f'endpoint_url = "{s3_env.endpoint_url}"\nregion = "us-east-1"\nformat = "sha256"\n'
                   'identifiers = ["email", "phone", "maid"]\npurposes = ["ads_personalization"]\nmin_size = 1\n')
        (project / "audience.toml").write_text(config)
        (project / "audiences" / "dsp.aud").write_text(
            'audience dsp_everyone {\n  where: fan_id is not null\n  sync dsp { schedule: "0 * * * *" }\n'
            '  sync bucket { schedule: "0 * * * *" }\n}\n')
        run = _cli("refresh", "dsp_everyone", "--project", str(project), "--as-of", AS_OF,
                   env={**env, "DSP_TOKEN": "s3cret"})
        outputs += [run.stdout, run.stderr]
        assert run.returncode == 0, run.stdout + run.stderr
        with IngestClient(target_of(sandbox.port), token="s3cret", tls=False) as client:
            members = client.list_members("dsp_everyone")
    outputs += sandbox.lines
    assert len(members) > 100
    assert any('"dsp_sandbox.call"' in line for line in sandbox.lines)  # its log lines were read
    identifiers = _identifiers(project / "warehouse.duckdb")
    assert len(identifiers) > 1000
    exported = list((project / "exports").rglob("*.csv.gz"))
    keys = [o["Key"] for o in s3_admin.list_objects_v2(Bucket=S3_BUCKET, Prefix=s3_prefix).get("Contents", [])]
    objects = {key: s3_admin.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read() for key in keys}
    assert exported and any(key.endswith(".csv.gz") for key in objects)
    texts = [gzip.decompress(p.read_bytes()).decode() for p in exported]
    texts += [gzip.decompress(body).decode() if key.endswith(".gz") else body.decode() for key, body in objects.items()]
    texts += [p.read_text() for p in (project / "exports").rglob("manifest.json")]
    texts += outputs
    texts.append((tmp_path / "sandbox.db").read_bytes().decode("latin-1"))
    texts.append(repr(members))
    pattern = re.compile("|".join(re.escape(i) for i in sorted(identifiers, key=len, reverse=True)))
    sample = sorted(identifiers)[0]
    assert pattern.search(f"x {sample} y")  # the scan would see a leak
    leaks = [m.group(0) for text in texts for m in [pattern.search(text)] if m]
    assert leaks == []
    assert "@" not in "".join(texts[: len(exported)])
