"""What the product's two gRPC servers share: the sandbox receiver (``audience dsp-sandbox``)
and the planner service (``audience serve``, audience/service/server.py).

Both listen on ``--host``/``--port``, require the bearer token named by ``--token-env``, serve
TLS from ``--tls-cert``/``--tls-key``, and stop on SIGTERM/SIGINT: one definition of each here.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from exporters.grpc_ingest.tls import TlsFiles


def add_listen_arguments(parser: argparse.ArgumentParser, *, default_port: int, default_token_env: str) -> None:
    """The options every server command takes (each command adds its own besides)."""
    parser.add_argument("--port", type=int, default=default_port,
                        help=f"port to listen on (default {default_port}; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--token-env", default=default_token_env, metavar="VAR",
                        help="environment variable holding the bearer token to require "
                             "(unset or empty: no token required)")
    parser.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate chain (enables TLS)")
    parser.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")


def tls_from_args(args: argparse.Namespace) -> TlsFiles | None:
    """The TLS files named by ``--tls-cert``/``--tls-key`` (ValueError: only one of them given)."""
    cert, key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    if (cert is None) != (key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    return None if cert is None or key is None else TlsFiles(cert=Path(cert), key=Path(key))


def install_stop_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM/SIGINT set *stop*; only possible (and only done) on the main thread.

    Returns the function that puts the previous handlers back.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
