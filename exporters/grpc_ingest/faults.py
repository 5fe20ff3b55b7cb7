"""Fault injection for the sandbox receiver, so clients can be tested against a flaky platform.

Faults, each with its own probability, drawn per call of an ``ingest.v1.IngestService`` RPC
(health checks are never faulted):

- ``slow`` (``P:SECONDS``): sleep before handling the call.
- ``exhausted`` (``P:SECONDS``): answer RESOURCE_EXHAUSTED without handling the call, with a
  ``google.rpc.RetryInfo`` detail whose ``retry_delay`` is SECONDS, sent the standard way: a
  serialized ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer.
- ``unavailable`` (``P``): answer UNAVAILABLE without handling the call.
- ``drop_ack`` (``P``, mutating RPCs only: OpenUpload, SendBatch, CommitUpload): handle the call
  (the change is stored), then answer UNAVAILABLE, as if the acknowledgement had been lost.

Deterministic with a seed: every call draws the same four numbers from one seeded generator,
whatever the outcome, so a sequential client sees the same faults on every run.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from exporters.grpc_ingest.auth import handler_like
from exporters.grpc_ingest.status import status_trailer

SERVICE_PREFIX = "/ingest.v1.IngestService/"
MUTATING_METHODS = frozenset({"OpenUpload", "SendBatch", "CommitUpload"})


@dataclass(frozen=True)
class FaultPlan:
    """What to inject, with which probability. All zero means no fault."""

    unavailable: float = 0.0
    slow: float = 0.0
    slow_s: float = 0.0
    exhausted: float = 0.0
    exhausted_delay_s: float = 0.0
    drop_ack: float = 0.0
    seed: int | None = None
    methods: frozenset[str] = field(default_factory=frozenset)  # empty: every RPC

    def __post_init__(self) -> None:
        for name in ("unavailable", "slow", "exhausted", "drop_ack"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault probability {name} must be between 0 and 1")
        if self.slow_s < 0 or self.exhausted_delay_s < 0:
            raise ValueError("fault durations must not be negative")

    @classmethod
    def from_options(
        cls,
        *,
        unavailable: float = 0.0,
        slow: str | None = None,
        exhausted: str | None = None,
        drop_ack: float = 0.0,
        seed: int | None = None,
        methods: str | None = None,
    ) -> FaultPlan:
        """From CLI-style values: ``slow="0.2:0.5"`` is probability 0.2, 0.5 seconds."""
        slow_p, slow_s = _probability_and_seconds("--fault-slow", slow)
        ex_p, ex_s = _probability_and_seconds("--fault-exhausted", exhausted)
        names = frozenset(m.strip() for m in (methods or "").split(",") if m.strip())
        return cls(unavailable, slow_p, slow_s, ex_p, ex_s, drop_ack, seed, names)

    @property
    def active(self) -> bool:
        return any((self.unavailable, self.slow, self.exhausted, self.drop_ack))

    def applies_to(self, method: str) -> bool:
        return not self.methods or method in self.methods


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--fault-*`` options of ``audience dsp-sandbox``."""
    group = parser.add_argument_group("fault injection (for testing clients)")
    group.add_argument(
        "--fault-unavailable",
        type=float,
        default=0.0,
        metavar="P",
        help="answer UNAVAILABLE before handling, with probability P",
    )
    group.add_argument(
        "--fault-slow",
        metavar="P:SECONDS",
        help="sleep SECONDS before handling, with probability P",
    )
    group.add_argument(
        "--fault-exhausted",
        metavar="P:SECONDS",
        help="answer RESOURCE_EXHAUSTED with RetryInfo delay SECONDS",
    )
    group.add_argument(
        "--fault-drop-ack",
        type=float,
        default=0.0,
        metavar="P",
        help="store the change, then answer UNAVAILABLE (lost acknowledgement)",
    )
    group.add_argument(
        "--fault-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed, for a reproducible sequence of faults",
    )
    group.add_argument(
        "--fault-methods", metavar="NAMES", help="comma-separated RPC names to fault (default: all)"
    )


def fault_plan_from_args(args: argparse.Namespace) -> FaultPlan | None:
    """The plan from parsed ``--fault-*`` options; None when no fault was asked for."""
    plan = FaultPlan.from_options(
        unavailable=args.fault_unavailable,
        slow=args.fault_slow,
        exhausted=args.fault_exhausted,
        drop_ack=args.fault_drop_ack,
        seed=args.fault_seed,
        methods=args.fault_methods,
    )
    return plan if plan.active else None


@dataclass(frozen=True)
class FaultDecision:
    slow_s: float = 0.0
    exhausted_delay_s: float | None = None
    unavailable: bool = False
    drop_ack: bool = False


class FaultInjector:
    """Draws the faults of each call from one seeded generator (thread-safe)."""

    def __init__(self, plan: FaultPlan) -> None:
        self._plan = plan
        self._random = random.Random(plan.seed)
        self._lock = threading.Lock()

    def decide(self, method: str) -> FaultDecision:
        with self._lock:
            draws = [self._random.random() for _ in range(4)]
        plan = self._plan
        if not plan.applies_to(method):
            return FaultDecision()
        return FaultDecision(
            slow_s=plan.slow_s if draws[0] < plan.slow else 0.0,
            exhausted_delay_s=plan.exhausted_delay_s if draws[1] < plan.exhausted else None,
            unavailable=draws[2] < plan.unavailable,
            drop_ack=method in MUTATING_METHODS and draws[3] < plan.drop_ack,
        )


class FaultInterceptor(grpc.ServerInterceptor):
    """Wraps the unary ingest handlers with the injected faults."""

    def __init__(self, plan: FaultPlan, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._injector = FaultInjector(plan)
        self._sleep = sleep

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        full_method: str = handler_call_details.method
        if handler is None or handler.unary_unary is None:
            return handler
        if not full_method.startswith(SERVICE_PREFIX):
            return handler
        method = full_method.removeprefix(SERVICE_PREFIX)
        return handler_like(handler, self._wrap(method, handler.unary_unary))

    def _wrap(
        self, method: str, inner: Callable[[Any, grpc.ServicerContext], Any]
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            decision = self._injector.decide(method)
            if decision.slow_s:
                self._sleep(decision.slow_s)
            if decision.exhausted_delay_s is not None:
                abort_resource_exhausted(context, decision.exhausted_delay_s)
            if decision.unavailable:
                context.abort(grpc.StatusCode.UNAVAILABLE, "injected fault: unavailable")
            response = inner(request, context)
            if decision.drop_ack:
                context.abort(grpc.StatusCode.UNAVAILABLE, "injected fault: acknowledgement lost")
            return response

        return behaviour


def abort_resource_exhausted(context: grpc.ServicerContext, delay_s: float) -> None:
    """Abort with RESOURCE_EXHAUSTED and a ``google.rpc.RetryInfo`` telling when to retry."""
    message = f"injected fault: resource exhausted, retry in {delay_s:g}s"
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(round(delay_s * 1e9))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message, details=[detail])
    context.set_trailing_metadata(status_trailer(status))
    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def _probability_and_seconds(option: str, value: str | None) -> tuple[float, float]:
    if not value:
        return 0.0, 0.0
    p_text, sep, s_text = value.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(p_text), float(s_text)
    except ValueError:
        raise ValueError(f"{option} expects P:SECONDS, e.g. 0.2:0.5, got {value!r}") from None
