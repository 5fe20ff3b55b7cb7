"""One structured log line per call: method, status code, duration, caller's address.

A server interceptor sees every call (planner RPCs, health, reflection, calls refused by the
token check), so the log is complete without each handler remembering to log. Requests and
responses are never logged: they can carry audience definitions and counts, and nothing that
identifies a person may reach the logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import structlog

log = structlog.get_logger()

EVENT = "audience_service.call"


def _status(context: grpc.ServicerContext, failed: bool) -> str:
    code = context.code()  # set by context.abort / set_code; None when the handler returned
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "UNKNOWN" if failed else "OK"


def _emit(method: str, context: grpc.ServicerContext, started: float, code: str) -> None:
    log.info(EVENT, method=method, code=code, peer=context.peer(),
             duration_ms=round((time.perf_counter() - started) * 1000, 3))


def _wrap_unary_response(method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
    def logged(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
        started, failed = time.perf_counter(), False
        try:
            return behavior(request_or_iterator, context)
        except BaseException:
            failed = True
            raise
        finally:
            _emit(method, context, started, _status(context, failed))

    return logged


def _wrap_stream_response(method: str, behavior: Callable[..., Iterator[Any]]
                          ) -> Callable[..., Iterator[Any]]:
    def logged(request_or_iterator: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        started, outcome = time.perf_counter(), None
        try:
            yield from behavior(request_or_iterator, context)
        except GeneratorExit:  # the client went away (or the server stopped) mid-stream
            outcome = "CANCELLED"
            raise
        except BaseException:
            outcome = _status(context, True)
            raise
        finally:
            _emit(method, context, started, outcome or _status(context, False))

    return logged


class CallLogInterceptor(grpc.ServerInterceptor):
    """Wraps every handler to log its outcome; put it first so it also sees refused calls."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        kwargs = {"request_deserializer": handler.request_deserializer,
                  "response_serializer": handler.response_serializer}
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary_response(method, handler.unary_unary), **kwargs)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary_response(method, handler.stream_unary), **kwargs)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream_response(method, handler.unary_stream), **kwargs)
        return grpc.stream_stream_rpc_method_handler(
            _wrap_stream_response(method, handler.stream_stream), **kwargs)
