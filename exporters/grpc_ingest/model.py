"""Plain types shared by the ingest client, the sandbox servicer and its store.

They mirror the ``ingest.v1`` messages but carry no protobuf dependency, so callers (the run
engine, tests) work with frozen dataclasses and the wire format stays an implementation detail.
Resource names follow Google's API design: ``segments/{segment}/uploads/{upload}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

SEGMENT_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
UPLOAD_ID_RE = re.compile(r"^[a-z0-9-]{1,64}$")
RUN_ID_RE = re.compile(r"^[\x21-\x7e]{1,200}$")


class Mode(StrEnum):
    """How a committed upload changes a segment (same words as the DSL's ``sync`` modes)."""

    MIRROR = "mirror"
    ADDITIVE = "additive"
    REPLACE = "replace"


class UploadState(StrEnum):
    """An upload is staged while OPEN and visible once COMMITTED."""

    OPEN = "open"
    COMMITTED = "committed"


@dataclass(frozen=True)
class UploadInfo:
    """An upload as the receiver reports it (``ingest.v1.Upload``)."""

    name: str
    segment: str
    run_id: str
    mode: Mode
    format: str
    columns: tuple[str, ...]
    state: UploadState
    received_sequence_numbers: tuple[int, ...]
    highest_contiguous_sequence_number: int
    staged_add_count: int
    staged_remove_count: int
    member_count: int
    create_time: datetime
    commit_time: datetime | None

    @property
    def upload_id(self) -> str:
        return self.name.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class BatchAck:
    """The receiver's acknowledgement of one batch."""

    sequence_number: int
    previously_received: bool


def segment_name(segment: str) -> str:
    """``segments/{segment}`` from a bare segment id or an existing resource name."""
    segment_id = segment.removeprefix("segments/")
    if not SEGMENT_ID_RE.fullmatch(segment_id):
        raise ValueError("segment id must be 1-128 characters of letters, digits, '_', '-' and '.'")
    return f"segments/{segment_id}"


def parse_segment_name(name: str) -> str:
    """The segment id of ``segments/{segment}``; ValueError when malformed."""
    prefix, _, segment_id = name.partition("/")
    if prefix != "segments" or not SEGMENT_ID_RE.fullmatch(segment_id):
        raise ValueError(f"malformed segment name {name!r}, expected segments/{{segment}}")
    return segment_id


def parse_upload_name(name: str) -> tuple[str, str]:
    """``(segment id, upload id)`` of ``segments/{segment}/uploads/{upload}``."""
    parts = name.split("/")
    if (
        len(parts) != 4
        or parts[0] != "segments"
        or parts[2] != "uploads"
        or not SEGMENT_ID_RE.fullmatch(parts[1])
        or not UPLOAD_ID_RE.fullmatch(parts[3])
    ):
        raise ValueError(
            f"malformed upload name {name!r}, expected segments/{{segment}}/uploads/{{upload}}"
        )
    return parts[1], parts[3]


def upload_name(segment_id: str, upload_id: str) -> str:
    return f"segments/{segment_id}/uploads/{upload_id}"


def highest_contiguous(received: tuple[int, ...] | list[int]) -> int:
    """The highest N such that 1..N are all in *received* (0 when 1 is missing)."""
    seen = set(received)
    n = 0
    while n + 1 in seen:
        n += 1
    return n
