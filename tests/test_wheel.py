"""The product as scheduled jobs run it: built into an sdist, a wheel built from that sdist,
installed into a fresh virtual environment outside the checkout, and run from there.

The fresh environment gets the product only from the wheel (``pip install --no-deps``); its
dependencies come from this test run's environment through a ``.pth`` line naming that
environment's site-packages. A plain path line in a ``.pth`` is not a site directory, so the
``.pth`` files inside it — among them the editable install's hook that maps ``audience`` to the
checkout — are not run: what imports as ``audience`` there is the wheel's copy, which the tests
assert. Building (no build isolation: this environment has the pinned grpcio-tools) and
installing take a few seconds.

Set ``AUDIENCE_SKIP_WHEEL_TEST=1`` to skip locally; ``.ci/run`` clears it.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    os.environ.get("AUDIENCE_SKIP_WHEEL_TEST") == "1", reason="AUDIENCE_SKIP_WHEEL_TEST=1"
)


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def audience(self) -> Path:
        return self.root / "bin" / "audience"

    @property
    def site_packages(self) -> Path:
        return Path(self.run_python("import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())

    def run_python(self, code: str) -> str:
        done = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True,
                              env=_clean_env(), cwd=self.root, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH or venv of this run leaking into the fresh environment's processes."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO_ROOT)))
    return env


def _project_version() -> str:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def _protos() -> list[str]:
    return sorted(p.relative_to(REPO_ROOT / "proto").as_posix() for p in (REPO_ROOT / "proto").rglob("*.proto"))


def _generated_for(protos: list[str]) -> set[str]:
    """protoc's output names, written out by hand: x/v1/y.proto -> x/v1/y_pb2.py, y_pb2_grpc.py."""
    names = set()
    for rel in protos:
        stem = rel.removesuffix(".proto")
        names |= {f"proto_gen/{stem}_pb2.py", f"proto_gen/{stem}_pb2_grpc.py", f"proto_gen/{stem}_pb2.pyi"}
    return names


def _starter_files() -> set[str]:
    root = REPO_ROOT / "audience" / "starter"
    return {
        p.relative_to(REPO_ROOT).as_posix() for p in root.rglob("*") if p.suffix in (".toml", ".aud")
    }


def _native_built_here() -> bool:
    """The editable install of this checkout compiled the encoder: the same machine must for the wheel."""
    return any((REPO_ROOT / "exporters" / "hashing").glob("_native*.so"))


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """``python -m build``: the sdist from the checkout, then the wheel from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO_ROOT)],
        capture_output=True, text=True, timeout=600, check=False, cwd=out,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Dists(sdist=sdist, wheel=wheel)


def _fresh_venv(root: Path, wheel: Path) -> Venv:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    venv = Venv(root)
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (venv.site_packages / "_test_run_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(deps)))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv.python), "install", "--quiet", "--no-deps",
         "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300, check=False, env=_clean_env(),
    )
    assert done.returncode == 0, done.stderr
    return venv


@pytest.fixture(scope="module")
def venv(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    return _fresh_venv(tmp_path_factory.mktemp("wheel-venv") / "venv", dists.wheel)


def _audience(venv: Venv, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv.audience), *args], capture_output=True, text=True, cwd=cwd,
                          env=_clean_env(), timeout=300, check=False)


def test_the_wheel_carries_generated_modules_data_and_the_native_encoder(dists: Dists) -> None:
    names = set(zipfile.ZipFile(dists.wheel).namelist())

    assert _generated_for(_protos()) <= names
    assert _starter_files() <= names
    assert not {n for n in names if n.endswith(".c") or n.startswith(("proto/", "tests/"))}
    natives = {n for n in names if re.fullmatch(r"exporters/hashing/_native\..*\.so", n)}
    assert len(natives) == (1 if _native_built_here() else 0)


def test_the_wheel_requires_neither_lark_nor_grpcio_tools(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as wheel:
        (meta_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(wheel.read(meta_name))
    runtime = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]  # not the dev extra
    requires = {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in runtime}

    assert meta["Version"] == _project_version()
    assert "lark" not in requires
    assert "grpcio-tools" not in requires
    assert {"grpcio", "protobuf", "googleapis-common-protos", "sqlglot", "duckdb"} <= requires


def test_the_sdist_holds_what_the_wheel_is_built_from(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        names = {n.removeprefix(top + "/") for n in sdist.getnames()}

    assert {f"proto/{rel}" for rel in _protos()} <= names
    build_inputs = {"setup.py", "pyproject.toml", "MANIFEST.in", "exporters/hashing/_native.c", "proto_gen/__init__.py"}
    assert build_inputs <= names
    assert _generated_for(_protos()) <= names
    assert _starter_files() <= names
    assert not {n for n in names if n.endswith((".so", ".pyc")) or n.startswith("tests/")}


def test_the_installed_product_is_imported_from_the_fresh_environment(venv: Venv) -> None:
    code = (
        "import importlib.metadata, audience, dsl, consent_filter, exporters, proto_gen\n"
        "from proto_gen.audience.v1 import audience_service_pb2_grpc\n"
        "from proto_gen.ingest.v1 import ingest_pb2\n"
        "for m in (audience, dsl, consent_filter, exporters, proto_gen, audience_service_pb2_grpc, ingest_pb2):\n"
        "    print(m.__file__)\n"
        "print(importlib.metadata.distribution('audience-builder').locate_file(''))\n"
    )
    paths = [Path(line) for line in venv.run_python(code).splitlines()]

    assert len(paths) == 8
    for path in paths:
        assert path.resolve().is_relative_to(venv.root.resolve()), path
        assert not path.resolve().is_relative_to(REPO_ROOT), path


def test_version_init_check_and_demo_from_the_wheel(venv: Venv, tmp_path: Path) -> None:
    version = _audience(venv, "--version", cwd=tmp_path)
    init = _audience(venv, "init", "proj", cwd=tmp_path)
    check = _audience(venv, "check", "--project", "proj", cwd=tmp_path)
    demo = _audience(venv, "demo", "--dir", "demo", cwd=tmp_path)

    assert (version.returncode, version.stdout) == (0, f"audience {_project_version()}\n")
    assert init.returncode == 0, init.stderr
    assert {p.relative_to(tmp_path / "proj").as_posix() for p in (tmp_path / "proj").rglob("*.aud")} == {
        f.removeprefix("audience/starter/") for f in _starter_files() if f.endswith(".aud")
    }
    aud_files = len([f for f in _starter_files() if f.endswith(".aud")])
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("ok: ") and check.stdout.endswith(f" in {aud_files} files, no problems\n")
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "succeeded (adds " in demo.stdout and "Done." in demo.stdout
    assert any((tmp_path / "demo" / "exports").rglob("*.csv*"))
    for result in (version, init, check, demo):
        assert "Traceback" not in result.stdout + result.stderr


def test_a_missing_generated_module_is_one_line_and_exit_2(dists: Dists, tmp_path: Path) -> None:
    broken = _fresh_venv(tmp_path / "venv", dists.wheel)
    shutil.rmtree(broken.site_packages / "proto_gen" / "ingest")

    result = _audience(broken, "check", "--project", str(tmp_path), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: the generated protobuf modules are missing from ")
    assert "reinstall audience-builder" in result.stderr
