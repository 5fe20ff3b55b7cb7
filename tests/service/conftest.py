"""Fixtures for the planner service tests (see helpers.py for the project they serve)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.consent.test_consent_rules import CONFIG, ROWS_CONSENT
from tests.service.helpers import AUDIENCES, Running, serving
from tests.warehouse_fixture import project_on


@pytest.fixture
def project_root(tmp_path: Path) -> Iterator[Path]:
    with project_on("duckdb", tmp_path, AUDIENCES, CONFIG, ROWS_CONSENT) as root:
        yield root


@pytest.fixture
def server(project_root: Path) -> Iterator[Running]:
    with serving(project_root) as running:
        yield running
