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

Two ways in: :meth:`ResultCache.get_or_compute` for threads (it blocks), and
:meth:`ResultCache.aget_or_compute` for the asyncio server: a cached value is returned without
leaving the event loop, a computation runs in the given executor, and callers waiting for one
in flight wait on the loop, holding no thread.
"""

from __future__ import annotations

import asyncio
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
        entry, leader = self._claim(key, compute, ttl, stale_for)
        if leader:
            self._settle(key, entry, compute, ttl)
            return entry.future.result()
        try:
            return entry.future.result(timeout=wait_timeout)
        except FutureTimeout:
            raise _waited_too_long() from None

    async def aget_or_compute(self, key: Hashable, compute: Callable[[], T], *, ttl: float,
                              executor: Executor, stale_for: float = 0.0,
                              wait_timeout: float | None = None) -> T:
        """:meth:`get_or_compute` for a coroutine: *compute* runs in *executor*, never on the loop.

        The computation belongs to the cache, not to the caller: a caller that is cancelled or
        reaches *wait_timeout* stops waiting, and the result still reaches the others and the
        cache.
        """
        entry, leader = self._claim(key, compute, ttl, stale_for)
        if entry.future.done():
            return entry.future.result()
        if leader:
            self._submit(executor, key, entry, compute, ttl)
        waiting = asyncio.shield(asyncio.wrap_future(entry.future))
        try:
            return await asyncio.wait_for(waiting, wait_timeout)
        except TimeoutError:
            raise _waited_too_long() from None

    def prefetch(self, key: Hashable, compute: Callable[[], Any], *, ttl: float,
                 executor: Executor) -> None:
        """Start computing *key* in *executor* unless it is cached or in flight already.

        For answers that are about to be asked for (the next second's SQL): the computation
        is done before the first caller arrives, so no caller waits for it.
        """
        with self._lock:
            if key in self._entries:
                return
            entry = _Entry(Future())
            self._entries[key] = entry
        self._submit(executor, key, entry, compute, ttl)

    def _claim(self, key: Hashable, compute: Callable[[], Any], ttl: float,
               stale_for: float) -> tuple[_Entry, bool]:
        """The entry answering *key* and whether the caller must compute it (it leads)."""
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
        return entry, leader

    def _submit(self, executor: Executor, key: Hashable, entry: _Entry, compute: Callable[[], Any],
                ttl: float) -> None:
        try:
            executor.submit(self._settle, key, entry, compute, ttl)
        except RuntimeError as exc:  # the executor is shut down: the server is stopping
            self._fail(key, entry, exc)

    def _settle(self, key: Hashable, entry: _Entry, compute: Callable[[], Any], ttl: float) -> None:
        """Compute *entry*'s value, or its failure, into its future (never raises)."""
        try:
            value = compute()
        except BaseException as exc:
            self._fail(key, entry, exc)
            return
        with self._lock:
            if ttl <= 0:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            else:
                entry.expires = self._clock() + ttl
                self._evict()
        entry.future.set_result(value)

    def _fail(self, key: Hashable, entry: _Entry, exc: BaseException) -> None:
        """Failures are not cached: drop the entry, then tell its waiters."""
        with self._lock:
            if self._entries.get(key) is entry:
                del self._entries[key]
        entry.future.set_exception(exc)

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


def _waited_too_long() -> Exception:
    return deadline_exceeded("the deadline passed while waiting for the same request made by "
                             "another caller")
