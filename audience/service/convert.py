"""Domain objects (DSL AST, diagnostics, funnels, run records) to ``audience.v1`` messages.

Every count about people is rounded here (:mod:`audience.service.counts`), so no message built
by this module can carry an exact count below its threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from audience.runs.model import RunRecord
from audience.service.counts import rounded
from audience.service.difference import Shown
from audience.service.names import audience_name, run_name
from audience.service.protos import audience_pb2 as pb
from consent_filter.funnel import Funnel
from dsl import ast
from dsl.diagnostics import Diagnostic

SYNC_MODES = {
    "mirror": pb.SYNC_MODE_MIRROR,
    "additive": pb.SYNC_MODE_ADDITIVE,
    "replace": pb.SYNC_MODE_REPLACE,
}
RUN_STATES = {
    "pending": pb.RUN_STATE_PENDING,
    "building": pb.RUN_STATE_BUILDING,
    "exporting": pb.RUN_STATE_EXPORTING,
    "succeeded": pb.RUN_STATE_SUCCEEDED,
    "failed": pb.RUN_STATE_FAILED,
    "held": pb.RUN_STATE_HELD,
}
TERMINAL_STATES = frozenset({pb.RUN_STATE_SUCCEEDED, pb.RUN_STATE_FAILED, pb.RUN_STATE_HELD})
SEVERITIES = {"error": pb.SEVERITY_ERROR, "warning": pb.SEVERITY_WARNING}


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp; naive datetimes are taken as UTC (how the project stores times)."""
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return ts


def from_timestamp(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def rounded_count(count: int, threshold: int) -> pb.RoundedCount:
    display, value, fewer_than = rounded(count, threshold)
    return pb.RoundedCount(display=display, value=value, fewer_than=fewer_than)


def shown_count(shown: Shown) -> pb.RoundedCount:
    """A count after the difference check (withheld, or rounded as :func:`rounded_count`)."""
    return pb.RoundedCount(display=shown.display, value=shown.value, fewer_than=shown.fewer_than,
                           withheld=shown.withheld)


def diagnostic(d: Diagnostic) -> pb.Diagnostic:
    return pb.Diagnostic(
        file=d.file, line=d.span.line, column=d.span.col, end_line=d.span.end_line,
        end_column=d.span.end_col, code=d.code, message=d.message, formatted=d.format(),
        severity=SEVERITIES.get(d.severity, pb.SEVERITY_UNSPECIFIED))


def sync(s: ast.Sync) -> pb.Sync:
    return pb.Sync(destination=s.destination, schedule=s.schedule or "",
                   mode=SYNC_MODES.get(s.mode, pb.SYNC_MODE_UNSPECIFIED))


def audience(aud: ast.Audience, *, full: bool, git_commit: str | None, content_hash: str,
             problems: Iterable[Diagnostic]) -> pb.Audience:
    return pb.Audience(
        name=audience_name(aud.name), description=aud.description or "", owner=aud.owner or "",
        tags=list(aud.tags), holdout_percent=float(aud.holdout), syncs=[sync(s) for s in aud.syncs],
        definition=aud.source_text if full else "", source_file=aud.file,
        source_line=aud.span.line, git_commit=git_commit or "", content_hash=content_hash,
        diagnostics=[diagnostic(d) for d in problems])


def funnel(destination: str, counts: Funnel, threshold: int) -> pb.DestinationFunnel:
    values = counts.as_dict()
    return pb.DestinationFunnel(
        destination=destination, threshold=threshold,
        **{name: rounded_count(value, threshold) for name, value in values.items()})


def run(record: RunRecord, threshold: int) -> pb.Run:
    """A run with every count rounded, also those its error message quotes (structured fields)."""
    msg = pb.Run(
        name=run_name(record.audience, record.run_id), destination=record.destination,
        mode=SYNC_MODES.get(record.mode, pb.SYNC_MODE_UNSPECIFIED),
        state=RUN_STATES.get(record.state, pb.RUN_STATE_UNSPECIFIED),
        counts=_rounded_counts(record.counts, threshold), count_threshold=threshold,
        error_message=record.error_text(lambda n: rounded(n, threshold)[0]) or "",
        progress=_progress(record), definition_file=record.definition_file,
        content_hash=record.content_hash, git_commit=record.git_commit or "")
    msg.as_of_time.CopyFrom(timestamp(record.as_of))
    if record.started_at is not None:
        msg.start_time.CopyFrom(timestamp(record.started_at))
    if record.finished_at is not None:
        msg.end_time.CopyFrom(timestamp(record.finished_at))
    return msg


def _rounded_counts(counts: Mapping[str, int], threshold: int) -> dict[str, pb.RoundedCount]:
    return {name: rounded_count(int(value), threshold) for name, value in counts.items()}


def _progress(record: RunRecord) -> float:
    if record.state == "succeeded":
        return 1.0
    if record.progress_total <= 0:
        return 0.0
    return max(0.0, min(1.0, record.progress_done / record.progress_total))
