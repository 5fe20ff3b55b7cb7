"""The export hot path: hash many members' identifiers at once, counting what was dropped.

Rows are processed in chunks and column by column: ``map`` over one column with a closure
built for that (format, identifier type) keeps the per-value loop in C, and ``list.count``
gives the drop counts without a Python-level branch per value. Memory is bounded by the
chunk size whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter

from exporters.hashing.digest import phone_hasher, value_hasher
from exporters.hashing.profiles import PHONE, HashingConfigError, Profile, get_profile

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

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary (manifest, funnel, logs): counts only, never values."""
        return {
            "rows": self.rows,
            "no_identifier": self.no_identifier,
            "hashed": dict(self.hashed),
            "missing": dict(self.missing),
            "dropped": dict(self.dropped),
        }


#: Hashes one column of a chunk, given the chunk's countries (read by phones only).
ColumnHasher = Callable[[list[object], list["str | None"]], list["str | None"]]


@dataclass(frozen=True)
class _Plan:
    kinds: tuple[str, ...]
    columns: tuple[ColumnHasher, ...]  # one per kind

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
    return _Plan(kinds=tuple(kinds), columns=tuple(_column_hasher(kind, profile) for kind in kinds))


def _column_hasher(kind: str, profile: Profile) -> ColumnHasher:
    """One ``map`` over the column, so that the per-value loop stays in C."""
    if kind == PHONE:
        phone = phone_hasher(profile)
        return lambda column, countries: list(map(phone, column, countries))
    value = value_hasher(kind, profile)
    return lambda column, _countries: list(map(value, column))


def _hash_chunk(plan: _Plan, chunk: list[tuple], stats: HashStats) -> list[tuple]:
    width = plan.width
    if set(map(len, chunk)) != {width}:
        raise ValueError(f"every row must have {width} values: one per identifier type, then the country")
    countries = list(map(itemgetter(width - 1), chunk))
    out_columns = []
    for position, (kind, hash_column) in enumerate(zip(plan.kinds, plan.columns, strict=True)):
        column = list(map(itemgetter(position), chunk))
        result = hash_column(column, countries)
        _count(stats, kind, column, result)
        out_columns.append(result)
    out_rows = list(zip(*out_columns, strict=True))
    stats.rows += len(out_rows)
    stats.no_identifier += out_rows.count((None,) * len(plan.kinds))
    return out_rows


def hash_rows(
    fmt: str,
    kinds: Sequence[str],
    rows: Iterable[tuple],
    stats: HashStats | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[tuple[str | None, ...]]:
    """Yield, for each ``(raw per kind..., country)`` row, the encoded values (``None`` = none).

    Output rows line up one-to-one with input rows. Pass a ``HashStats(kinds=...)`` to get
    the hashed / missing / dropped counts; it is complete once the iterator is exhausted.
    Raises ``HashingConfigError`` (before reading any row) for a format/type mismatch, and
    ``ValueError`` for a row of the wrong width.
    """
    plan = _plan(fmt, kinds)
    if stats is None:
        stats = HashStats(kinds=plan.kinds)
    iterator = iter(rows)
    chunks = iter(lambda: list(islice(iterator, chunk_rows)), [])
    for chunk in chunks:
        yield from _hash_chunk(plan, chunk, stats)


def _count(stats: HashStats, kind: str, column: list, result: list) -> None:
    missing = column.count(None) + column.count("")
    nones = result.count(None)
    stats.missing[kind] += missing
    stats.dropped[kind] += nones - missing
    stats.hashed[kind] += len(result) - nones
