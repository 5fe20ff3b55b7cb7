"""Reusable helpers for tests that talk to the sandbox ingest receiver.

- :func:`running_sandbox`: an in-process sandbox on a free loopback port, stopped afterwards.
- :func:`sandbox_process`: the sandbox as a separate process (``kill -9`` tests).
- :func:`self_signed_cert`: a throw-away certificate for 127.0.0.1/localhost (openssl CLI;
  the ``cryptography`` package is not a dependency of the project).
- :class:`FakeSleep`: a ``sleep`` to inject into the client, recording the requested waits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from exporters.grpc_ingest.faults import FaultPlan
from exporters.grpc_ingest.sandbox import Sandbox, create_sandbox
from exporters.grpc_ingest.tls import TlsFiles

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


@dataclass
class FakeSleep:
    """Records the waits the client asks for instead of sleeping."""

    calls: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def target_of(port: int) -> str:
    return f"{LOOPBACK}:{port}"


@contextmanager
def running_sandbox(
    db_path: Path,
    *,
    token: str | None = None,
    tls: TlsFiles | None = None,
    faults: FaultPlan | None = None,
) -> Iterator[Sandbox]:
    """A started sandbox on a free loopback port; ``sandbox.port`` tells which."""
    sandbox = create_sandbox(0, db_path, token=token, tls=tls, faults=faults, host=LOOPBACK)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop(grace_s=0.5)


def self_signed_cert(
    directory: Path, hosts: Sequence[str] = ("localhost", LOOPBACK)
) -> tuple[TlsFiles, bytes]:
    """A self-signed EC certificate valid for *hosts*; returns the files and the PEM to trust."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "sandbox-cert.pem", directory / "sandbox-key.pem"
    san = ",".join(
        f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts
    )
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "2",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=audience dsp sandbox", "-addext", f"subjectAltName={san}",
        ],
        check=True,
        capture_output=True,
    )
    return TlsFiles(cert=cert, key=key), cert.read_bytes()


@dataclass
class SandboxProcess:
    process: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)  # its standard output, read so far

    def kill9(self) -> None:
        """SIGKILL: no shutdown hook runs, as in a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


@contextmanager
def sandbox_process(
    db_path: Path, *, token: str | None = None, extra_args: Sequence[str] = ()
) -> Iterator[SandboxProcess]:
    """``python -m exporters.grpc_ingest.sandbox --port 0`` in a child process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["SANDBOX_TEST_TOKEN"] = token or ""
    cmd = [
        sys.executable, "-m", "exporters.grpc_ingest.sandbox", "--port", "0",
        "--host", LOOPBACK, "--db", str(db_path), "--token-env", "SANDBOX_TEST_TOKEN",
        *extra_args,
    ]
    process = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        sandbox = SandboxProcess(process, 0)
        sandbox.port = _read_port(process, sandbox.lines)
        # Keep reading its output (one log line per call) so a full pipe never blocks it.
        threading.Thread(target=_drain, args=(process, sandbox.lines), daemon=True).start()
        yield sandbox
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def _read_port(process: subprocess.Popen[str], lines: list[str]) -> int:
    """The port from the ``dsp-sandbox listening on HOST:PORT`` line (log lines may precede)."""
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if line.startswith("dsp-sandbox listening on "):
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"sandbox process exited ({process.wait()}) before listening")


def _drain(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
    process.stdout.close()
