"""The service's small parts: the result cache (single flight, TTL, LRU), page tokens, rounding."""

from __future__ import annotations

import threading
from concurrent.futures import Executor, Future

import grpc
import pytest

from audience.service.counts import rounded, threshold_of
from audience.service.errors import ServiceError
from audience.service.pagination import decode_token, encode_token, page_size
from audience.service.results import ResultCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_identical_calls_in_flight_share_one_computation() -> None:
    cache = ResultCache()
    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []
    results: dict[str, int] = {}

    def slow() -> int:
        calls.append("leader")
        entered.set()
        release.wait(timeout=60)
        return 42

    def other() -> int:
        calls.append("follower")
        return -1

    leader = threading.Thread(target=lambda: results.setdefault(
        "leader", cache.get_or_compute("k", slow, ttl=60)))
    leader.start()
    assert entered.wait(timeout=60)
    follower = threading.Thread(target=lambda: results.setdefault(
        "follower", cache.get_or_compute("k", other, ttl=60)))
    follower.start()
    release.set()
    leader.join(timeout=60)
    follower.join(timeout=60)
    assert calls == ["leader"]
    assert results == {"leader": 42, "follower": 42}


def test_a_waiter_gives_up_at_its_deadline() -> None:
    cache = ResultCache()
    entered, release = threading.Event(), threading.Event()

    def slow() -> int:
        entered.set()
        release.wait(timeout=60)
        return 1

    leader = threading.Thread(target=lambda: cache.get_or_compute("k", slow, ttl=60))
    leader.start()
    assert entered.wait(timeout=60)
    with pytest.raises(ServiceError) as caught:
        cache.get_or_compute("k", lambda: 2, ttl=60, wait_timeout=0.01)
    release.set()
    leader.join(timeout=60)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert cache.get_or_compute("k", lambda: 3, ttl=60) == 1  # the leader's result is cached


def test_results_expire_and_failures_are_not_cached() -> None:
    clock = Clock()
    cache = ResultCache(clock=clock)
    assert cache.get_or_compute("k", lambda: 1, ttl=10) == 1
    clock.now += 9.9
    assert cache.get_or_compute("k", lambda: 2, ttl=10) == 1
    clock.now += 0.1
    assert cache.get_or_compute("k", lambda: 3, ttl=10) == 3

    def fail() -> int:
        raise ValueError("warehouse down")

    with pytest.raises(ValueError, match="warehouse down"):
        cache.get_or_compute("f", fail, ttl=10)
    assert cache.get_or_compute("f", lambda: 4, ttl=10) == 4
    assert cache.get_or_compute("z", lambda: 5, ttl=0) == 5
    assert cache.get_or_compute("z", lambda: 6, ttl=0) == 6  # ttl 0: computed every time


def test_least_recently_used_results_are_evicted() -> None:
    cache = ResultCache(max_entries=2)
    cache.get_or_compute("a", lambda: 1, ttl=60)
    cache.get_or_compute("b", lambda: 2, ttl=60)
    cache.get_or_compute("a", lambda: 0, ttl=60)  # a is now the most recent
    cache.get_or_compute("c", lambda: 3, ttl=60)  # evicts b
    assert len(cache) == 2
    assert cache.get_or_compute("a", lambda: 9, ttl=60) == 1
    assert cache.get_or_compute("b", lambda: 9, ttl=60) == 9


def test_page_tokens_round_trip_and_are_bound_to_their_list() -> None:
    token = encode_token("runs", "audiences/x", 20)
    assert decode_token(token, "runs", "audiences/x") == 20
    assert decode_token("", "runs", "audiences/x") is None
    for kind, scope in (("runs", "audiences/y"), ("audiences", "audiences/x")):
        with pytest.raises(ServiceError) as caught:
            decode_token(token, kind, scope)
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_page_size_defaults_and_caps() -> None:
    assert (page_size(0), page_size(7), page_size(1000), page_size(1001)) == (50, 7, 1000, 1000)


def test_rounding_at_the_threshold() -> None:
    assert rounded(99, 100) == ("fewer than 100", 0, 100)
    assert rounded(100, 100) == ("100", 100, 0)
    assert rounded(0, 5) == ("fewer than 5", 0, 5)
    assert (threshold_of(None), threshold_of(0), threshold_of(1000)) == (100, 100, 1000)


class InlineExecutor(Executor):
    """Runs a submitted refresh at once, so the test sees its effect deterministically."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        done: Future[object] = Future()
        done.set_result(fn(*args, **kwargs))
        return done


def test_expired_results_are_served_while_one_refresh_replaces_them() -> None:
    clock = Clock()
    cache = ResultCache(clock=clock, refresher=InlineExecutor())
    assert cache.get_or_compute("k", lambda: 1, ttl=10, stale_for=10) == 1
    clock.now += 15  # expired, inside the stale window: old value now, refreshed meanwhile
    assert cache.get_or_compute("k", lambda: 2, ttl=10, stale_for=10) == 1
    assert cache.get_or_compute("k", lambda: 3, ttl=10, stale_for=10) == 2
    clock.now += 25  # past the stale window: computed while the caller waits
    assert cache.get_or_compute("k", lambda: 4, ttl=10, stale_for=10) == 4

    def fail() -> int:
        raise ValueError("warehouse down")

    clock.now += 15
    assert cache.get_or_compute("k", fail, ttl=10, stale_for=10) == 4  # refresh fails...
    assert cache.get_or_compute("k", lambda: 5, ttl=10, stale_for=10) == 5  # ...and is dropped


def test_page_tokens_cannot_be_forged_or_edited() -> None:
    import base64

    # what an unsigned token used to be: base64 of the JSON; a client can write it by hand
    forged = base64.urlsafe_b64encode(b'{"k":"runs","s":"audiences/x","p":0}').decode().rstrip("=")
    token = encode_token("runs", "audiences/x", 20)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[raw.index(b"20")] = ord("9")  # position 20 -> 90, the tag left as it was
    edited = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    other_server = encode_token("runs", "audiences/x", 20, secret=b"another server's secret")
    for bad in (forged, edited, other_server, token[:-2]):
        with pytest.raises(ServiceError) as caught:
            decode_token(bad, "runs", "audiences/x")
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert decode_token(other_server, "runs", "audiences/x", secret=b"another server's secret") == 20
