"""The sandbox receiver (``audience dsp-sandbox``): the reference ``ingest.v1`` server.

It keeps its state in SQLite (:mod:`exporters.grpc_ingest.sandbox_store`), optionally
requires a bearer token (:mod:`~exporters.grpc_ingest.auth`), serves TLS when given a
certificate (:mod:`~exporters.grpc_ingest.tls`) and injects faults on request
(:mod:`~exporters.grpc_ingest.faults`), so exporters can be tested against a platform that
fails the way real ones do. Standard gRPC health checking is served (without a token).

Entry points: :func:`create_sandbox` (tests: start/stop in-process),
:func:`serve_sandbox` (blocking, stops on SIGTERM/SIGINT), and
:func:`add_sandbox_arguments` + :func:`run_sandbox` for the CLI. ``python -m
exporters.grpc_ingest.sandbox --port 0`` runs it standalone and prints the bound address.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from exporters.grpc_ingest.auth import BearerTokenInterceptor
from exporters.grpc_ingest.faults import (
    FaultInterceptor,
    FaultPlan,
    add_fault_arguments,
    fault_plan_from_args,
)
from exporters.grpc_ingest.model import parse_segment_name, parse_upload_name
from exporters.grpc_ingest.sandbox_store import SandboxStore, StoreError
from exporters.grpc_ingest.serving import add_listen_arguments, install_stop_signals, tls_from_args
from exporters.grpc_ingest.tls import TlsFiles
from exporters.grpc_ingest.wire import (
    ingest_pb2,
    ingest_pb2_grpc,
    mode_from_proto,
    upload_to_proto,
)
from exporters.redaction import configure_logging_from_env

log = structlog.get_logger()

DEFAULT_PORT = 50061
DEFAULT_TOKEN_ENV = "SANDBOX_DSP_TOKEN"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
SERVICE_NAME = "ingest.v1.IngestService"

T = TypeVar("T")


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    """Maps ``ingest.v1`` requests onto the store; one structured log line per call.

    Method names are the RPC names (CamelCase), as the generated base class requires.
    """

    def __init__(self, store: SandboxStore) -> None:
        self.store = store

    def OpenUpload(
        self, request: ingest_pb2.OpenUploadRequest, context: grpc.ServicerContext
    ) -> ingest_pb2.OpenUploadResponse:
        def run() -> ingest_pb2.OpenUploadResponse:
            segment = parse_segment_name(request.parent)
            mode = mode_from_proto(request.mode)
            if mode is None:
                raise ValueError("mode must be MIRROR, ADDITIVE or REPLACE")
            info, created = self.store.open_upload(
                segment, request.run_id, mode, request.format, list(request.columns)
            )
            return ingest_pb2.OpenUploadResponse(upload=upload_to_proto(info), created=created)

        return _handle("OpenUpload", request.parent, context, run)

    def SendBatch(
        self, request: ingest_pb2.SendBatchRequest, context: grpc.ServicerContext
    ) -> ingest_pb2.SendBatchResponse:
        def run() -> ingest_pb2.SendBatchResponse:
            segment, upload_id = parse_upload_name(request.upload)
            again = self.store.apply_batch(
                segment,
                upload_id,
                request.sequence_number,
                [list(row.values) for row in request.adds],
                [list(row.values) for row in request.removes],
            )
            return ingest_pb2.SendBatchResponse(
                sequence_number=request.sequence_number, previously_received=again
            )

        return _handle("SendBatch", request.upload, context, run)

    def GetUpload(
        self, request: ingest_pb2.GetUploadRequest, context: grpc.ServicerContext
    ) -> ingest_pb2.GetUploadResponse:
        def run() -> ingest_pb2.GetUploadResponse:
            info = self.store.get_upload(*parse_upload_name(request.name))
            return ingest_pb2.GetUploadResponse(upload=upload_to_proto(info))

        return _handle("GetUpload", request.name, context, run)

    def CommitUpload(
        self, request: ingest_pb2.CommitUploadRequest, context: grpc.ServicerContext
    ) -> ingest_pb2.CommitUploadResponse:
        def run() -> ingest_pb2.CommitUploadResponse:
            segment, upload_id = parse_upload_name(request.name)
            info = self.store.commit(segment, upload_id, request.last_sequence_number)
            return ingest_pb2.CommitUploadResponse(upload=upload_to_proto(info))

        return _handle("CommitUpload", request.name, context, run)

    def ListMembers(
        self, request: ingest_pb2.ListMembersRequest, context: grpc.ServicerContext
    ) -> ingest_pb2.ListMembersResponse:
        def run() -> ingest_pb2.ListMembersResponse:
            segment = parse_segment_name(request.parent)
            if request.page_size < 0:
                raise ValueError("page_size must not be negative")
            size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
            after = _decode_page_token(request.page_token, request.parent)
            page = self.store.list_members(segment, size, after)
            return ingest_pb2.ListMembersResponse(
                members=[ingest_pb2.Member(identifiers=m) for m in page.members],
                next_page_token=_encode_page_token(page.next_after, request.parent),
                total_size=page.total_size,
            )

        return _handle("ListMembers", request.parent, context, run)


def _handle(method: str, resource: str, context: grpc.ServicerContext, run: Callable[[], T]) -> T:
    """Run one call; map refusals to status codes; never echo row values."""
    started = time.perf_counter()
    code, message = grpc.StatusCode.OK, ""
    try:
        return run()
    except StoreError as exc:
        code, message = grpc.StatusCode[exc.code], str(exc)
    except ValueError as exc:
        code, message = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    except Exception:
        log.exception("dsp_sandbox.internal_error", method=method, resource=resource)
        code, message = grpc.StatusCode.INTERNAL, "internal error in the sandbox receiver"
    finally:
        log.info(
            "dsp_sandbox.call",
            method=method,
            resource=resource,
            code=code.name,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
    context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")


def _encode_page_token(after: str | None, parent: str) -> str:
    if after is None:
        return ""
    raw = json.dumps({"parent": parent, "after": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_page_token(token: str, parent: str) -> str | None:
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["parent"] == parent and isinstance(data["after"], str):
            return str(data["after"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        pass
    raise ValueError("page_token is not a token from a previous call with this parent")


@dataclass
class Sandbox:
    """A built (not yet started) sandbox server, with its store for inspection."""

    server: grpc.Server
    port: int
    store: SandboxStore
    health: health.HealthServicer
    executor: futures.ThreadPoolExecutor

    def start(self) -> None:
        self.server.start()
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace_s: float | None = 2.0) -> None:
        """Refuse new calls, let running ones finish for *grace_s*, then close the store.

        Handlers whose client already gave up (deadline exceeded) are no longer "active" for
        gRPC but may still be about to write; the store closes only once they have returned.
        """
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.store.close()


def create_sandbox(
    port: int,
    db_path: Path,
    *,
    token: str | None,
    tls: TlsFiles | None,
    faults: FaultPlan | None,
    host: str = "127.0.0.1",
    max_workers: int = 8,
) -> Sandbox:
    """Build the server on ``host:port`` (0 picks a free port). Call ``start()`` on it."""
    store = SandboxStore(db_path)
    interceptors: list[grpc.ServerInterceptor] = []
    if token:
        interceptors.append(BearerTokenInterceptor(token))
    if faults is not None and faults.active:
        interceptors.append(FaultInterceptor(faults))
    executor = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sandbox")
    server = grpc.server(
        executor,
        interceptors=interceptors,
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
    )
    ingest_pb2_grpc.add_IngestServiceServicer_to_server(IngestServicer(store), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        bound = _bind(server, f"{host}:{port}", tls)
    except BaseException:
        executor.shutdown(wait=False)
        store.close()
        raise
    return Sandbox(server, bound, store, health_servicer, executor)


def _bind(server: grpc.Server, address: str, tls: TlsFiles | None) -> int:
    try:
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, tls.server_credentials())
    except RuntimeError:
        bound = 0
    if not bound:
        raise OSError(f"cannot listen on {address} (in use, or not a local address)")
    return bound


def serve_sandbox(
    port: int,
    db_path: Path,
    *,
    token: str | None,
    tls: TlsFiles | None,
    faults: FaultPlan | None,
    host: str = "127.0.0.1",
    on_ready: Callable[[int], None] | None = None,
    stop_event: threading.Event | None = None,
    grace_s: float = 5.0,
) -> None:
    """Serve until SIGTERM/SIGINT (or *stop_event*), then shut down gracefully."""
    sandbox = create_sandbox(port, db_path, token=token, tls=tls, faults=faults, host=host)
    stop = stop_event or threading.Event()
    restore = install_stop_signals(stop)
    try:
        sandbox.start()
        log.info(
            "dsp_sandbox.listening",
            host=host,
            port=sandbox.port,
            tls=tls is not None,
            auth=bool(token),
            faults=faults is not None and faults.active,
        )
        if on_ready is not None:
            on_ready(sandbox.port)
        stop.wait()
        log.info("dsp_sandbox.stopping", grace_s=grace_s)
    finally:
        sandbox.stop(grace_s)
        restore()


# ---- command line -------------------------------------------------------------------------


def add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``audience dsp-sandbox`` (the lead's CLI adds ``--project``)."""
    add_listen_arguments(parser, default_port=DEFAULT_PORT, default_token_env=DEFAULT_TOKEN_ENV)
    parser.add_argument(
        "--db",
        type=Path,
        default=Path(".audience/dsp_sandbox.db"),
        help="SQLite file holding the received segments",
    )
    add_fault_arguments(parser)


def run_sandbox(args: argparse.Namespace, *, on_ready: Callable[[int], None] | None = None) -> int:
    """Serve with parsed options; 1 for wrong options, 2 when it cannot start."""
    try:
        tls = tls_from_args(args)
        faults = fault_plan_from_args(args)
    except ValueError as exc:
        print(f"dsp-sandbox: {exc}", file=sys.stderr)
        return 1
    token = os.environ.get(args.token_env) or None
    if token is None:
        log.warning("dsp_sandbox.no_token", token_env=args.token_env)
    try:
        serve_sandbox(
            args.port,
            args.db,
            token=token,
            tls=tls,
            faults=faults,
            host=args.host,
            on_ready=on_ready,
        )
    except (OSError, ValueError) as exc:
        print(f"dsp-sandbox: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dsp-sandbox", description="Sandbox ingest receiver")
    add_sandbox_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging_from_env("INFO")  # as `audience dsp-sandbox` does: never a line unredacted

    def announce(port: int) -> None:
        print(f"dsp-sandbox listening on {args.host}:{port}", flush=True)

    return run_sandbox(args, on_ready=announce)


if __name__ == "__main__":
    sys.exit(main())
