"""A small result cache that also merges identical calls in flight ("single flight").

Why: an estimate over a million profiles takes seconds of warehouse time, and planners' tools
ask the same question many times (several people looking at one dashboard, a UI refreshing).
Without this, twenty identical calls run twenty identical queries and each waits behind the
others. With it, the first call computes, callers arriving meanwhile wait for that result,
and later callers get it from the cache until it expires.

Failures are never cached: a caller that arrives after a failure computes again.

With a *refresher* (an executor), an expired result may still be served for ``stale_for``
seconds while one background computation replaces it ("stale while revalidate"), so callers
of a popular question never all wait for a slow warehouse query at once when it expires.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from audience.service.errors import deadline_exceeded

log = structlog.get_logger()

T = TypeVar("T")
FOREVER = float("inf")


@dataclass
class _Entry:
    future: Future[Any]
    expires: float = FOREVER  # monotonic time; set once the value is known
    refreshing: bool = False  # a background computation will replace this entry


class ResultCache:
    """At most *max_entries* results (least recently used evicted first), each with a TTL."""

    def __init__(self, max_entries: int = 1024, clock: Callable[[], float] = time.monotonic,
                 refresher: Executor | None = None) -> None:
        self._max = max_entries
        self._clock = clock
        self._refresher = refresher
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()

    def get_or_compute(self, key: Hashable, compute: Callable[[], T], *, ttl: float,
                       stale_for: float = 0.0, wait_timeout: float | None = None) -> T:
        """The cached value of *key*, the result of the identical call in flight, or a new one.

        A value older than *ttl* but not by more than *stale_for* is returned as is while a
        background refresh runs (only with a refresher). *wait_timeout* bounds how long a caller
        waits for someone else's computation (its own deadline); past it, DEADLINE_EXCEEDED.
        """
        refresh = False
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.future.done():
                now = self._clock()
                if entry.expires <= now:
                    if self._refresher is not None and now < entry.expires + stale_for:
                        refresh, entry.refreshing = not entry.refreshing, True
                    else:
                        del self._entries[key]
                        entry = None
            leader = entry is None
            if entry is None:
                entry = _Entry(Future())
                self._entries[key] = entry
            self._entries.move_to_end(key)
        if refresh:
            self._start_refresh(key, entry, compute, ttl)
        if not leader:
            try:
                return entry.future.result(timeout=wait_timeout)  # type: ignore[no-any-return]
            except FutureTimeout:
                raise deadline_exceeded("the deadline passed while waiting for the same request "
                                        "made by another caller") from None
        return self._lead(key, entry, compute, ttl)

    def _lead(self, key: Hashable, entry: _Entry, compute: Callable[[], T], ttl: float) -> T:
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            entry.future.set_exception(exc)
            raise
        with self._lock:
            if ttl <= 0:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            else:
                entry.expires = self._clock() + ttl
                self._evict()
        entry.future.set_result(value)
        return value

    def _start_refresh(self, key: Hashable, stale: _Entry, compute: Callable[[], Any],
                       ttl: float) -> None:
        assert self._refresher is not None
        try:
            self._refresher.submit(self._refresh, key, stale, compute, ttl)
        except RuntimeError:  # the executor is shut down: the server is stopping
            stale.refreshing = False

    def _refresh(self, key: Hashable, stale: _Entry, compute: Callable[[], Any], ttl: float) -> None:
        """Replace *stale* by a fresh result; on failure drop it, so the next caller sees why."""
        try:
            value = compute()
        except BaseException as exc:
            log.warning("audience_service.refresh_failed", error_type=type(exc).__name__)
            with self._lock:
                if self._entries.get(key) is stale:
                    del self._entries[key]
            return
        fresh = _Entry(Future(), expires=self._clock() + ttl)
        fresh.future.set_result(value)
        with self._lock:
            if self._entries.get(key) is stale:
                self._entries[key] = fresh

    def _evict(self) -> None:
        """Drop the least recently used finished entries (never a computation in flight)."""
        excess = len(self._entries) - self._max
        if excess > 0:
            done = [key for key, entry in self._entries.items() if entry.future.done()]
            for key in done[:excess]:
                del self._entries[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
