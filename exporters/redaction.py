"""Keep raw identifiers out of logs: a structlog redaction processor and the logging setup.

The contract (``shared/spec/exports.md``) says raw emails and phone numbers never appear in
a log line; device ids neither. Code is expected not to log them in the first place; this
processor is the safety net for what slips through anyway: exception messages, reprs of
rows, values interpolated into an event string. It runs after tracebacks are rendered to
text and before the renderer, so nothing reaches stderr unscanned.

What is replaced inside every string (event, values, dict keys, nested dicts/lists):

* emails (``local@domain.tld``)                          -> ``[redacted-email]``
* UUIDs (IDFA / AAID) and 32-hex-digit device ids          -> ``[redacted-device-id]``
* 7 or more digits joined only by ``+``, spaces, dashes or
  parentheses (phone-number-like)                          -> ``[redacted-phone]``

Deliberately *not* redacted: ISO dates and times (``2024-05-01 12:00:00``), IPv4 addresses
and version strings (dots are not phone separators), 40- and 64-hex digests (commit ids and
our own hashed identifiers are not raw data), and numbers that are not strings (counts).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED_EMAIL = "[redacted-email]"
REDACTED_PHONE = "[redacted-phone]"
REDACTED_DEVICE_ID = "[redacted-device-id]"

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_UUID = re.compile(
    r"(?<![0-9A-Za-z])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"(?![0-9A-Za-z])"
)
_HEX32 = re.compile(r"(?<![0-9A-Za-z])[0-9A-Fa-f]{32}(?![0-9A-Za-z])")
# A run of >= 7 digits separated by at most a few of ``+ -()`` and spaces, not glued to a
# word, a dot or another digit, and not starting an ISO date (YYYY-MM-DD).
_PHONE = re.compile(
    r"(?<![\w.])(?!\d{4}-\d{2}-\d{2}(?!\d))"
    r"\+?\(?\d(?:[ \t\-()]{0,3}\d){6,}\)?"
    r"(?![\w.])"
)
_SCALARS = (int, float, bool, type(None))


def redact_text(text: str) -> str:
    """``text`` with emails, device ids and phone-like numbers replaced by markers."""
    if "@" in text:
        text = _EMAIL.sub(REDACTED_EMAIL, text)
    text = _UUID.sub(REDACTED_DEVICE_ID, text)
    text = _HEX32.sub(REDACTED_DEVICE_ID, text)
    return _PHONE.sub(REDACTED_PHONE, text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return {_redact(key): _redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_redact(item) for item in value)
    # Anything else is rendered with repr() later (JSON fallback, console): redact that text
    # now, since a repr can carry a raw value (an exception, a row object, a dataclass).
    return redact_text(repr(value))


def redact_identifiers(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redact every string in ``event_dict`` (recursively)."""
    redacted = _redact(dict(event_dict))
    if isinstance(event_dict, MutableMapping):
        event_dict.clear()
        event_dict.update(redacted)
        return event_dict
    return redacted


class _StderrLoggerFactory:
    """Creates loggers that write to the *current* ``sys.stderr`` (so test capture works)."""

    def __call__(self, *args: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(file=_stderr())


def _stderr() -> TextIO:
    return sys.stderr


def _level_number(level: str) -> int:
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING or ERROR")
    return number


def _renderer(json: bool) -> Processor:
    if json:
        return structlog.processors.JSONRenderer(sort_keys=True)
    return structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)


def _pre_chain() -> list[Processor]:
    # Tracebacks become text *before* redaction: a formatter that runs inside the renderer
    # (rich with locals, better-exceptions) would print values nothing has scanned.
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(json: bool, level: str = "INFO") -> None:
    """Set up structlog (and stdlib ``logging``) to write redacted lines to stderr.

    ``json=True`` (production) renders one JSON object per line; otherwise a plain console
    line. ``redact_identifiers`` is always in the chain, right before the renderer. Records
    from stdlib loggers (boto3, grpc, ...) pass through the same redaction and renderer.
    """
    threshold = _level_number(level)
    renderer = _renderer(json)
    structlog.configure(
        processors=[*_pre_chain(), redact_identifiers, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=_StderrLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    _configure_stdlib(threshold, renderer)


def configure_logging_from_env(default_level: str = "WARNING") -> None:
    """``configure_logging`` as the environment asks: JSON when ``AUDIENCE_LOG_FORMAT=json``
    (production), console otherwise; level ``AUDIENCE_LOG_LEVEL``. For every entry point (the
    ``audience`` command, the standalone sandbox), so none logs without redaction."""
    configure_logging(json=os.environ.get("AUDIENCE_LOG_FORMAT", "console") == "json",
                      level=os.environ.get("AUDIENCE_LOG_LEVEL", default_level))


class _CurrentStderrHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler bound to whatever ``sys.stderr`` is at emit time."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _configure_stdlib(threshold: int, renderer: Processor) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_pre_chain(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_identifiers,
            renderer,
        ],
    )
    handler = _CurrentStderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CurrentStderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
