"""A real Spark Connect server for the tests, started from the pyspark package on loopback.

Started once per test session (it takes seconds), local[2] with a 1 GiB driver to share the
machine, its warehouse and Derby metastore in a temporary folder, stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Spark Connect server exited: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError("Spark Connect server did not start in time")


@pytest.fixture(scope="session")
def spark_url() -> Iterator[str]:
    import pyspark

    home = os.path.dirname(pyspark.__file__)
    work = Path(tempfile.mkdtemp(prefix="spark-test-"))
    port = _free_port()
    log = work / "server.log"
    confs = {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.ui.enabled": "false",
        "spark.sql.warehouse.dir": str(work / "warehouse"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={work}",
        "spark.sql.session.timeZone": "UTC",
    }
    cmd = [f"{home}/bin/spark-submit", "--class", SERVER_CLASS, "--master", "local[2]", "--driver-memory", "1g"]
    for key, value in confs.items():
        cmd += ["--conf", f"{key}={value}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "SPARK_HOME": home},
                                start_new_session=True)
    try:
        _wait_for(port, proc, log)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group, by its PID
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
