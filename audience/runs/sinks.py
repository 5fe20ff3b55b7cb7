"""Destinations as the run engine sees them: send a frozen plan, checkpoint as you go.

Each sink resumes by itself: it reads the run's checkpoints and skips what was acknowledged
(gRPC batches) or written (file parts), so a run killed at any point finishes the same run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from audience.config import DestinationConfig, ProjectConfig
from audience.errors import OperationalError
from audience.runs.testhook import pause_point

if TYPE_CHECKING:
    from exporters.block_guard import ColumnShapes
    from exporters.drop_writer import PartKind
    from exporters.line_blocks import LineBlock


class HashedList(Protocol):
    """A list of members' hashed values (one column per identifier type), read in the form a
    sink needs: rows for gRPC batches, or CSV lines built by the warehouse for file/S3 parts
    (``exporters.line_blocks``). Each call reads the list again, from the start."""

    def rows(self) -> Iterator[Sequence[str | None]]: ...
    def blocks(self) -> Iterator[LineBlock]: ...


@dataclass
class ExportPlan:
    run_id: str
    audience: str
    mode: str  # how the receiver applies this run: mirror | additive | replace (full only)
    full: bool  # members-* / a REPLACE upload: the whole list
    columns: tuple[str, ...]
    adds: HashedList  # to add (the whole list when full)
    removes: HashedList
    manifest: dict[str, Any] = field(default_factory=dict)


class Checkpoints(Protocol):
    def done(self) -> dict[str, dict[str, Any]]: ...
    def mark(self, step: str, info: dict[str, Any]) -> None: ...
    def progress(self, done: int) -> None: ...


class Sink(Protocol):
    def send(self, plan: ExportPlan, checkpoints: Checkpoints) -> dict[str, Any]: ...


def _column_shapes(plan: ExportPlan, fmt: str) -> tuple[list[ColumnShapes], list[ColumnShapes]]:
    """What the cells of adds and of removals may look like, per column: adds carry what this
    format sends; removals what any format sends for the type, as they may be tuples sent
    before the destination changed its format."""
    from exporters.hashing.identifier import encoded_shape, sent_shapes

    return [(encoded_shape(kind, fmt),) for kind in plan.columns], [sent_shapes(kind) for kind in plan.columns]


def _chunks(rows: Iterable[Sequence[str | None]], size: int) -> Iterator[list[Sequence[str | None]]]:
    batch: list[Sequence[str | None]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class DropSink:
    """file:// and s3:// destinations: gzip CSV parts, then manifest.json last."""

    def __init__(self, dest: DestinationConfig, config: ProjectConfig) -> None:
        from exporters.objectstore import open_store

        self.dest = dest
        uri = dest.uri or ""
        if dest.type == "file":
            uri = config.file_uri_path(uri).resolve().as_uri()
        try:
            self.store = open_store(uri, endpoint_url=dest.endpoint_url, sse=dest.sse, kms_key_id=dest.kms_key_id,
                                    **({"region": dest.region} if dest.region and dest.type == "s3" else {}))
        except ValueError as err:
            raise OperationalError(f"destination {dest.name}: {err}") from None

    def send(self, plan: ExportPlan, checkpoints: Checkpoints) -> dict[str, Any]:
        from exporters.block_guard import RowRefused
        from exporters.drop_writer import DropWriter, block_parts
        from exporters.objectstore import ExportStoreError

        writer = DropWriter(self.store, plan.audience, plan.run_id, plan.columns, rows_per_part=self.dest.rows_per_file)
        done = checkpoints.done()
        sent = 0
        try:
            add_shapes, remove_shapes = _column_shapes(plan, self.dest.format)
            sections: list[tuple[PartKind, HashedList, list[ColumnShapes]]] = [
                ("members" if plan.full else "adds", plan.adds, add_shapes), ("removes", plan.removes, remove_shapes)]
            for kind, members, shapes in sections:
                # Parts stream into the writer (a part is up to a million rows: never held in a
                # list); the blocks of a part skipped on resume are read past, not kept.
                for index, part in block_parts(members.blocks(), self.dest.rows_per_file):
                    step = f"part:{kind}:{index}"
                    previous = done.get(step)
                    if previous and writer.existing_part(kind, index, expected_sha256=previous["sha256"]):
                        sent += previous["rows"]
                        continue
                    try:
                        info = writer.write_part_blocks(kind, index, part, shapes)
                    except RowRefused as err:  # the message names row and column, never the value
                        raise OperationalError(f"destination {self.dest.name}: {kind} part {index}: {err}") from None
                    checkpoints.mark(step, {"sha256": info.sha256, "rows": info.rows})
                    sent += info.rows
                    checkpoints.progress(sent)
            if not writer.parts:
                writer.write_part("members" if plan.full else "adds", 0, [])
            pause_point("commit")
            key = writer.write_manifest(plan.manifest)
        except ExportStoreError as err:
            raise OperationalError(f"destination {self.dest.name}: {err}") from None
        return {"manifest": self.store.describe(key), "files": len(writer.parts)}


class GrpcSink:
    """gRPC destinations speaking ingest.v1: open, numbered batches, commit (exactly once)."""

    def __init__(self, dest: DestinationConfig, config: ProjectConfig) -> None:
        self.dest = dest
        self.config = config

    def _client(self):
        from exporters.grpc_ingest.client import IngestClient

        token = os.environ.get(self.dest.token_env, "") if self.dest.token_env else ""
        if self.dest.token_env and not token:
            raise OperationalError(f"destination {self.dest.name}: environment variable {self.dest.token_env} "
                                   "(token_env) is not set")
        root = self.config.resolve(self.dest.ca_cert).read_bytes() if self.dest.ca_cert else None
        return IngestClient(self.dest.target or "", token=token or None, tls=self.dest.tls, root_cert=root,
                            deadline_s=self.dest.deadline_seconds)

    def send(self, plan: ExportPlan, checkpoints: Checkpoints) -> dict[str, Any]:
        """Open the upload, send every batch not yet acknowledged, commit. Each batch passes the
        block guard first (as file parts do), so only hashed values of the columns' shapes can
        ever leave: a refused row fails the run before its batch is sent, and the upload is
        never committed."""
        from exporters.block_guard import BlockGuard, RowRefused
        from exporters.grpc_ingest.client import IngestError
        from exporters.grpc_ingest.model import Mode

        mode = Mode.REPLACE if plan.full else Mode(plan.mode)
        if mode is Mode.REPLACE and not plan.full:  # a replace without the whole list would empty the segment
            raise OperationalError(f"destination {self.dest.name}: a partial upload cannot use REPLACE")
        try:
            with self._client() as client:
                upload = client.open_upload(plan.audience, plan.run_id, mode=mode, format=self.dest.format,
                                            columns=plan.columns)
                received = set(upload.received_sequence_numbers)
                done = checkpoints.done()
                seq = sent = 0
                for kind, members, shapes in zip(("adds", "removes"), (plan.adds, plan.removes),
                                                 _column_shapes(plan, self.dest.format), strict=True):
                    guard, before = BlockGuard(plan.columns, shapes), 0
                    for batch in _chunks(members.rows(), self.dest.batch_size):
                        seq += 1
                        sent += len(batch)
                        before += len(batch)
                        step = f"batch:{seq}"
                        if step in done and seq in received:
                            continue
                        cells = [["" if v is None else v for v in row] for row in batch]
                        try:
                            guard.check(_as_block(cells), before - len(batch))
                        except RowRefused as err:  # names row and column, never the value
                            raise OperationalError(f"destination {self.dest.name}: {kind} batch {seq}: {err}") from None
                        adds, removes = (cells, []) if kind == "adds" else ([], cells)
                        client.send_batch(upload.name, seq, adds, removes)
                        checkpoints.mark(step, {"rows": len(batch), "kind": kind})
                        checkpoints.progress(sent)
                pause_point("commit")
                final = client.commit(upload.name, last_seq=seq)
        except IngestError as err:
            raise OperationalError(f"destination {self.dest.name}: {err}") from None
        return {"upload": final.name, "batches": seq, "members": final.member_count}


def _as_block(cells: list[list[str]]) -> LineBlock:
    """A batch's cells as the CSV lines the block guard reads."""
    from exporters.line_blocks import LineBlock

    return LineBlock("".join(",".join(row) + "\n" for row in cells).encode("utf-8"), len(cells))


def sink_for(dest: DestinationConfig, config: ProjectConfig) -> Sink:
    return GrpcSink(dest, config) if dest.type == "grpc" else DropSink(dest, config)
