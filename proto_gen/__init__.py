"""Generated protobuf/gRPC modules for every ``.proto`` under ``<repo>/proto``.

This package holds ONLY generated code plus its generator (this file). The generated modules
are never committed (see ``.gitignore``) and never written at import time. They come from:

- a wheel or an sdist: the build step in ``setup.py`` (a ``build_py`` that calls
  :func:`generate`) compiles ``proto/`` into the built package, so an installed product has
  them and needs neither ``proto/`` nor grpcio-tools;
- a checkout: an editable install (``pip install -e .``, the same build step, in place) or
  ``python -m proto_gen`` after changing a proto.

Modules that use the generated code call :func:`ensure_generated` first: it only checks, and
when the modules are missing or older than ``proto/`` it raises :class:`ProtoGenError` with one
line saying what to run. Then import e.g.::

    from proto_gen.ingest.v1 import ingest_pb2, ingest_pb2_grpc

Why a separate top-level package: protoc names Python modules after the proto package
(``ingest.v1`` -> ``ingest/v1/ingest_pb2.py``), and ``audience.v1`` would clash with our own
``audience`` package. So the output lives under ``proto_gen`` and the imports protoc writes
between our own protos are rewritten to ``proto_gen.<package>``.

Design points, each for a reason:

- The stamp (``proto_gen/.stamp``, JSON) records a hash of every proto source, the
  grpcio-tools version, :data:`GENERATOR_VERSION` and the list of generated files. Generation
  is skipped when all of it matches; :func:`ensure_generated` checks the files listed are there
  and, in a checkout, that the proto hash still matches (grpcio-tools need not be installed).
- Two processes may generate at once (a build and ``python -m proto_gen``, tests in parallel):
  an exclusive ``flock`` serializes them, the stamp is re-checked under the lock, and the
  output is compiled into a private temporary directory and moved into place file by file
  with ``os.replace`` (atomic), the stamp last. A reader never sees a half-written module.
- No ``__init__.py`` is generated: the sub-directories are implicit namespace packages, so the
  only files written are the git-ignored ``*_pb2*.py(i)`` and the stamp.
- This module imports only the standard library (grpc_tools only when generating), so
  ``setup.py`` can load it from the source tree in an isolated build environment.
"""


from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypedDict

# Bump when the rewriting, the protoc invocation or the stamp changes: it invalidates every stamp.
GENERATOR_VERSION = "2"

__all__ = [
    "GENERATOR_VERSION",
    "ProtoGenError",
    "ensure_generated",
    "generate",
    "generate_in_checkout",
    "generated_root",
    "output_files",
    "proto_root",
]

_PACKAGE = "proto_gen"
_STAMP_NAME = ".stamp"
_TMP_PREFIX = ".gen-"
_GENERATED_SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")
_REGENERATE = "run `python -m proto_gen` in the checkout"
_REINSTALL = "this installation is incomplete; reinstall audience-builder from its wheel or sdist"


class ProtoGenError(RuntimeError):
    """protoc failed, or the generated modules are missing or out of date (one-line message)."""


class _Stamp(TypedDict):
    generator: str
    grpcio_tools: str
    sources: str
    outputs: list[str]


def generated_root() -> Path:
    """The ``proto_gen`` package directory, where the generated modules go."""
    return Path(__file__).resolve().parent


def proto_root() -> Path | None:
    """``<repo>/proto`` when this package sits in a source tree (checkout, editable, sdist), else None.

    A source tree is recognised by ``pyproject.toml`` next to ``proto/``: site-packages can hold
    an unrelated top-level ``proto`` package (proto-plus), never a ``pyproject.toml``.
    """
    root = generated_root().parent
    candidate = root / "proto"
    return candidate if candidate.is_dir() and (root / "pyproject.toml").is_file() else None


def ensure_generated() -> None:
    """Check (never generate) that the generated modules are present and, in a checkout, current.

    Raises :class:`ProtoGenError` with one line saying what is wrong and what to run.
    """
    src = proto_root()
    out = generated_root()
    stamp = _read_stamp(out)
    fix = _REGENERATE if src is not None else _REINSTALL
    if stamp is None or not all((out / rel).is_file() for rel in stamp["outputs"]):
        raise ProtoGenError(f"the generated protobuf modules are missing from {out}: {fix}")
    if src is not None and stamp["sources"] != _sources_digest(src, _proto_files(src)):
        raise ProtoGenError(f"the generated protobuf modules in {out} are out of date with {src}: {fix}")


def generate_in_checkout(*, force: bool = False) -> bool:
    """``python -m proto_gen``: compile ``<repo>/proto`` into this package. True when protoc ran."""
    src = proto_root()
    out = generated_root()
    if src is None:
        raise ProtoGenError(
            f"no proto sources next to {out}: an installed package ships its generated modules, "
            "and `python -m proto_gen` only works in a checkout"
        )
    return generate(src, out, package=_PACKAGE, force=force)


def output_files(src: Path) -> list[str]:
    """What :func:`generate` writes for *src*, relative to the output package (stamp included)."""
    return [*_expected_outputs(_proto_files(src)), _STAMP_NAME]


def generate(src: Path, out: Path, *, package: str, force: bool = False) -> bool:
    """Compile every ``.proto`` under *src* into *out* (a package importable as *package*)."""
    protos = _proto_files(src)
    if not protos:
        raise ProtoGenError(f"no .proto files under {src}")
    digest = _sources_digest(src, protos)
    if not force and _is_current(out, protos, digest):
        return False
    with _exclusive_lock(out):
        if not force and _is_current(out, protos, digest):
            return False  # another process generated them while we waited
        _generate_locked(src, out, protos, package, digest)
    return True


def _proto_files(src: Path) -> list[str]:
    return sorted(p.relative_to(src).as_posix() for p in src.rglob("*.proto") if p.is_file())


def _sources_digest(src: Path, protos: Sequence[str]) -> str:
    """SHA-256 over every proto's path and bytes: what the generated code was compiled from."""
    h = hashlib.sha256()
    for rel in protos:
        data = (src / rel).read_bytes()
        h.update(f"{rel}:{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()


def _stamp_for(protos: Sequence[str], digest: str) -> _Stamp:
    return {
        "generator": GENERATOR_VERSION,
        "grpcio_tools": _dist_version("grpcio-tools"),
        "sources": digest,
        "outputs": _expected_outputs(protos),
    }


def _read_stamp(out: Path) -> _Stamp | None:
    """The stamp, or None when absent, unreadable or from another generator version."""
    try:
        stamp = json.loads(_stamp_path(out).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("generator") != GENERATOR_VERSION:
        return None
    outputs, sources = stamp.get("outputs"), stamp.get("sources")
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        return None
    if not isinstance(sources, str):
        return None
    return {
        "generator": GENERATOR_VERSION,
        "grpcio_tools": str(stamp.get("grpcio_tools")),
        "sources": sources,
        "outputs": outputs,
    }


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _stamp_path(out: Path) -> Path:
    return out / _STAMP_NAME


def _expected_outputs(protos: Sequence[str]) -> list[str]:
    stems = [rel[: -len(".proto")] for rel in protos]
    return [stem + suffix for stem in stems for suffix in _GENERATED_SUFFIXES]


def _is_current(out: Path, protos: Sequence[str], digest: str) -> bool:
    stamp = _read_stamp(out)
    if stamp != _stamp_for(protos, digest):
        return False
    return all((out / rel).is_file() for rel in _expected_outputs(protos))


@contextlib.contextmanager
def _exclusive_lock(out: Path) -> Iterator[None]:
    """An flock keyed by the output directory, kept outside the work tree (no stray file)."""
    key = hashlib.sha256(str(out).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"proto_gen-{key}.lock"
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _generate_locked(
    src: Path, out: Path, protos: Sequence[str], package: str, digest: str
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(_TMP_PREFIX + "*"):  # from a generator that was killed; we hold
        shutil.rmtree(leftover, ignore_errors=True)  # the lock, so no one else is using it
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=out))
    try:
        _run_protoc(src, tmp, protos)
        roots = _own_roots(protos)
        produced = sorted(p for p in tmp.rglob("*") if p.is_file())
        for path in produced:
            rel = path.relative_to(tmp)
            text = _rewrite_imports(path.read_text(encoding="utf-8"), roots, package)
            path.write_text(text, encoding="utf-8")
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
        _remove_stale(out, {p.relative_to(tmp).as_posix() for p in produced})
        _write_atomically(_stamp_path(out), json.dumps(_stamp_for(protos, digest), indent=1) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_protoc(src: Path, dest: Path, protos: Sequence[str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{src}",
        *(f"-I{path}" for path in _include_dirs()),
        f"--python_out={dest}",
        f"--grpc_python_out={dest}",
        f"--pyi_out={dest}",
        *protos,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise ProtoGenError(f"protoc failed (exit {done.returncode}): {detail}")


def _include_dirs() -> list[Path]:
    """grpc_tools' bundled well-known types, then googleapis-common-protos (google/rpc/...)."""
    import grpc_tools

    dirs = [Path(grpc_tools.__file__).resolve().parent / "_proto"]
    try:
        import google.rpc as google_rpc
    except ImportError:  # googleapis-common-protos missing: only google.rpc imports fail
        return dirs
    for entry in google_rpc.__path__:
        rpc_dir = Path(entry)
        if (rpc_dir / "status.proto").is_file():
            dirs.append(rpc_dir.parent.parent)
            break
    return dirs


def _own_roots(protos: Sequence[str]) -> tuple[set[str], set[str]]:
    """Top-level proto package dirs (``ingest``, ``audience``) and root-level module names."""
    dirs = {rel.split("/", 1)[0] for rel in protos if "/" in rel}
    modules = {rel[: -len(".proto")] + "_pb2" for rel in protos if "/" not in rel}
    modules |= {m + "_grpc" for m in modules}
    return dirs, modules


def _rewrite_imports(text: str, roots: tuple[set[str], set[str]], package: str) -> str:
    dirs, modules = roots
    if dirs:
        names = "|".join(sorted(re.escape(d) for d in dirs))
        from_re = re.compile(rf"^(\s*)from ((?:{names})(?:\.\w+)*) import ", re.MULTILINE)
        text = from_re.sub(rf"\1from {package}.\2 import ", text)
        bare_re = re.compile(rf"^\s*import (?:{names})\.", re.MULTILINE)
        if bare_re.search(text):
            raise ProtoGenError("protoc emitted a bare import of a project proto: fix the rewriter")
    if modules:
        names = "|".join(sorted(re.escape(m) for m in modules))
        mod_re = re.compile(rf"^(\s*)import ({names}) as ", re.MULTILINE)
        text = mod_re.sub(rf"\1from {package} import \2 as ", text)
    return text


def _remove_stale(out: Path, produced: set[str]) -> None:
    """Delete generated modules whose proto was removed, so they cannot be imported by mistake."""
    for path in out.rglob("*"):
        if not path.is_file() or not path.name.endswith(_GENERATED_SUFFIXES):
            continue
        if path.relative_to(out).as_posix() not in produced:
            path.unlink(missing_ok=True)


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
