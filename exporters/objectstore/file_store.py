"""Local-folder destination (``file:///path``) with the same atomicity as S3.

Each write goes to a hidden temp file in the target directory, is fsynced, then renamed over
the final name with ``os.replace`` (atomic on POSIX), and the directory is fsynced so the
rename survives a crash. A failed write removes its temp file, so a reader never sees a
partial object. Local files carry no metadata: ``head`` hashes the bytes on disk instead,
which is stronger than trusting a recorded digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import structlog

from exporters.objectstore.base import (
    ExportStoreError,
    ObjectInfo,
    ObjectNotFoundError,
    validate_key,
)

log = structlog.get_logger()

_CHUNK = 1 << 20
_TEMP_PREFIX = "."
_TEMP_SUFFIX = ".partial"

#: Writes an object's bytes to the open temp file and returns their hex SHA-256.
_Writer = Callable[[BinaryIO], str]


def _is_temp_name(name: str) -> bool:
    return name.startswith(_TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX)


def _fsync_dir(directory: Path) -> None:
    """Persist a rename; some filesystems refuse O_RDONLY on dirs, which we tolerate."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _copy_and_hash(source: BinaryIO, target: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := source.read(_CHUNK):
        digest.update(chunk)
        target.write(chunk)
    return digest.hexdigest()


class FileStore:
    """An ObjectStore rooted at a local directory; keys map to relative paths."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()

    def describe(self, key: str = "") -> str:
        return (self.root / key).as_uri() if key else self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def put_file(
        self,
        key: str,
        path: Path,
        content_sha256: str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Copy ``path`` into place atomically, checking the bytes against ``content_sha256``.

        ``metadata`` is accepted for interface parity and not stored (files have none).
        """
        try:
            with open(path, "rb") as source:
                self._write_atomically(
                    key, lambda target: _copy_and_hash(source, target), content_sha256
                )
        except OSError as exc:
            raise self._os_error("write", key, exc) from exc

    def put_bytes(
        self, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None
    ) -> None:
        def write(target: BinaryIO) -> str:
            target.write(data)
            return hashlib.sha256(data).hexdigest()

        try:
            self._write_atomically(key, write, None)
        except OSError as exc:
            raise self._os_error("write", key, exc) from exc

    def _write_atomically(self, key: str, write: _Writer, expected_sha256: str | None) -> None:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(f"{_TEMP_PREFIX}{final.name}.{secrets.token_hex(8)}{_TEMP_SUFFIX}")
        # 0o666 minus the umask, like any new file (mkstemp's 0o600 would hide the export
        # from the process that picks the drop up).
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as target:
                digest = write(target)
                target.flush()
                os.fsync(target.fileno())
            if expected_sha256 is not None and digest != expected_sha256:
                raise ExportStoreError(
                    f"write failed for {self.describe(key)}: content does not match its sha256",
                    location=self.describe(key),
                )
            os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        _fsync_dir(final.parent)
        log.debug("objectstore.file_written", location=self.describe(key))

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            with open(path, "rb") as source:
                digest = hashlib.file_digest(source, "sha256").hexdigest()
                size = os.fstat(source.fileno()).st_size
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._os_error("head", key, exc) from exc
        return ObjectInfo(size=size, sha256=digest)

    def iter_bytes(self, key: str, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        path = self._path(key)
        try:
            source = open(path, "rb")  # noqa: SIM115 - closed by the generator below
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFoundError(
                f"read failed for {self.describe(key)}: no such object",
                location=self.describe(key),
            ) from exc
        except OSError as exc:
            raise self._os_error("read", key, exc) from exc
        return self._chunks(source, chunk_size)

    @staticmethod
    def _chunks(source: BinaryIO, chunk_size: int) -> Iterator[bytes]:
        with source:
            while chunk := source.read(chunk_size):
                yield chunk

    def list(self, prefix: str = "") -> list[str]:
        # Walk only below the folder the prefix names, not the whole destination.
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        if not start.is_dir() or not start.resolve().is_relative_to(self.root.resolve()):
            return []
        keys: list[str] = []
        for directory, _dirs, files in os.walk(start):
            relative = Path(directory).relative_to(self.root).as_posix()
            base = "" if relative == "." else f"{relative}/"
            keys.extend(
                base + name
                for name in files
                if not _is_temp_name(name) and (base + name).startswith(prefix)
            )
        return sorted(keys)

    def _os_error(self, operation: str, key: str, exc: OSError) -> ExportStoreError:
        reason = exc.strerror or type(exc).__name__
        return ExportStoreError(
            f"{operation} failed for {self.describe(key)}: {reason}",
            location=self.describe(key),
        )
