"""Object stores for file and S3 destinations, and ``open_store`` to pick one from a URI."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from exporters.objectstore.base import (
    SHA256_METADATA,
    ExportStoreError,
    ObjectInfo,
    ObjectNotFoundError,
    ObjectStore,
)
from exporters.objectstore.file_store import FileStore

if TYPE_CHECKING:
    from exporters.objectstore.s3_store import S3Store

__all__ = [
    "SHA256_METADATA",
    "ExportStoreError",
    "FileStore",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectStore",
    "S3Store",
    "open_store",
]


def __getattr__(name: str) -> Any:
    """``S3Store`` on first use: it imports boto3 (~90 ms), which file destinations never need."""
    if name == "S3Store":
        from exporters.objectstore.s3_store import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(
    uri: str,
    *,
    endpoint_url: str | None = None,
    sse: str | None = None,
    kms_key_id: str | None = None,
    **s3_options: Any,
) -> ObjectStore:
    """The store for a destination URI: ``file:///abs/path`` or ``s3://bucket/prefix/``.

    ``s3_options`` go to S3Store (region, multipart sizes, max_attempts, backoff).
    """
    parts = urlsplit(uri)
    if parts.query or parts.fragment:
        raise ValueError(f"destination URI {uri!r} must not have a query or fragment")
    if parts.scheme == "file":
        return _open_file(uri, parts.netloc, parts.path, endpoint_url, sse, kms_key_id, s3_options)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"destination URI {uri!r} names no bucket")
        from exporters.objectstore.s3_store import S3Store

        return S3Store(
            parts.netloc,
            unquote(parts.path),
            endpoint_url=endpoint_url,
            sse=sse,
            kms_key_id=kms_key_id,
            **s3_options,
        )
    raise ValueError(f"unsupported destination URI {uri!r}: use file:///path or s3://bucket/")


def _open_file(
    uri: str,
    host: str,
    path: str,
    endpoint_url: str | None,
    sse: str | None,
    kms_key_id: str | None,
    s3_options: dict[str, Any],
) -> FileStore:
    if host not in ("", "localhost"):
        raise ValueError(f"destination URI {uri!r}: file URIs must be local (file:///path)")
    if not path.startswith("/"):
        raise ValueError(f"destination URI {uri!r}: file URIs need an absolute path")
    if endpoint_url or sse or kms_key_id or s3_options:
        raise ValueError(f"destination URI {uri!r}: S3 options do not apply to file URIs")
    return FileStore(Path(unquote(path)))
