"""The protobuf side of :mod:`exporters.grpc_ingest.model`: generated modules and converters.

Importing this module first checks that the ``ingest.v1`` Python code, generated when the
package was built, is there and current (``proto_gen.ensure_generated``): a missing or stale
module is one clear ``ProtoGenError`` line, not an ``ImportError`` deep in a call.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from exporters.grpc_ingest.model import Mode, UploadInfo, UploadState
from proto_gen import ensure_generated

ensure_generated()

from proto_gen.ingest.v1 import ingest_pb2, ingest_pb2_grpc  # noqa: E402

__all__ = [
    "ingest_pb2",
    "ingest_pb2_grpc",
    "mode_from_proto",
    "mode_to_proto",
    "upload_from_proto",
    "upload_to_proto",
]

_MODES = {
    Mode.MIRROR: ingest_pb2.MODE_MIRROR,
    Mode.ADDITIVE: ingest_pb2.MODE_ADDITIVE,
    Mode.REPLACE: ingest_pb2.MODE_REPLACE,
}
_STATES = {
    UploadState.OPEN: ingest_pb2.UPLOAD_STATE_OPEN,
    UploadState.COMMITTED: ingest_pb2.UPLOAD_STATE_COMMITTED,
}


def mode_to_proto(mode: Mode) -> ingest_pb2.Mode:
    return _MODES[mode]


def mode_from_proto(value: ingest_pb2.Mode) -> Mode | None:
    """None for MODE_UNSPECIFIED or an unknown value."""
    return next((m for m, v in _MODES.items() if v == value), None)


def upload_to_proto(info: UploadInfo) -> ingest_pb2.Upload:
    msg = ingest_pb2.Upload(
        name=info.name,
        segment=info.segment,
        run_id=info.run_id,
        mode=_MODES[info.mode],
        format=info.format,
        columns=list(info.columns),
        state=_STATES[info.state],
        received_sequence_numbers=list(info.received_sequence_numbers),
        highest_contiguous_sequence_number=info.highest_contiguous_sequence_number,
        staged_add_count=info.staged_add_count,
        staged_remove_count=info.staged_remove_count,
        member_count=info.member_count,
    )
    msg.create_time.FromDatetime(info.create_time)
    if info.commit_time is not None:
        msg.commit_time.FromDatetime(info.commit_time)
    return msg


def upload_from_proto(msg: ingest_pb2.Upload) -> UploadInfo:
    mode = mode_from_proto(msg.mode)
    state = next((s for s, v in _STATES.items() if v == msg.state), None)
    if mode is None or state is None:
        raise ValueError("the destination returned an upload with an unknown mode or state")
    return UploadInfo(
        name=msg.name,
        segment=msg.segment,
        run_id=msg.run_id,
        mode=mode,
        format=msg.format,
        columns=tuple(msg.columns),
        state=state,
        received_sequence_numbers=tuple(msg.received_sequence_numbers),
        highest_contiguous_sequence_number=msg.highest_contiguous_sequence_number,
        staged_add_count=msg.staged_add_count,
        staged_remove_count=msg.staged_remove_count,
        member_count=msg.member_count,
        create_time=_to_datetime(msg.create_time),
        commit_time=_to_datetime(msg.commit_time) if msg.HasField("commit_time") else None,
    )


def _to_datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)
