"""Generated protobuf/gRPC modules for every ``.proto`` under ``<repo>/proto``.

This package holds ONLY generated code plus its generator (this file). The generated modules
are not committed (see ``.gitignore``); :func:`ensure_generated` (or ``python -m proto_gen``)
writes them, and is a cheap no-op when they are current. After it ran, import e.g.::

    from proto_gen.ingest.v1 import ingest_pb2, ingest_pb2_grpc

Why a separate top-level package: protoc names Python modules after the proto package
(``ingest.v1`` -> ``ingest/v1/ingest_pb2.py``), and ``audience.v1`` would clash with our own
``audience`` package. So the output lives under ``proto_gen`` and the imports protoc writes
between our own protos are rewritten to ``proto_gen.<package>``.

Design points, each for a reason:

- The stamp (``proto_gen/.stamp``) holds a hash of every proto source, the grpcio-tools
  version and :data:`GENERATOR_VERSION`; when it matches and every expected output exists,
  nothing runs, so callers can invoke :func:`ensure_generated` when their module is imported.
- Two processes may call it at once (tests in parallel, a server starting while a CLI runs):
  an exclusive ``flock`` serializes them, the stamp is re-checked under the lock, and the
  output is compiled into a private temporary directory and moved into place file by file
  with ``os.replace`` (atomic), the stamp last. A reader never sees a half-written module.
- No ``__init__.py`` is generated: the sub-directories are implicit namespace packages, so the
  only files written are the git-ignored ``*_pb2*.py(i)`` and the stamp.
"""


from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

# Bump when the rewriting or the protoc invocation changes: it invalidates every stamp.
GENERATOR_VERSION = "1"

__all__ = [
    "GENERATOR_VERSION",
    "ProtoGenError",
    "ensure_generated",
    "generate",
    "generated_root",
    "proto_root",
]

_PACKAGE = "proto_gen"
_STAMP_NAME = ".stamp"
_TMP_PREFIX = ".gen-"
_GENERATED_SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")


class ProtoGenError(RuntimeError):
    """protoc failed, or no proto sources and no generated code could be found."""


def generated_root() -> Path:
    """The ``proto_gen`` package directory, where the generated modules go."""
    return Path(__file__).resolve().parent


def proto_root() -> Path | None:
    """``<repo>/proto`` next to this package (a checkout or an editable install), else None.

    An installed wheel has no proto sources; it ships the modules generated at build time.
    """
    candidate = generated_root().parent / "proto"
    return candidate if candidate.is_dir() else None


def ensure_generated(*, force: bool = False) -> bool:
    """Generate the modules unless they are current. Returns True when protoc ran."""
    src = proto_root()
    out = generated_root()
    if src is None:  # an installed wheel: it ships the modules generated when it was built
        if any(out.rglob("*_pb2.py")):
            return False
        raise ProtoGenError(f"no proto sources next to {out} and no generated modules in it")
    return generate(src, out, package=_PACKAGE, force=force)


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
    h = hashlib.sha256()
    h.update(f"generator={GENERATOR_VERSION};".encode())
    h.update(f"grpcio-tools={_dist_version('grpcio-tools')};".encode())
    for rel in protos:
        data = (src / rel).read_bytes()
        h.update(f"{rel}:{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()


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
    stamp = _stamp_path(out)
    try:
        if stamp.read_text(encoding="utf-8").strip() != digest:
            return False
    except OSError:
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
        _write_atomically(_stamp_path(out), digest + "\n")
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
