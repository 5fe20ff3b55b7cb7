"""Helpers for the planner service tests: a small DuckDB project and a real server on loopback.

The warehouse is the consent fixture of tests/consent/test_consent_rules.py (20 fans whose
every consent outcome is written out there by hand); the audiences below are chosen so their
members can be listed by hand from the fans' countries:

- everyone: all 20 fans (101..117, 119..121);
- gb_fans (country GB): 101, 102, 103, 104, 108, 111, 114, 115, 116, 121 (10);
- us_fans (country US): 107, 109, 110, 117, 119 (5).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.rpc import error_details_pb2

from audience.service.protos import audience_service_pb2_grpc
from audience.service.server import PlannerServer, create_planner_server
from exporters.grpc_ingest.tls import TlsFiles

EVERYONE_BLOCK = '''audience everyone {
  description: "Every fan"
  owner: "crm@label.example"
  tags: ["all", "test"]
  where: fan_id is not null
  holdout: 0%
  sync ads { schedule: "0 6 * * *", mode: mirror }
}'''

AUDIENCES = '''# Audiences of the planner service tests.
''' + EVERYONE_BLOCK + '''

audience gb_fans {
  where: country = "GB"
  holdout: 12.5%
  sync ads { schedule: "0 7 * * 1", mode: additive }
  sync ads_and_sale { mode: replace }
}

audience us_fans { where: country = "US" }
'''

GB_FANS = [101, 102, 103, 104, 108, 111, 114, 115, 116, 121]
US_FANS = [107, 109, 110, 117, 119]
TOKEN = "s3cret-planner-token"


@dataclass
class Running:
    """A started server, a channel to it and the generated client."""

    planner: PlannerServer
    channel: grpc.Channel
    stub: audience_service_pb2_grpc.AudienceServiceStub
    root: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.planner.port}"


@contextmanager
def serving(root: Path, *, token: str | None = None, tls: TlsFiles | None = None,
            root_cert: bytes | None = None, result_ttl: float = 60.0,
            max_workers: int = 4) -> Iterator[Running]:
    planner = create_planner_server(root, host="127.0.0.1", port=0, token=token, tls=tls,
                                    result_ttl=result_ttl, watch_interval=0.05,
                                    max_workers=max_workers)
    planner.start()
    target = f"127.0.0.1:{planner.port}"
    if tls is None:
        channel = grpc.insecure_channel(target)
    else:
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_cert))
    try:
        yield Running(planner, channel, audience_service_pb2_grpc.AudienceServiceStub(channel), root)
    finally:
        channel.close()
        planner.stop(grace=1.0)




def error_details(err: grpc.RpcError) -> list[object]:
    """The google.rpc details of a failed call (BadRequest, PreconditionFailure), unpacked."""
    from audience.service.errors import status_from_trailers

    status = status_from_trailers(err.trailing_metadata())  # type: ignore[attr-defined]
    assert status is not None, "no grpc-status-details-bin trailer"
    assert status.code == err.code().value[0]  # type: ignore[attr-defined]
    out: list[object] = []
    for item in status.details:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.PreconditionFailure):
            if item.Is(kind.DESCRIPTOR):
                msg = kind()
                item.Unpack(msg)
                out.append(msg)
    return out


def field_violations(err: grpc.RpcError) -> list[tuple[str, str]]:
    """(field, description) of every BadRequest field violation of a failed call."""
    return [(v.field, v.description) for d in error_details(err)
            if isinstance(d, error_details_pb2.BadRequest) for v in d.field_violations]
