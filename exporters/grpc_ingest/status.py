"""Rich gRPC error status: a ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer.

This is gRPC's standard way to send error details (such as ``google.rpc.RetryInfo``) beside
the status code. Every side that sends or reads such details — the ingest client, the
sandbox's fault injection, the planner service — uses this key and these two helpers, so the
convention lives in one place.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.rpc import status_pb2

#: The trailing-metadata key of the serialized ``google.rpc.Status`` (binary: ``-bin``).
STATUS_DETAILS_KEY = "grpc-status-details-bin"

Metadata = Iterable[tuple[str, str | bytes]]


def status_trailer(status: status_pb2.Status) -> tuple[tuple[str, bytes]]:
    """Trailing metadata that carries ``status``: pass it to ``set_trailing_metadata``."""
    return ((STATUS_DETAILS_KEY, status.SerializeToString()),)


def status_from_trailers(metadata: Metadata | None) -> status_pb2.Status | None:
    """The ``google.rpc.Status`` in a failed call's trailing metadata, if there is one.

    Raises ``google.protobuf.message.DecodeError`` when the trailer is not a valid Status.
    """
    for key, value in metadata or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None
