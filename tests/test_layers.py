"""The domain and the gRPC service load without the command line (issue #18).

Imported in a fresh interpreter, so nothing an earlier test imported hides a dependency: after
importing every module of audience/ outside audience/cli (the service's server included), no
`audience.cli` module may be loaded. Deferred imports are the import-linter contracts' job
(pyproject.toml, `lint-imports` in .ci/run).
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import audience

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m == "audience.cli" or m.startswith("audience.cli."))))
"""


def _non_cli_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(audience.__path__, "audience.")
                  if not (m.name == "audience.cli" or m.name.startswith("audience.cli.")))


def _cli_modules_loaded_by(modules: list[str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *modules], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_service_and_the_domain_import_without_the_cli() -> None:
    modules = _non_cli_modules()
    for expected in ("audience.service.server", "audience.service.servicer", "audience.project",
                     "audience.build", "audience.consented", "audience.runs.api", "audience.runs.engine"):
        assert expected in modules
    assert _cli_modules_loaded_by(modules) == []


def test_the_probe_sees_the_cli_when_it_is_imported() -> None:
    assert "audience.cli.support" in _cli_modules_loaded_by(["audience.cli"])
