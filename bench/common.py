"""Shared helpers for the benchmark scripts: a demo project over a large synthetic warehouse."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

AS_OF = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
DATA = Path(__file__).parent / ".data"


def demo_project(fans: int, *, consents_per_fan: float = 2.5, streams_per_fan: float = 12,
                 name: str | None = None) -> Path:
    """A starter project over a demo warehouse of `fans` fans (built once, reused by later runs)."""
    import duckdb

    from audience.cli.support import write_starter
    from audience.demo.warehouse import DemoSizes, build_demo_warehouse

    root = DATA / (name or f"demo-{fans}-{consents_per_fan}-{streams_per_fan}")
    marker = root / ".built"
    if marker.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    write_starter(root)
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    try:
        started = time.perf_counter()
        build_demo_warehouse(con, sizes=DemoSizes(fans=fans, consents_per_fan=consents_per_fan,
                                                  streams_per_fan=streams_per_fan), as_of=AS_OF)
        print(f"built demo warehouse with {fans} fans in {time.perf_counter() - started:.1f}s")
    finally:
        con.close()
    marker.write_text("ok\n")
    return root


def timed(func: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time of `repeat` calls (after one warm-up) and the last result."""
    result = func()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def timestamp_sql(as_of: datetime, days_before: float = 0) -> str:
    """A DuckDB timestamp literal `days_before` days before `as_of`, for hand-written SQL."""
    value = (as_of - timedelta(days=days_before)).replace(tzinfo=None)
    return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
