"""Logging set-up: structlog to stderr, JSON in production, identifiers always redacted."""

from __future__ import annotations


def setup_logging() -> None:
    """JSON when AUDIENCE_LOG_FORMAT=json (production), console otherwise; level AUDIENCE_LOG_LEVEL
    (WARNING by default)."""
    from exporters.redaction import configure_logging_from_env

    configure_logging_from_env("WARNING")
