"""S3 destination (``s3://bucket/prefix/``) through boto3.

Atomicity comes from S3 itself: a PutObject or a CompleteMultipartUpload makes the object
visible whole or not at all, and s3transfer aborts a failed multipart upload. Each object
carries its SHA-256 as ``x-amz-meta-sha256`` so a resumed run can check an existing part
with a HEAD instead of a download. boto3's retries are off; ``retry.call_with_retries``
retries transient failures only, so every attempt is ours, logged and countable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import boto3
import structlog
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from exporters.objectstore.base import (
    SHA256_METADATA,
    ExportStoreError,
    ObjectInfo,
    validate_key,
)
from exporters.objectstore.retry import RetryPolicy, call_with_retries, is_not_found

T = TypeVar("T")

log = structlog.get_logger()

MiB = 1024 * 1024
SseMode = Literal["AES256", "aws:kms"]
_SSE_MODES: tuple[SseMode, ...] = get_args(SseMode)
_CONTENT_TYPES = {".gz": "application/gzip", ".json": "application/json"}


def _normalize_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    if prefix:
        validate_key(prefix)
        return f"{prefix}/"
    return ""


def _content_type(key: str) -> str:
    return _CONTENT_TYPES.get(Path(key).suffix, "application/octet-stream")


def _sse_mode(sse: str | None) -> SseMode | None:
    """The configured server-side encryption, checked (config files hold plain strings)."""
    if sse is None or sse in _SSE_MODES:
        return sse
    raise ValueError(f"sse must be one of {', '.join(_SSE_MODES)}, not {sse!r}")


class S3Store:
    """An ObjectStore over one bucket and key prefix; credentials come from boto3's chain."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        sse: str | None = None,
        kms_key_id: str | None = None,
        multipart_threshold: int = 8 * MiB,
        multipart_chunksize: int = 8 * MiB,
        max_attempts: int = 6,
        backoff_initial: float = 0.5,
        backoff_max: float = 20.0,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 destination needs a bucket name")
        self.sse = _sse_mode(sse)
        if kms_key_id is not None and self.sse != "aws:kms":
            raise ValueError('kms_key_id requires sse = "aws:kms"')
        self.bucket = bucket
        self.prefix = _normalize_prefix(prefix)
        self.kms_key_id = kms_key_id
        self.policy = RetryPolicy(
            max_attempts=max_attempts, initial_wait=backoff_initial, max_wait=backoff_max
        )
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize
        )
        self.client = self._make_client(endpoint_url, region)

    @staticmethod
    def _make_client(endpoint_url: str | None, region: str | None) -> Any:
        # Path-style addressing for custom endpoints: S3-compatible servers rarely have
        # wildcard DNS for virtual-hosted buckets.
        s3_options = {"addressing_style": "path"} if endpoint_url else {}
        # total_max_attempts counts the first try; botocore's "max_attempts" key counts
        # retries only, so {"max_attempts": 1} would still send every request twice.
        config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, s3=s3_options)
        return boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )

    def describe(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def _full_key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _call(self, operation: str, key: str, fn: Callable[[], T]) -> T:
        return call_with_retries(
            fn, operation=operation, location=self.describe(key), policy=self.policy
        )

    def _extra_args(self, key: str, sha256: str, metadata: Mapping[str, str] | None) -> dict:
        extra: dict[str, Any] = {
            "Metadata": {**(metadata or {}), SHA256_METADATA: sha256},
            "ContentType": _content_type(key),
        }
        if self.sse is not None:
            extra["ServerSideEncryption"] = self.sse
        if self.kms_key_id is not None:
            extra["SSEKMSKeyId"] = self.kms_key_id
        return extra

    def put_file(
        self,
        key: str,
        path: Path,
        content_sha256: str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Upload with upload_file: multipart above ``multipart_threshold``."""
        full_key = self._full_key(key)
        extra = self._extra_args(key, content_sha256, metadata)
        self._call(
            "upload",
            key,
            lambda: self.client.upload_file(
                str(path), self.bucket, full_key, ExtraArgs=extra, Config=self.transfer_config
            ),
        )
        log.info("objectstore.s3_uploaded", location=self.describe(key))

    def put_bytes(
        self, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None
    ) -> None:
        full_key = self._full_key(key)
        extra = self._extra_args(key, hashlib.sha256(data).hexdigest(), metadata)
        self._call(
            "put",
            key,
            lambda: self.client.put_object(Bucket=self.bucket, Key=full_key, Body=data, **extra),
        )

    def head(self, key: str) -> ObjectInfo | None:
        full_key = self._full_key(key)

        def fetch() -> dict | None:
            try:
                return self.client.head_object(Bucket=self.bucket, Key=full_key)
            except Exception as exc:
                if is_not_found(exc):
                    return None
                raise

        response = self._call("head", key, fetch)
        if response is None:
            return None
        metadata = {str(k).lower(): str(v) for k, v in response.get("Metadata", {}).items()}
        return ObjectInfo(
            size=int(response["ContentLength"]),
            sha256=metadata.get(SHA256_METADATA),
            metadata=metadata,
        )

    def iter_bytes(self, key: str, chunk_size: int = MiB) -> Iterator[bytes]:
        """Stream the object; the GET is retried, a failure mid-stream is reported."""
        full_key = self._full_key(key)
        body = self._call(
            "get", key, lambda: self.client.get_object(Bucket=self.bucket, Key=full_key)["Body"]
        )
        return self._chunks(key, body, chunk_size)

    def _chunks(self, key: str, body: Any, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(chunk_size)
        except Exception as exc:
            raise ExportStoreError(
                f"read failed for {self.describe(key)}: {type(exc).__name__}",
                location=self.describe(key),
            ) from exc
        finally:
            body.close()

    def list(self, prefix: str = "") -> list[str]:
        full_prefix = self.prefix + prefix

        def fetch() -> list[str]:
            paginator = self.client.get_paginator("list_objects_v2")
            keys: list[str] = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
            return keys

        keys = self._call("list", prefix, fetch)
        return sorted(k[len(self.prefix) :] for k in keys)

