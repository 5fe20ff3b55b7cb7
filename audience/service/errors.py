"""Failures as gRPC statuses, with ``google.rpc`` details a client can act on (AIP-193).

Handlers raise :class:`ServiceError` (or let a domain exception escape); :func:`to_service_error`
maps domain exceptions to codes and :func:`set_error` makes it the call's status. Details travel as a
serialized ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer, exactly what
``grpc_status.rpc_status.from_call`` reads on the client (the trailer's one home is
exporters/grpc_ingest/status.py, so the server does not need the grpcio-status package).

Messages sent to clients are passed through the identifier redaction of the logs: a warehouse
error can quote a value from a row, and nothing personal may leave in an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import grpc
import structlog
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from audience.config import ConfigError
from audience.errors import OperationalError, UserError
from audience.project import UnknownAudience
from dsl.diagnostics import Diagnostic
from exporters.grpc_ingest.status import STATUS_DETAILS_KEY, status_from_trailers, status_trailer
from exporters.redaction import redact_text

log = structlog.get_logger()

MAX_VIOLATIONS = 100


class ServiceError(Exception):
    """A call's outcome other than OK: code, one-line message, optional ``google.rpc`` details."""

    def __init__(self, code: grpc.StatusCode, message: str, details: Sequence[Message] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = tuple(details)

    def status_proto(self) -> status_pb2.Status:
        packed = []
        for detail in self.details:
            item = any_pb2.Any()
            item.Pack(detail)
            packed.append(item)
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=packed)


def invalid_argument(message: str, field: str | None = None) -> ServiceError:
    details = []
    if field is not None:
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=message)
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, message, details)


def not_found(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message: str, diagnostics: Iterable[Diagnostic] = ()) -> ServiceError:
    violations = [
        error_details_pb2.PreconditionFailure.Violation(
            type="DIAGNOSTIC", subject=f"{d.file}:{d.line}:{d.col}", description=d.format())
        for d in list(diagnostics)[:MAX_VIOLATIONS]
    ]
    details = [error_details_pb2.PreconditionFailure(violations=violations)] if violations else []
    return ServiceError(grpc.StatusCode.FAILED_PRECONDITION, message, details)


def unavailable(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAVAILABLE, message)


def deadline_exceeded(message: str = "the call's deadline passed before the work could be done"
                      ) -> ServiceError:
    return ServiceError(grpc.StatusCode.DEADLINE_EXCEEDED, message)


def draft_errors(diagnostics: Sequence[Diagnostic], field: str, filename: str) -> ServiceError:
    """INVALID_ARGUMENT for a draft: one field violation per error, ``field:line:column``.

    An error the draft causes in another file (a broken `in audience` reference) names just the
    field; its description says where.
    """
    errors = [d for d in diagnostics if d.severity == "error"]
    violations = [
        error_details_pb2.BadRequest.FieldViolation(
            field=f"{field}:{d.line}:{d.col}" if d.file == filename else field,
            description=d.format())
        for d in errors[:MAX_VIOLATIONS]
    ]
    count = len(errors)
    message = (f"the {field} has {count} error{'s' if count != 1 else ''}; first: "
               f"{errors[0].format()}" if errors else f"the {field} has errors")
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, message,
                        [error_details_pb2.BadRequest(field_violations=violations)])


def to_service_error(exc: BaseException) -> ServiceError:
    """Domain exceptions → statuses: who has to act (caller, project owner, operator)."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, UnknownAudience):
        return not_found(str(exc))
    if isinstance(exc, ConfigError):
        return failed_precondition("audience.toml has errors; fix them (see `audience check`)",
                                   exc.diagnostics)
    if isinstance(exc, UserError):
        return ServiceError(grpc.StatusCode.FAILED_PRECONDITION, redact_text(str(exc)))
    if isinstance(exc, OperationalError):
        return unavailable(f"the warehouse or a destination is unavailable: {redact_text(str(exc))}")
    log.error("audience_service.internal_error", error_type=type(exc).__name__, exc_info=exc)
    return ServiceError(grpc.StatusCode.INTERNAL, "internal error in the planner service")


def set_error(context: grpc.ServicerContext | grpc.aio.ServicerContext, error: ServiceError) -> None:
    """Make *error* (with its details in the status trailer) the call's status.

    The handler then returns without a response and gRPC sends the status. Not
    ``context.abort``: that sends the status at once, before the call-log interceptor has
    written the call's line, so a client could see the answer before the server logged it.
    """
    if error.details:
        status = error.status_proto()
        context.set_trailing_metadata(status_trailer(status))
    context.set_code(error.code)
    context.set_details(error.message)


__all__ = [
    "STATUS_DETAILS_KEY",
    "ServiceError",
    "deadline_exceeded",
    "draft_errors",
    "failed_precondition",
    "invalid_argument",
    "not_found",
    "set_error",
    "status_from_trailers",
    "to_service_error",
    "unavailable",
]
