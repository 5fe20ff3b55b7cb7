"""Benchmark: consent signal import (``read_signals``) throughput on TC string files.

Two files are generated and imported:

* ``realistic`` - ``--lines`` lines, every TC string different (each has its own Created and
  LastUpdated, as CMPs stamp every user's choice), the choices drawn (Zipf-skewed) from
  ``--patterns`` consent patterns; ~0.5% of the lines carry a TCF v2.0 string and are rejected;
* ``worst case`` - ``--worst-lines`` lines whose choices all differ too, so the decode cache
  never hits and every line pays the full iab-tcf decode.

Each is compared, in the same run, with a baseline that reads the same file with the plain
``csv`` module and does nothing else. Strings look like real ones: a ~1100-vendor consent
bitfield, a vendor legitimate-interest bitfield and a disclosed-vendors segment (~600 chars).

    .venv/bin/python bench/bench_consent_import.py            # defaults from the issue
    .venv/bin/python bench/bench_consent_import.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import csv
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consent_filter.signals import ConsentRow, read_signals

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_EPOCH_START = datetime(2025, 1, 1, tzinfo=UTC)
_GVL_SIZE = 1100
_VENDOR_ID = 755
_PREFIX_CHARS = 13  # version (6) + Created (36) + LastUpdated (36) = 78 bits = 13 chars


@dataclass(frozen=True)
class Measurement:
    """Wall-clock and process CPU seconds; CPU time is steadier on a shared machine."""

    name: str
    lines: int
    seconds: float
    cpu_seconds: float
    rows: int = 0
    errors: int = 0

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.seconds

    @property
    def lines_per_cpu_s(self) -> float:
        return self.lines / self.cpu_seconds

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


class _Clock:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


# --- TC string generation (bench-local encoder, bitfield encoding only) -------------------


def _int(value: int, width: int) -> str:
    return format(value, f"0{width}b")


def _chars(bits: str) -> str:
    bits += "0" * (-len(bits) % 6)
    return "".join(_ALPHABET[int(bits[i : i + 6], 2)] for i in range(0, len(bits), 6))


def _bitfield(ids: set[int], size: int) -> str:
    return "".join("1" if i in ids else "0" for i in range(1, size + 1))


def _prefix(created: datetime, updated: datetime) -> str:
    deciseconds = (int(created.timestamp() * 10), int(updated.timestamp() * 10))
    return _chars(_int(2, 6) + _int(deciseconds[0], 36) + _int(deciseconds[1], 36))


def _body(rng: random.Random, policy: int, purposes: set[int], vendors: set[int]) -> str:
    """Everything after LastUpdated: core fields, vendor vectors, disclosed vendors segment."""
    lang = "".join(_int(ord(c) - 65, 6) for c in "EN")
    li_purposes = {2, 7, 8, 9, 10, 11} if policy >= 4 else {2, 3, 4, 7}
    li_vendors = {v for v in range(1, _GVL_SIZE + 1) if rng.random() < 0.3}
    core = (
        _int(rng.randint(2, 400), 12)  # CmpId
        + _int(rng.randint(1, 20), 12)  # CmpVersion
        + _int(1, 6)  # ConsentScreen
        + lang
        + _int(rng.randint(60, 90), 12)  # VendorListVersion
        + _int(policy, 6)
        + "1"  # IsServiceSpecific
        + "0"  # UseNonStandardTexts
        + _bitfield({1} if purposes else set(), 12)
        + _bitfield(purposes, 24)
        + _bitfield(li_purposes, 24)
        + "0"  # PurposeOneTreatment
        + lang  # PublisherCC
        + _int(_GVL_SIZE, 16)
        + "0"
        + _bitfield(vendors, _GVL_SIZE)
        + _int(_GVL_SIZE, 16)
        + "0"
        + _bitfield(li_vendors, _GVL_SIZE)
        + _int(0, 12)  # NumPubRestrictions
    )
    disclosed = _int(1, 3) + _int(_GVL_SIZE, 16) + "0" + "1" * _GVL_SIZE
    # The core body starts right after 78 bits (13 chars), so it encodes on its own.
    return _chars(core) + "." + _chars(disclosed)


def _bodies(rng: random.Random, count: int, *, legacy: bool = False) -> list[str]:
    """Consent 'shapes': mostly accept-all, some reject-all, some partial.

    ``legacy`` makes TCF v2.0 (policy version 2) strings, which the import rejects.
    """
    bodies = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.6:
            purposes, vendors = (
                set(range(1, 12)),
                {v for v in range(1, _GVL_SIZE + 1) if rng.random() < 0.95},
            )
        elif roll < 0.8:
            purposes, vendors = set(), set()
        else:
            purposes = {p for p in range(1, 12) if rng.random() < 0.5}
            vendors = {v for v in range(1, _GVL_SIZE + 1) if rng.random() < 0.5}
        policy = 2 if legacy else rng.choice((4, 4, 4, 5))
        bodies.append(_body(rng, policy, purposes, vendors))
    return bodies


def _write_csv(path: Path, lines: Iterator[tuple[str, str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("profile_key", "signal", "captured_at"))
        writer.writerows(lines)


def _captured(index: int) -> str:
    return (_EPOCH_START + timedelta(seconds=index * 7)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(index: int) -> datetime:
    return _EPOCH_START + timedelta(milliseconds=100 * index)


def write_realistic(path: Path, lines: int, patterns: int, seed: int) -> None:
    """Every line its own Created/LastUpdated (so every string differs, as each CMP stamps each
    user's choice), the choices drawn Zipf-skewed from ``patterns`` consent patterns."""
    rng = random.Random(seed)
    pool = _bodies(rng, patterns)
    weights = [1 / (rank + 1) for rank in range(len(pool))]
    picks = rng.choices(pool, weights=weights, k=lines)
    legacy = _bodies(rng, 5, legacy=True)
    for index in rng.sample(range(lines), lines // 200):  # 0.5% TCF v2.0 lines
        picks[index] = rng.choice(legacy)
    _write_csv(path, ((f"p{i:09d}", _prefix(_moment(i), _moment(i)) + picks[i], _captured(i))
                      for i in range(lines)))


def write_worst_case(path: Path, lines: int, seed: int) -> None:
    """Every line a different choice as well: CmpId and CmpVersion (the 4 characters after the
    timestamps) count up, so no decode is ever reused."""
    rng = random.Random(seed)
    bodies = _bodies(rng, 50)

    def rows() -> Iterator[tuple[str, str, str]]:
        for i in range(lines):
            body = bodies[i % len(bodies)]
            signal = _prefix(_moment(i), _moment(i)) + _chars(_int(i + 1, 24)) + body[4:]
            yield f"p{i:09d}", signal, _captured(i)

    _write_csv(path, rows())


# --- measurement ------------------------------------------------------------------------


def measure_baseline(path: Path) -> Measurement:
    clock = _Clock()
    count = -1  # header
    with path.open(newline="", encoding="utf-8") as handle:
        for _record in csv.reader(handle):
            count += 1
    return Measurement("csv baseline", count, *clock.elapsed())


def measure_import(path: Path, lines: int, vendor_id: int | None) -> Measurement:
    rows = errors = 0
    clock = _Clock()
    for item in read_signals(path, "tcf", vendor_id=vendor_id):
        if type(item) is ConsentRow:
            rows += 1
        else:
            errors += 1
    return Measurement("read_signals", lines, *clock.elapsed(), rows, errors)


def _line(m: Measurement) -> str:
    return (
        f"  {m.name:<13} {m.seconds:7.2f} s wall {m.lines_per_s:>10,.0f} lines/s | "
        f"{m.cpu_seconds:7.2f} s CPU {m.lines_per_cpu_s:>10,.0f} lines/s"
    )


def report(title: str, baseline: Measurement, imported: Measurement) -> None:
    print(f"\n== {title}: {imported.lines:,} lines ==")
    print(_line(baseline))
    print(_line(imported))
    print(
        f"  read_signals: {imported.rows_per_s:,.0f} rows/s wall ({imported.rows:,} rows, "
        f"{imported.errors:,} errors); time vs baseline: "
        f"{imported.seconds / baseline.seconds:.1f}x wall, "
        f"{imported.cpu_seconds / baseline.cpu_seconds:.1f}x CPU"
    )


def import_end_to_end(tmp: Path, signals: Path) -> tuple[int, float]:
    """The whole command, as an operator runs it: decode, then one insert into the warehouse."""
    import duckdb

    from audience.cli.support import write_starter

    root = tmp / "project"
    root.mkdir()
    write_starter(root)
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("CREATE TABLE consents (profile_key BIGINT, purpose VARCHAR, status VARCHAR, "
                "updated_at TIMESTAMP, expires_at TIMESTAMP, source VARCHAR)")
    con.close()
    # Keys must fit the BIGINT column: the bench's "p000000001" keys become numbers.
    numeric = tmp / "numeric.csv"
    with signals.open(newline="", encoding="utf-8") as src, numeric.open("w", newline="", encoding="utf-8") as dst:
        writer = csv.writer(dst)
        for index, record in enumerate(csv.reader(src)):
            writer.writerow(record if index == 0 else [record[0][1:], *record[1:]])
    clock = _Clock()
    done = subprocess.run([sys.executable, "-m", "audience.cli", "consent", "import", str(numeric),
                           "--format", "tcf", "--project", str(root)], capture_output=True, text=True)
    wall, _ = clock.elapsed()
    if done.returncode not in (0, 1):  # 1: the file's TCF v2.0 lines were reported
        raise RuntimeError(done.stderr[-2000:])
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    rows = con.execute("SELECT COUNT(*) FROM consents").fetchone()[0]
    con.close()
    numeric.unlink()
    return rows, wall


def run_variant(title: str, path: Path, lines: int, vendor_id: int | None) -> Measurement:
    baseline = measure_baseline(path)
    imported = measure_import(path, lines, vendor_id)
    report(title, baseline, imported)
    return imported


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines of the realistic file")
    parser.add_argument("--patterns", type=int, default=3_000, help="consent patterns in it")
    parser.add_argument(
        "--worst-lines",
        type=int,
        default=50_000,
        help="worst-case lines (each costs a full decode, so the default is smaller)",
    )
    parser.add_argument("--vendor-id", type=int, default=_VENDOR_ID)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.lines, args.patterns, args.worst_lines = 20_000, 300, 2_000

    with tempfile.TemporaryDirectory(prefix="bench_consent_") as tmp:
        realistic = Path(tmp) / "realistic.csv"
        started = time.perf_counter()
        write_realistic(realistic, args.lines, args.patterns, args.seed)
        size_mb = realistic.stat().st_size / 1e6
        print(f"generated {size_mb:,.0f} MB in {time.perf_counter() - started:.1f} s")
        title = f"every string distinct, {args.patterns:,} consent patterns"
        fast = run_variant(title, realistic, args.lines, args.vendor_id)
        imported, import_s = import_end_to_end(Path(tmp), realistic)
        print(f"  `audience consent import` end to end (decode + insert into DuckDB): {import_s:.2f} s wall, "
              f"{imported / import_s:,.0f} rows/s ({imported:,} rows in the consent table)")
        realistic.unlink()

        worst = Path(tmp) / "worst.csv"
        write_worst_case(worst, args.worst_lines, args.seed)
        slow = run_variant("worst case: every line a different choice", worst, args.worst_lines, args.vendor_id)

    goal = 50_000
    verdict = "meets" if fast.rows_per_s >= goal else "MISSES"
    print(
        f"\n{args.lines:,} distinct TC strings: {verdict} the {goal:,} rows/s goal "
        f"({fast.rows_per_s:,.0f} rows/s, {fast.lines_per_s:,.0f} lines/s wall); "
        f"worst case: {slow.rows_per_s:,.0f} rows/s, {slow.lines_per_s:,.0f} lines/s wall"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
