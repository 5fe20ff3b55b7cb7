"""Latency of the gRPC planner service: CompileAudience and EstimateAudience (issue: planner service).

A real server (``python -m audience.service.server``, its own process, logging one line per
call as in production) over the starter project and a demo warehouse of ``--fans`` profiles
(default 1M). Clients are threads of this process, each with its own channel; every client
issues calls back to back, cycling through the starter audiences, and every call's latency is
recorded. Printed: p50 and p99 per scenario with 1 and 20 concurrent clients.

Scenarios:

* ``compile``: CompileAudience as a planner's tool calls it (as_of = now, duckdb);
* ``compile (uncached)``: a different as_of on every call, so every call compiles;
* ``estimate``: EstimateAudience as a planner's tool calls it (as_of = now): results are reused
  for up to a minute and identical calls in flight share one computation;
* ``estimate (uncached)``: a different as_of on every call, so every call runs the funnel
  query in the warehouse (1 client only: 20 at once just queue behind each other).

Baselines, in the same run: ``health (floor)``, the standard health Check (no work at all,
through the same server, interceptors and logging), is the transport's floor on this machine;
and the same work called in-process without gRPC or caching (``audience_sql`` and
``consented(...).funnel()``): the ``/direct`` column is service p50 / direct p50. ``load`` is
the machine's 1-minute load average as each scenario starts: on a shared 2-core machine,
anything above ~1.5 means other work competed with the server and the clients for the cores.

Goals: compile p99 < 20 ms; estimate p99 < 500 ms at 1M profiles.

    .venv/bin/python bench/bench_service.py            # defaults from the issue
    .venv/bin/python bench/bench_service.py --quick    # smoke run (20k profiles, few calls)
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
from google.protobuf import timestamp_pb2

from bench.common import AS_OF, demo_project

REPO = Path(__file__).resolve().parents[1]
AUDIENCES = ("gig_goers", "lapsed_top_spenders", "london_dubstep_samplers", "one_day_streamers",
             "sampled_then_bought")

Call = Callable[["Stubs", int], object]  # (stubs, call number) -> response


@dataclass(frozen=True)
class Stubs:
    """One client's stubs over its own channel."""

    planner: Any
    health: Any


@dataclass(frozen=True)
class Result:
    scenario: str
    clients: int
    latencies: list[float]

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def line(self, baseline: float | None) -> str:
        p50, p99 = self.quantile(0.50), self.quantile(0.99)
        ratio = f"{p50 / baseline:>7.2f}" if baseline else f"{'':>7}"
        return (f"{self.scenario:<22} {self.clients:>7} {len(self.latencies):>6} "
                f"{p50 * 1000:>9.2f} {p99 * 1000:>9.2f} {max(self.latencies) * 1000:>9.2f} {ratio}")


@contextmanager
def server_process(root: Path) -> Iterator[str]:
    """The planner server in a child process; yields its target address."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "AUDIENCE_LOG_FORMAT": "json"}
    env.pop("AUDIENCE_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "audience.service.server", "--project", str(root), "--port", "0"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("audience serve listening on "):
            raise RuntimeError(f"server did not start (exit {proc.wait()})")
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=120)


def run_clients(target: str, clients: int, calls: int, call: Call) -> list[float]:
    """*clients* threads, each with its own channel, *calls* calls each; every latency."""
    from grpc_health.v1 import health_pb2_grpc

    from audience.service.protos import audience_service_pb2_grpc

    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients)
    counter = itertools.count()

    def client(i: int) -> None:
        try:
            with grpc.insecure_channel(target) as channel:
                stub = Stubs(audience_service_pb2_grpc.AudienceServiceStub(channel),
                             health_pb2_grpc.HealthStub(channel))
                call(stub, next(counter))  # connect before timing
                barrier.wait()
                for _ in range(calls):
                    n = next(counter)
                    started = time.perf_counter()
                    call(stub, n)
                    latencies[i].append(time.perf_counter() - started)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()  # release the others instead of leaving them waiting

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if errors:
        raise (real or errors)[0]
    return [x for per_client in latencies for x in per_client]


def ts(offset_s: int = 0) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(AS_OF + timedelta(seconds=offset_s))
    return out


def scenarios() -> dict[str, Call]:
    from grpc_health.v1 import health_pb2

    from audience.service.protos import audience_service_pb2 as rpc

    def name(n: int) -> str:
        return f"audiences/{AUDIENCES[n % len(AUDIENCES)]}"

    return {
        "health (floor)": lambda s, n: s.health.Check(health_pb2.HealthCheckRequest()),
        "compile": lambda s, n: s.planner.CompileAudience(rpc.CompileAudienceRequest(
            name=name(n))),
        "compile (uncached)": lambda s, n: s.planner.CompileAudience(rpc.CompileAudienceRequest(
            name=name(n), as_of_time=ts(-n))),
        "estimate": lambda s, n: s.planner.EstimateAudience(rpc.EstimateAudienceRequest(
            name=name(n))),
        "estimate (uncached)": lambda s, n: s.planner.EstimateAudience(
            rpc.EstimateAudienceRequest(name=name(n), as_of_time=ts(-n))),
    }


def direct_baselines(root: Path, repeat: int) -> dict[str, float]:
    """p50 of the same work in-process, no gRPC, no cache (one call per audience per repeat)."""
    from audience.build import audience_sql
    from audience.consented import consented
    from audience.project import load_project

    project = load_project(root)
    compile_times, estimate_times = [], []
    try:
        for i in range(repeat):
            for aud in AUDIENCES:
                when = AS_OF - timedelta(seconds=i)
                started = time.perf_counter()
                audience_sql(project, aud, when, "duckdb")
                compile_times.append(time.perf_counter() - started)
                dests = [s.destination for s in project.audiences[aud].syncs] or list(
                    project.config.destinations)
                started = time.perf_counter()
                for dest in dests:
                    consented(project, aud, dest, when).funnel()
                estimate_times.append(time.perf_counter() - started)
    finally:
        project.close()
    return {"compile": statistics.median(compile_times),
            "estimate": statistics.median(estimate_times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fans", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--compile-calls", type=int, default=200, help="per client")
    parser.add_argument("--estimate-calls", type=int, default=50, help="per client")
    parser.add_argument("--uncached-estimate-calls", type=int, default=10)
    parser.add_argument("--baseline-repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="20k profiles, few calls")
    args = parser.parse_args()
    if args.quick:
        args.fans, args.compile_calls, args.estimate_calls = 20_000, 30, 10
        args.uncached_estimate_calls, args.baseline_repeat = 5, 1

    root = demo_project(args.fans)
    from proto_gen import ensure_generated

    ensure_generated()
    base = direct_baselines(root, args.baseline_repeat)
    calls = scenarios()
    print(f"{args.fans} profiles, DuckDB, starter project ({len(AUDIENCES)} audiences), "
          f"server in its own process, {os.cpu_count()} CPUs")
    print(f"direct (in-process, uncached) p50: compile {base['compile'] * 1000:.2f} ms, "
          f"estimate {base['estimate'] * 1000:.1f} ms")
    print(f"{'scenario':<22} {'clients':>7} {'calls':>6} {'p50 ms':>9} {'p99 ms':>9} "
          f"{'max ms':>9} {'/direct':>7} {'load':>5}")
    with server_process(root) as target:
        # Warm the estimate cache the way a first planner would: one call per audience.
        started = time.perf_counter()
        run_clients(target, len(AUDIENCES), 1, calls["estimate"])
        print(f"(first estimate of every audience, cache cold, 5 at once: "
              f"{(time.perf_counter() - started) * 1000:.0f} ms)")
        plan = [("health (floor)", args.compile_calls, args.clients),
                ("compile", args.compile_calls, args.clients),
                ("compile (uncached)", args.compile_calls, args.clients),
                ("estimate", args.estimate_calls, args.clients),
                ("estimate (uncached)", args.uncached_estimate_calls, [1])]
        for scenario, per_client, client_counts in plan:
            for clients in client_counts:
                load = os.getloadavg()[0]
                latencies = run_clients(target, clients, per_client, calls[scenario])
                print(Result(scenario, clients, latencies).line(base.get(scenario.split()[0]))
                      + f" {load:>5.2f}", flush=True)


if __name__ == "__main__":
    main()
