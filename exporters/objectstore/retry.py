"""Retry policy for object-store calls: only transient failures are retried.

exports.md: transient failures (S3 5xx / SlowDown, throttling, dropped connections) are
retried with exponential backoff and jitter; anything else fails the run at once with a
clear error. boto3's own retries are switched off by the S3 store so that every attempt goes
through here, is logged, and can be counted by tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import botocore.exceptions
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from exporters.objectstore.base import ExportStoreError, ObjectNotFoundError

T = TypeVar("T")

log = structlog.get_logger()

#: Error codes S3 (and S3-compatible stores) use for "try again later".
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "ProvisionedThroughputExceededException",
        "PriorRequestNotComplete",
    }
)

#: Codes meaning "the object is not there" (HeadObject reports a bare "404").
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, and the exponential backoff between them (seconds).

    The n-th wait is ``initial_wait * 2**(n-1)`` plus a random jitter of up to
    ``initial_wait``, capped at ``max_wait``.
    """

    max_attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 20.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes; boto3 wraps upload errors in S3UploadFailedError."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _client_error(exc: BaseException) -> botocore.exceptions.ClientError | None:
    for item in _chain(exc):
        if isinstance(item, botocore.exceptions.ClientError):
            return item
    return None


def error_code(exc: BaseException) -> str | None:
    """The S3 error code (``SlowDown``, ``AccessDenied``...) if the server answered."""
    client_error = _client_error(exc)
    if client_error is None:
        return None
    code = client_error.response.get("Error", {}).get("Code")
    return str(code) if code else None


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of the server's answer, if there was one."""
    client_error = _client_error(exc)
    if client_error is None:
        return None
    status = client_error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status else None


def _is_connection_problem(exc: BaseException) -> bool:
    if isinstance(exc, botocore.exceptions.SSLError):
        return False  # a certificate problem does not heal by waiting
    return isinstance(
        exc,
        botocore.exceptions.ConnectionError
        | botocore.exceptions.HTTPClientError
        | botocore.exceptions.IncompleteReadError,
    )


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: 5xx, 429, throttling codes, connection errors."""
    if isinstance(exc, ExportStoreError):
        return False
    client_error = _client_error(exc)
    if client_error is not None:
        status = http_status(client_error)
        code = error_code(client_error)
        return code in TRANSIENT_CODES or status == 429 or (status is not None and status >= 500)
    return any(_is_connection_problem(item) for item in _chain(exc))


def is_not_found(exc: BaseException) -> bool:
    """True when the server said the object (not the bucket) does not exist."""
    return error_code(exc) in NOT_FOUND_CODES


def describe_failure(exc: BaseException) -> str:
    """A short reason without payloads: the S3 code and status, or the exception type."""
    code = error_code(exc)
    status = http_status(exc)
    if code is not None or status is not None:
        return f"{code or 'error'} (HTTP {status})" if status else f"{code}"
    for item in _chain(exc):
        if _is_connection_problem(item):
            return f"connection error ({type(item).__name__})"
    return type(exc).__name__


def _log_retry(operation: str, location: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "objectstore.retry",
            operation=operation,
            location=location,
            attempt=state.attempt_number,
            reason=describe_failure(exc) if exc else "unknown",
            wait_s=round(state.upcoming_sleep, 3),
        )

    return before_sleep


def call_with_retries(
    fn: Callable[[], T], *, operation: str, location: str, policy: RetryPolicy
) -> T:
    """Run ``fn``, retrying transient failures; convert every failure to ExportStoreError.

    ``location`` (``s3://bucket/key``) is the only identifying detail put in the message.
    """
    attempts = 0

    def attempt() -> T:
        nonlocal attempts
        attempts += 1
        return fn()

    retrying = Retrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait_exponential_jitter(
            multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.initial_wait
        ),
        retry=retry_if_exception(is_transient),
        before_sleep=_log_retry(operation, location),
        reraise=True,
    )
    try:
        return retrying(attempt)
    except ExportStoreError:
        raise
    except Exception as exc:
        raise _to_store_error(exc, operation, location, attempts) from exc


def _to_store_error(
    exc: BaseException, operation: str, location: str, attempts: int
) -> ExportStoreError:
    transient = is_transient(exc)
    reason = describe_failure(exc)
    suffix = f" after {attempts} attempts" if transient else ""
    message = f"{operation} failed for {location}: {reason}{suffix}"
    error_type = ObjectNotFoundError if is_not_found(exc) else ExportStoreError
    return error_type(
        message,
        location=location,
        code=error_code(exc),
        status=http_status(exc),
        transient=transient,
        attempts=attempts,
    )
