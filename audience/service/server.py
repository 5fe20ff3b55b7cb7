"""Building, running and stopping the planner server (``audience serve``).

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
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from audience.config import ConfigError
from audience.errors import OperationalError
from audience.service.call_log import CallLogInterceptor
from audience.service.project_cache import ProjectCache
from audience.service.protos import SERVICE_NAME, audience_service_pb2_grpc
from audience.service.results import ResultCache
from audience.service.servicer import (
    DEFAULT_RESULT_TTL_SECONDS,
    DEFAULT_WATCH_INTERVAL_SECONDS,
    AudienceServicer,
)
from exporters.grpc_ingest.auth import BearerTokenInterceptor
from exporters.grpc_ingest.tls import TlsFiles

log = structlog.get_logger()

DEFAULT_PORT = 50051
DEFAULT_TOKEN_ENV = "AUDIENCE_TOKEN"
SHUTDOWN_GRACE_SECONDS = 30.0
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

__all__ = [
    "DEFAULT_PORT",
    "PlannerServer",
    "TlsFiles",
    "build_server",
    "create_planner_server",
    "serve_command",
]


@dataclass
class PlannerServer:
    """A built server with what its shutdown needs; ``start()`` then ``stop()``."""

    server: grpc.Server
    port: int
    projects: ProjectCache
    servicer: AudienceServicer
    health: health.HealthServicer
    executor: futures.ThreadPoolExecutor
    refresher: futures.ThreadPoolExecutor
    stopped: bool = field(default=False)

    def start(self) -> None:
        self.server.start()

    def stop(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop serving, let calls and background runs finish within *grace*, close the warehouse."""
        if self.stopped:
            return
        self.stopped = True
        self.servicer.stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.refresher.shutdown(wait=True, cancel_futures=True)
        from audience.runs import api as runs_api

        runs_api.wait_for_background(grace)
        self.projects.close()


def create_planner_server(
    project_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    tls: TlsFiles | None = None,
    max_workers: int = 32,
    result_ttl: float = DEFAULT_RESULT_TTL_SECONDS,
    watch_interval: float = DEFAULT_WATCH_INTERVAL_SECONDS,
) -> PlannerServer:
    """Load the project (fail fast: ConfigError, WarehouseError) and bind ``host:port``.

    Port 0 picks a free port (``.port`` tells which).
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
    servicer = AudienceServicer(projects, result_ttl=result_ttl, watch_interval=watch_interval)
    interceptors: list[grpc.ServerInterceptor] = [CallLogInterceptor()]
    if token:
        interceptors.append(BearerTokenInterceptor(token))
    executor = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="planner")
    server = grpc.server(executor, interceptors=interceptors, options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
    ])
    audience_service_pb2_grpc.add_AudienceServiceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        bound = _bind(server, f"{host}:{port}", tls)
    except BaseException:
        executor.shutdown(wait=False)
        refresher.shutdown(wait=False)
        projects.close()
        raise
    return PlannerServer(server, bound, projects, servicer, health_servicer, executor, refresher)


def build_server(
    project_dir: Path,
    *,
    host: str,
    port: int,
    token: str | None,
    tls: TlsFiles | None,
    max_workers: int = 32,
) -> tuple[grpc.Server, int]:
    """The server (not started) and its bound port; see :func:`create_planner_server`.

    For a clean shutdown (health, background runs, warehouse) prefer
    :func:`create_planner_server`, whose result has ``stop()``.
    """
    planner = create_planner_server(project_dir, host=host, port=port, token=token, tls=tls,
                                    max_workers=max_workers)
    return planner.server, planner.port


def _bind(server: grpc.Server, address: str, tls: TlsFiles | None) -> int:
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
        tls = _tls_from_args(args)
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
    restore = _install_stop_signals(stop)
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


def _tls_from_args(args: argparse.Namespace) -> TlsFiles | None:
    cert, key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    if (cert is None) != (key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    return None if cert is None else TlsFiles(cert=Path(cert), key=Path(key))


def _install_stop_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM/SIGINT set *stop*; only possible (and only done) on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``audience serve`` (the same as audience/cli.py declares)."""
    parser.add_argument("--project", default=".", metavar="DIR", help="project folder")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--token-env", default=DEFAULT_TOKEN_ENV, metavar="VAR",
                        help="environment variable holding the bearer token to require "
                             "(unset or empty: no token required)")
    parser.add_argument("--tls-cert", default=None, help="PEM certificate chain (enables TLS)")
    parser.add_argument("--tls-key", default=None, help="PEM private key of --tls-cert")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m audience.service.server``: the same as ``audience serve``."""
    parser = argparse.ArgumentParser(prog="audience-serve", description="gRPC planner service")
    add_serve_arguments(parser)
    return serve_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
