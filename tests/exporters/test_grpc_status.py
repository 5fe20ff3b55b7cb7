"""The rich-status trailer (``exporters.grpc_ingest.status``) and the client reading it."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from exporters.grpc_ingest.client import retry_delay_of
from exporters.grpc_ingest.status import STATUS_DETAILS_KEY, status_from_trailers, status_trailer


def exhausted_status(delay_s: int) -> status_pb2.Status:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=delay_s)))
    return status_pb2.Status(code=8, message="slow down", details=[detail])


class FailedCall(grpc.RpcError):
    def __init__(self, trailers: tuple[tuple[str, str | bytes], ...]) -> None:
        self._trailers = trailers

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._trailers


def test_the_key_is_grpcs_standard_one() -> None:
    # gRPC's own name for the serialized google.rpc.Status (binary metadata ends in -bin).
    assert STATUS_DETAILS_KEY == "grpc-status-details-bin"


def test_a_status_survives_the_trailer_among_other_metadata() -> None:
    status = exhausted_status(3)
    ((key, value),) = status_trailer(status)
    assert (key, value) == ("grpc-status-details-bin", status.SerializeToString())
    trailers = [("x-request-id", "abc"), (STATUS_DETAILS_KEY, "text, not bytes"), (key, value)]
    assert status_from_trailers(trailers) == status


def test_no_trailer_means_no_status() -> None:
    assert status_from_trailers(None) is None
    assert status_from_trailers([("x-request-id", "abc")]) is None


def test_a_malformed_trailer_is_refused_and_the_client_carries_on() -> None:
    with pytest.raises(DecodeError):
        status_from_trailers([(STATUS_DETAILS_KEY, b"\xff\xff\xff")])
    assert retry_delay_of(FailedCall(((STATUS_DETAILS_KEY, b"\xff\xff\xff"),))) is None


def test_the_client_reads_the_servers_retry_delay() -> None:
    assert retry_delay_of(FailedCall(status_trailer(exhausted_status(2)))) == 2.0
    assert retry_delay_of(FailedCall(())) is None
