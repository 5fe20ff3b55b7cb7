"""Bearer-token authentication for gRPC servers (the sandbox; reusable by the planner service).

The token travels as ``authorization: Bearer <token>`` metadata. The server compares it in
constant time (``hmac.compare_digest``) so response timing does not reveal how much of a
guessed token was right, and answers UNAUTHENTICATED otherwise. Health checks and reflection
stay open, so orchestrators can probe readiness without the secret.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from typing import Any

import grpc

DEFAULT_EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying *token*; empty when there is none."""
    return (("authorization", f"Bearer {token}"),) if token else ()


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Rejects calls whose bearer token is missing or wrong with UNAUTHENTICATED."""

    def __init__(self, token: str, *, exempt_prefixes: Sequence[str] = DEFAULT_EXEMPT_PREFIXES):
        if not token:
            raise ValueError("the bearer token must not be empty")
        self._expected = f"Bearer {token}".encode()
        self._exempt = tuple(exempt_prefixes)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        if method.startswith(self._exempt):
            return continuation(handler_call_details)
        metadata = handler_call_details.invocation_metadata
        presented = presented_token(metadata)
        if presented is not None and hmac.compare_digest(presented.encode(), self._expected):
            return continuation(handler_call_details)
        reason = "missing bearer token" if presented is None else "invalid bearer token"
        return _denying_handler(continuation(handler_call_details), reason)


def presented_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The call's ``authorization`` metadata value, if any."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            return value
    return None


def handler_like(handler: grpc.RpcMethodHandler, behaviour: Callable[..., Any]) -> grpc.RpcMethodHandler:
    """A handler of the same streaming kind and (de)serializers as *handler* running *behaviour*."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(behaviour, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(behaviour, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(behaviour, **kwargs)
    return grpc.unary_unary_rpc_method_handler(behaviour, **kwargs)


def _denying_handler(
    handler: grpc.RpcMethodHandler | None, reason: str
) -> grpc.RpcMethodHandler | None:
    """A handler of the same streaming kind as *handler* that aborts with UNAUTHENTICATED."""
    if handler is None:
        return None

    def deny(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    return handler_like(handler, deny)
