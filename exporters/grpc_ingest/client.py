"""Client of the ``ingest.v1`` protocol, used by the run engine to export to gRPC destinations.

Every call carries a deadline (``deadline_s``, per attempt) and the destination's bearer
token. Only transient codes are retried — UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED —
with exponential backoff and full jitter, waiting at least the delay the server asks for
(``google.rpc.RetryInfo`` in the ``grpc-status-details-bin`` trailer). Retrying is safe for
every RPC because the protocol is idempotent: OpenUpload by run id, SendBatch by sequence
number, CommitUpload by state. Anything else raises :class:`IngestError` with one clear line.

Rows at this boundary are sequences of *already hashed* identifier values (from
``exporters.hashing``), aligned to the upload's columns, ``""`` where a member lacks one.
Callers never pass raw emails or phone numbers; still, error messages never contain row values:
server-provided details are scrubbed of the values sent in the failing request and of anything
shaped like a SHA-256 hash.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
import structlog
import tenacity
from google.rpc import error_details_pb2

from exporters.grpc_ingest.auth import bearer_metadata
from exporters.grpc_ingest.model import BatchAck, Mode, UploadInfo, segment_name
from exporters.grpc_ingest.status import status_from_trailers
from exporters.grpc_ingest.tls import channel_credentials
from exporters.grpc_ingest.wire import (
    ingest_pb2,
    ingest_pb2_grpc,
    mode_to_proto,
    upload_from_proto,
)

log = structlog.get_logger()

RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
MAX_SERVER_DELAY_S = 300.0  # never let a misbehaving server park a run for longer per retry
_MAX_DETAIL_CHARS = 200
_MIN_SCRUBBED_CHARS = 6
# What gRPC reports when one side speaks TLS and the other plaintext.
_TLS_MISMATCH_WORDS = ("ssl", "tls", "handshake", "socket closed", "eof", "connection reset")
# SHA-256 as hex (64) or base64 (44 with padding), the encodings of exports.md, and UUIDs
# (plain MAIDs, which some formats send unhashed).
_HASH_LIKE = re.compile(
    r"\b[0-9A-Fa-f]{64}\b|[A-Za-z0-9+/]{43}="
    r"|\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b"
)

Row = Sequence[str]
T = TypeVar("T")


class IngestError(Exception):
    """A destination call failed for good. ``str()`` is one line, free of identifier values."""

    def __init__(
        self, message: str, *, method: str, code: grpc.StatusCode | None, attempts: int
    ) -> None:
        super().__init__(message)
        self.method = method
        self.code = code
        self.attempts = attempts

    @property
    def transient(self) -> bool:
        """True when retries ran out on a transient code (a later run may succeed)."""
        return self.code in RETRYABLE_CODES


class IngestClient:
    """A connection to one ingest destination. Thread-safe; close it (or use ``with``)."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None,
        tls: bool,
        root_cert: bytes | None = None,
        deadline_s: float = 10,
        max_attempts: int = 8,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._target = target
        self._has_token = bool(token)
        self._metadata = bearer_metadata(token)
        self._tls = tls
        self._deadline_s = deadline_s
        self._max_attempts = max_attempts
        self._backoff = tenacity.wait_random_exponential(
            multiplier=backoff_initial_s, max=backoff_max_s
        )
        self._sleep = sleep
        options = list(channel_options)
        if tls:
            creds = channel_credentials(root_cert)
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = ingest_pb2_grpc.IngestServiceStub(self._channel)

    # ---- the protocol ------------------------------------------------------------------------

    def open_upload(
        self,
        segment: str,
        run_id: str,
        *,
        mode: Mode | str,
        format: str,
        columns: Sequence[str],
    ) -> UploadInfo:
        """Open the upload of (segment, run_id), or get it back when it exists (resume)."""
        request = ingest_pb2.OpenUploadRequest(
            parent=segment_name(segment),
            run_id=run_id,
            mode=mode_to_proto(Mode(str(mode).lower())),
            format=format,
            columns=list(columns),
        )
        response = self._call("OpenUpload", self._stub.OpenUpload, request)
        return upload_from_proto(response.upload)

    def send_batch(
        self, upload: str, seq: int, adds: Sequence[Row], removes: Sequence[Row] = ()
    ) -> BatchAck:
        """Stage batch *seq* (1, 2, ...) of hashed rows; safe to resend."""
        request = ingest_pb2.SendBatchRequest(
            upload=upload,
            sequence_number=seq,
            adds=[ingest_pb2.Row(values=list(row)) for row in adds],
            removes=[ingest_pb2.Row(values=list(row)) for row in removes],
        )
        sent = {v for rows in (adds, removes) for row in rows for v in row if v}
        response = self._call("SendBatch", self._stub.SendBatch, request, secrets=sent)
        return BatchAck(response.sequence_number, response.previously_received)

    def get_upload(self, upload: str) -> UploadInfo:
        request = ingest_pb2.GetUploadRequest(name=upload)
        return upload_from_proto(self._call("GetUpload", self._stub.GetUpload, request).upload)

    def commit(self, upload: str, *, last_seq: int = 0) -> UploadInfo:
        """Make the upload visible. With *last_seq*, refuse unless 1..last_seq all arrived."""
        request = ingest_pb2.CommitUploadRequest(name=upload, last_sequence_number=last_seq)
        return upload_from_proto(
            self._call("CommitUpload", self._stub.CommitUpload, request).upload
        )

    def list_members(self, segment: str, *, page_size: int = 1000) -> list[dict[str, str]]:
        """Every committed member of *segment* (all pages), as column -> hashed value."""
        parent = segment_name(segment)
        members: list[dict[str, str]] = []
        token = ""
        while True:
            request = ingest_pb2.ListMembersRequest(
                parent=parent, page_size=page_size, page_token=token
            )
            page = self._call("ListMembers", self._stub.ListMembers, request)
            members.extend(dict(m.identifiers) for m in page.members)
            token = page.next_page_token
            if not token:
                return members

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> IngestClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- retries -----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        rpc: Callable[..., T],
        request: Any,
        *,
        secrets: Collection[str] = (),
    ) -> T:
        attempts = 0

        def attempt() -> T:
            nonlocal attempts
            attempts += 1
            return rpc(request, timeout=self._deadline_s, metadata=self._metadata)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(_is_transient),
            sleep=self._sleep,
            before_sleep=lambda state: _log_retry(method, state),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except grpc.RpcError as err:
            raise self._error(method, err, attempts, secrets) from None

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Jittered exponential backoff, but never less than the server's retry delay."""
        backoff = float(self._backoff(state))
        error = state.outcome.exception() if state.outcome else None
        server_delay = retry_delay_of(error) if isinstance(error, grpc.RpcError) else None
        if server_delay is None:
            return backoff
        return max(backoff, min(server_delay, MAX_SERVER_DELAY_S))

    def _error(
        self, method: str, err: grpc.RpcError, attempts: int, secrets: Collection[str]
    ) -> IngestError:
        code = _code_of(err)
        message = describe_failure(
            method,
            code,
            _details_of(err, secrets),
            attempts=attempts,
            target=self._target,
            has_token=self._has_token,
            tls=self._tls,
            deadline_s=self._deadline_s,
        )
        return IngestError(message, method=method, code=code, attempts=attempts)


def describe_failure(
    method: str,
    code: grpc.StatusCode | None,
    details: str,
    *,
    attempts: int,
    target: str,
    has_token: bool,
    tls: bool,
    deadline_s: float,
) -> str:
    """The one-line message of an :class:`IngestError` (public so the CLI can reuse it)."""
    name = code.name if code is not None else "UNKNOWN"
    detail = f": {details}" if details else ""
    if code is grpc.StatusCode.UNAUTHENTICATED:
        if not has_token:
            return f"destination {target} requires a bearer token, none was given ({name})"
        return f"destination {target} rejected the token ({name})"
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return f"destination {target} refused this token access to {method} ({name}){detail}"
    if code in RETRYABLE_CODES:
        hint = _transport_hint(code, details, tls=tls, deadline_s=deadline_s)
        return f"{method} to {target} failed after {attempts} attempts ({name}){detail}{hint}"
    return f"{method} refused by destination {target} ({name}){detail}"


def _transport_hint(code: grpc.StatusCode, details: str, *, tls: bool, deadline_s: float) -> str:
    lowered = details.lower()
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"; no answer within the {deadline_s:g}s deadline"
    if any(word in lowered for word in _TLS_MISMATCH_WORDS):
        side = "client uses TLS" if tls else "client uses plaintext (tls = false)"
        return f"; the {side}: check that the destination's tls setting matches the server"
    return ""


def retry_delay_of(err: grpc.RpcError) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` in the error's status details, if any."""
    trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    try:
        status = status_from_trailers(trailers)
    except Exception:  # a malformed trailer must not break the retry loop
        return None
    for detail in status.details if status is not None else ():
        info = error_details_pb2.RetryInfo()
        if detail.Is(info.DESCRIPTOR) and detail.Unpack(info):
            return info.retry_delay.ToNanoseconds() / 1e9
    return None


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, grpc.RpcError) and _code_of(exc) in RETRYABLE_CODES


def _code_of(err: grpc.RpcError) -> grpc.StatusCode | None:
    code = getattr(err, "code", None)
    return code() if callable(code) else None


def _details_of(err: grpc.RpcError, secrets: Collection[str] = ()) -> str:
    raw = getattr(err, "details", None)
    return scrub_details(str((raw() if callable(raw) else None) or ""), secrets)


def scrub_details(text: str, secrets: Collection[str] = ()) -> str:
    """A server's message made safe to show: one line, shortened, with the values sent in the
    request (*secrets*) and anything shaped like a hashed identifier or a MAID redacted."""
    text = " ".join(text.split())
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= _MIN_SCRUBBED_CHARS:  # shorter ones are no identifier, only noise
            text = text.replace(value, "<redacted>")
    text = _HASH_LIKE.sub("<redacted>", text)
    if len(text) > _MAX_DETAIL_CHARS:
        text = text[: _MAX_DETAIL_CHARS - 1] + "…"
    return text


def _log_retry(method: str, state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    code = _code_of(error) if isinstance(error, grpc.RpcError) else None
    log.info(
        "grpc_ingest.retry",
        method=method,
        attempt=state.attempt_number,
        code=code.name if code else None,
        wait_s=round(state.upcoming_sleep, 3),
    )
