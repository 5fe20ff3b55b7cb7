"""The export hot path: hash many members' identifiers at once, counting what was dropped.

Rows are processed in chunks and column by column: ``map`` over one column with a closure
built for that (format, identifier type) keeps the per-value loop in C, and ``list.count``
gives the drop counts without a Python-level branch per value. Memory is bounded by the
chunk size whatever the number of rows.

Two shapes of the same work: ``hash_rows`` yields one output row per input row;
``hash_row_chunks`` yields one list of output rows per input chunk, which saves a generator
step per row for writers that work in chunks anyway (CSV blocks, gRPC batches).

Phone numbers cost tens of microseconds each in libphonenumber (pure Python), so for large
exports with phones ``hash_row_chunks(..., processes=N)`` hashes chunks in N worker processes
(the GIL rules out threads). The output and counts are exactly those of the serial path, in
the same order; for cheap identifiers (email, MAID) shipping rows between processes costs
about as much as hashing them, so the serial path is the default. Workers are spawned, not
forked, so the program's entry module must keep its work under ``if __name__ == "__main__"``.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter

from exporters.hashing.digest import phone_hasher, value_hasher
from exporters.hashing.profiles import PHONE, HashingConfigError, get_profile

DEFAULT_CHUNK_ROWS = 4096


@dataclass
class HashStats:
    """Counts per identifier type for rule 4 of the consent funnel ("no identifier").

    ``missing``: no value at all (NULL or empty string); ``dropped``: a value that was not
    valid after normalization (never guessed, only counted); ``hashed``: sent.
    ``no_identifier``: rows where no identifier type produced a value.
    """

    kinds: tuple[str, ...]
    rows: int = 0
    no_identifier: int = 0
    hashed: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for counts in (self.hashed, self.missing, self.dropped):
            for kind in self.kinds:
                counts.setdefault(kind, 0)

    def add(self, other: HashStats) -> None:
        """Add ``other``'s counts (same kinds) to these: chunks hashed elsewhere, then merged."""
        self.rows += other.rows
        self.no_identifier += other.no_identifier
        for mine, theirs in ((self.hashed, other.hashed), (self.missing, other.missing), (self.dropped, other.dropped)):
            for kind, count in theirs.items():
                mine[kind] = mine.get(kind, 0) + count

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary (manifest, funnel, logs): counts only, never values."""
        return {
            "rows": self.rows,
            "no_identifier": self.no_identifier,
            "hashed": dict(self.hashed),
            "missing": dict(self.missing),
            "dropped": dict(self.dropped),
        }


@dataclass(frozen=True)
class _Plan:
    kinds: tuple[str, ...]
    functions: tuple[tuple[bool, Callable], ...]  # (needs country, function) per kind

    @property
    def width(self) -> int:
        return len(self.kinds) + 1


def check_kinds(fmt: str, kinds: Sequence[str]) -> None:
    """Raise ``HashingConfigError`` unless ``fmt`` can hash this list of identifier types (known,
    accepted by the format, at least one, none repeated) — before any row is read."""
    profile = get_profile(fmt)
    if not kinds:
        raise HashingConfigError("hashing needs at least one identifier type")
    if len(set(kinds)) != len(kinds):
        raise HashingConfigError(f"identifier types repeat in {list(kinds)!r}")
    for kind in kinds:
        profile.require(kind)


def _plan(fmt: str, kinds: Sequence[str]) -> _Plan:
    check_kinds(fmt, kinds)
    profile = get_profile(fmt)
    functions = tuple(
        (True, phone_hasher(profile)) if kind == PHONE else (False, value_hasher(kind, profile)) for kind in kinds
    )
    return _Plan(kinds=tuple(kinds), functions=functions)


def _hash_chunk(plan: _Plan, chunk: list[tuple], stats: HashStats) -> list[tuple]:
    width = plan.width
    if set(map(len, chunk)) != {width}:
        raise ValueError(f"every row must have {width} values: one per identifier type, then the country")
    countries = list(map(itemgetter(width - 1), chunk))
    out_columns = []
    for position, (kind, (needs_country, function)) in enumerate(zip(plan.kinds, plan.functions, strict=True)):
        column = list(map(itemgetter(position), chunk))
        values = map(function, column, countries) if needs_country else map(function, column)
        result = list(values)
        _count(stats, kind, column, result)
        out_columns.append(result)
    out_rows = list(zip(*out_columns, strict=True))
    stats.rows += len(out_rows)
    stats.no_identifier += out_rows.count((None,) * len(plan.kinds))
    return out_rows


def hash_row_chunks(
    fmt: str,
    kinds: Sequence[str],
    chunks: Iterable[list[tuple]],
    stats: HashStats | None = None,
    *,
    processes: int = 0,
) -> Iterator[list[tuple[str | None, ...]]]:
    """For each chunk of ``(raw per kind..., country)`` rows, the list of encoded rows.

    Same contract as ``hash_rows``; the caller chooses the chunking (e.g. ``fetchmany``).
    ``processes`` > 1 hashes up to ``2 * processes`` chunks ahead in that many worker
    processes (worth it for phones; see the module docstring); results keep the input order.
    """
    plan = _plan(fmt, kinds)
    if stats is None:
        stats = HashStats(kinds=plan.kinds)
    if processes > 1:
        yield from _hash_in_processes(fmt, plan.kinds, chunks, stats, processes)
        return
    for chunk in chunks:
        if chunk:
            yield _hash_chunk(plan, chunk if isinstance(chunk, list) else list(chunk), stats)


def _hash_in_processes(
    fmt: str, kinds: tuple[str, ...], chunks: Iterable[list[tuple]], stats: HashStats, processes: int
) -> Iterator[list[tuple[str | None, ...]]]:
    # "spawn": forking a process that runs DuckDB, gRPC or logging threads can deadlock the child.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=context)
    pending: deque[Future[tuple[list[tuple], HashStats]]] = deque()
    try:
        for chunk in chunks:
            if chunk:
                pending.append(pool.submit(_hash_chunk_worker, fmt, kinds, list(chunk)))
            if len(pending) >= 2 * processes:
                yield _merged(pending.popleft(), stats)
        while pending:
            yield _merged(pending.popleft(), stats)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _merged(future: Future[tuple[list[tuple], HashStats]], stats: HashStats) -> list[tuple]:
    rows, chunk_stats = future.result()
    stats.add(chunk_stats)
    return rows


def _hash_chunk_worker(fmt: str, kinds: tuple[str, ...], chunk: list[tuple]) -> tuple[list[tuple], HashStats]:
    """One chunk in a worker process (module-level so that it pickles by name)."""
    stats = HashStats(kinds=kinds)
    return _hash_chunk(_plan(fmt, kinds), chunk, stats), stats


def hash_rows(
    fmt: str,
    kinds: Sequence[str],
    rows: Iterable[tuple],
    stats: HashStats | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    *,
    processes: int = 0,
) -> Iterator[tuple[str | None, ...]]:
    """Yield, for each ``(raw per kind..., country)`` row, the encoded values (``None`` = none).

    Output rows line up one-to-one with input rows. Pass a ``HashStats(kinds=...)`` to get
    the hashed / missing / dropped counts; it is complete once the iterator is exhausted.
    Raises ``HashingConfigError`` (before reading any row) for a format/type mismatch, and
    ``ValueError`` for a row of the wrong width. ``processes``: as for ``hash_row_chunks``.
    """
    plan = _plan(fmt, kinds)
    if stats is None:
        stats = HashStats(kinds=plan.kinds)
    iterator = iter(rows)
    chunks = iter(lambda: list(islice(iterator, chunk_rows)), [])
    if processes > 1:
        for chunk in _hash_in_processes(fmt, plan.kinds, chunks, stats, processes):
            yield from chunk
        return
    for chunk in chunks:
        yield from _hash_chunk(plan, chunk, stats)


def _count(stats: HashStats, kind: str, column: list, result: list) -> None:
    missing = column.count(None) + column.count("")
    nones = result.count(None)
    stats.missing[kind] += missing
    stats.dropped[kind] += nones - missing
    stats.hashed[kind] += len(result) - nones
