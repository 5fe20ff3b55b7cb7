"""``proto_gen`` in a source tree: ``python -m proto_gen`` generates, importing only checks.

Each test runs a copy of the generator in its own throw-away source tree (``pyproject.toml``,
``proto/``, ``proto_gen/__init__.py``), so the checkout's own modules are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

PROTO = 'syntax = "proto3";\npackage ping.v1;\nmessage Ping {\n  string text = 1;\n}\n'


def make_tree(root: Path) -> Path:
    (root / "proto" / "ping" / "v1").mkdir(parents=True)
    (root / "proto" / "ping" / "v1" / "ping.proto").write_text(PROTO)
    (root / "pyproject.toml").write_text("[project]\nname = 'probe'\nversion = '0'\n")
    (root / "proto_gen").mkdir()
    for name in ("__init__.py", "__main__.py"):
        shutil.copy(REPO_ROOT / "proto_gen" / name, root / "proto_gen" / name)
    return root


def python(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tree, env=env,
                          timeout=120, check=False)


CHECK = (
    "import proto_gen; proto_gen.ensure_generated()\n"
    "from proto_gen.ping.v1 import ping_pb2\n"
    "print(ping_pb2.Ping(text='x').text)\n"
)


def test_importing_never_generates_and_says_what_to_run(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)

    checked = python(tree, "-c", CHECK)

    assert checked.returncode == 1
    assert checked.stderr.splitlines()[-1] == (
        f"proto_gen.ProtoGenError: the generated protobuf modules are missing from {tree / 'proto_gen'}: "
        "run `python -m proto_gen` in the checkout"
    )
    assert not (tree / "proto_gen" / "ping").exists()


def test_python_m_proto_gen_generates_then_the_check_passes(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)

    first = python(tree, "-m", "proto_gen")
    second = python(tree, "-m", "proto_gen")
    checked = python(tree, "-c", CHECK)

    assert (first.returncode, first.stdout) == (0, f"proto_gen: generated in {tree / 'proto_gen'}\n")
    assert (second.returncode, second.stdout) == (0, f"proto_gen: up to date in {tree / 'proto_gen'}\n")
    assert (checked.returncode, checked.stdout) == (0, "x\n")


def test_a_proto_changed_after_generation_is_reported_stale(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    assert python(tree, "-m", "proto_gen").returncode == 0
    proto = tree / "proto" / "ping" / "v1" / "ping.proto"
    proto.write_text(PROTO.replace("string text = 1;", "string text = 1;\n  int64 count = 2;"))

    checked = python(tree, "-c", CHECK)

    assert checked.returncode == 1
    assert checked.stderr.splitlines()[-1] == (
        f"proto_gen.ProtoGenError: the generated protobuf modules in {tree / 'proto_gen'} are out of date "
        f"with {tree / 'proto'}: run `python -m proto_gen` in the checkout"
    )


def test_a_deleted_generated_module_is_reported_missing(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    assert python(tree, "-m", "proto_gen").returncode == 0
    (tree / "proto_gen" / "ping" / "v1" / "ping_pb2_grpc.py").unlink()

    checked = python(tree, "-c", CHECK)

    assert checked.returncode == 1
    assert "the generated protobuf modules are missing from" in checked.stderr.splitlines()[-1]
