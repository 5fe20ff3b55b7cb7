"""Benchmark: normalize + hash + write N synthetic members to a file destination, several ways.

Every path streams the same rows (a DuckDB table generated here) and writes them the way an
export does: ``DropWriter`` parts (gzip CSV, 1M rows a part) into a ``FileStore`` folder.
So the numbers are end to end, and the paths differ only in how identifiers are hashed:

* ``read``    reading the raw rows out of DuckDB only (the floor every Python path pays);
* ``plain``   a straightforward per-row loop: ``strip().lower()`` + ``hashlib`` (and
              ``phonenumbers`` parse/validate/format for phones);
* ``sdk``     facebook-business' own helper, ``Normalize.normalize_field``, per value;
* ``ours``    ``exporters.hashing.hash_rows`` (what runs use for phones) over ``fetchmany`` rows;
* ``sql``     ``sql_hashed_expression`` inside DuckDB (all cores), rows streamed out with
              ``fetchmany``; phones (no exact SQL) hashed in Python with ``hash_rows``;
* ``blocks``  DuckDB hashes and builds each member's CSV line
              (``exporters.csv_lines.hashed_lines_select``), read as whole Arrow blocks
              (``exporters.line_blocks``), checked whole and written with
              ``DropWriter.write_parts_blocks`` (workloads without phones only): what
              ``exporters.hashed_lines.hashed_line_blocks`` does without the native encoder;
* ``native``  ``hashed_line_blocks`` with it: DuckDB only reads the raw columns, the native
              encoder (``exporters.hashing.native``) normalises, hashes (OpenSSL SHA-256),
              counts and joins the lines, and
              ``write_parts_blocks`` writes them (no guard pass: see ``EncodedBlock``).

``ours``, ``sql``, ``blocks`` and ``native`` must write byte-identical parts (checked).
Each path runs in its own process, so its peak RSS (``VmHWM``) is its own. CPU seconds include
DuckDB's threads and the compressor threads, which matters when other jobs share the machine:
members per CPU second is then the steadier number.

A second table times the writer alone on pre-hashed rows: ``DropWriter`` (ISA-L blocks in a
thread pool) against the standard-library way it used to work (``csv.writer`` into
``gzip.GzipFile``), checking both hold the same CSV text, plus raw deflate speed of zlib and
ISA-L (``isal``) at level 1. A third compares the cost of one SHA-256 (hex) of a short
string: Python's OpenSSL-backed ``hashlib`` in a loop against DuckDB's ``sha256`` on one
thread.

    .venv/bin/python bench/bench_hashing.py                       # 1M members, both workloads
    .venv/bin/python bench/bench_hashing.py --sizes 1000000,10000000 --workloads email+maid
    .venv/bin/python bench/bench_hashing.py --quick
    .venv/bin/python bench/bench_hashing.py --repeat 3          # best of 3 (paths take turns)
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import itertools
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
import structlog  # noqa: E402
from isal import isal_zlib  # noqa: E402
from sqlglot import exp  # noqa: E402

from exporters.drop_writer import DropWriter  # noqa: E402
from exporters.hashed_lines import hashed_line_blocks  # noqa: E402
from exporters.hashing import (  # noqa: E402
    HashStats,
    encoded_shape,
    hash_rows,
    native,
    sql_hashed_expression,
)
from exporters.line_blocks import LineBlock  # noqa: E402
from exporters.objectstore import FileStore  # noqa: E402

PATHS = ("read", "plain", "sdk", "ours", "sql", "blocks", "native")
IDENTICAL = ("ours", "sql", "blocks", "native")
WORKLOADS = ("email+maid", "email+phone")
Row = tuple[str | None, ...]

# --- synthetic members (generated inside DuckDB: no Python memory, deterministic) ---------

_GENERATE = r"""
CREATE OR REPLACE TABLE members AS
WITH base AS (
    SELECT i, hash(i) AS h FROM range({n}) AS t(i)
), parts AS (
    SELECT
        i, h,
        ['anna','ben','chloe','david','eva','farid','greta','hugo','ines','jonas',
         'kofi','lea','mateo','nora','oscar','priya'][1 + (h % 16)::INT] AS fn,
        ['smith','mueller','dubois','rossi','garcia','nowak','jones','martin',
         'schmidt','bernard'][1 + ((h >> 4) % 10)::INT] AS ln,
        CASE WHEN (h >> 8) % 10 < 3 THEN 'gmail.com'
             ELSE ['example.org','yahoo.com','outlook.com','web.de','orange.fr',
                   'company.co.uk','mail.com'][1 + ((h >> 12) % 7)::INT] END AS domain,
        ['US','GB','DE','FR'][1 + ((h >> 16) % 4)::INT] AS country,
        lpad(((h >> 20) % 10000000)::VARCHAR, 7, '0') AS n7,
        md5(i::VARCHAR) AS m
    FROM base
), addr AS (
    SELECT *, fn || '.' || ln || (i % 100000)::VARCHAR || '@' || domain AS a FROM parts
)
SELECT
    i,
    CASE
        WHEN (h >> 28) % 100 < 2 THEN NULL
        WHEN (h >> 28) % 100 = 2 THEN replace(a, '@', ' at ')
        ELSE
            CASE (h >> 36) % 10 WHEN 0 THEN '  ' WHEN 1 THEN chr(9) ELSE '' END
            || CASE (h >> 40) % 4
                   WHEN 0 THEN upper(a)
                   WHEN 1 THEN upper(a[1]) || a[2:]
                   ELSE a END
            || CASE (h >> 44) % 10 WHEN 0 THEN ' ' WHEN 1 THEN chr(10) ELSE '' END
    END AS email,
    CASE
        WHEN (h >> 48) % 10 < 2 THEN NULL
        WHEN (h >> 48) % 100 = 99 THEN '555-01' || n7[1:2]
        WHEN (h >> 52) % 10 < 4 THEN
            CASE country
                WHEN 'US' THEN '+1 415 5' || n7[1:2] || ' ' || n7[3:6]
                WHEN 'GB' THEN '+44 7400 ' || n7[1:3] || ' ' || n7[4:6]
                WHEN 'DE' THEN '+49 151 ' || n7 || '1'
                ELSE '+33 6 1' || n7 END
        ELSE
            CASE country
                WHEN 'US' THEN '(415) 5' || n7[1:2] || '-' || n7[3:6]
                WHEN 'GB' THEN '07400 ' || n7[1:6]
                WHEN 'DE' THEN '0151 ' || n7 || '1'
                ELSE '06 1' || n7[1:1] || ' ' || n7[2:] END
    END AS phone,
    country,
    CASE
        WHEN (h >> 56) % 10 < 3 THEN NULL
        WHEN (h >> 60) % 2 = 0 THEN upper(
            m[1:8] || '-' || m[9:12] || '-' || m[13:16] || '-' || m[17:20] || '-' || m[21:32])
        ELSE m[1:8] || '-' || m[9:12] || '-' || m[13:16] || '-' || m[17:20] || '-' || m[21:32]
    END AS maid
FROM addr
ORDER BY i
"""


def generate(db_path: Path, n: int) -> float:
    """Create the members table in ``db_path``; returns the seconds it took."""
    started = time.perf_counter()
    with duckdb.connect(str(db_path)) as connection:
        connection.execute(_GENERATE.format(n=n))
    return time.perf_counter() - started


# --- row sources: one per path, each yields one tuple of encoded values per member ----------


def raw_chunks(connection: duckdb.DuckDBPyConnection, kinds: list[str], chunk_rows: int) -> Iterator[list[tuple]]:
    columns = ", ".join([*kinds, "country"])
    cursor = connection.execute(f"SELECT {columns} FROM members")
    while rows := cursor.fetchmany(chunk_rows):
        yield rows


def rows_ours(connection, kinds, fmt, chunk_rows, stats) -> Iterator[Row]:
    rows = itertools.chain.from_iterable(raw_chunks(connection, kinds, chunk_rows))
    return hash_rows(fmt, kinds, rows, stats, chunk_rows)


def _sql_select(kinds: list[str], fmt: str) -> tuple[str, list[int]]:
    """SELECT list: hashed SQL for SQL-capable kinds, the raw value for the rest (+ country)."""
    items: list[str] = []
    python_kinds: list[int] = []
    for position, kind in enumerate(kinds):
        expression = sql_hashed_expression(kind, exp.column(kind), fmt, "duckdb")
        if expression is None:
            python_kinds.append(position)
            items.append(kind)
        else:
            items.append(expression.sql("duckdb"))
    if python_kinds:
        items.append("country")
    return ", ".join(items), python_kinds


def rows_sql(connection, kinds, fmt, chunk_rows, stats) -> Iterator[Row]:
    select, python_kinds = _sql_select(kinds, fmt)
    cursor = connection.execute(f"SELECT {select} FROM members")
    chunks = iter(lambda: cursor.fetchmany(chunk_rows), [])
    if not python_kinds:
        return itertools.chain.from_iterable(chunks)
    return itertools.chain.from_iterable(_hash_remaining(chunk, kinds, python_kinds, fmt) for chunk in chunks)


def line_blocks(connection, kinds, fmt, use_native: bool, stats: HashStats) -> Iterator[LineBlock]:
    """Blocks of hashed CSV lines, read from Arrow without a row object (the two ways; only the
    native one counts)."""
    blocks = hashed_line_blocks(
        connection.sql, exp.table_("members"), kinds, fmt, "duckdb", use_native=use_native,
        stats=stats if use_native else None,
    )
    if blocks is None:
        raise SystemExit("blocks/native need every identifier type to be SQL-capable (no phones)")
    return blocks


def _hash_remaining(rows: list[tuple], kinds: list[str], positions: list[int], fmt: str) -> list[Row]:
    columns = [list(column) for column in zip(*rows, strict=True)]
    countries = columns.pop()
    for position in positions:
        pairs = list(zip(columns[position], countries, strict=True))
        columns[position] = [row[0] for row in hash_rows(fmt, [kinds[position]], pairs)]
    return list(zip(*columns, strict=True))


def _plain_functions(kinds: list[str]) -> list[Callable]:
    import phonenumbers

    sha256 = hashlib.sha256

    def text(value, country):
        return sha256(value.strip().lower().encode()).hexdigest() if value else None

    def phone(value, country):
        if not value:
            return None
        try:
            number = phonenumbers.parse(value, country)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(number):
            return None
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return sha256(e164.encode()).hexdigest()

    return [phone if kind == "phone" else text for kind in kinds]


def rows_plain(connection, kinds, fmt, chunk_rows, stats) -> Iterator[Row]:
    functions = _plain_functions(kinds)
    for rows in raw_chunks(connection, kinds, chunk_rows):
        for row in rows:
            country = row[-1]
            hashed = tuple(f(v, country) for f, v in zip(functions, row, strict=False))
            if any(hashed):  # a member without any identifier is not exported
                yield hashed


def _sdk_functions(kinds: list[str]) -> list[Callable]:
    from facebook_business.adobjects.serverside.normalize import Normalize

    field = {"email": "em", "phone": "ph", "maid": "madid"}

    def make(name: str) -> Callable:
        def normalize(value):
            if not value:
                return None
            try:
                return Normalize.normalize_field(name, value)
            except (TypeError, ValueError):
                return None

        return normalize

    return [make(field[kind]) for kind in kinds]


def rows_sdk(connection, kinds, fmt, chunk_rows, stats) -> Iterator[Row]:
    functions = _sdk_functions(kinds)
    for rows in raw_chunks(connection, kinds, chunk_rows):
        for row in rows:
            hashed = tuple(f(v) for f, v in zip(functions, row, strict=False))
            if any(hashed):
                yield hashed


SOURCES = {"plain": rows_plain, "sdk": rows_sdk, "ours": rows_ours, "sql": rows_sql}


def with_identifier(rows: Iterable[Row]) -> Iterator[Row]:
    """Members left with no identifier are counted, not written (DropWriter refuses them)."""
    return filter(any, rows)


# --- workers: one path, one process ---------------------------------------------------------


def peak_rss_kib() -> int:
    """This process's peak resident set size in KiB.

    ``VmHWM`` rather than ``ru_maxrss``: Linux carries ``ru_maxrss`` across ``execve``, so a
    worker would report the parent's peak (the data generator) instead of its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def cpu_seconds() -> float:
    """CPU time of this process (all threads)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def run_worker(args: argparse.Namespace) -> dict:
    kinds = args.kinds.split(",")
    connection = duckdb.connect(args.db, read_only=True)
    # Bound DuckDB's buffer pool: otherwise it caches the whole table and the peak RSS
    # measures the cache, not the export's streaming.
    connection.execute(f"SET memory_limit = '{args.duckdb_memory}'")
    started, cpu_started = time.perf_counter(), cpu_seconds()
    stats = HashStats(kinds=tuple(kinds))
    rows_read = 0
    if args.worker == "read":
        rows_read = sum(len(rows) for rows in raw_chunks(connection, kinds, args.chunk_rows))
        parts: list = []
    else:
        out = Path(args.out)
        shutil.rmtree(out, ignore_errors=True)
        (out / "tmp").mkdir(parents=True)
        writer = DropWriter(
            FileStore(out / "drop"), "bench", args.worker, kinds, rows_per_part=args.rows_per_part, tmp_dir=out / "tmp"
        )
        if args.worker in ("blocks", "native"):
            shapes = [encoded_shape(kind, args.format) for kind in kinds]
            blocks = line_blocks(connection, kinds, args.format, args.worker == "native", stats)
            parts = writer.write_parts_blocks("members", blocks, shapes)
        else:
            source = SOURCES[args.worker](connection, kinds, args.format, args.chunk_rows, stats)
            parts = writer.write_parts("members", with_identifier(source))
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    return {
        "written": sum(part.rows for part in parts) if parts else rows_read,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mib": peak_rss_kib() / 1024,
        "parts_sha256": [part.sha256 for part in parts],
        "bytes": sum(part.bytes for part in parts),
        "stats": stats.as_dict() if args.worker in ("ours", "native") else {},
    }


# --- the writer alone: DropWriter vs csv.writer + gzip.GzipFile, and raw deflate speed -------


def reference_write(path: Path, columns: list[str], rows: list[Row]) -> None:
    """What DropWriter did before: csv.writer rows into one gzip.GzipFile (mtime 0, level 1)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as out:
        for start in range(0, len(rows), 4096):
            writer.writerows(["" if v is None else v for v in row] for row in rows[start : start + 4096])
            out.write(text.getvalue().encode())
            text.seek(0)
            text.truncate()


def run_writer_worker(args: argparse.Namespace) -> dict:
    n = args.writer_rows
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
    rows: list[Row] = [(digests[i], None if i % 3 == 0 else digests[n - 1 - i]) for i in range(n)]
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    (out / "tmp").mkdir(parents=True)
    writer = DropWriter(
        FileStore(out / "drop"), "bench", "writer", ["email", "maid"], rows_per_part=n, tmp_dir=out / "tmp"
    )
    started = time.perf_counter()
    part = writer.write_part("members", 0, rows)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    reference_write(out / "reference.csv.gz", ["email", "maid"], rows)
    stdlib = time.perf_counter() - started
    text = gzip.decompress((out / "reference.csv.gz").read_bytes())
    result = {
        "rows": n,
        "dropwriter_s": ours,
        "stdlib_s": stdlib,
        "identical": gzip.decompress((out / "drop" / part.key).read_bytes()) == text,
        "bytes": {"DropWriter": part.bytes, "stdlib": (out / "reference.csv.gz").stat().st_size},
        "csv_mb": len(text) / 1e6,
        "deflate": {"zlib-1": _deflate_seconds(zlib, text), "isal-1": _deflate_seconds(isal_zlib, text)},
        "sha256_per_million": _sha256_seconds(digests),
    }
    shutil.rmtree(out, ignore_errors=True)
    return result


def _deflate_seconds(module, data: bytes) -> tuple[float, int]:
    started = time.perf_counter()
    compressor = module.compressobj(1, module.DEFLATED, -15)
    size = sum(len(compressor.compress(data[i : i + (1 << 21)])) for i in range(0, len(data), 1 << 21))
    size += len(compressor.flush())
    return time.perf_counter() - started, size


def _sha256_seconds(values: list[str]) -> dict[str, float]:
    """Seconds per million SHA-256 hex digests of the same short strings (emails' length)."""
    strings = [f"{value[:12]}@{value[12:20]}.com" for value in values]
    sha256 = hashlib.sha256
    started = time.perf_counter()
    in_python = [sha256(s.encode()).hexdigest() for s in strings]
    python_s = time.perf_counter() - started
    with duckdb.connect() as connection:
        connection.execute("SET threads = 1")
        connection.execute("CREATE TABLE s AS SELECT unnest(?) AS x", [strings])
        started = time.perf_counter()
        (largest,) = connection.execute("SELECT max(sha256(x)) FROM s").fetchone()
        duckdb_s = time.perf_counter() - started
    if largest != max(in_python):
        raise SystemExit("DuckDB and hashlib disagree on SHA-256 (bug!)")
    scale = 1e6 / len(strings)
    return {"hashlib loop": python_s * scale, "DuckDB sha256, 1 thread": duckdb_s * scale}


# --- orchestration ---------------------------------------------------------------------------


def run_path(path: str, db: Path, size: int, kinds: str, args: argparse.Namespace) -> dict:
    out = Path(args.workdir) / f"out-{path}-{kinds.replace(',', '_')}-{size}"
    command = [sys.executable, __file__, "--worker", path, "--db", str(db), "--kinds", kinds, "--out", str(out)]
    command += ["--format", args.format, "--chunk-rows", str(args.chunk_rows), "--duckdb-memory", args.duckdb_memory]
    command += ["--rows-per-part", str(args.rows_per_part), "--writer-rows", str(args.writer_rows)]
    command += ["--keep"] if args.keep else []
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def best_of_each(paths: list[str], db: Path, size: int, kinds: str, args: argparse.Namespace) -> dict[str, dict]:
    """The fastest of ``--repeat`` runs per path, the paths taking turns (round after round), so
    that a quiet or busy moment of a shared machine falls on every path alike; other jobs only
    ever slow a run down, hence the fastest."""
    runs: dict[str, list[dict]] = {path: [] for path in paths}
    for _ in range(max(args.repeat, 1)):
        for path in paths:
            runs[path].append(run_path(path, db, size, kinds, args))
    return {path: _fastest(path_runs) for path, path_runs in runs.items()}


def _fastest(runs: list[dict]) -> dict:
    timed = [r for r in runs if "seconds" in r]
    return min(timed, key=lambda r: r["seconds"]) if timed else runs[0]


def report(size: int, workload: str, results: dict[str, dict]) -> None:
    print(f"\n== {size:,} members, identifiers {workload}: normalize + hash + DropWriter parts in a folder ==")
    # Every path reads all ``size`` members (those without any identifier are not written).
    rate = {p: size / r["seconds"] for p, r in results.items() if "seconds" in r}
    per_cpu = {p: size / r["cpu_seconds"] for p, r in results.items() if "seconds" in r}
    base_plain, base_sdk = rate.get("plain"), rate.get("sdk")
    header = f"{'path':8} {'members/s':>11} {'x plain':>8} {'x sdk':>7} {'members/cpu-s':>14} {'peak MiB':>9}"
    print(f"{header} {'MB out':>7} {'rows out':>10}")
    for path, result in results.items():
        if "error" in result:
            print(f"{path:8} failed: {result['error']}")
            continue
        r = rate[path]
        vs_plain = f"{r / base_plain:8.2f}" if base_plain else f"{'-':>8}"
        vs_sdk = f"{r / base_sdk:7.2f}" if base_sdk else f"{'-':>7}"
        print(
            f"{path:8} {r:11,.0f} {vs_plain} {vs_sdk} {per_cpu[path]:14,.0f} "
            f"{result['peak_rss_mib']:9.0f} {result['bytes'] / 1e6:7.1f} {result['written']:10,}"
        )
    compared = [p for p in IDENTICAL if "seconds" in results.get(p, {})]
    digests = {tuple(results[p]["parts_sha256"]) for p in compared}
    if len(compared) > 1:
        print(f"{'/'.join(compared)} parts: {'identical' if len(digests) == 1 else 'DIFFERENT (bug!)'}")
    elif compared:
        print(f"{compared[0]} parts: not compared (no other path that must match them ran)")
    counted = {path: json.dumps(results[path]["stats"]) for path in IDENTICAL if results.get(path, {}).get("stats")}
    if len(set(counted.values())) == 1:
        print(f"drop counts ({'/'.join(counted)}): {next(iter(counted.values()))}")
    else:
        for path, counts in counted.items():
            print(f"drop counts ({path}, DIFFERENT: bug!): {counts}")


def report_writer(result: dict) -> None:
    print(f"\n== writer alone: {result['rows']:,} pre-hashed rows (email,maid), {result['csv_mb']:.0f} MB of CSV ==")
    ours, stdlib = result["dropwriter_s"], result["stdlib_s"]
    sizes, rows = result["bytes"], result["rows"]
    print(f"DropWriter (ISA-L blocks, thread pool)       {rows / ours:12,.0f} rows/s  {sizes['DropWriter']:,} B")
    print(f"csv.writer + gzip.GzipFile (previous writer) {rows / stdlib:12,.0f} rows/s  {sizes['stdlib']:,} B")
    speedup = f"DropWriter is x{stdlib / ours:.2f}"
    print(f"{speedup}; same CSV text: {'yes' if result['identical'] else 'NO (bug!)'}")
    for name, (seconds, size) in result["deflate"].items():
        print(f"deflate {name:7} {result['csv_mb'] / seconds:7.0f} MB/s in, {size / 1e6:6.1f} MB out")
    print("one SHA-256 hex digest of an email-sized string, per million:")
    for name, seconds in result["sha256_per_million"].items():
        print(f"  {name:24} {seconds:6.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000", help="comma-separated member counts")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (20,000)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--format", default="sha256", help="hashing format (sha256 = SDK's)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per path; the fastest is reported")
    parser.add_argument("--chunk-rows", type=int, default=16384)
    parser.add_argument("--rows-per-part", type=int, default=1_000_000)
    parser.add_argument("--writer-rows", type=int, default=1_000_000, help="rows for the writer-alone table (0: skip)")
    parser.add_argument("--workdir", default=str(ROOT / "bench" / ".data"))
    parser.add_argument("--keep", action="store_true", help="keep the database and the output folders")
    parser.add_argument("--duckdb-memory", default="64MB", help="DuckDB memory_limit in workers")
    parser.add_argument("--worker", choices=[*PATHS, "writer"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--kinds", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        result = run_writer_worker(args) if args.worker == "writer" else run_worker(args)
        print(json.dumps(result))
        return
    sizes = [20_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    if args.quick:
        args.writer_rows = min(args.writer_rows, 20_000)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    print(
        f"cpus={os.cpu_count()} format={args.format} chunk_rows={args.chunk_rows} repeat={args.repeat} load={load:.1f}"
    )
    for size in sizes:
        db = Path(args.workdir) / f"members-{size}.duckdb"
        db.unlink(missing_ok=True)
        print(f"\ngenerating {size:,} members ... {generate(db, size):.1f} s")
        for workload in args.workloads.split(","):
            kinds = workload.replace("+", ",")
            paths = [p for p in args.paths.split(",") if not (p in ("blocks", "native") and "phone" in kinds)]
            if "native" in paths and not native.AVAILABLE:
                print("native encoder not built here: skipping the native path")
                paths.remove("native")
            results = best_of_each(paths, db, size, kinds, args)
            report(size, workload, results)
        if not args.keep:
            db.unlink(missing_ok=True)
    if args.writer_rows:
        result = run_path("writer", Path(), args.writer_rows, "email,maid", args)
        if "error" in result:
            print(f"\nwriter alone: failed: {result['error']}")
        else:
            report_writer(result)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (other jobs on the machine slow every path)")


if __name__ == "__main__":
    main()
