"""The generated ``audience.v1`` modules; importing this generates them when stale.

``proto_gen.ensure_generated`` is a cheap no-op when the code is current, so every module of
the service can simply import from here.
"""

from __future__ import annotations

from proto_gen import ensure_generated

ensure_generated()

from proto_gen.audience.v1 import (  # noqa: E402
    audience_pb2,
    audience_service_pb2,
    audience_service_pb2_grpc,
)

SERVICE_NAME: str = audience_service_pb2.DESCRIPTOR.services_by_name["AudienceService"].full_name

__all__ = ["SERVICE_NAME", "audience_pb2", "audience_service_pb2", "audience_service_pb2_grpc"]
