"""Logging set-up: structlog to stderr, JSON in production, identifiers always redacted."""

from __future__ import annotations

import os


def setup_logging() -> None:
    """JSON when AUDIENCE_LOG_FORMAT=json (production), console otherwise; level AUDIENCE_LOG_LEVEL."""
    from exporters.redaction import configure_logging

    configure_logging(json=os.environ.get("AUDIENCE_LOG_FORMAT", "console") == "json",
                      level=os.environ.get("AUDIENCE_LOG_LEVEL", "WARNING"))
