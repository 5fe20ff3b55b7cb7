"""TLS credentials for the sandbox server and the ingest client.

The server takes PEM files (``--tls-cert``/``--tls-key``); the client trusts the system roots,
or the PEM bytes it is given (a self-signed sandbox certificate in tests and demos).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc


@dataclass(frozen=True)
class TlsFiles:
    """A server certificate chain and its private key, both PEM files."""

    cert: Path
    key: Path

    def server_credentials(self) -> grpc.ServerCredentials:
        try:
            pair = (self.key.read_bytes(), self.cert.read_bytes())
        except OSError as exc:
            raise ValueError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
        return grpc.ssl_server_credentials([pair])


def channel_credentials(root_cert: bytes | None) -> grpc.ChannelCredentials:
    """Client credentials: the given PEM roots, or the system's when None."""
    return grpc.ssl_channel_credentials(root_certificates=root_cert)
