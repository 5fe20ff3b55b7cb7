"""S3 destination against a real SeaweedFS server: layout, hashes, multipart, SSE, retries.

Faults are injected with botocore ``before-send`` hooks, which answer a request in place of
the server (a 503 SlowDown, a 403); the same hooks count attempts per S3 operation.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import math
import os
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from botocore.awsrequest import AWSResponse

from exporters.drop_writer import DropWriter
from exporters.objectstore import ExportStoreError, ObjectNotFoundError, S3Store, open_store
from exporters.objectstore.retry import is_transient
from tests.conftest import S3_BUCKET
from tests.exporters.s3_server import READER_KEY, WRITER_KEY, SeaweedS3

MiB = 1024 * 1024
E1 = "e1" * 32
E2 = "e2" * 32
P1 = "f1" * 32
P2 = "f2" * 32

MANIFEST_FIELDS = {
    "audience": "vip",
    "run_id": "run-7",
    "destination": "s3_drop",
    "format": "sha256",
    "mode": "mirror",
    "as_of": "2024-05-01T00:00:00Z",
    "definition": {"file": "audiences/vip.aud", "git_commit": "abc123", "content_hash": "c0ffee"},
    "consent_funnel": {"profiles": 5, "consented": 3, "exported": 3},
}


class _Body:
    """The raw-response shape AWSResponse reads from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


class Wire:
    """A before-send hook: counts requests per operation, records headers, injects faults."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.headers: dict[str, list[dict[str, str]]] = {}
        self._faults: dict[str, tuple[int, int, str]] = {}
        self._lock = threading.Lock()

    def fail(self, operation: str, times: int, status: int, code: str) -> None:
        """Answer the first ``times`` requests of ``operation`` with an S3 error."""
        self._faults[operation] = (times, status, code)

    def attach(self, client: Any) -> Wire:
        client.meta.events.register("before-send.s3", self)
        return self

    def __call__(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        headers = {
            k.lower(): v.decode() if isinstance(v, bytes) else str(v)
            for k, v in request.headers.items()
        }
        with self._lock:
            self.sent[operation] += 1
            self.headers.setdefault(operation, []).append(headers)
            attempt = self.sent[operation]
        fault = self._faults.get(operation)
        if fault is None or attempt > fault[0]:
            return None
        _, status, code = fault
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>injected</Message><RequestId>t</RequestId></Error>"
        ).encode()
        return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Body(body))


def make_store(seaweed: SeaweedS3, prefix: str, **options: Any) -> S3Store:
    options.setdefault("backoff_initial", 0.01)
    options.setdefault("backoff_max", 0.05)
    store = open_store(f"s3://{S3_BUCKET}/{prefix}", endpoint_url=seaweed.endpoint_url, **options)
    assert isinstance(store, S3Store)
    return store


def keys_in_bucket(admin: Any, prefix: str) -> list[str]:
    response = admin.list_objects_v2(Bucket=S3_BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in response.get("Contents", []))


def download(admin: Any, key: str) -> bytes:
    return admin.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read()


def data_rows(data: bytes) -> int:
    """Rows of a part, read independently of the writer: CSV lines minus the header."""
    return len(gzip.decompress(data).decode("utf-8").splitlines()) - 1


def hex_rows(count: int) -> Iterator[tuple[str, str]]:
    """Distinct hash-like rows, incompressible enough for a multi-MiB gzip part."""
    for i in range(count):
        email = hashlib.sha256(f"e{i}".encode()).hexdigest()
        phone = hashlib.sha256(f"p{i}".encode()).hexdigest()
        yield email, phone


def test_export_parts_and_manifest(s3_env: SeaweedS3, s3_admin: Any, s3_prefix: str) -> None:
    writer = DropWriter(make_store(s3_env, s3_prefix), "vip", "run-7", ["email", "phone"])
    writer.write_parts("adds", [(E1, P1), (E2, None)])
    writer.write_parts("removes", [(None, P2)])
    run = f"{s3_prefix}vip/run-7/"
    assert keys_in_bucket(s3_admin, run) == [
        f"{run}adds-00000.csv.gz",
        f"{run}removes-00000.csv.gz",
    ]

    writer.write_manifest(MANIFEST_FIELDS)

    assert keys_in_bucket(s3_admin, run) == [
        f"{run}adds-00000.csv.gz",
        f"{run}manifest.json",
        f"{run}removes-00000.csv.gz",
    ]
    manifest = json.loads(download(s3_admin, f"{run}manifest.json"))
    assert {k: v for k, v in manifest.items() if k != "files"} == MANIFEST_FIELDS
    assert [(f["key"], f["kind"], f["rows"]) for f in manifest["files"]] == [
        ("adds-00000.csv.gz", "adds", 2),
        ("removes-00000.csv.gz", "removes", 1),
    ]
    for entry in manifest["files"]:
        data = download(s3_admin, run + entry["key"])
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
        assert entry["rows"] == data_rows(data)
        head = s3_admin.head_object(Bucket=S3_BUCKET, Key=run + entry["key"])
        assert head["Metadata"]["sha256"] == entry["sha256"]
    assert gzip.decompress(download(s3_admin, f"{run}adds-00000.csv.gz")) == (
        f"email,phone\n{E1},{P1}\n{E2},\n".encode()
    )


def test_rerun_uploads_nothing_new_and_keeps_bytes(
    s3_env: SeaweedS3, s3_admin: Any, s3_prefix: str
) -> None:
    def run_once() -> Wire:
        store = make_store(s3_env, s3_prefix)
        wire = Wire().attach(store.client)
        writer = DropWriter(store, "vip", "run-7", ["email", "phone"])
        writer.write_parts("members", [(E1, P1), (E2, P2)])
        writer.write_manifest(MANIFEST_FIELDS)
        return wire

    run_once()
    part_key = f"{s3_prefix}vip/run-7/members-00000.csv.gz"
    before = (
        download(s3_admin, part_key),
        download(s3_admin, f"{s3_prefix}vip/run-7/manifest.json"),
    )

    second = run_once()

    after = (
        download(s3_admin, part_key),
        download(s3_admin, f"{s3_prefix}vip/run-7/manifest.json"),
    )
    assert after == before
    assert [h["content-type"] for h in second.headers["PutObject"]] == ["application/json"]


def test_existing_part_is_checked_without_download(s3_env: SeaweedS3, s3_prefix: str) -> None:
    first = DropWriter(make_store(s3_env, s3_prefix), "vip", "run-7", ["email", "phone"])
    written = first.write_part("adds", 0, [(E1, P1), (E2, P2), (None, P2)])

    store = make_store(s3_env, s3_prefix)
    wire = Wire().attach(store.client)
    resumed = DropWriter(store, "vip", "run-7", ["email", "phone"])

    assert resumed.existing_part("adds", 0, expected_sha256=written.sha256) == written
    assert resumed.existing_part("adds", 1) is None
    assert written.rows == 3
    assert set(wire.sent) == {"HeadObject"}


def test_large_part_goes_up_as_multipart(s3_env: SeaweedS3, s3_admin: Any, s3_prefix: str) -> None:
    store = make_store(s3_env, s3_prefix, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    wire = Wire().attach(store.client)
    writer = DropWriter(store, "vip", "run-7", ["email", "phone"])

    part = writer.write_part("members", 0, hex_rows(200_000))

    assert part.bytes > 2 * 5 * MiB  # the part really spans three chunks
    head = s3_admin.head_object(Bucket=S3_BUCKET, Key=f"{s3_prefix}{part.key}")
    assert head["ETag"].strip('"').endswith(f"-{math.ceil(part.bytes / (5 * MiB))}")
    assert head["Metadata"]["sha256"] == part.sha256
    assert wire.sent["CreateMultipartUpload"] == 1
    assert wire.sent["PutObject"] == 0
    data = download(s3_admin, f"{s3_prefix}{part.key}")
    assert hashlib.sha256(data).hexdigest() == part.sha256
    assert data_rows(data) == 200_000


def test_sse_s3_is_passed_through(
    s3_env: SeaweedS3, s3_admin: Any, s3_prefix: str, tmp_path: Path
) -> None:
    store = make_store(
        s3_env, s3_prefix, sse="AES256", multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB
    )
    wire = Wire().attach(store.client)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 * MiB))

    store.put_bytes("small.json", b"{}")
    store.put_file("big.bin", big, hashlib.sha256(big.read_bytes()).hexdigest())

    assert wire.headers["PutObject"][0]["x-amz-server-side-encryption"] == "AES256"
    assert wire.headers["CreateMultipartUpload"][0]["x-amz-server-side-encryption"] == "AES256"
    for key in ("small.json", "big.bin"):
        head = s3_admin.head_object(Bucket=S3_BUCKET, Key=s3_prefix + key)
        assert head["ServerSideEncryption"] == "AES256"
    assert download(s3_admin, s3_prefix + "big.bin") == big.read_bytes()


def test_sse_kms_headers_are_passed_through(
    s3_env: SeaweedS3, s3_prefix: str, tmp_path: Path
) -> None:
    # SeaweedFS has no KMS configured here, so only the request headers are checked.
    store = make_store(
        s3_env,
        s3_prefix,
        sse="aws:kms",
        kms_key_id="alias/exports",
        max_attempts=1,
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
    )
    wire = Wire().attach(store.client)
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (6 * MiB))

    with contextlib.suppress(ExportStoreError):
        store.put_bytes("small.json", b"{}")
    with contextlib.suppress(ExportStoreError):
        store.put_file("big.bin", big, hashlib.sha256(big.read_bytes()).hexdigest())

    for operation in ("PutObject", "CreateMultipartUpload"):
        headers = wire.headers[operation][0]
        assert headers["x-amz-server-side-encryption"] == "aws:kms"
        assert headers["x-amz-server-side-encryption-aws-kms-key-id"] == "alias/exports"


def test_slowdown_is_retried_until_it_succeeds(
    s3_env: SeaweedS3, s3_admin: Any, s3_prefix: str
) -> None:
    store = make_store(s3_env, s3_prefix, max_attempts=6)
    wire = Wire().attach(store.client)
    wire.fail("PutObject", times=2, status=503, code="SlowDown")
    writer = DropWriter(store, "vip", "run-7", ["email", "phone"])

    part = writer.write_part("adds", 0, [(E1, P1)])

    assert wire.sent["PutObject"] == 3
    data = download(s3_admin, f"{s3_prefix}{part.key}")
    assert hashlib.sha256(data).hexdigest() == part.sha256


def test_slowdown_during_multipart_is_retried(
    s3_env: SeaweedS3, s3_admin: Any, s3_prefix: str, tmp_path: Path
) -> None:
    store = make_store(
        s3_env, s3_prefix, max_attempts=4, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB
    )
    wire = Wire().attach(store.client)
    wire.fail("UploadPart", times=1, status=503, code="SlowDown")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * MiB))

    store.put_file("big.bin", big, hashlib.sha256(big.read_bytes()).hexdigest())

    assert wire.sent["CreateMultipartUpload"] == 2  # the failed upload was redone whole
    assert download(s3_admin, s3_prefix + "big.bin") == big.read_bytes()


def test_retries_give_up_with_a_clear_error(s3_env: SeaweedS3, s3_prefix: str) -> None:
    store = make_store(s3_env, s3_prefix, max_attempts=3)
    wire = Wire().attach(store.client)
    wire.fail("PutObject", times=100, status=503, code="SlowDown")

    with pytest.raises(ExportStoreError) as caught:
        store.put_bytes("vip/run-7/manifest.json", b"{}")

    assert str(caught.value) == (
        f"put failed for s3://{S3_BUCKET}/{s3_prefix}vip/run-7/manifest.json: "
        "SlowDown (HTTP 503) after 3 attempts"
    )
    assert (caught.value.transient, caught.value.attempts) == (True, 3)
    assert wire.sent["PutObject"] == 3


def test_access_denied_fails_at_once(
    s3_env: SeaweedS3, s3_admin: Any, s3_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real refusal: the server's read-only identity may not write.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READER_KEY[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READER_KEY[1])
    store = make_store(s3_env, s3_prefix, max_attempts=6)
    wire = Wire().attach(store.client)
    writer = DropWriter(store, "vip", "run-7", ["email", "phone"])

    with pytest.raises(ExportStoreError) as caught:
        writer.write_part("adds", 0, [(E1, P1)])

    message = str(caught.value)
    assert message == (
        f"upload failed for s3://{S3_BUCKET}/{s3_prefix}vip/run-7/adds-00000.csv.gz: "
        "AccessDenied (HTTP 403)"
    )
    assert (caught.value.transient, caught.value.attempts) == (False, 1)
    assert wire.sent["PutObject"] == 1
    assert keys_in_bucket(s3_admin, s3_prefix) == []


def test_refused_multipart_leaves_no_object(
    s3_env: SeaweedS3, s3_admin: Any, s3_prefix: str, tmp_path: Path
) -> None:
    store = make_store(
        s3_env, s3_prefix, max_attempts=6, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB
    )
    wire = Wire().attach(store.client)
    wire.fail("UploadPart", times=1, status=403, code="AccessDenied")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * MiB))

    with pytest.raises(ExportStoreError, match=r"AccessDenied \(HTTP 403\)$") as caught:
        store.put_file("big.bin", big, hashlib.sha256(big.read_bytes()).hexdigest())

    assert caught.value.attempts == 1
    assert wire.sent["CreateMultipartUpload"] == 1
    assert wire.sent["AbortMultipartUpload"] == 1
    assert keys_in_bucket(s3_admin, s3_prefix) == []
    assert store.head("big.bin") is None


def test_unreachable_endpoint_is_retried_then_reported(s3_env: SeaweedS3, s3_prefix: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    store = open_store(
        f"s3://{S3_BUCKET}/{s3_prefix}",
        endpoint_url=f"http://127.0.0.1:{port}",
        max_attempts=3,
        backoff_initial=0.01,
        backoff_max=0.05,
    )
    assert isinstance(store, S3Store)
    wire = Wire().attach(store.client)

    with pytest.raises(ExportStoreError) as caught:
        store.put_bytes("x.json", b"{}")

    assert str(caught.value) == (
        f"put failed for s3://{S3_BUCKET}/{s3_prefix}x.json: "
        "connection error (EndpointConnectionError) after 3 attempts"
    )
    assert wire.sent["PutObject"] == 3


def test_store_reads_lists_and_deletes(s3_env: SeaweedS3, s3_prefix: str) -> None:
    store = make_store(s3_env, s3_prefix)
    store.put_bytes("a/one.json", b"1")
    store.put_bytes("a/two.json", b"22")
    store.put_bytes("b/three.json", b"333")

    assert store.list() == ["a/one.json", "a/two.json", "b/three.json"]
    assert store.list("a/") == ["a/one.json", "a/two.json"]
    assert b"".join(store.iter_bytes("b/three.json")) == b"333"
    assert b"".join(store.iter_bytes("a/two.json", chunk_size=1)) == b"22"
    info = store.head("a/two.json")
    assert info is not None
    assert (info.size, info.sha256) == (2, hashlib.sha256(b"22").hexdigest())
    assert store.head("a/none.json") is None
    with pytest.raises(ObjectNotFoundError, match=r"NoSuchKey \(HTTP 404\)$"):
        b"".join(store.iter_bytes("a/none.json"))


def test_write_only_credentials_can_still_export(
    s3_env: SeaweedS3, s3_admin: Any, s3_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Drop buckets often grant PutObject only; the "already uploaded?" HEAD is then denied.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", WRITER_KEY[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", WRITER_KEY[1])
    store = make_store(s3_env, s3_prefix)
    wire = Wire().attach(store.client)
    writer = DropWriter(store, "vip", "run-7", ["email", "phone"])

    part = writer.write_part("adds", 0, [(E1, P1)])

    assert (wire.sent["HeadObject"], wire.sent["PutObject"]) == (1, 1)
    data = download(s3_admin, f"{s3_prefix}{part.key}")
    assert gzip.decompress(data) == f"email,phone\n{E1},{P1}\n".encode()


def _client_error(status: int, code: str) -> botocore.exceptions.ClientError:
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return botocore.exceptions.ClientError(response, "PutObject")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_client_error(503, "SlowDown"), True),
        (_client_error(500, "InternalError"), True),
        (_client_error(400, "RequestTimeout"), True),
        (_client_error(429, "TooManyRequests"), True),
        (_client_error(400, "ThrottlingException"), True),
        (_client_error(403, "AccessDenied"), False),
        (_client_error(404, "NoSuchBucket"), False),
        (_client_error(400, "InvalidArgument"), False),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
        (botocore.exceptions.SSLError(endpoint_url="http://127.0.0.1:1", error="bad cert"), False),
        (ValueError("a bug, not the network"), False),
    ],
)
def test_only_transient_failures_are_retried(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient
