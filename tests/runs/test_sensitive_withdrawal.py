"""A definition that starts to reach sensitive data: its next run removes every exported member.

dsl.md: removals caused by a sensitive-data rule are sent in every mode — here an `additive`
sync, which otherwise never sends departures.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tests.consent.test_consent_rules import CONFIG, EXPORTED_ADS, ROWS_CONSENT
from tests.runs.helpers import run_cli, sha256_hex
from tests.warehouse_fixture import project_on


def test_sensitive_rule_removes_every_member_even_in_additive_mode(tmp_path: Path) -> None:
    audiences = 'audience adults {\n  where: fan_id is not null\n  sync ads { mode: additive }\n}\n'
    with project_on("duckdb", tmp_path, audiences, CONFIG.replace("min_size = 5", "min_size = 1"),
                    ROWS_CONSENT) as root:
        first = run_cli(root, "refresh", "adults", "--as-of", "2026-06-30T12:00:00Z")
        assert first.returncode == 0, first.stderr
        # The privacy team now tags the city column as precise location: the audience uses it.
        (root / "audiences" / "test.aud").write_text(
            'audience adults {\n  where: fan_id is not null and city = "London"\n  sync ads { mode: additive }\n}\n')
        config = (root / "audience.toml").read_text().replace(
            '"fans.religion" = "user.demographic.religious_belief"',
            '"fans.religion" = "user.demographic.religious_belief", "fans.city" = "user.location.precise"')
        (root / "audience.toml").write_text(config)
        second = run_cli(root, "refresh", "adults", "--as-of", "2026-07-01T12:00:00Z")
        assert second.returncode == 2
        assert 'error[E301]: column "fans.city" is sensitive (user.location.precise)' in second.stdout + second.stderr
        runs = json.loads(run_cli(root, "runs", "--json").stdout)["runs"]
        assert runs[0]["state"] == "failed"
        assert "sensitive data" in runs[0]["error"]
        drops = sorted((root / "out" / "ads" / "adults").iterdir(), key=lambda p: json.loads(
            (p / "manifest.json").read_text())["as_of"])
        removes = gzip.decompress((drops[1] / "removes-00000.csv.gz").read_bytes()).decode().splitlines()
    # every exported member, with the hashes sent on the first run (emails only: 121's phone)
    assert removes[0] == "email,phone"
    emails = {sha256_hex(f"fan{k}@example.com") for k in EXPORTED_ADS if k != 121}
    assert {row.split(",")[0] for row in removes[1:] if row.split(",")[0]} == emails
    assert len(removes) - 1 == len(EXPORTED_ADS)
    assert not (drops[1] / "adds-00000.csv.gz").exists() or gzip.decompress(
        (drops[1] / "adds-00000.csv.gz").read_bytes()).decode() == "email,phone\n"
