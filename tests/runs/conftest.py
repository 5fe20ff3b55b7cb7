"""Fixtures of the refresh-run tests (the S3 server is in tests/conftest.py): a real sandbox gRPC
receiver on loopback, and a project name of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from exporters.grpc_ingest.sandbox import Sandbox
from tests.exporters.grpc_helpers import running_sandbox
from tests.warehouse_fixture import PG_DSN


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """The sandbox receiver in this process (its store is inspected directly), no token, no TLS."""
    with running_sandbox(tmp_path / "sandbox.db") as server:
        yield server


@pytest.fixture
def project_name() -> Iterator[str]:
    """A `[project] name` of this test's own; its rows in PostgreSQL's shared `audience_state`
    snapshot schema (the key is project, audience, destination) are deleted afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = 'audience_state'").fetchone():
            for table in ("members", "sent"):
                conn.execute(f"DELETE FROM audience_state.{table} WHERE project = %s", (name,))
