"""One structured log line per call: method, status code, duration, caller's address.

A server interceptor sees every call (planner RPCs, health, reflection, calls refused by the
token check), so the log is complete without each handler remembering to log. Requests and
responses are never logged: they can carry audience definitions and counts, and nothing that
identifies a person may reach the logs.

The interceptor is a ``grpc.aio`` one: it wraps each handler coroutine (or async generator, for
server streams) and writes the line when the handler ends, before gRPC sends the status (the
planner's handlers set their error status rather than abort, see
:func:`~audience.service.errors.set_error`).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, TypeAlias

import grpc
import structlog

from exporters.grpc_ingest.auth import handler_like

log = structlog.get_logger()

EVENT = "audience_service.call"
Context: TypeAlias = grpc.aio.ServicerContext  # grpc ships no types: an alias of Any, named for readers
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


def _status(context: Context, failed: bool) -> str:
    code = context.code()  # set by context.abort / set_code; None when the handler returned
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "UNKNOWN" if failed else "OK"


def _outcome(context: Context, exc: BaseException | None) -> str:
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"  # the client went away (or the server stopped) mid-call
    return _status(context, exc is not None)


class _CallLine:
    """Writes the call's line when the block it guards ends, however it ends."""

    def __init__(self, method: str, context: Context) -> None:
        self.method, self.context = method, context
        self.started = time.perf_counter()

    def __enter__(self) -> None:
        return None

    def __exit__(self, _type: type[BaseException] | None, exc: BaseException | None,
                 _tb: TracebackType | None) -> None:
        log.info(EVENT, method=self.method, code=_outcome(self.context, exc),
                 peer=self.context.peer(),
                 duration_ms=round((time.perf_counter() - self.started) * 1000, 3))


def _wrap_call(method: str, behavior: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """A coroutine handler: unary responses, and streams written with ``context.write``."""

    async def logged(request_or_iterator: Any, context: Context) -> Any:
        with _CallLine(method, context):
            result = behavior(request_or_iterator, context)
            return await result if inspect.isawaitable(result) else result

    return logged


def _wrap_stream(method: str, behavior: Callable[..., AsyncIterator[Any]]
                 ) -> Callable[..., AsyncIterator[Any]]:
    """An async-generator handler (a server stream that yields its responses)."""

    async def logged(request_or_iterator: Any, context: Context) -> AsyncIterator[Any]:
        with _CallLine(method, context):
            async for response in behavior(request_or_iterator, context):
                yield response

    return logged


def _wrap(method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):
        return _wrap_stream(method, behavior)
    return _wrap_call(method, behavior)


class CallLogInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler to log its outcome; put it first so it also sees refused calls."""

    async def intercept_service(self, continuation: Continuation,
                                handler_call_details: grpc.HandlerCallDetails
                                ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        behaviour = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
        return handler_like(handler, _wrap(method, behaviour))
