"""The object-store interface shared by file and S3 destinations.

Exports are written through this small Protocol so the drop writer (and resume logic) does not
care whether the destination is a local folder or an S3 bucket. Every write is atomic: a
reader either sees the previous object, or the complete new one, never a partial object.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

#: Metadata name (``x-amz-meta-sha256`` on S3) holding the hex SHA-256 of an object's bytes.
SHA256_METADATA = "sha256"


class ExportStoreError(Exception):
    """A destination refused or failed an operation; the message is one line, never data.

    ``transient`` tells whether the failure was of the retryable kind (5xx, throttling,
    connection) and retries ran out; ``attempts`` is how many times the call was tried.
    """

    def __init__(
        self,
        message: str,
        *,
        location: str = "",
        code: str | None = None,
        status: int | None = None,
        transient: bool = False,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.location = location
        self.code = code
        self.status = status
        self.transient = transient
        self.attempts = attempts


class ObjectNotFoundError(ExportStoreError):
    """The key does not exist in the store (raised by reads, never by ``head``)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What ``head`` knows about an object without downloading it.

    ``sha256`` is the digest recorded at upload time (S3 metadata) or, for local files, the
    digest of the bytes on disk; ``None`` when the object was not written by us.
    """

    size: int
    sha256: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class ObjectStore(Protocol):
    """A flat key space of immutable-looking objects (keys use ``/`` separators)."""

    def put_file(
        self,
        key: str,
        path: Path,
        content_sha256: str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Upload ``path`` as ``key`` atomically, recording ``content_sha256`` with it."""
        ...

    def put_bytes(
        self, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None
    ) -> None:
        """Store ``data`` as ``key`` atomically (small objects such as manifests)."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Size and recorded digest of ``key``, or ``None`` when it does not exist."""
        ...

    def iter_bytes(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The object as a stream of chunks, so large parts can be read in flat memory."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted; never includes in-progress temp objects."""
        ...

    def describe(self, key: str = "") -> str:
        """A URI naming ``key`` in this store, for messages and logs."""
        ...


def validate_key(key: str) -> str:
    """Reject keys that could escape the store root or that differ between S3 and disk."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"invalid object key {key!r}")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key
