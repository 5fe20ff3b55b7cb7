"""The options of ``audience serve``: declared once, for the CLI and ``python -m audience.service.server``.

Its own small module so that building the CLI's parser loads none of the service.
"""

from __future__ import annotations

import argparse

from exporters.grpc_ingest.serving import add_listen_arguments

DEFAULT_PORT = 50051
DEFAULT_TOKEN_ENV = "AUDIENCE_TOKEN"


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """``--port --host --token-env --tls-cert --tls-key`` (each caller adds ``--project``)."""
    add_listen_arguments(parser, default_port=DEFAULT_PORT, default_token_env=DEFAULT_TOKEN_ENV)
