"""No raw email, phone number or device id leaves: not in an export, not in a log line.

Runs the whole path through the real command line with JSON logs at DEBUG level — the demo
(file drops) plus a gRPC destination on the sandbox receiver — and then scans every exported
file, the sandbox's database and every captured output line for every identifier in the
warehouse, raw and normalized.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import phonenumbers

from tests.exporters.grpc_helpers import running_sandbox, target_of

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


def test_exports_and_logs_hold_no_raw_identifiers(tmp_path: Path) -> None:
    project = tmp_path / "demo"
    env = {**os.environ, "AUDIENCE_LOG_FORMAT": "json", "AUDIENCE_LOG_LEVEL": "DEBUG"}
    outputs: list[str] = []
    demo = _cli("demo", "--dir", str(project), "--fans", "2000", "--as-of", AS_OF, env=env)
    outputs += [demo.stdout, demo.stderr]
    assert demo.returncode == 0, demo.stderr
    with running_sandbox(tmp_path / "sandbox.db", token="s3cret", tls=None, faults=None) as sandbox:
        config = (project / "audience.toml").read_text()
        config += (f'\n[destinations.dsp]\ntype = "grpc"\ntarget = "{target_of(sandbox.port)}"\n'
                   'tls = false\ntoken_env = "DSP_TOKEN"\nformat = "uid2"\nidentifiers = ["email", "phone"]\n'
                   'purposes = ["ads_personalization"]\nmin_size = 1\n')
        (project / "audience.toml").write_text(config)
        (project / "audiences" / "dsp.aud").write_text(
            'audience dsp_everyone {\n  where: fan_id is not null\n  sync dsp { schedule: "0 * * * *" }\n}\n')
        run = _cli("refresh", "dsp_everyone", "--project", str(project), "--as-of", AS_OF,
                   env={**env, "DSP_TOKEN": "s3cret"})
        outputs += [run.stdout, run.stderr]
        assert run.returncode == 0, run.stdout + run.stderr
        members = sandbox.store.members("dsp_everyone")
    assert len(members) > 100
    identifiers = _identifiers(project / "warehouse.duckdb")
    assert len(identifiers) > 1000
    exported = list((project / "exports").rglob("*.csv.gz"))
    assert exported
    texts = [gzip.decompress(p.read_bytes()).decode() for p in exported]
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
