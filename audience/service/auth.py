"""The bearer-token check of the planner server, as a ``grpc.aio`` interceptor.

The same rule as :class:`exporters.grpc_ingest.auth.BearerTokenInterceptor` (the sandbox's, for
sync servers): ``authorization: Bearer <token>`` compared in constant time
(``hmac.compare_digest``, so response timing does not tell how much of a guess was right),
UNAUTHENTICATED otherwise; health checking and reflection stay open so probes and tooling need
no secret. A separate class because an asyncio server needs asynchronous interceptors.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from exporters.grpc_ingest.auth import DEFAULT_EXEMPT_PREFIXES, handler_like, presented_token

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class AsyncBearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls whose bearer token is missing or wrong with UNAUTHENTICATED."""

    def __init__(self, token: str, *, exempt_prefixes: Sequence[str] = DEFAULT_EXEMPT_PREFIXES) -> None:
        if not token:
            raise ValueError("the bearer token must not be empty")
        self._expected = f"Bearer {token}".encode()
        self._exempt = tuple(exempt_prefixes)

    async def intercept_service(self, continuation: Continuation,
                                handler_call_details: grpc.HandlerCallDetails
                                ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        if method.startswith(self._exempt):
            return await continuation(handler_call_details)
        presented = presented_token(handler_call_details.invocation_metadata)
        if presented is not None and hmac.compare_digest(presented.encode(), self._expected):
            return await continuation(handler_call_details)
        reason = "missing bearer token" if presented is None else "invalid bearer token"
        return _denying_handler(await continuation(handler_call_details), reason)


def _denying_handler(handler: grpc.RpcMethodHandler | None, reason: str) -> grpc.RpcMethodHandler | None:
    """A handler of the same streaming kind as *handler* that ends the call UNAUTHENTICATED.

    It sets the status rather than aborting, so the call-log line is written first (as for
    every other failed call).
    """
    if handler is None:
        return None

    async def deny(_request: Any, context: grpc.aio.ServicerContext) -> None:
        context.set_code(grpc.StatusCode.UNAUTHENTICATED)
        context.set_details(reason)

    return handler_like(handler, deny)
