"""Building, running and stopping the planner server (``audience serve``).

The server is a ``grpc.aio`` one: handlers are coroutines on one event loop, cheap and cached
answers are computed on the loop, and blocking work (warehouse queries, compiling, reloading
the project, run state) goes to a small bounded thread pool (``max_workers``, default 4; see
:mod:`~audience.service.servicer`). The loop runs on a thread of its own
(:class:`EventLoopThread`), so the server is started and stopped from ordinary synchronous
code: the ``serve`` command's main thread (which keeps the signals) and the tests.

What the server offers besides ``audience.v1.AudienceService``:

- standard health checking (``grpc.health.v1.Health``): SERVING while up, NOT_SERVING from the
  moment a shutdown begins, so load balancers stop sending calls first;
- server reflection (``grpcurl``, ``grpc_cli`` work without the .proto files);
- a bearer token, when configured (``authorization: Bearer <token>``, compared in constant
  time); calls without it fail with UNAUTHENTICATED. Health and reflection stay open: probes
  and tooling need no secret, and neither reveals anything about audiences or people;
- TLS from PEM certificate and key files;
- one structured log line per call (:mod:`~audience.service.call_log`).

Shutdown (SIGTERM/SIGINT): health goes NOT_SERVING, watch streams end with UNAVAILABLE, new
calls are refused, calls in flight get ``grace`` seconds, then runs started by
RefreshAudience get up to the same grace to finish (a run cut off later resumes from its last
checkpoint on the next refresh), and the warehouse connections are closed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from audience.config import ConfigError
from audience.errors import OperationalError
from audience.service.auth import AsyncBearerTokenInterceptor
from audience.service.call_log import CallLogInterceptor
from audience.service.options import DEFAULT_PORT, DEFAULT_TOKEN_ENV, add_serve_arguments
from audience.service.project_cache import ProjectCache
from audience.service.protos import SERVICE_NAME, audience_service_pb2_grpc
from audience.service.results import ResultCache
from audience.service.servicer import (
    DEFAULT_RESULT_TTL_SECONDS,
    DEFAULT_WATCH_INTERVAL_SECONDS,
    AudienceServicer,
)
from exporters.grpc_ingest.serving import install_stop_signals, tls_from_args
from exporters.grpc_ingest.tls import TlsFiles

log = structlog.get_logger()

T = TypeVar("T")

DEFAULT_WORKERS = 4
SHUTDOWN_GRACE_SECONDS = 30.0
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

__all__ = [
    "DEFAULT_PORT",
    "EventLoopThread",
    "PlannerServer",
    "TlsFiles",
    "build_server",
    "create_planner_server",
    "serve_command",
]


class EventLoopThread:
    """An asyncio event loop running on a daemon thread of its own.

    Why a thread: the loop must keep serving while the caller (the CLI's main thread waiting
    for a signal, a test) goes on with synchronous code; :meth:`run` hands it a coroutine and
    waits for the result.
    """

    def __init__(self, name: str = "planner-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_forever, name=name, daemon=True)
        self._thread.start()

    def _run_forever(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run *coro* on the loop and return its result (or raise its exception)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop, wait for its thread, close it (after every task of it has ended)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


@dataclass
class PlannerServer:
    """A built, bound server with what its shutdown needs; ``start()`` then ``stop()``."""

    server: grpc.aio.Server
    port: int
    projects: ProjectCache
    servicer: AudienceServicer
    health: health_aio.HealthServicer
    executor: futures.ThreadPoolExecutor
    refresher: futures.ThreadPoolExecutor
    loop: EventLoopThread
    stopped: bool = field(default=False)

    def start(self) -> None:
        self.loop.run(self.server.start())

    def stop(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop serving, let calls and background runs finish within *grace*, close the warehouse."""
        if self.stopped:
            return
        self.stopped = True
        self.loop.run(self._stop_serving(grace))
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.refresher.shutdown(wait=True, cancel_futures=True)
        self.loop.close()
        from audience.runs import api as runs_api

        runs_api.wait_for_background(grace)
        self.projects.close()

    async def _stop_serving(self, grace: float) -> None:
        self.servicer.stopping.set()  # watch streams end now, not at the end of the grace
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


def create_planner_server(
    project_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    tls: TlsFiles | None = None,
    max_workers: int = DEFAULT_WORKERS,
    result_ttl: float = DEFAULT_RESULT_TTL_SECONDS,
    watch_interval: float = DEFAULT_WATCH_INTERVAL_SECONDS,
) -> PlannerServer:
    """Load the project (fail fast: ConfigError, WarehouseError) and bind ``host:port``.

    Port 0 picks a free port (``.port`` tells which). *max_workers* threads do the blocking
    work of calls: few, because on a small machine more threads only fight for the GIL.
    """
    # Background refreshes of expiring estimates: few threads, reused, so the warehouse's
    # per-thread cursors do not pile up.
    refresher = futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="planner-refresh")
    projects = ProjectCache(Path(project_dir),
                            results=lambda: ResultCache(refresher=refresher))
    try:
        projects.get()
    except BaseException:
        refresher.shutdown(wait=False)
        raise
    executor = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="planner")
    servicer = AudienceServicer(projects, executor=executor, result_ttl=result_ttl,
                                watch_interval=watch_interval)
    loop = EventLoopThread()
    try:
        server, health_servicer, bound = loop.run(
            _build(servicer, f"{host}:{port}", token=token, tls=tls))
    except BaseException:
        loop.close()
        executor.shutdown(wait=False)
        refresher.shutdown(wait=False)
        projects.close()
        raise
    return PlannerServer(server, bound, projects, servicer, health_servicer, executor, refresher, loop)


async def _build(servicer: AudienceServicer, address: str, *, token: str | None,
                 tls: TlsFiles | None) -> tuple[grpc.aio.Server, health_aio.HealthServicer, int]:
    """The server with every service, bound to *address* (on the loop: aio objects live there)."""
    interceptors: list[grpc.aio.ServerInterceptor] = [CallLogInterceptor()]
    if token:
        interceptors.append(AsyncBearerTokenInterceptor(token))
    server = grpc.aio.server(interceptors=interceptors, options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
    ])
    audience_service_pb2_grpc.add_AudienceServiceServicer_to_server(servicer, server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server)
    return server, health_servicer, _bind(server, address, tls)


def build_server(
    project_dir: Path,
    *,
    host: str,
    port: int,
    token: str | None,
    tls: TlsFiles | None,
    max_workers: int = DEFAULT_WORKERS,
) -> tuple[PlannerServer, int]:
    """The server (not started) and its bound port; see :func:`create_planner_server`."""
    planner = create_planner_server(project_dir, host=host, port=port, token=token, tls=tls,
                                    max_workers=max_workers)
    return planner, planner.port


def _bind(server: grpc.aio.Server, address: str, tls: TlsFiles | None) -> int:
    try:
        bound = (server.add_insecure_port(address) if tls is None
                 else server.add_secure_port(address, tls.server_credentials()))
    except RuntimeError:
        bound = 0
    if not bound:
        raise OSError(f"cannot listen on {address} (in use, or not a local address)")
    return bound


# ---- command line ---------------------------------------------------------------------------


def serve_command(args: argparse.Namespace, *, on_ready: Callable[[int], None] | None = None,
                  stop_event: threading.Event | None = None) -> int:
    """``audience serve``: serve until SIGTERM/SIGINT; 1 for a wrong project or options, 2 when
    it cannot start (warehouse, port, TLS files)."""
    _log_calls()
    try:
        tls = tls_from_args(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    token_env = getattr(args, "token_env", DEFAULT_TOKEN_ENV)
    token = os.environ.get(token_env) or None
    if token is None:
        log.warning("audience_service.no_token", token_env=token_env)
    try:
        planner = create_planner_server(Path(args.project), host=args.host, port=args.port,
                                        token=token, tls=tls)
    except ConfigError as err:
        for d in err.diagnostics:
            print(d.format(), file=sys.stderr)
        return 1
    except (OSError, ValueError, OperationalError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stop = stop_event or threading.Event()
    restore = install_stop_signals(stop)
    try:
        planner.start()
        log.info("audience_service.listening", host=args.host, port=planner.port,
                 tls=tls is not None, auth=token is not None)
        print(f"audience serve listening on {args.host}:{planner.port}", flush=True)
        if on_ready is not None:
            on_ready(planner.port)
        stop.wait()
        log.info("audience_service.stopping", grace_s=SHUTDOWN_GRACE_SECONDS)
    finally:
        planner.stop(SHUTDOWN_GRACE_SECONDS)
        restore()
    return 0


def _log_calls() -> None:
    """The per-call lines are INFO: a server logs at INFO unless AUDIENCE_LOG_LEVEL says not."""
    from exporters.redaction import configure_logging

    configure_logging(json=os.environ.get("AUDIENCE_LOG_FORMAT", "console") == "json",
                      level=os.environ.get("AUDIENCE_LOG_LEVEL", "INFO"))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m audience.service.server``: the same as ``audience serve``."""
    parser = argparse.ArgumentParser(prog="audience-serve", description="gRPC planner service")
    parser.add_argument("--project", default=".", metavar="DIR", help="project folder")
    add_serve_arguments(parser)
    return serve_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
