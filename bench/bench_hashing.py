"""Benchmark: normalize + hash + write (gzip CSV) for N synthetic members, several ways.

Paths compared in the same run, on the same rows (a DuckDB table generated here):

* ``read``   reading the raw rows out of DuckDB only (the floor every Python path pays);
* ``ours``   ``exporters.hashing.hash_row_chunks`` on streamed chunks, then csv.writer;
* ``oursfast`` the same hashing, CSV lines joined directly (encoded values need no quoting);
* ``sql``    ``sql_hashed_expression`` inside DuckDB (all cores), rows streamed out with
             ``fetchmany``; phones (no exact SQL) hashed in Python with ``hash_rows``;
* ``sqlcsv`` like ``sql`` but DuckDB also builds the CSV line (workloads without phones);
* ``plain``  a straightforward per-row loop with hashlib (and phonenumbers for phones);
* ``sdk``    facebook-business' own helper, ``Normalize.normalize_field`` (serverside).

Every path writes the same kind of file: a gzip CSV (``compresslevel`` 1 by default) made of
one gzip member per chunk, compressed by a small thread pool (zlib releases the GIL, so
compression overlaps hashing) and written under a temporary name, renamed at the end.
``ours``, ``oursfast``, ``sql`` and ``sqlcsv`` must produce byte-identical files (checked).

Each path runs in its own process so its peak RSS (``ru_maxrss``) is its own; rows stream in
chunks, so the peak must not grow with N.

    .venv/bin/python bench/bench_hashing.py                       # 1M members, both workloads
    .venv/bin/python bench/bench_hashing.py --sizes 1000000,10000000 --workloads email+maid
    .venv/bin/python bench/bench_hashing.py --quick
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
from sqlglot import exp  # noqa: E402

from exporters.hashing import HashStats, hash_row_chunks, hash_rows, sql_hashed_expression  # noqa: E402

PATHS = ("read", "ours", "oursfast", "sql", "sqlcsv", "plain", "sdk")
WORKLOADS = ("email+maid", "email+phone")
CSV_LINE_END = "\n"

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


# --- output: gzip CSV, one member per chunk, compressed off the GIL ------------------------


class ChunkedGzipWriter:
    """Writes byte chunks as consecutive gzip members (a valid gzip file), in order.

    Compression runs in a thread pool (zlib releases the GIL) with a bounded number of
    chunks in flight, so memory stays flat and compression overlaps the hashing thread.
    The gzip header has mtime 0: the same rows give the same bytes.
    """

    def __init__(self, path: Path, compresslevel: int, threads: int = 2) -> None:
        self._final = path
        self._temp = path.with_name(path.name + ".part")
        self._file = open(self._temp, "wb")  # noqa: SIM115 - closed in close()
        self._level = compresslevel
        self._pool = ThreadPoolExecutor(max_workers=threads)
        self._pending: list[Future[bytes]] = []
        self._max_pending = threads * 2
        self.bytes_written = 0
        self._digest = hashlib.sha256()

    def _compress(self, data: bytes) -> bytes:
        compressor = zlib.compressobj(self._level, zlib.DEFLATED, 31)
        return compressor.compress(data) + compressor.flush()

    def write(self, data: bytes) -> None:
        self._pending.append(self._pool.submit(self._compress, data))
        while len(self._pending) > self._max_pending:
            self._drain_one()

    def _drain_one(self) -> None:
        block = self._pending.pop(0).result()
        self._file.write(block)
        self._digest.update(block)
        self.bytes_written += len(block)

    def close(self) -> str:
        while self._pending:
            self._drain_one()
        self._pool.shutdown()
        self._file.close()
        os.replace(self._temp, self._final)
        return self._digest.hexdigest()


def csv_bytes(rows: list, header: list[str] | None = None) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=CSV_LINE_END)
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


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


def raw_chunks(connection: duckdb.DuckDBPyConnection, kinds: list[str], chunk_rows: int) -> Iterator[list[tuple]]:
    columns = ", ".join([*kinds, "country"])
    cursor = connection.execute(f"SELECT {columns} FROM members")
    while rows := cursor.fetchmany(chunk_rows):
        yield rows


def run_read(connection, kinds, fmt, chunk_rows, writer) -> tuple[int, dict]:
    count = 0
    for rows in raw_chunks(connection, kinds, chunk_rows):
        count += len(rows)
    return count, {}


def run_ours(connection, kinds, fmt, chunk_rows, writer) -> tuple[int, dict]:
    stats = HashStats(kinds=tuple(kinds))
    count = 0
    header: list[str] | None = kinds
    for hashed in hash_row_chunks(fmt, kinds, raw_chunks(connection, kinds, chunk_rows), stats):
        writer.write(csv_bytes(hashed, header))
        header = None
        count += len(hashed)
    return count, stats.as_dict()


def csv_bytes_joined(rows: list[tuple]) -> bytes:
    """The same bytes csv.writer writes for rows of encoded values, without its per-field work.

    Valid only because encoded values (hex, base64, lowercase UUIDs) never need quoting.
    """
    if not rows:
        return b""
    columns = [[value or "" for value in column] for column in zip(*rows, strict=True)]
    return ("\n".join(map(",".join, zip(*columns, strict=True))) + "\n").encode()


def run_oursfast(connection, kinds, fmt, chunk_rows, writer) -> tuple[int, dict]:
    stats = HashStats(kinds=tuple(kinds))
    header = (",".join(kinds) + CSV_LINE_END).encode()
    count = 0
    for hashed in hash_row_chunks(fmt, kinds, raw_chunks(connection, kinds, chunk_rows), stats):
        writer.write(header + csv_bytes_joined(hashed))
        header = b""
        count += len(hashed)
    return count, stats.as_dict()


def _sql_select(kinds: list[str], fmt: str) -> tuple[str, list[int]]:
    """SELECT list: hashed SQL for SQL-capable kinds, raw value + country for the rest."""
    items: list[str] = []
    python_kinds: list[int] = []
    for position, kind in enumerate(kinds):
        expression = sql_hashed_expression(kind, exp.column(kind), fmt, "duckdb")
        if expression is None:
            python_kinds.append(position)
            items.append(kind)
        else:
            items.append(expression.sql("duckdb"))
    return ", ".join([*items, "country"]), python_kinds


def run_sql(connection, kinds, fmt, chunk_rows, writer) -> tuple[int, dict]:
    select, python_kinds = _sql_select(kinds, fmt)
    cursor = connection.execute(f"SELECT {select} FROM members")
    count = 0
    header: list[str] | None = kinds
    while rows := cursor.fetchmany(chunk_rows):
        if python_kinds:
            rows = _hash_remaining(rows, kinds, python_kinds, fmt, chunk_rows)
        else:
            rows = [row[:-1] for row in rows]
        writer.write(csv_bytes(rows, header))
        header = None
        count += len(rows)
    return count, {}


def _hash_remaining(
    rows: list[tuple], kinds: list[str], positions: list[int], fmt: str, chunk_rows: int
) -> list[tuple]:
    columns = [list(column) for column in zip(*rows, strict=True)]
    countries = columns[-1]
    for position in positions:
        pairs = zip(columns[position], countries, strict=True)
        hashed = hash_rows(fmt, [kinds[position]], pairs, chunk_rows=chunk_rows)
        columns[position] = [row[0] for row in hashed]
    return list(zip(*columns[:-1], strict=True))


def run_sqlcsv(connection, kinds, fmt, chunk_rows, writer) -> tuple[int, dict]:
    select, python_kinds = _sql_select(kinds, fmt)
    if python_kinds:
        raise SystemExit("sqlcsv needs every identifier type to be SQL-capable (no phones)")
    items = [f"coalesce(h{n}, '')" for n in range(len(kinds))]
    aliases = ", ".join(f"h{n}" for n in range(len(kinds)))
    line = " || ',' || ".join(items)
    query = f"SELECT {line} FROM (SELECT {select} FROM members) AS t({aliases}, c)"
    cursor = connection.execute(query)
    count = 0
    prefix = ",".join(kinds) + CSV_LINE_END
    while rows := cursor.fetchmany(chunk_rows):
        text = prefix + CSV_LINE_END.join([row[0] for row in rows]) + CSV_LINE_END
        writer.write(text.encode())
        prefix = ""
        count += len(rows)
    return count, {}


def _plain_functions(kinds: list[str]) -> list[Callable]:
    import phonenumbers

    sha256 = hashlib.sha256

    def email(value, country):
        return sha256(value.strip().lower().encode()).hexdigest() if value else None

    def maid(value, country):
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

    table = {"email": email, "maid": maid, "phone": phone}
    return [table[kind] for kind in kinds]


def run_plain(connection, kinds, fmt, chunk_rows, writer) -> tuple[int, dict]:
    functions = _plain_functions(kinds)
    count = 0
    header: list[str] | None = kinds
    for rows in raw_chunks(connection, kinds, chunk_rows):
        out = []
        for row in rows:
            country = row[-1]
            out.append(tuple(f(v, country) for f, v in zip(functions, row, strict=False)))
        writer.write(csv_bytes(out, header))
        header = None
        count += len(out)
    return count, {}


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


def run_sdk(connection, kinds, fmt, chunk_rows, writer) -> tuple[int, dict]:
    functions = _sdk_functions(kinds)
    count = 0
    header: list[str] | None = kinds
    for rows in raw_chunks(connection, kinds, chunk_rows):
        out = [tuple(f(v) for f, v in zip(functions, row, strict=False)) for row in rows]
        writer.write(csv_bytes(out, header))
        header = None
        count += len(out)
    return count, {}


RUNNERS = {
    "read": run_read,
    "ours": run_ours,
    "oursfast": run_oursfast,
    "sql": run_sql,
    "sqlcsv": run_sqlcsv,
    "plain": run_plain,
    "sdk": run_sdk,
}


def worker(args: argparse.Namespace) -> None:
    kinds = args.kinds.split(",")
    out = Path(args.out)
    connection = duckdb.connect(args.db, read_only=True)
    # Bound DuckDB's buffer pool: otherwise it caches the whole table and the peak RSS
    # measures the cache, not the export's streaming.
    connection.execute(f"SET memory_limit = '{args.duckdb_memory}'")
    writer = ChunkedGzipWriter(out, args.compresslevel) if args.worker != "read" else None
    started = time.perf_counter()
    count, stats = RUNNERS[args.worker](connection, kinds, args.format, args.chunk_rows, writer)
    digest = writer.close() if writer is not None else ""
    seconds = time.perf_counter() - started
    peak_kib = peak_rss_kib()
    print(
        json.dumps(
            {
                "rows": count,
                "seconds": seconds,
                "peak_rss_mib": peak_kib / 1024,
                "file_sha256": digest,
                "file_bytes": writer.bytes_written if writer is not None else 0,
                "stats": stats,
            }
        )
    )


# --- orchestration ---------------------------------------------------------------------------


def run_path(path: str, db: Path, size: int, kinds: str, args: argparse.Namespace) -> dict:
    out = Path(args.workdir) / f"{path}-{kinds.replace(',', '_')}-{size}.csv.gz"
    command = [
        sys.executable,
        __file__,
        "--worker",
        path,
        "--db",
        str(db),
        "--kinds",
        kinds,
        "--format",
        args.format,
        "--chunk-rows",
        str(args.chunk_rows),
        "--compresslevel",
        str(args.compresslevel),
        "--out",
        str(out),
        "--duckdb-memory",
        args.duckdb_memory,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not args.keep and out.exists():
        out.unlink()
    return result


def report(size: int, workload: str, results: dict[str, dict]) -> None:
    print(f"\n== {size:,} members, identifiers {workload}, one gzip CSV ==")
    rate = {p: r["rows"] / r["seconds"] for p, r in results.items() if "rows" in r}
    base_plain, base_sdk = rate.get("plain"), rate.get("sdk")
    print(f"{'path':8} {'members/s':>12} {'x plain':>8} {'x sdk':>7} {'peak MiB':>9} {'MB out':>7}")
    for path, result in results.items():
        if "error" in result:
            print(f"{path:8} skipped: {result['error']}")
            continue
        r = rate[path]
        vs_plain = f"{r / base_plain:8.2f}" if base_plain else f"{'-':>8}"
        vs_sdk = f"{r / base_sdk:7.2f}" if base_sdk else f"{'-':>7}"
        print(
            f"{path:8} {r:12,.0f} {vs_plain} {vs_sdk} {result['peak_rss_mib']:9.0f} {result['file_bytes'] / 1e6:7.1f}"
        )
    digests = {results[p]["file_sha256"] for p in ("ours", "oursfast", "sql", "sqlcsv") if "rows" in results.get(p, {})}
    if digests:
        same = "identical" if len(digests) == 1 else "DIFFERENT (bug!)"
        print(f"ours/oursfast/sql/sqlcsv output files: {same}")
    if results.get("ours", {}).get("stats"):
        print(f"drop counts (ours): {json.dumps(results['ours']['stats'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000", help="comma-separated member counts")
    parser.add_argument("--quick", action="store_true", help="a small smoke run (20,000)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--format", default="sha256", help="hashing format (sha256 = SDK's)")
    parser.add_argument("--chunk-rows", type=int, default=65536)
    parser.add_argument("--compresslevel", type=int, default=1)
    parser.add_argument("--workdir", default=str(ROOT / "bench" / ".data"))
    parser.add_argument("--keep", action="store_true", help="keep the output files")
    parser.add_argument("--duckdb-memory", default="64MB", help="DuckDB memory_limit in workers")
    parser.add_argument("--worker", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--kinds", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    sizes = [20_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    print(f"cpus={os.cpu_count()} format={args.format} compresslevel={args.compresslevel}")
    for size in sizes:
        db = Path(args.workdir) / f"members-{size}.duckdb"
        db.unlink(missing_ok=True)
        print(f"\ngenerating {size:,} members ... {generate(db, size):.1f} s")
        for workload in args.workloads.split(","):
            kinds = workload.replace("+", ",")
            results = {}
            for path in args.paths.split(","):
                if path == "sqlcsv" and "phone" in kinds:
                    continue
                results[path] = run_path(path, db, size, kinds, args)
            report(size, workload, results)
        if not args.keep:
            db.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
