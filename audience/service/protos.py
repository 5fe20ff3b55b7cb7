"""The generated ``audience.v1`` modules, in one place for every module of the service.

The modules are generated at build time (``setup.py``'s build step; ``python -m proto_gen`` in
a checkout), never at import. ``proto_gen.ensure_generated`` only checks that they are present
and current, and otherwise fails with one line saying what to run.
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
